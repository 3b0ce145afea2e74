//! Plays Step Functions for the lifecycle state machine (`statemachine/lifecycle.asl.json`):
//! one execution per request id (a second start is a no-op), Grant → (granted?) Wait until the
//! deadline → Expire, retrying `Retryable` failures with backoff, and on a final failure the
//! RecordFailure task — with the same task payloads the deployed state machine sends. Stop
//! (revoke) aborts the execution. Also the stand-in for live sessions, which moto lacks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jit_shared::adapters::api_calls::ApiCallLog;
use jit_shared::domain::errors::{ServiceError, RETRYABLE};
use jit_shared::domain::ids::{NodeId, RequestId};
use jit_shared::lifecycle::{GrantOutput, Task};
use jit_shared::ports::{ExecutionControl, PortError, SessionControl};
use tokio::sync::mpsc;

pub enum Command {
    Start(RequestId),
    Stop(RequestId),
}

pub struct LocalExecutions {
    tx: mpsc::UnboundedSender<Command>,
    started: Mutex<HashSet<RequestId>>,
    /// Records the Step Functions call each start or stop stands in for.
    calls: ApiCallLog,
}

impl LocalExecutions {
    pub fn new(calls: ApiCallLog) -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, started: Mutex::new(HashSet::new()), calls }, rx)
    }
}

#[async_trait::async_trait]
impl ExecutionControl for LocalExecutions {
    async fn start(&self, request_id: &RequestId) -> Result<bool, PortError> {
        self.calls.record("SFN", "StartExecution");
        let fresh = self.started.lock().map_err(|_| PortError::Permanent("execution registry poisoned".into()))?.insert(request_id.clone());
        if fresh {
            self.tx.send(Command::Start(request_id.clone())).map_err(|_| PortError::Permanent("the local execution runner stopped".into()))?;
        }
        Ok(fresh)
    }

    async fn stop(&self, request_id: &RequestId, _cause: &str) -> Result<(), PortError> {
        self.calls.record("SFN", "StopExecution");
        let _ = self.tx.send(Command::Stop(request_id.clone()));
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

/// One execution. `run` executes a task payload (the Lambda's handler).
pub async fn execute<R, Fut>(id: RequestId, run: R)
where
    R: Fn(Task) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, ServiceError>>,
{
    let request_id = id.to_string();
    let failed = |task: &'static str, e: ServiceError| {
        let payload = Task::RecordFailure {
            request_id: request_id.clone(),
            failed_task: task.into(),
            error: serde_json::json!({ "Error": e.lambda_error_type(), "Cause": e.to_string() }),
        };
        tracing::error!(request_id = %request_id, task, error = %e, "lifecycle task failed for good (alert)");
        payload
    };
    let grant = with_retry(6, || run(Task::Grant { request_id: request_id.clone() })).await;
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
    if !output.granted {
        return;
    }
    // Wait (TimestampPath $.deadline).
    if let Ok(deadline) = chrono::DateTime::parse_from_rfc3339(&output.deadline) {
        let wait = (deadline.with_timezone(&chrono::Utc) - jit_shared::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
    if let Err(e) = with_retry(10, || run(Task::Expire { request_id: request_id.clone() })).await {
        let _ = run(failed("expire", e)).await;
    }
}

/// Keeps the running executions, so Stop can abort one.
pub type Running = Arc<Mutex<HashMap<RequestId, tokio::task::JoinHandle<()>>>>;

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
    async fn terminate(&self, _session_id: &str) -> Result<(), PortError> {
        Ok(())
    }
}
