//! The composition root: builds the adapters from SDK configuration, so function binaries need
//! no SDK crate of their own and every function builds its clients the same way.

#[allow(unused_imports, reason = "which of these a build uses depends on the adapter features")]
use crate::config::{MailConfig, StackConfig};

/// Loads the AWS SDK configuration for `region`. An endpoint override (`AWS_ENDPOINT_URL`) is
/// honoured by the SDK itself; the local stack and tests set it to the emulator on 127.0.0.1.
/// Where the environment carries credentials (Lambda puts the function role's there), they are
/// read from it directly: the default chain would pick the same ones first, but building its
/// other providers (profile, web identity, container, instance metadata) costs a third of a
/// millisecond at every cold start.
pub async fn sdk_config(region: &str) -> aws_config::SdkConfig {
    let loader = sdk_defaults().region(aws_config::Region::new(region.to_owned()));
    // Blank values are "not set" to the environment provider, which the chain would then pass.
    let from_environment = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .iter()
        .all(|k| std::env::var(k).is_ok_and(|v| !v.trim().is_empty()));
    let loader = if from_environment {
        loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    };
    loader.load().await
}

/// The SDK's defaults with the process's one HTTP client (`adapters::sdk_http`), for every
/// configuration the functions, the local stack and the tests load.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    #[cfg(feature = "sdk")]
    let loader = loader.http_client(crate::adapters::sdk_http::shared_client());
    loader
}

#[cfg(all(feature = "iam", feature = "identitystore"))]
pub fn principal_directory(
    sdk: &aws_config::SdkConfig,
    stack: &StackConfig,
) -> crate::adapters::principals::AwsPrincipalDirectory {
    let dir = crate::adapters::principals::AwsPrincipalDirectory::new(aws_sdk_iam::Client::new(sdk));
    match &stack.identity_store_id {
        Some(id) => dir.with_identity_store(aws_sdk_identitystore::Client::new(sdk), id),
        None => dir,
    }
}

/// A directory that only reads IAM (users, roles and their trust policies), for a function that
/// needs whom a requester counts as but never resolves Identity Center users.
#[cfg(feature = "iam")]
pub fn iam_directory(sdk: &aws_config::SdkConfig) -> crate::adapters::principals::AwsPrincipalDirectory {
    crate::adapters::principals::AwsPrincipalDirectory::new(aws_sdk_iam::Client::new(sdk))
}

#[cfg(feature = "dynamodb")]
pub fn store(sdk: &aws_config::SdkConfig, stack: &StackConfig) -> crate::adapters::dynamodb::DynamoStore {
    crate::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &stack.table_name)
        .with_retention_days(stack.record_retention_days)
}

#[cfg(feature = "eventbridge")]
pub fn publisher(sdk: &aws_config::SdkConfig, bus: &str) -> crate::adapters::eventbridge::EventBridgePublisher {
    crate::adapters::eventbridge::EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(sdk), bus)
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
    LazySigningKey {
        client: aws_sdk_ssm::Client::new(sdk),
        parameter: parameter.to_owned(),
        key: tokio::sync::OnceCell::new(),
    }
}

/// The Slack app's signing secret (`POST /chat/slack`), read from SSM on the first callback, then
/// kept; a failed read is not kept.
#[cfg(feature = "ssm")]
pub struct LazySlackSecret {
    client: aws_sdk_ssm::Client,
    parameter: String,
    secret: tokio::sync::OnceCell<crate::domain::slack::SlackSigningSecret>,
}

#[cfg(feature = "ssm")]
impl LazySlackSecret {
    pub async fn get(&self) -> Result<&crate::domain::slack::SlackSigningSecret, crate::ports::PortError> {
        self.secret
            .get_or_try_init(|| async {
                let text = crate::adapters::secrets::read_secure_string(&self.client, &self.parameter).await?;
                crate::domain::slack::SlackSigningSecret::new(&text)
                    .map_err(|e| crate::ports::PortError::Permanent(format!("parameter {}: {e}", self.parameter)))
            })
            .await
    }
}

#[cfg(feature = "ssm")]
pub fn slack_signing_secret(sdk: &aws_config::SdkConfig, parameter: &str) -> LazySlackSecret {
    LazySlackSecret {
        client: aws_sdk_ssm::Client::new(sdk),
        parameter: parameter.to_owned(),
        secret: tokio::sync::OnceCell::new(),
    }
}

