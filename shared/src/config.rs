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
            region: optional("AWS_REGION")
                .or_else(|| optional("AWS_DEFAULT_REGION"))
                .ok_or(ConfigError { name: "AWS_REGION", problem: "is required".into() })?,
        })
    }
}

/// How long a pending request waits for approvals (`JIT_PENDING_TIMEOUT_MINUTES`, default 24 h).
pub fn pending_timeout_minutes() -> Result<u32, ConfigError> {
    match optional("JIT_PENDING_TIMEOUT_MINUTES") {
        None => Ok(crate::domain::approval::DEFAULT_PENDING_TIMEOUT_MINUTES),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|m| (1..=crate::domain::ids::MAX_DURATION_MINUTES).contains(m))
            .ok_or(ConfigError { name: "JIT_PENDING_TIMEOUT_MINUTES", problem: format!("must be whole minutes from 1 to 20160, not '{v}'") }),
    }
}

/// The SSM SecureString holding the mail-link signing key (`JIT_SIGNING_KEY_PARAMETER`).
pub fn signing_key_parameter() -> Result<String, ConfigError> {
    required("JIT_SIGNING_KEY_PARAMETER")
}

/// Where mail goes and where its links point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    pub approver_topic_arn: String,
    pub requester_topic_arn: String,
    pub api_base_url: String,
}

impl MailConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let api_base_url = required("JIT_API_URL")?;
        if !api_base_url.starts_with("https://") && !api_base_url.starts_with("http://127.0.0.1") {
            return Err(ConfigError { name: "JIT_API_URL", problem: "must be an https:// URL (links carry approval tokens)".into() });
        }
        Ok(Self { approver_topic_arn: required("JIT_APPROVER_TOPIC_ARN")?, requester_topic_arn: required("JIT_REQUESTER_TOPIC_ARN")?, api_base_url })
    }
}

/// Principal ARNs allowed to revoke any request (`JIT_ADMIN_ARNS`, comma-separated, may be empty).
pub fn administrators() -> Vec<String> {
    optional("JIT_ADMIN_ARNS").map(|v| v.split(',').map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect()).unwrap_or_default()
}

/// What grants allow (`JIT_SESSION_DOCUMENTS`, comma-separated, default `SSM-SessionManagerRunShell`).
pub fn grant_settings(stack: &StackConfig) -> crate::domain::grant::GrantSettings {
    let documents: Vec<String> =
        optional("JIT_SESSION_DOCUMENTS").map(|v| v.split(',').map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()).collect()).unwrap_or_default();
    crate::domain::grant::GrantSettings {
        partition: partition_of(&stack.region).to_owned(),
        region: stack.region.clone(),
        account: stack.account_id.clone(),
        session_documents: if documents.is_empty() { vec![crate::domain::grant::DEFAULT_SESSION_DOCUMENT.to_owned()] } else { documents },
    }
}

/// The lifecycle state machine (`JIT_STATE_MACHINE_ARN`).
pub fn state_machine_arn() -> Result<String, ConfigError> {
    required("JIT_STATE_MACHINE_ARN")
}

pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Loads the AWS SDK configuration for `region`. An endpoint override (`AWS_ENDPOINT_URL`) is
/// honoured by the SDK itself; the local stack and tests set it to the emulator on 127.0.0.1.
pub async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(region.to_owned())).load().await
}

/// Builds the adapters from SDK configuration, so function binaries need no SDK crate of their own.
pub mod wiring {
    #[cfg(all(feature = "iam", feature = "identitystore"))]
    pub fn principal_directory(sdk: &aws_config::SdkConfig, stack: &super::StackConfig) -> crate::adapters::principals::AwsPrincipalDirectory {
        let dir = crate::adapters::principals::AwsPrincipalDirectory::new(aws_sdk_iam::Client::new(sdk));
        match &stack.identity_store_id {
            Some(id) => dir.with_identity_store(aws_sdk_identitystore::Client::new(sdk), id),
            None => dir,
        }
    }

    #[cfg(feature = "dynamodb")]
    pub fn store(sdk: &aws_config::SdkConfig, stack: &super::StackConfig) -> crate::adapters::dynamodb::DynamoStore {
        crate::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &stack.table_name)
    }

    #[cfg(feature = "eventbridge")]
    pub fn publisher(sdk: &aws_config::SdkConfig, stack: &super::StackConfig) -> crate::adapters::eventbridge::EventBridgePublisher {
        crate::adapters::eventbridge::EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(sdk), &stack.event_bus_name)
    }

    /// The approval-link signing key, read from SSM on the first invocation that needs it (not
    /// at cold start, which then makes no network call), then kept for the life of the
    /// environment. A failed read is not kept: the next invocation tries again.
    #[cfg(feature = "ssm")]
    pub struct LazySigningKey {
        client: aws_sdk_ssm::Client,
        parameter: String,
        key: tokio::sync::OnceCell<crate::domain::approval_token::SigningKey>,
    }

    #[cfg(feature = "ssm")]
    impl LazySigningKey {
        pub async fn get(&self) -> Result<&crate::domain::approval_token::SigningKey, crate::ports::PortError> {
            self.key.get_or_try_init(|| crate::adapters::secrets::read_signing_key(&self.client, &self.parameter)).await
        }
    }

    #[cfg(feature = "ssm")]
    pub fn signing_key(sdk: &aws_config::SdkConfig, parameter: &str) -> LazySigningKey {
        LazySigningKey { client: aws_sdk_ssm::Client::new(sdk), parameter: parameter.to_owned(), key: tokio::sync::OnceCell::new() }
    }

    #[cfg(feature = "sns")]
    pub fn mailer(sdk: &aws_config::SdkConfig, mail: &super::MailConfig) -> crate::adapters::mail::SnsMailer {
        crate::adapters::mail::SnsMailer::new(aws_sdk_sns::Client::new(sdk), &mail.approver_topic_arn, &mail.requester_topic_arn)
    }

    #[cfg(feature = "iam")]
    pub fn granter(sdk: &aws_config::SdkConfig) -> crate::adapters::grants::IamGranter {
        crate::adapters::grants::IamGranter::new(aws_sdk_iam::Client::new(sdk))
    }

    #[cfg(feature = "ssm")]
    pub fn sessions(sdk: &aws_config::SdkConfig) -> crate::adapters::sessions::SsmSessions {
        crate::adapters::sessions::SsmSessions::new(aws_sdk_ssm::Client::new(sdk))
    }

    #[cfg(feature = "sfn")]
    pub fn executions(sdk: &aws_config::SdkConfig, state_machine_arn: &str) -> crate::adapters::executions::StepFunctionsExecutions {
        crate::adapters::executions::StepFunctionsExecutions::new(aws_sdk_sfn::Client::new(sdk), state_machine_arn)
    }

    #[cfg(all(feature = "tagging", feature = "ssm"))]
    pub fn node_directory(sdk: &aws_config::SdkConfig, stack: &super::StackConfig) -> crate::adapters::nodes::AwsNodeDirectory {
        crate::adapters::nodes::AwsNodeDirectory::new(
            aws_sdk_resourcegroupstagging::Client::new(sdk),
            aws_sdk_ssm::Client::new(sdk),
            &stack.region,
            &stack.account_id,
        )
    }
}
