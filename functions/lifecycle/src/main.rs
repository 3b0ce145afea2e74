//! Lifecycle Lambda: the only function allowed to write IAM (and only to eligible principals).
//! Invoked by Step Functions with a task payload (`{"task": "grant" | "expire" | "recordFailure",
//! "requestId": …}`) and by the bus rule for `Revoked` (tear down now, stop the execution). The
//! rule for `Approved` starts the state machine itself.

use jit_shared::adapters::runtime::diagnostic;
use jit_shared::config::{grant_settings, sdk_config, wiring, StackConfig};
use jit_shared::domain::errors::{FieldError, ServiceError};
use jit_shared::events::EventEnvelope;
use jit_shared::lifecycle::{handle_event, run_task, LifecycleDeps, Task};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::logging::init();
    let stack = StackConfig::from_env()?;
    let settings = grant_settings(&stack);
    let state_machine = jit_shared::config::state_machine_arn()?;
    let sdk = sdk_config(&stack.region).await;
    let store = wiring::store(&sdk, &stack);
    let events = wiring::publisher(&sdk, &stack);
    let granter = wiring::granter(&sdk);
    let sessions = wiring::sessions(&sdk);
    let executions = wiring::executions(&sdk, &state_machine);
    let deps = LifecycleDeps { store: &store, events: &events, granter: &granter, sessions: &sessions, settings: &settings };
    let (deps, executions) = (&deps, &executions);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let now = jit_shared::now();
        let result = if event.payload.get("detail-type").is_some() {
            match serde_json::from_value::<EventEnvelope>(event.payload) {
                Ok(envelope) => handle_event(deps, executions, &envelope, now).await.map(|()| serde_json::Value::Null),
                Err(e) => Err(ServiceError::from(FieldError::new("detail", "InvalidEvent", e.to_string()))),
            }
        } else {
            match serde_json::from_value::<Task>(event.payload) {
                Ok(task) => run_task(deps, &task, now).await,
                Err(e) => Err(ServiceError::from(FieldError::new("task", "InvalidTask", e.to_string()))),
            }
        };
        result.map_err(|e| diagnostic(&e, "lifecycle"))
    }))
    .await
}