/// Posts to Slack with the bot token read from SSM on the first post, then kept.
#[cfg(all(feature = "ssm", feature = "slack"))]
pub struct LazySlackNotifier {
    client: aws_sdk_ssm::Client,
    parameter: String,
    api_url: String,
    api: tokio::sync::OnceCell<crate::adapters::slack::SlackWebApi>,
}

#[cfg(all(feature = "ssm", feature = "slack"))]
#[async_trait::async_trait]
impl crate::ports::ChatNotifier for LazySlackNotifier {
    async fn post(
        &self,
        to: &crate::domain::slack::SlackUserId,
        message: &serde_json::Value,
    ) -> Result<(), crate::ports::PortError> {
        use crate::ports::PortError;
        let api = self
            .api
            .get_or_try_init(|| async {
                let text = crate::adapters::secrets::read_secure_string(&self.client, &self.parameter).await?;
                let token = crate::adapters::slack::BotToken::new(&text)
                    .map_err(|e| PortError::Permanent(format!("parameter {}: {e}", self.parameter)))?;
                crate::adapters::slack::SlackWebApi::new(&self.api_url, token)
                    .map_err(|e| PortError::Permanent(e.to_string()))
            })
            .await?;
        api.post(to, message).await
    }
}

#[cfg(all(feature = "ssm", feature = "slack"))]
pub fn slack_notifier(sdk: &aws_config::SdkConfig, parameter: &str, api_url: &str) -> LazySlackNotifier {
    LazySlackNotifier {
        client: aws_sdk_ssm::Client::new(sdk),
        parameter: parameter.to_owned(),
        api_url: api_url.to_owned(),
        api: tokio::sync::OnceCell::new(),
    }
}

/// Posts Teams cards with the webhooks read from SSM on the first post, then kept; a failed read
/// (or a refused entry, named by person) is not kept, so the next post tries again.
#[cfg(all(feature = "ssm", feature = "teams"))]
pub struct LazyTeamsNotifier {
    client: aws_sdk_ssm::Client,
    parameter: String,
    api: tokio::sync::OnceCell<crate::adapters::teams::TeamsWebhookApi>,
}

#[cfg(all(feature = "ssm", feature = "teams"))]
#[async_trait::async_trait]
impl crate::ports::TeamsNotifier for LazyTeamsNotifier {
    async fn post(
        &self,
        to: &crate::domain::approval::Person,
        card: &serde_json::Value,
    ) -> Result<crate::ports::TeamsDelivery, crate::ports::PortError> {
        use crate::ports::PortError;
        let api = self
            .api
            .get_or_try_init(|| async {
                let text = crate::adapters::secrets::read_secure_string(&self.client, &self.parameter).await?;
                let webhooks = crate::domain::teams::TeamsWebhooks::parse(&text)
                    .map_err(|e| PortError::Permanent(format!("parameter {}: {e}", self.parameter)))?;
                crate::adapters::teams::TeamsWebhookApi::new(webhooks).map_err(|e| PortError::Permanent(e.to_string()))
            })
            .await?;
        api.post(to, card).await
    }
}

#[cfg(all(feature = "ssm", feature = "teams"))]
pub fn teams_notifier(sdk: &aws_config::SdkConfig, parameter: &str) -> LazyTeamsNotifier {
    LazyTeamsNotifier {
        client: aws_sdk_ssm::Client::new(sdk),
        parameter: parameter.to_owned(),
        api: tokio::sync::OnceCell::new(),
    }
}

/// The chat SNS topic of Amazon Q Developer in chat applications.
#[cfg(feature = "sns")]
pub fn chat_topic(sdk: &aws_config::SdkConfig, topic_arn: &str) -> crate::adapters::amazon_q::SnsChatTopic {
    crate::adapters::amazon_q::SnsChatTopic::new(aws_sdk_sns::Client::new(sdk), topic_arn)
}

#[cfg(feature = "sns")]
pub fn mailer(sdk: &aws_config::SdkConfig, mail: &MailConfig) -> crate::adapters::mail::SnsMailer {
    crate::adapters::mail::SnsMailer::new(
        aws_sdk_sns::Client::new(sdk),
        &mail.approver_topic_arn,
        &mail.requester_topic_arn,
    )
}

