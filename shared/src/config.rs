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
    /// The Identity Store behind IAM Identity Center, when Identity Center users may request.
    pub identity_store_id: Option<String>,
    /// The account the nodes live in (for instance ARNs).
    pub account_id: String,
    pub region: String,
    /// How long audit records and ended requests are kept (`JIT_RECORD_RETENTION_DAYS`).
    pub record_retention_days: u32,
}

/// Records are kept a year by default, as AWS JITNA keeps its requests.
pub const DEFAULT_RECORD_RETENTION_DAYS: u32 = 365;
/// At least as long as any request can live (14 days pending, then 14 days of access), so no
/// record of a request that can still change is ever expired.
pub const MIN_RECORD_RETENTION_DAYS: u32 = 30;
pub const MAX_RECORD_RETENTION_DAYS: u32 = 3650;

/// `JIT_RECORD_RETENTION_DAYS`: whole days from 30 to 3650, default 365.
pub fn record_retention_days() -> Result<u32, ConfigError> {
    match optional("JIT_RECORD_RETENTION_DAYS") {
        None => Ok(DEFAULT_RECORD_RETENTION_DAYS),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|d| (MIN_RECORD_RETENTION_DAYS..=MAX_RECORD_RETENTION_DAYS).contains(d))
            .ok_or(ConfigError {
                name: "JIT_RECORD_RETENTION_DAYS",
                problem: format!(
                    "must be whole days from {MIN_RECORD_RETENTION_DAYS} to {MAX_RECORD_RETENTION_DAYS}, not '{v}'"
                ),
            }),
    }
}

impl StackConfig {
    /// The stack's own account and Region, where a bare instance id lives.
    pub fn home(&self) -> crate::domain::ids::NodeLocation {
        crate::domain::ids::NodeLocation {
            partition: partition_of(&self.region).to_owned(),
            account: self.account_id.clone(),
            region: self.region.clone(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: required("JIT_TABLE_NAME")?,
            identity_store_id: optional("JIT_IDENTITY_STORE_ID"),
            account_id: required("JIT_ACCOUNT_ID")?,
            region: optional("AWS_REGION")
                .or_else(|| optional("AWS_DEFAULT_REGION"))
                .ok_or(ConfigError { name: "AWS_REGION", problem: "is required".into() })?,
            record_retention_days: record_retention_days()?,
        })
    }
}

/// How long a pending request waits for approvals (`JIT_PENDING_TIMEOUT_MINUTES`, default 24 h).
pub fn pending_timeout_minutes() -> Result<u32, ConfigError> {
    match optional("JIT_PENDING_TIMEOUT_MINUTES") {
        None => Ok(crate::domain::approval::DEFAULT_PENDING_TIMEOUT_MINUTES),
        Some(v) => {
            v.trim().parse::<u32>().ok().filter(|m| (1..=crate::domain::ids::MAX_DURATION_MINUTES).contains(m)).ok_or(
                ConfigError {
                    name: "JIT_PENDING_TIMEOUT_MINUTES",
                    problem: format!("must be whole minutes from 1 to 20160, not '{v}'"),
                },
            )
        }
    }
}

/// Live requests one requester may hold at once (`JIT_MAX_ACTIVE_REQUESTS`, 1 to 100).
pub const DEFAULT_MAX_ACTIVE_REQUESTS: u32 = 5;

pub fn max_active_requests() -> Result<u32, ConfigError> {
    match optional("JIT_MAX_ACTIVE_REQUESTS") {
        None => Ok(DEFAULT_MAX_ACTIVE_REQUESTS),
        Some(v) => v.trim().parse::<u32>().ok().filter(|n| (1..=100).contains(n)).ok_or(ConfigError {
            name: "JIT_MAX_ACTIVE_REQUESTS",
            problem: format!("must be a whole number from 1 to 100, not '{v}'"),
        }),
    }
}

/// The time zone policies read `context.local` in (`JIT_POLICY_TIME_ZONE`, an IANA name;
/// default UTC).
pub fn policy_time_zone() -> Result<crate::policy::local_time::PolicyTimeZone, ConfigError> {
    match optional("JIT_POLICY_TIME_ZONE") {
        None => Ok(crate::policy::local_time::PolicyTimeZone::default()),
        Some(v) => crate::policy::local_time::PolicyTimeZone::named(&v)
            .map_err(|e| ConfigError { name: "JIT_POLICY_TIME_ZONE", problem: e.to_string() }),
    }
}

/// The SSM SecureString holding the mail-link signing key (`JIT_SIGNING_KEY_PARAMETER`).
pub fn signing_key_parameter() -> Result<String, ConfigError> {
    required("JIT_SIGNING_KEY_PARAMETER")
}

/// The SecureString holding the Slack app's signing secret (`JIT_SLACK_SIGNING_SECRET_PARAMETER`);
/// `None` (unset or empty) when Slack is not set up: `POST /chat/slack` then answers 404.
pub fn slack_signing_secret_parameter() -> Option<String> {
    optional("JIT_SLACK_SIGNING_SECRET_PARAMETER")
}

/// The SecureString holding the Slack app's bot token (`JIT_SLACK_BOT_TOKEN_PARAMETER`); `None`
/// when approval requests are not posted to Slack.
pub fn slack_bot_token_parameter() -> Option<String> {
    optional("JIT_SLACK_BOT_TOKEN_PARAMETER")
}

