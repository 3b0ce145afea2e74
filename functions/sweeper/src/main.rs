//! Sweeper Lambda, on a schedule: `app::sweep::sweep` (pending expiry and grant reconciliation).

use jit_shared::adapters::runtime::diagnostic;
use jit_shared::adapters::wiring::{self, sdk_config};
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
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        jit_shared::app::sweep::sweep(&adapters.deps(), jit_shared::now()).await.map_err(|e| diagnostic(&e, "sweep"))
    }))
    .await
}
