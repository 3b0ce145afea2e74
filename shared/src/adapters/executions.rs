//! The lifecycle state machine's executions: one per approved request, named by its id, so a
//! second start (a redelivered event) is a no-op.

use aws_sdk_sfn::Client;

use crate::adapters::classify;
use crate::domain::ids::RequestId;
use crate::ports::{ExecutionControl, PortError};

#[derive(Clone, Debug)]
pub struct StepFunctionsExecutions {
    client: Client,
    state_machine_arn: String,
}

impl StepFunctionsExecutions {
    pub fn new(client: Client, state_machine_arn: impl Into<String>) -> Self {
        Self { client, state_machine_arn: state_machine_arn.into() }
    }

    /// `arn:…:stateMachine:<name>` → `arn:…:execution:<name>:<request id>`.
    pub fn execution_arn(&self, request_id: &RequestId) -> String {
        format!("{}:{request_id}", self.state_machine_arn.replacen(":stateMachine:", ":execution:", 1))
    }
}

#[async_trait::async_trait]
impl ExecutionControl for StepFunctionsExecutions {
    async fn start(&self, request_id: &RequestId) -> Result<bool, PortError> {
        let input = serde_json::json!({ "requestId": request_id.as_str() }).to_string();
        match self.client.start_execution().state_machine_arn(&self.state_machine_arn).name(request_id.as_str()).input(input).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => Ok(false),
            Err(e) => Err(classify("StartExecution", &e)),
        }
    }

    async fn stop(&self, request_id: &RequestId, cause: &str) -> Result<(), PortError> {
        match self.client.stop_execution().execution_arn(self.execution_arn(request_id)).cause(cause).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_does_not_exist()) => Ok(()),
            Err(e) => Err(classify("StopExecution", &e)),
        }
    }
}
