//! Lifecycle executions. The bus rule for `Approved` starts them (it targets the state machine);
//! this adapter starts one only for the sweeper (when that delivery failed), and stops one early
//! on revocation, by the ARN the grant recorded, only if it is an execution of this stack's
//! state machine.

use aws_sdk_sfn::Client;

use crate::adapters::classify;
use crate::app::lifecycle;
use crate::domain::ids::RequestId;
use crate::ports::{ExecutionControl, PortError};

#[derive(Clone, Debug)]
pub struct StepFunctionsExecutions {
    client: Client,
    state_machine_arn: String,
    /// `arn:…:execution:<state machine name>:`
    execution_prefix: String,
}

impl StepFunctionsExecutions {
    pub fn new(client: Client, state_machine_arn: &str) -> Self {
        Self {
            client,
            state_machine_arn: state_machine_arn.to_owned(),
            execution_prefix: lifecycle::execution_prefix(state_machine_arn),
        }
    }
}

#[async_trait::async_trait]
impl ExecutionControl for StepFunctionsExecutions {
    async fn start(&self, request_id: &RequestId) -> Result<String, PortError> {
        // The same input the Approved rule's input transformer gives the state machine.
        let input = serde_json::json!({ "requestId": request_id }).to_string();
        let out = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .input(input)
            .send()
            .await
            .map_err(|e| classify("StartExecution", &e))?;
        Ok(out.execution_arn)
    }

    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<(), PortError> {
        if !lifecycle::is_execution_of(&self.execution_prefix, execution_arn) {
            return Err(PortError::Permanent(format!(
                "{execution_arn} is not an execution of the lifecycle state machine; not stopping it"
            )));
        }
        match self.client.stop_execution().execution_arn(execution_arn).cause(cause).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_does_not_exist()) => Ok(()),
            Err(e) => Err(classify("StopExecution", &e)),
        }
    }
}
