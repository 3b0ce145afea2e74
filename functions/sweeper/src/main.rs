//! Sweeper Lambda, on an EventBridge schedule: expires pending requests whose approval deadline
//! has passed. Decisions are refused after the deadline anyway (the write checks it); this makes
//! the status, the audit record, the event and the requester's mail follow.

use jit_shared::adapters::runtime::diagnostic;
use jit_shared::approvals::expire_overdue;
use jit_shared::config::{sdk_config, wiring, StackConfig};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt().json().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_current_span(false).without_time().init();
    let stack = StackConfig::from_env()?;
    let sdk = sdk_config(&stack.region).await;
    let store = wiring::store(&sdk, &stack);
    let events = wiring::publisher(&sdk, &stack);
    let (store, events) = (&store, &events);
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let expired = expire_overdue(store, events, jit_shared::now()).await.map_err(|e| diagnostic(&e, "sweep"))?;
        tracing::info!(expired = expired.len(), "pending requests expired");
        Ok::<_, lambda_runtime::Diagnostic>(serde_json::json!({ "expired": expired }))
    }))
    .await
}
