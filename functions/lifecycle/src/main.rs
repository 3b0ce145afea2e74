//! Lifecycle Lambda: the only function allowed to write IAM (and only to eligible principals).
//! Step Functions invokes it with a task payload (grant, expire, recordFailure) and the bus rule
//! for `Revoked` with the event (tear down now, stop the execution): `app::lifecycle::handle_payload`.

use jit_shared::adapters::runtime::diagnostic;
use jit_shared::adapters::wiring::{self, sdk_config};
use jit_shared::app::lifecycle::handle_payload;
use jit_shared::config::{state_machine_arn, StackConfig};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::adapters::logging::init();
    let stack = StackConfig::from_env()?;
    let state_machine = state_machine_arn()?;
    let sdk = sdk_config(&stack.region).await;
    let adapters = wiring::lifecycle(&sdk, &stack, &state_machine)?;
    let adapters = &adapters;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        handle_payload(&adapters.deps(), event.payload, jit_shared::now())
            .await
            .map_err(|e| diagnostic(&e, "lifecycle"))
    }))
    .await
}
