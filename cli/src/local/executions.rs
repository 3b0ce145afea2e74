//! Plays Step Functions for the lifecycle state machine (`statemachine/lifecycle.asl.json`):
//! every `Approved` event starts an execution, as the deployed bus rule does (it targets the
//! state machine); Grant (at a scheduled start: RecheckAtStart, then Grant again) → (granted?)
//! Wait until the deadline →
//! Expire, retrying `Retryable`
//! failures with backoff, and on a final failure the RecordFailure task, with the same task
//! payloads the deployed state machine sends. A `Revoked` event starts the revoke branch: the
//! Revoke task at once, and again after the propagation wait. Stop (revoke) aborts an execution
//! by its ARN.
//! Also the stand-in for live sessions, which moto lacks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jit_shared::adapters::api_calls::ApiCallLog;
use jit_shared::app::error::{ServiceError, RETRYABLE};
use jit_shared::app::lifecycle::{GrantOutput, Task};
use jit_shared::domain::ids::{NodeId, RequestId};
use jit_shared::ports::{ExecutionControl, PortError, SessionControl};
use tokio::sync::mpsc;

/// How the local stack records an execution the bus rule starts: a delivery by EventBridge, like
/// a Lambda invocation, not an API call of a function (`"EventBridge target:StartExecution"`).
pub const RULE_TARGET_SERVICE: &str = "EventBridge target";

pub enum Command {
    Start { execution_arn: String, request_id: RequestId, revoke: bool },
    Stop(String),
}

pub struct LocalExecutions {
    tx: mpsc::UnboundedSender<Command>,
    /// `arn:aws:states:<region>:<account>:execution:<state machine>:`
    execution_prefix: String,
    /// Records the Step Functions calls and deliveries this stands in for.
    calls: ApiCallLog,
}

impl LocalExecutions {
    pub fn new(state_machine_name: &str, calls: ApiCallLog) -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let state_machine = format!(
            "arn:aws:states:{}:{}:stateMachine:{state_machine_name}",
            crate::emulator::REGION,
            crate::emulator::ACCOUNT_ID
        );
        let execution_prefix = jit_shared::app::lifecycle::execution_prefix(&state_machine);
        (Self { tx, execution_prefix, calls }, rx)
    }

    /// What the bus rule does with an `Approved` or `Revoked` event: a new execution with a fresh
    /// name (`revoke`: the input carries `"status": "Revoked"`, which routes to the revoke branch).
    pub fn start_from_rule(&self, request_id: &RequestId, revoke: bool) -> Result<String, PortError> {
        self.launch(RULE_TARGET_SERVICE, request_id, revoke)
    }

    /// A new execution with a fresh name, recorded as a call of `service` (a delivery by the
    /// rule, or the sweeper's own `StartExecution`).
    fn launch(&self, service: &str, request_id: &RequestId, revoke: bool) -> Result<String, PortError> {
        self.calls.record(service, "StartExecution");
        let execution_arn = format!("{}{}", self.execution_prefix, uuid::Uuid::new_v4());
        self.tx
            .send(Command::Start { execution_arn: execution_arn.clone(), request_id: request_id.clone(), revoke })
            .map_err(|_| PortError::Permanent("the local execution runner stopped".into()))?;
        Ok(execution_arn)
    }
}

#[async_trait::async_trait]
impl ExecutionControl for LocalExecutions {
    /// The sweeper's StartExecution (a function's call, unlike the rule's delivery above).
    async fn start(&self, request_id: &RequestId) -> Result<String, PortError> {
        self.launch("SFN", request_id, false)
    }

    async fn stop(&self, execution_arn: &str, _cause: &str) -> Result<(), PortError> {
        self.calls.record("SFN", "StopExecution");
        if !jit_shared::app::lifecycle::is_execution_of(&self.execution_prefix, execution_arn) {
            return Err(PortError::Permanent(format!(
                "{execution_arn} is not an execution of the lifecycle state machine; not stopping it"
            )));
        }
        let _ = self.tx.send(Command::Stop(execution_arn.to_owned()));
        Ok(())
    }
}

