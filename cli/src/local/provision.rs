//! Creates the stack's resources and the seeded principals in the emulator.

use std::collections::{BTreeMap, HashMap};

use aws_config::SdkConfig;
use jit_shared::adapters::mail::filter_policy;
use jit_shared::domain::events::{detail_type, EVENT_SOURCE};
use jit_shared::domain::status::RequestStatus;
use jit_shared::policy::contacts::Contact;

use crate::local::seed::{PrincipalKind, Seed};
use crate::sigv4::{IssuedKey, ProfileCredentials};

/// The Identity Store id the local stack uses.
pub const LOCAL_IDENTITY_STORE_ID: &str = "d-1234567890";

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub caller_arn: String,
    pub credentials: ProfileCredentials,
}

#[derive(Debug, Clone)]
pub struct Provisioned {
    pub table: String,
    /// The table's stream: the local stack reads it the way the publish-events function's event
    /// source mapping does.
    pub table_stream_arn: String,
    pub bus: String,
    pub submitted_queue_url: String,
    pub status_queue_url: String,
    pub approvals_topic_arn: String,
    pub requester_topic_arn: String,
    /// Feeds the notification handler (Pending, Level Completed and final-status events).
    pub notify_queue_url: String,
    /// Approved events, for the local Step Functions: the deployed rule targets the state machine.
    pub executions_queue_url: String,
    /// The lifecycle state machine's name, in its executions' ARNs (`<prefix>-lifecycle`).
    pub state_machine_name: String,
    /// The session role credentials mode issues credentials of (`<prefix>-session`).
    pub session_role_name: String,
    /// Accounts of the seed's nodes named by ARN, other than the stack's: each got what
    /// `member-account.yaml` creates.
    pub member_accounts: Vec<String>,
    pub signing_key_parameter: String,
    /// The KMS HMAC key approvals are sealed with, as the template creates it.
    pub approval_key_id: String,
    /// One queue per contact, subscribed to both mail topics with that person's filter policy:
    /// what their inbox would receive.
    pub outboxes: Vec<Outbox>,
    pub profiles: Vec<Profile>,
}

#[derive(Debug, Clone)]
pub struct Outbox {
    pub recipient: String,
    pub email: String,
    pub queue_url: String,
}

impl Provisioned {
    pub fn issued_keys(&self) -> HashMap<String, IssuedKey> {
        self.profiles
            .iter()
            .map(|p| {
                (
                    p.credentials.access_key_id.clone(),
                    IssuedKey {
                        secret: p.credentials.secret_access_key.clone(),
                        session_token: p.credentials.session_token.clone(),
                        caller_arn: p.caller_arn.clone(),
                    },
                )
            })
            .collect()
    }

    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }
}

fn e<E: std::error::Error>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| {
        format!("creating {what} in the emulator: {}", aws_smithy_types::error::display::DisplayErrorContext(&err))
    }
}

async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<(String, String), String> {
    let url =
        sqs.create_queue().queue_name(name).send().await.map_err(e("an SQS queue"))?.queue_url.unwrap_or_default();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(e("an SQS queue"))?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .unwrap_or_default();
    Ok((url, arn))
}

async fn route(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    rule: &str,
    pattern: serde_json::Value,
    queue_arn: &str,
) -> Result<(), String> {
    events
        .put_rule()
        .name(rule)
        .event_bus_name(bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(e("an EventBridge rule"))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("queue")
        .arn(queue_arn)
        .build()
        .map_err(e("an EventBridge target"))?;
    events
        .put_targets()
        .rule(rule)
        .event_bus_name(bus)
        .targets(target)
        .send()
        .await
        .map_err(e("an EventBridge target"))?;
    Ok(())
}

/// What the deployed session role trusts: the credentials function's role in the stack's account,
/// which must set the source identity and may tag the session (`template.yaml` and
/// `member-account.yaml`, `SessionRole`).
const SESSION_ROLE_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":["sts:AssumeRole","sts:SetSourceIdentity","sts:TagSession"]}]}"#;

/// The session role's own permissions in `account`, as the templates give them; each
/// credential's session policy narrows them to one node, one request's sessions and the deadline.
fn session_role_policy(account: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "ssm:StartSession",
                "Resource": [
                    format!("arn:aws:ec2:*:{account}:instance/*"),
                    format!("arn:aws:ssm:*:{account}:managed-instance/*"),
                    format!("arn:aws:ssm:*:{account}:document/*"),
                ]
            },
            {
                "Effect": "Allow",
                "Action": ["ssm:TerminateSession", "ssm:ResumeSession", "ssmmessages:OpenDataChannel"],
                "Resource": format!("arn:aws:ssm:*:{account}:session/*")
            }
        ]
    })
    .to_string()
}

