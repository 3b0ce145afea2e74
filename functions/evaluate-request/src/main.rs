//! Cedar evaluation Lambda, triggered by the "Access Request Submitted" EventBridge rule, and by
//! the lifecycle state machine's `RecheckAtStart` task for a scheduled request at its start.

use jit_shared::adapters::runtime::diagnostic;
use jit_shared::adapters::wiring::{self, sdk_config};
use jit_shared::app::evaluate::{handle_payload, EvaluationDeps};
use jit_shared::config::{pending_timeout_minutes, StackConfig};
use jit_shared::policy::PolicySet;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

mod bundled_policies {
    include!(concat!(env!("OUT_DIR"), "/bundled_policies.rs"));
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::adapters::logging::init();
    let stack = StackConfig::from_env()?;
    let pending_timeout_minutes = pending_timeout_minutes()?;
    // Validated once per cold start; an invalid set stops the function before it decides anything.
    let policies =
        PolicySet::from_files(&bundled_policies::files())?.with_time_zone(jit_shared::config::policy_time_zone()?);
    let sdk = sdk_config(&stack.region).await;
    let store = wiring::store(&sdk, &stack);
    let principals = wiring::principal_directory(&sdk, &stack);
    let nodes = wiring::node_directory(&sdk, &stack);
    let seal = wiring::approval_seal(&sdk)?;
    let deps = EvaluationDeps {
        store: &store,
        principals: &principals,
        nodes: &nodes,
        policies: &policies,
        pending_timeout_minutes,
        seal: &seal,
        max_active_requests: jit_shared::config::max_active_requests()?,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        handle_payload(deps, event.payload, jit_shared::now()).await.map_err(|e| diagnostic(&e, "evaluation"))
    }))
    .await
}