/// Runs a task with the state machine's Retry: `Retryable` errors are retried with backoff.
pub async fn with_retry<F, Fut>(attempts: u32, mut task: F) -> Result<serde_json::Value, ServiceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, ServiceError>>,
{
    let mut delay = Duration::from_millis(250);
    let mut last = None;
    for _ in 0..attempts.max(1) {
        match task().await {
            Ok(v) => return Ok(v),
            Err(e) if e.lambda_error_type() == RETRYABLE => {
                tracing::warn!(error = %e, "lifecycle task failed; retrying");
                last = Some(e);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ServiceError::Internal("no attempt ran".into())))
}

/// How long the revoke branch waits before its second pass (the state machine's
/// `WaitForPropagation`, shortened here so that `make dev` shows it).
pub const LOCAL_PROPAGATION_WAIT: Duration = Duration::from_secs(2);

/// One execution. `run` executes a task payload (the lifecycle Lambda's handler), `recheck` the
/// `RecheckAtStart` task (evaluate-request's).
pub async fn execute<R, Fut, C, CFut>(execution_arn: String, id: RequestId, revoke: bool, run: R, recheck: C)
where
    R: Fn(Task) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, ServiceError>>,
    C: Fn(RequestId) -> CFut,
    CFut: std::future::Future<Output = Result<serde_json::Value, ServiceError>>,
{
    let request_id = id;
    if revoke {
        for second_pass in [false, true] {
            if second_pass {
                tokio::time::sleep(LOCAL_PROPAGATION_WAIT).await;
            }
            let task = Task::Revoke { request_id: request_id.clone(), second_pass };
            if let Err(e) = with_retry(10, || run(task.clone())).await {
                tracing::error!(request_id = %request_id, error = %e, "revoke failed for good (alert); the sweeper re-checks");
                return;
            }
        }
        return;
    }
    let failed = |task: &'static str, e: ServiceError| {
        let payload = Task::RecordFailure {
            request_id: request_id.clone(),
            failed_task: task.into(),
            error: serde_json::json!({ "Error": e.lambda_error_type(), "Cause": e.to_string() }),
            execution: Some(execution_arn.clone()),
        };
        tracing::error!(request_id = %request_id, task, error = %e, "lifecycle task failed for good (alert)");
        payload
    };
    // Grant, and for a scheduled access WaitUntilStart → RecheckAtStart → (still permitted?)
    // GrantRechecked.
    let mut rechecked = false;
    let output = loop {
        let grant = with_retry(6, || {
            run(Task::Grant { request_id: request_id.clone(), execution: Some(execution_arn.clone()), rechecked })
        })
        .await;
        let output: GrantOutput = match grant.map(serde_json::from_value) {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                let _ = run(failed("grant", ServiceError::Internal(e.to_string()))).await;
                return;
            }
            Err(e) => {
                let _ = run(failed("grant", e)).await;
                return;
            }
        };
        let Some(starts_at) = output.starts_at.as_deref() else { break output };
        sleep_until(starts_at).await;
        match with_retry(6, || recheck(request_id.clone())).await {
            Ok(out) if out["permitted"] == true => rechecked = true,
            Ok(_) => return,
            Err(e) => {
                let _ = run(failed("grant", e)).await;
                return;
            }
        }
    };
    if !output.granted {
        return;
    }
    sleep_until(&output.deadline).await;
    if let Err(e) = with_retry(10, || run(Task::Expire { grant: Box::new(output.clone()) })).await {
        let _ = run(failed("expire", e)).await;
    }
}

/// A Wait state's `TimestampPath`: sleeps until the ISO 8601 time (at once if it has passed).
async fn sleep_until(at: &str) {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(at) {
        let wait = (at.with_timezone(&chrono::Utc) - jit_shared::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
}

/// Keeps the running executions by ARN, so Stop can abort one.
pub type Running = Arc<Mutex<HashMap<String, tokio::task::JoinHandle<()>>>>;

/// Live sessions stand-in: moto implements neither DescribeSessions nor TerminateSession, so the
/// local stack reports no live sessions (the SSM adapter is tested with aws-smithy-mocks).
/// It records the `DescribeSessions` call the deployed adapter makes.
#[derive(Debug, Clone, Default)]
pub struct NoLiveSessions {
    pub calls: ApiCallLog,
}

#[async_trait::async_trait]
impl SessionControl for NoLiveSessions {
    async fn live_sessions(&self, _node: &NodeId, _owner_arn: &str) -> Result<Vec<String>, PortError> {
        self.calls.record("SSM", "DescribeSessions");
        Ok(vec![])
    }
    async fn terminate(&self, _node: &NodeId, _session_id: &str) -> Result<(), PortError> {
        Ok(())
    }
}