/// The SecureString holding each approver's own Teams webhook, a JSON object of person key to URL
/// (`JIT_TEAMS_WEBHOOKS_PARAMETER`); `None` (unset or empty) when nothing is posted to Teams.
pub fn teams_webhooks_parameter() -> Option<String> {
    optional("JIT_TEAMS_WEBHOOKS_PARAMETER")
}

/// The SNS topic Amazon Q Developer in chat applications posts to team channels from
/// (`JIT_CHAT_TOPIC_ARN`); `None` when no chat channel is told.
pub fn chat_topic_arn() -> Result<Option<String>, ConfigError> {
    match optional("JIT_CHAT_TOPIC_ARN") {
        None => Ok(None),
        Some(arn) if arn.starts_with("arn:") && arn.split(':').nth(2) == Some("sns") => Ok(Some(arn.trim().to_owned())),
        Some(arn) => {
            Err(ConfigError { name: "JIT_CHAT_TOPIC_ARN", problem: format!("must be an SNS topic ARN, not '{arn}'") })
        }
    }
}

/// The Slack Web API's base URL (`JIT_SLACK_API_URL`, default `https://slack.com/api`; plain
/// HTTP only to 127.0.0.1, a local stand-in).
pub fn slack_api_url() -> Result<String, ConfigError> {
    let url = optional("JIT_SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api".to_owned());
    let loopback = url.strip_prefix("http://127.0.0.1").is_some_and(|r| r.is_empty() || r.starts_with([':', '/']));
    if url.starts_with("https://") || loopback {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError {
            name: "JIT_SLACK_API_URL",
            problem: format!("must be an https:// URL (or http://127.0.0.1 for a local stand-in), not '{url}'"),
        })
    }
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
            return Err(ConfigError {
                name: "JIT_API_URL",
                problem: "must be an https:// URL (links carry approval tokens)".into(),
            });
        }
        Ok(Self {
            approver_topic_arn: required("JIT_APPROVER_TOPIC_ARN")?,
            requester_topic_arn: required("JIT_REQUESTER_TOPIC_ARN")?,
            api_base_url,
        })
    }
}

/// Who may revoke any request (`JIT_ADMIN_ARNS`, comma-separated, may be empty): IAM user and
/// role ARNs (a role: any of its sessions), role session ARNs, `identity-center-group:<id or name>`.
pub fn administrators() -> Result<crate::domain::administrators::Administrators, ConfigError> {
    let raw = optional("JIT_ADMIN_ARNS").unwrap_or_default();
    crate::domain::administrators::Administrators::parse(raw.split(','))
        .map_err(|problem| ConfigError { name: "JIT_ADMIN_ARNS", problem: format!("is invalid: {problem}") })
}

/// How access is given (`JIT_GRANT_MODE`: `credentials`, the default, or `attach`).
pub fn grant_mode() -> Result<crate::domain::grant::GrantMode, ConfigError> {
    match optional("JIT_GRANT_MODE") {
        None => Ok(crate::domain::grant::GrantMode::Credentials),
        Some(v) => v.trim().parse().map_err(|problem| ConfigError { name: "JIT_GRANT_MODE", problem }),
    }
}

/// The session role's name, the same in the stack's account and every member account
/// (`JIT_SESSION_ROLE_NAME`, default `jit-node-access-session`).
pub const DEFAULT_SESSION_ROLE_NAME: &str = "jit-node-access-session";

/// What grants allow (`JIT_SESSION_DOCUMENTS`, comma-separated, default `SSM-SessionManagerRunShell`),
/// in which mode (`grant_mode`), through which session role (`JIT_SESSION_ROLE_NAME`).
pub fn grant_settings(stack: &StackConfig) -> Result<crate::domain::grant::GrantSettings, ConfigError> {
    let documents: Vec<String> = optional("JIT_SESSION_DOCUMENTS")
        .map(|v| v.split(',').map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()).collect())
        .unwrap_or_default();
    Ok(crate::domain::grant::GrantSettings {
        partition: partition_of(&stack.region).to_owned(),
        region: stack.region.clone(),
        account: stack.account_id.clone(),
        session_documents: if documents.is_empty() {
            vec![crate::domain::grant::DEFAULT_SESSION_DOCUMENT.to_owned()]
        } else {
            documents
        },
        mode: grant_mode()?,
        session_role_name: optional("JIT_SESSION_ROLE_NAME").unwrap_or_else(|| DEFAULT_SESSION_ROLE_NAME.to_owned()),
        member_accounts: member_accounts()?,
    })
}

/// Accounts besides the stack's whose nodes may be requested (`JIT_MEMBER_ACCOUNTS`,
/// comma-separated 12-digit ids, may be empty); each runs `member-account.yaml`.
pub fn member_accounts() -> Result<Vec<String>, ConfigError> {
    let Some(v) = optional("JIT_MEMBER_ACCOUNTS") else { return Ok(vec![]) };
    let mut accounts = Vec::new();
    for a in v.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError {
                name: "JIT_MEMBER_ACCOUNTS",
                problem: format!("must list 12-digit account ids, not '{a}'"),
            });
        }
        if !accounts.iter().any(|x| x == a) {
            accounts.push(a.to_owned());
        }
    }
    Ok(accounts)
}

/// The KMS HMAC key approvals are sealed with (`JIT_APPROVAL_KEY_ID`: key id, ARN or alias).
pub fn approval_key_id() -> Result<String, ConfigError> {
    required("JIT_APPROVAL_KEY_ID")
}

/// The project's event bus (`JIT_EVENT_BUS_NAME`): only the event publisher puts events on it.
pub fn event_bus_name() -> Result<String, ConfigError> {
    required("JIT_EVENT_BUS_NAME")
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
