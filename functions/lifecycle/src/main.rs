//! Lifecycle Lambda: the only function allowed to write IAM (and only to eligible principals).
//! Step Functions invokes it with a task payload (grant, expire, recordFailure) and the bus rule
//! for `Revoked` with the event (tear down now, stop the execution): `app::lifecycle::handle_payload`.

use jit_shared::adapters::runtime::diagnostic;
use jit_shared::adapters::wiring::{self, sdk_config};
use jit_shared::app::lifecycle::{handle_payload, LifecycleDeps};
use jit_shared::config::{grant_settings, state_machine_arn, StackConfig};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::adapters::logging::init();
    let stack = StackConfig::from_env()?;
    let settings = grant_settings(&stack);
    let state_machine = state_machine_arn()?;
    let sdk = sdk_config(&stack.region).await;
    let store = wiring::store(&sdk, &stack);
    let granter = wiring::granter(&sdk);
    let sessions = wiring::sessions(&sdk);
    let executions = wiring::executions(&sdk, &state_machine);
    let deps = LifecycleDeps {
        store: &store,
        granter: &granter,
        sessions: &sessions,
        executions: &executions,
        settings: &settings,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        handle_payload(deps, event.payload, jit_shared::now()).await.map_err(|e| diagnostic(&e, "lifecycle"))
    }))
    .await
}