/// Creates the session role in the account `iam` works in.
async fn create_session_role(iam: &aws_sdk_iam::Client, name: &str, account: &str) -> Result<(), String> {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(SESSION_ROLE_TRUST)
        .send()
        .await
        .map_err(e("the session role"))?;
    iam.put_role_policy()
        .role_name(name)
        .policy_name("session-manager")
        .policy_document(session_role_policy(account))
        .send()
        .await
        .map_err(e("the session role's policy"))?;
    Ok(())
}

/// What `member-account.yaml` creates in a member account, in the emulator: the session role
/// (same name as the stack's) and the reader and teardown roles the stack's functions assume.
/// The emulator serves any account to credentials assumed in it.
async fn provision_member_account(
    sdk: &SdkConfig,
    sts: &aws_sdk_sts::Client,
    account: &str,
    session_role_name: &str,
) -> Result<(), String> {
    let (_, creds) = assume(sts, &format!("arn:aws:iam::{account}:role/jit-local-bootstrap"), "provision").await?;
    let credentials = aws_credential_types::Credentials::new(
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token,
        None,
        "member-account",
    );
    let provider = aws_credential_types::provider::SharedCredentialsProvider::new(credentials);
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(sdk).credentials_provider(provider.clone()).build(),
    );
    create_session_role(&iam, session_role_name, account).await?;
    let ssm =
        aws_sdk_ssm::Client::from_conf(aws_sdk_ssm::config::Builder::from(sdk).credentials_provider(provider).build());
    create_session_document(&ssm).await?;
    use jit_shared::adapters::accounts::{READER_ROLE, TEARDOWN_ROLE};
    for role in [READER_ROLE, TEARDOWN_ROLE] {
        // Fixed names, shared by every local stack on the same emulator: the first creates them.
        match iam.create_role().role_name(role).assume_role_policy_document(TRUST_POLICY).send().await {
            Ok(_) => {}
            Err(err) if err.as_service_error().is_some_and(|s| s.is_entity_already_exists_exception()) => {}
            Err(err) => return Err(e(&format!("the member account's {role} role"))(err)),
        }
    }
    Ok(())
}

/// The stack's Session Manager document as `template.yaml` (and `member-account.yaml`) create it,
/// under the same name: the one document grants allow, so what the local stack issues names what
/// a deployed stack's grants name. Fixed, shared by every local stack on the same emulator: the
/// first creates it.
async fn create_session_document(ssm: &aws_sdk_ssm::Client) -> Result<(), String> {
    let content = serde_json::json!({
        "schemaVersion": "1.0",
        "description": "jit-node-access sessions, logged to CloudWatch Logs",
        "sessionType": "Standard_Stream",
        "inputs": {
            "cloudWatchLogGroupName": format!("/ssm/sessions/{}", crate::ops::connect::DEFAULT_DOCUMENT),
            "cloudWatchEncryptionEnabled": true,
            "cloudWatchStreamingEnabled": true,
            "idleSessionTimeout": "20",
            "maxSessionDuration": "60",
            "runAsEnabled": false,
            "runAsDefaultUser": ""
        }
    });
    let created = ssm
        .create_document()
        .name(crate::ops::connect::DEFAULT_DOCUMENT)
        .document_type(aws_sdk_ssm::types::DocumentType::Session)
        .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
        .content(content.to_string())
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(|s| s.is_document_already_exists()) => Ok(()),
        Err(err) => Err(e("the session document")(err)),
    }
}

const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;

/// The seed's IAM roles pin session names to the assuming user, as a role whose sessions may be
/// granted (attach mode) or counted as distinct approvers must
/// (`domain::principal::trust_pins_session_names`).
const PINNED_ROLE_TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:RoleSessionName":"${aws:username}"}}}]}"#;

fn iam_tags(map: &BTreeMap<String, String>) -> Result<Vec<aws_sdk_iam::types::Tag>, String> {
    map.iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder().key(k).value(v).build().map_err(|err| format!("tag {k}: {err}"))
        })
        .collect()
}

async fn assume(
    sts: &aws_sdk_sts::Client,
    role_arn: &str,
    session: &str,
) -> Result<(String, ProfileCredentials), String> {
    let out = sts
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session)
        .duration_seconds(43_200)
        .send()
        .await
        .map_err(e("role session credentials"))?;
    let creds = out.credentials().ok_or("AssumeRole returned no credentials")?;
    let arn = out.assumed_role_user().map(|u| u.arn().to_owned()).ok_or("AssumeRole returned no ARN")?;
    Ok((
        arn,
        ProfileCredentials {
            access_key_id: creds.access_key_id().to_owned(),
            secret_access_key: creds.secret_access_key().to_owned(),
            session_token: Some(creds.session_token().to_owned()),
        },
    ))
}