/// Inline policies of this account's principals; member accounts' session roles (a revoke's
/// deny) through their teardown role.
#[cfg(feature = "iam")]
pub fn granter(sdk: &aws_config::SdkConfig, stack: &StackConfig) -> crate::adapters::grants::IamGranter {
    use crate::adapters::accounts::{AccountClients, TEARDOWN_ROLE};
    let members = AccountClients::new(sdk, stack.home(), TEARDOWN_ROLE, aws_sdk_iam::Client::new);
    crate::adapters::grants::IamGranter::new(members.home().clone(), stack.home(), members)
}

/// Sessions of nodes in this account, and in member accounts through their teardown role.
#[cfg(feature = "ssm")]
pub fn sessions(sdk: &aws_config::SdkConfig, stack: &StackConfig) -> crate::adapters::sessions::SsmSessions {
    use crate::adapters::accounts::{AccountClients, TEARDOWN_ROLE};
    let clients = AccountClients::new(sdk, stack.home(), TEARDOWN_ROLE, aws_sdk_ssm::Client::new);
    crate::adapters::sessions::SsmSessions::new(clients, stack.home())
}

#[cfg(feature = "sfn")]
pub fn executions(
    sdk: &aws_config::SdkConfig,
    state_machine_arn: &str,
) -> crate::adapters::executions::StepFunctionsExecutions {
    crate::adapters::executions::StepFunctionsExecutions::new(aws_sdk_sfn::Client::new(sdk), state_machine_arn)
}

/// Node tags in this account, and in member accounts through their reader role.
#[cfg(all(feature = "tagging", feature = "ssm"))]
pub fn node_directory(sdk: &aws_config::SdkConfig, stack: &StackConfig) -> crate::adapters::nodes::AwsNodeDirectory {
    use crate::adapters::accounts::{AccountClients, READER_ROLE};
    let clients = AccountClients::new(sdk, stack.home(), READER_ROLE, crate::adapters::nodes::NodeClients::from_sdk);
    crate::adapters::nodes::AwsNodeDirectory::new(clients, stack.home())
}

/// What the lifecycle and the sweeper functions both work on, built once per cold start.
#[cfg(all(feature = "dynamodb", feature = "iam", feature = "ssm", feature = "sfn", feature = "kms"))]
pub struct LifecycleAdapters {
    store: crate::adapters::dynamodb::DynamoStore,
    granter: crate::adapters::grants::IamGranter,
    sessions: crate::adapters::sessions::SsmSessions,
    executions: crate::adapters::executions::StepFunctionsExecutions,
    settings: crate::domain::grant::GrantSettings,
    seal: crate::adapters::kms::KmsSeal,
}

#[cfg(all(feature = "dynamodb", feature = "iam", feature = "ssm", feature = "sfn", feature = "kms"))]
impl LifecycleAdapters {
    pub fn deps(&self) -> crate::app::lifecycle::LifecycleDeps<'_> {
        crate::app::lifecycle::LifecycleDeps {
            store: &self.store,
            granter: &self.granter,
            sessions: &self.sessions,
            executions: &self.executions,
            settings: &self.settings,
            seal: &self.seal,
        }
    }
}

#[cfg(all(feature = "dynamodb", feature = "iam", feature = "ssm", feature = "sfn", feature = "kms"))]
pub fn lifecycle(
    sdk: &aws_config::SdkConfig,
    stack: &StackConfig,
    state_machine_arn: &str,
) -> Result<LifecycleAdapters, crate::config::ConfigError> {
    Ok(LifecycleAdapters {
        store: store(sdk, stack),
        granter: granter(sdk, stack),
        sessions: sessions(sdk, stack),
        executions: executions(sdk, state_machine_arn),
        settings: crate::config::grant_settings(stack)?,
        seal: approval_seal(sdk)?,
    })
}

#[cfg(feature = "sts")]
pub fn credential_issuer(sdk: &aws_config::SdkConfig) -> crate::adapters::sts::StsIssuer {
    crate::adapters::sts::StsIssuer::new(aws_sdk_sts::Client::new(sdk))
}

/// The KMS HMAC key that seals approvals (`JIT_APPROVAL_KEY_ID`).
#[cfg(feature = "kms")]
pub fn approval_seal(sdk: &aws_config::SdkConfig) -> Result<crate::adapters::kms::KmsSeal, crate::config::ConfigError> {
    Ok(crate::adapters::kms::KmsSeal::new(aws_sdk_kms::Client::new(sdk), crate::config::approval_key_id()?))
}
