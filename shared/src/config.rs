//! Typed configuration, read once from the environment at cold start.

use std::env;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: environment variable {name} {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError { name, problem: "is required".into() }),
    }
}

fn optional(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Where the stack's resources are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackConfig {
    pub table_name: String,
    pub event_bus_name: String,
    /// The Identity Store behind IAM Identity Center, when Identity Center users may request.
    pub identity_store_id: Option<String>,
    /// The account the nodes live in (for instance ARNs).
    pub account_id: String,
    pub region: String,
}

impl StackConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("JIT_TABLE_NAME")?,
            event_bus_name: required("JIT_EVENT_BUS_NAME")?,
            identity_store_id: optional("JIT_IDENTITY_STORE_ID"),
            account_id: required("JIT_ACCOUNT_ID")?,
            region: optional("AWS_REGION").or_else(|| optional("AWS_DEFAULT_REGION")).ok_or(ConfigError { name: "AWS_REGION", problem: "is required".into() })?,
        })
    }
}

/// Loads the AWS SDK configuration for `region`. An endpoint override (`AWS_ENDPOINT_URL`) is
/// honoured by the SDK itself; the local stack and tests set it to the emulator on 127.0.0.1.
pub async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(region.to_owned())).load().await
}
