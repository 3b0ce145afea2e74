//! Sweeper Lambda, every 5 minutes: expires pending requests past their approval deadline, and
//! reconciles grants: a grant still attached past its deadline is torn down, and a `jit-` policy
//! with no live request is removed. Every step is a conditional write or an idempotent delete,
//! so it is safe next to the lifecycle executions and to itself.

use jit_shared::adapters::runtime::diagnostic;
use jit_shared::approvals::expire_overdue;
use jit_shared::config::{grant_settings, sdk_config, wiring, StackConfig};
use jit_shared::lifecycle::{reconcile, LifecycleDeps};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    jit_shared::logging::init();
    let stack = StackConfig::from_env()?;
    let settings = grant_settings(&stack);
    let sdk = sdk_config(&stack.region).await;
    let store = wiring::store(&sdk, &stack);
    let events = wiring::publisher(&sdk, &stack);
    let granter = wiring::granter(&sdk);
    let sessions = wiring::sessions(&sdk);
    let deps = LifecycleDeps { store: &store, events: &events, granter: &granter, sessions: &sessions, settings: &settings };
    let deps = &deps;
    run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let now = jit_shared::now();
        let expired = expire_overdue(deps.store, deps.events, now).await.map_err(|e| diagnostic(&e, "pending sweep"))?;
        let report = reconcile(deps, now).await.map_err(|e| diagnostic(&e, "grant reconciliation"))?;
        // What was fixed is the point of the sweep: log it as one record CloudWatch can alarm on.
        tracing::info!(
            pending_expired = expired.len(),
            grants_expired = report.expired.len(),
            orphans_removed = report.orphans_removed.len(),
            restarted = report.restarted.len(),
            failed = report.failed.len(),
            // The template's SweeperFixes metric filter sums this field.
            fixed = report.fixed(),
            "sweep done"
        );
        Ok::<_, lambda_runtime::Diagnostic>(serde_json::json!({ "pendingExpired": expired, "grants": report }))
    }))
    .await
}
