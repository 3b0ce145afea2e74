//! Stops lifecycle executions. They are started by the bus rule for `Approved` (the rule targets
//! the state machine), so this adapter only ends one early, on revocation, by the ARN the grant
//! recorded, and only if that ARN is an execution of this stack's state machine.

use aws_sdk_sfn::Client;

use crate::adapters::classify;
use crate::lifecycle;
use crate::ports::{ExecutionControl, PortError};

#[derive(Clone, Debug)]
pub struct StepFunctionsExecutions {
    client: Client,
    /// `arn:…:execution:<state machine name>:`
    execution_prefix: String,
}

impl StepFunctionsExecutions {
    pub fn new(client: Client, state_machine_arn: &str) -> Self {
        Self { client, execution_prefix: lifecycle::execution_prefix(state_machine_arn) }
    }
}

#[async_trait::async_trait]
impl ExecutionControl for StepFunctionsExecutions {
    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<(), PortError> {
        if !lifecycle::is_execution_of(&self.execution_prefix, execution_arn) {
            return Err(PortError::Permanent(format!("{execution_arn} is not an execution of the lifecycle state machine; not stopping it")));
        }
        match self.client.stop_execution().execution_arn(execution_arn).cause(cause).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_does_not_exist()) => Ok(()),
            Err(e) => Err(classify("StopExecution", &e)),
        }
    }
}
