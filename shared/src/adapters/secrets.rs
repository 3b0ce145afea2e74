//! The mail-link signing key: an SSM Parameter Store SecureString, read once per cold start.

use crate::adapters::classify;
use crate::domain::approval_token::SigningKey;
use crate::ports::PortError;

pub async fn read_signing_key(client: &aws_sdk_ssm::Client, parameter: &str) -> Result<SigningKey, PortError> {
    let out = client.get_parameter().name(parameter).with_decryption(true).send().await.map_err(|e| {
        if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) {
            PortError::Permanent(format!(
                "the signing-key parameter {parameter} does not exist; create it as a SecureString (see the README, first-time setup)"
            ))
        } else {
            classify("GetParameter", &e)
        }
    })?;
    let value = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| PortError::Permanent(format!("parameter {parameter} has no value")))?;
    SigningKey::from_secret(value).map_err(|e| PortError::Permanent(format!("parameter {parameter}: {e}")))
}

/// Another SecureString (the Slack app's signing secret or bot token), as text.
pub async fn read_secure_string(client: &aws_sdk_ssm::Client, parameter: &str) -> Result<String, PortError> {
    let out = client.get_parameter().name(parameter).with_decryption(true).send().await.map_err(|e| {
        if e.as_service_error().is_some_and(|s| s.is_parameter_not_found()) {
            PortError::Permanent(format!("the parameter {parameter} does not exist; create it as a SecureString"))
        } else {
            classify("GetParameter", &e)
        }
    })?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_owned)
        .ok_or_else(|| PortError::Permanent(format!("parameter {parameter} has no value")))
}