pub async fn provision(
    sdk: &SdkConfig,
    seed: &Seed,
    contacts: &[Contact],
    prefix: &str,
) -> Result<Provisioned, String> {
    let table = format!("{prefix}-requests");
    let bus = format!("{prefix}-events");
    let table_stream_arn = jit_shared::adapters::dynamodb::create_table(&aws_sdk_dynamodb::Client::new(sdk), &table)
        .await
        .map_err(e("the DynamoDB table"))?;
    let events = aws_sdk_eventbridge::Client::new(sdk);
    events.create_event_bus().name(&bus).send().await.map_err(e("the event bus"))?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let (submitted_queue_url, submitted_arn) = queue(&sqs, &format!("{prefix}-evaluate")).await?;
    let (status_queue_url, status_arn) = queue(&sqs, &format!("{prefix}-status-log")).await?;
    route(
        &events,
        &bus,
        &format!("{prefix}-evaluate"),
        serde_json::json!({"source": [EVENT_SOURCE], "detail-type": [detail_type(RequestStatus::Submitted)]}),
        &submitted_arn,
    )
    .await?;
    route(&events, &bus, &format!("{prefix}-status-log"), serde_json::json!({"source": [EVENT_SOURCE]}), &status_arn)
        .await?;
    let (notify_queue_url, notify_arn) = queue(&sqs, &format!("{prefix}-notify")).await?;
    route(&events, &bus, &format!("{prefix}-notify"), jit_shared::app::notify::rule_pattern(), &notify_arn).await?;
    let (executions_queue_url, executions_arn) = queue(&sqs, &format!("{prefix}-start-lifecycle")).await?;
    // As the deployed LifecycleStartRule: Approved starts the grant, Revoked the revoke branch.
    let executions_pattern = serde_json::json!({
        "source": [EVENT_SOURCE],
        "detail-type": [detail_type(RequestStatus::Approved), detail_type(RequestStatus::Revoked)]
    });
    route(&events, &bus, &format!("{prefix}-start-lifecycle"), executions_pattern, &executions_arn).await?;
    let sns = aws_sdk_sns::Client::new(sdk);
    let approvals_topic_arn = sns
        .create_topic()
        .name(format!("{prefix}-approvals"))
        .send()
        .await
        .map_err(e("the SNS topic"))?
        .topic_arn
        .unwrap_or_default();
    let requester_topic_arn = sns
        .create_topic()
        .name(format!("{prefix}-requester-notices"))
        .send()
        .await
        .map_err(e("the SNS topic"))?
        .topic_arn
        .unwrap_or_default();
    let mut outboxes = Vec::new();
    for (i, contact) in contacts.iter().enumerate() {
        let recipient = contact.person.key();
        let (queue_url, queue_arn) = queue(&sqs, &format!("{prefix}-outbox-{i}")).await?;
        for topic in [&approvals_topic_arn, &requester_topic_arn] {
            // The same filter policy the deployed email subscription carries.
            sns.subscribe()
                .topic_arn(topic)
                .protocol("sqs")
                .endpoint(&queue_arn)
                .attributes("FilterPolicy", filter_policy(&recipient))
                .send()
                .await
                .map_err(e("an outbox subscription"))?;
        }
        outboxes.push(Outbox { recipient, email: contact.email.clone(), queue_url });
    }
    let approval_key_id = aws_sdk_kms::Client::new(sdk)
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
        .description(format!("{prefix} approval seals"))
        .send()
        .await
        .map_err(e("the approval-seal KMS key"))?
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .ok_or("CreateKey returned no key")?;
    let signing_key_parameter = format!("/{prefix}/approval-link-signing-key");
    let ssm = aws_sdk_ssm::Client::new(sdk);
    // A random 256-bit key, as the deployed stack creates it (see README).
    let signing_key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    ssm.put_parameter()
        .name(&signing_key_parameter)
        .value(signing_key)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .map_err(e("the signing-key parameter"))?;

    let iam = aws_sdk_iam::Client::new(sdk);
    let session_role_name = format!("{prefix}-session");
    create_session_role(&iam, &session_role_name, crate::emulator::ACCOUNT_ID).await?;
    create_session_document(&aws_sdk_ssm::Client::new(sdk)).await?;
    let sts = aws_sdk_sts::Client::new(sdk);
    let member_accounts = seed.member_accounts(crate::emulator::ACCOUNT_ID);
    for account in &member_accounts {
        provision_member_account(sdk, &sts, account, &session_role_name).await?;
    }
    let identity = aws_sdk_identitystore::Client::new(sdk);
    let mut iam_groups = BTreeMap::new();
    let mut ic_groups: BTreeMap<String, String> = BTreeMap::new();
    let mut profiles = Vec::new();
    for p in &seed.principals {
        match p.kind {
            PrincipalKind::IamUser => {
                let user = iam
                    .create_user()
                    .user_name(&p.name)
                    .set_tags(Some(iam_tags(&p.principal_tags)?))
                    .send()
                    .await
                    .map_err(e("an IAM user"))?;
                let arn = user.user().map(|u| u.arn().to_owned()).ok_or("CreateUser returned no user")?;
                for g in &p.groups {
                    if !iam_groups.contains_key(g) {
                        iam.create_group().group_name(g).send().await.map_err(e("an IAM group"))?;
                        iam_groups.insert(g.clone(), ());
                    }
                    iam.add_user_to_group()
                        .group_name(g)
                        .user_name(&p.name)
                        .send()
                        .await
                        .map_err(e("a group membership"))?;
                }
                let key = iam.create_access_key().user_name(&p.name).send().await.map_err(e("an access key"))?;
                let key = key.access_key().ok_or("CreateAccessKey returned no key")?;
                profiles.push(Profile {
                    name: p.name.clone(),
                    caller_arn: arn,
                    credentials: ProfileCredentials {
                        access_key_id: key.access_key_id().to_owned(),
                        secret_access_key: key.secret_access_key().to_owned(),
                        session_token: None,
                    },
                });
            }
            PrincipalKind::IamRole => {
                let role = iam
                    .create_role()
                    .role_name(&p.name)
                    .assume_role_policy_document(PINNED_ROLE_TRUST_POLICY)
                    .set_tags(Some(iam_tags(&p.principal_tags)?))
                    .send()
                    .await
                    .map_err(e("an IAM role"))?;
                let role_arn = role.role().map(|r| r.arn().to_owned()).ok_or("CreateRole returned no role")?;
                let (caller_arn, credentials) = assume(&sts, &role_arn, &p.name).await?;
                profiles.push(Profile { name: p.name.clone(), caller_arn, credentials });
            }
            PrincipalKind::IdentityCenterUser => {
                let name =
                    aws_sdk_identitystore::types::Name::builder().given_name(&p.name).family_name("Local").build();
                let user_id = identity
                    .create_user()
                    .identity_store_id(LOCAL_IDENTITY_STORE_ID)
                    .user_name(&p.name)
                    .display_name(&p.name)
                    .name(name)
                    .send()
                    .await
                    .map_err(e("an Identity Center user"))?
                    .user_id
                    .clone();
                for g in &p.groups {
                    let group_id = match ic_groups.get(g) {
                        Some(id) => id.clone(),
                        None => {
                            let id = identity
                                .create_group()
                                .identity_store_id(LOCAL_IDENTITY_STORE_ID)
                                .display_name(g)
                                .send()
                                .await
                                .map_err(e("an Identity Center group"))?
                                .group_id
                                .clone();
                            ic_groups.insert(g.clone(), id.clone());
                            id
                        }
                    };
                    identity
                        .create_group_membership()
                        .identity_store_id(LOCAL_IDENTITY_STORE_ID)
                        .group_id(group_id)
                        .member_id(aws_sdk_identitystore::types::MemberId::UserId(user_id.clone()))
                        .send()
                        .await
                        .map_err(e("an Identity Center group membership"))?;
                }
                // Identity Center signs users in through a permission-set role under this path.
                let role_name = format!(
                    "AWSReservedSSO_JitLocal_{}",
                    &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(p.name.as_bytes()))[..16]
                );
                let role = iam
                    .create_role()
                    .role_name(&role_name)
                    .path("/aws-reserved/sso.amazonaws.com/")
                    .assume_role_policy_document(TRUST_POLICY)
                    .set_tags(Some(iam_tags(&p.principal_tags)?))
                    .send()
                    .await
                    .map_err(e("an Identity Center permission-set role"))?;
                let role_arn = role.role().map(|r| r.arn().to_owned()).ok_or("CreateRole returned no role")?;
                let (caller_arn, credentials) = assume(&sts, &role_arn, &p.name).await?;
                profiles.push(Profile { name: p.name.clone(), caller_arn, credentials });
            }
        }
    }
    Ok(Provisioned {
        table,
        table_stream_arn,
        bus,
        submitted_queue_url,
        status_queue_url,
        approvals_topic_arn,
        requester_topic_arn,
        notify_queue_url,
        executions_queue_url,
        state_machine_name: format!("{prefix}-lifecycle"),
        session_role_name,
        member_accounts,
        signing_key_parameter,
        approval_key_id,
        outboxes,
        profiles,
    })
}
