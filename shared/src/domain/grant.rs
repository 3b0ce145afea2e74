//! The grant: one inline IAM policy per approved request, named `jit-<requestId>`, allowing
//! `ssm:StartSession` on exactly that node (and the configured session documents) and the
//! requester's own session control, every statement conditioned on `aws:CurrentTime` being
//! before the deadline, so IAM itself refuses use after it even if the detach never happens.
//! For a role session, every statement is also conditioned on `aws:userid` = role id + session
//! name, so other sessions of the same role gain nothing.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::errors::FieldError;
use crate::domain::ids::{NodeId, NodeKind, NodeLocation, RequestId};
use crate::domain::principal::{CallerArn, CallerKind};

pub const POLICY_PREFIX: &str = "jit-";
/// IAM's aggregate inline-policy size limits, in characters without whitespace.
pub const USER_POLICY_LIMIT: usize = 2_048;
pub const ROLE_POLICY_LIMIT: usize = 10_240;
pub const DEFAULT_SESSION_DOCUMENT: &str = "SSM-SessionManagerRunShell";

pub fn policy_name(id: &RequestId) -> String {
    format!("{POLICY_PREFIX}{id}")
}

/// The request a `jit-` policy belongs to, if the name is one of ours.
pub fn request_of_policy(name: &str) -> Option<RequestId> {
    RequestId::try_from(name.strip_prefix(POLICY_PREFIX)?.to_owned()).ok()
}

/// How approved access is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GrantMode {
    /// Short-lived STS credentials of the session role in the node's account, fetched by the
    /// requester (`POST /requests/{id}/credentials`): works for every identity and account.
    Credentials,
    /// An inline policy `jit-<id>` on the requester's own IAM user or role (nodes of the stack's
    /// account; the requester keeps using their own credentials).
    Attach,
}

impl GrantMode {
    /// Requests stored before credentials mode existed were all granted by attaching.
    pub fn stored_default() -> Self {
        Self::Attach
    }

    /// The mode for a request: the stack's choice, except that Identity Center permission-set
    /// roles cannot carry a policy of ours, so their users always get credentials, and a policy
    /// on a principal of this account cannot reach a node of another, so member-account nodes
    /// do too.
    pub fn for_request(configured: GrantMode, requester: &CallerArn, member_node: bool) -> Self {
        if requester.is_identity_center() || member_node {
            Self::Credentials
        } else {
            configured
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credentials => "credentials",
            Self::Attach => "attach",
        }
    }
}

impl std::str::FromStr for GrantMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "credentials" => Ok(Self::Credentials),
            "attach" => Ok(Self::Attach),
            other => Err(format!("'{other}' is not a grant mode; use credentials or attach")),
        }
    }
}

/// Where grants point: the account and Region the nodes live in, the session documents, the
/// stack's grant mode and the session role's name (the same in every account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantSettings {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub session_documents: Vec<String>,
    pub mode: GrantMode,
    pub session_role_name: String,
    /// Other accounts whose nodes may be requested (each runs `member-account.yaml`).
    pub member_accounts: Vec<String>,
}

impl GrantSettings {
    /// The stack's own account and Region, where a bare instance id lives.
    pub fn home(&self) -> NodeLocation {
        NodeLocation { partition: self.partition.clone(), account: self.account.clone(), region: self.region.clone() }
    }

    pub fn node_location(&self, node: &NodeId) -> NodeLocation {
        node.resolve(&self.home())
    }

    /// Whether the node lives outside the stack's account.
    pub fn is_member_node(&self, node: &NodeId) -> bool {
        self.node_location(node).account != self.account
    }

    /// The stack's account, then each member account once.
    pub fn accounts(&self) -> Vec<String> {
        let mut all = vec![self.account.clone()];
        for a in &self.member_accounts {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }

    /// Refuses a node this stack cannot reach: another partition or Region, or an account that
    /// is neither the stack's own nor a member account it was deployed with.
    pub fn check_node(&self, node: &NodeId) -> Result<(), FieldError> {
        let location = self.node_location(node);
        if location.partition != self.partition {
            return Err(FieldError::new(
                "nodeId",
                "NodeOutsidePartition",
                format!("the node is in partition {}, but this stack runs in {}", location.partition, self.partition),
            ));
        }
        // The templates create the session document and the member roles' regional permissions
        // in the stack's Region only.
        if location.region != self.region {
            return Err(FieldError::new(
                "nodeId",
                "NodeOutsideRegion",
                format!(
                    "the node is in {}, but this stack serves nodes in {} (deploy a stack in that Region for its nodes)",
                    location.region, self.region
                ),
            ));
        }
        if location.account != self.account && !self.member_accounts.contains(&location.account) {
            return Err(FieldError::new(
                "nodeId",
                "NodeAccountNotMember",
                format!(
                    "account {} is not a member account of this stack (it serves {}); deploy member-account.yaml there and add the account to the stack's MemberAccountIds",
                    location.account,
                    self.accounts().join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Whom the policy is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Fields are camelCase like the rest of the API; `role_id` was stored snake_case before.
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum GrantTarget {
    IamUser {
        name: String,
    },
    /// `role_id` is the role's unique id (`AROA…`); `aws:userid` of the session is `<role_id>:<session>`.
    IamRoleSession {
        role: String,
        #[serde(alias = "role_id")]
        role_id: String,
        session: String,
    },
    /// Credentials mode: nothing is attached; the requester fetches credentials of this role,
    /// whose session is named after the request.
    SessionRole {
        role_arn: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefusal {
    #[error("IAM Identity Center permission-set roles (AWSReservedSSO_*) cannot be modified, so access cannot be granted to them; request access as an IAM user or an IAM role session")]
    IdentityCenterRole,
    #[error("credentials-mode grants attach no policy")]
    NotAttachable,
    #[error("role {role}'s trust policy lets whoever assumes it choose any session name, so a policy for one session could be used by anyone who names theirs the same: pin session names (Condition StringEquals sts:RoleSessionName = ${{aws:username}}) or use credentials mode (GrantMode=credentials)")]
    UnpinnedRoleSessions { role: String },
    #[error("the grant policy would be {size} characters, above IAM's {limit}-character inline-policy limit for this principal")]
    TooLarge { size: usize, limit: usize },
}

/// The role behind a role-session caller (None for IAM users).
pub fn role_of(caller: &CallerArn) -> Option<(&str, &str)> {
    match caller.kind() {
        CallerKind::AssumedRole { role_name, session_name } => Some((role_name, session_name)),
        CallerKind::IamUser { .. } => None,
    }
}

/// The node's ARN where it lives (the stack's account, or a member account's).
pub fn node_arn(location: &NodeLocation, node: &NodeId) -> String {
    let (p, r, a, id) = (&location.partition, &location.region, &location.account, node.instance_id());
    match node.kind() {
        NodeKind::Ec2Instance => format!("arn:{p}:ec2:{r}:{a}:instance/{id}"),
        NodeKind::ManagedInstance => format!("arn:{p}:ssm:{r}:{a}:managed-instance/{id}"),
    }
}

/// AWS-owned documents (`AWS-…`) have no account in their ARN; `SSM-SessionManagerRunShell` and
/// custom documents live in the node's account and Region.
pub fn document_arn(location: &NodeLocation, document: &str) -> String {
    let account = if document.starts_with("AWS-") { "" } else { location.account.as_str() };
    format!("arn:{}:ssm:{}:{account}:document/{document}", location.partition, location.region)
}

pub fn deadline_text(deadline: &DateTime<Utc>) -> String {
    deadline.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn policy_document(
    settings: &GrantSettings,
    target: &GrantTarget,
    node: &NodeId,
    deadline: &DateTime<Utc>,
) -> Option<serde_json::Value> {
    let mut condition = json!({ "DateLessThan": { "aws:CurrentTime": deadline_text(deadline) } });
    let own_sessions = match target {
        GrantTarget::SessionRole { .. } => return None,
        // `${aws:username}` is an IAM policy variable, resolved by IAM at request time.
        GrantTarget::IamUser { .. } => format!(
            "arn:{}:ssm:{}:{}:session/${{aws:username}}-*",
            settings.partition, settings.region, settings.account
        ),
        GrantTarget::IamRoleSession { role_id, session, .. } => {
            condition["StringEquals"] = json!({ "aws:userid": format!("{role_id}:{session}") });
            format!("arn:{}:ssm:{}:{}:session/{session}-*", settings.partition, settings.region, settings.account)
        }
    };
    let home = settings.home();
    let mut start = vec![node_arn(&settings.node_location(node), node)];
    start.extend(settings.session_documents.iter().map(|d| document_arn(&home, d)));
    let mut start_condition = condition.clone();
    start_condition["BoolIfExists"] = json!({ "ssm:SessionDocumentAccessCheck": "true" });
    Some(json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Sid": "StartSessionOnThisNode", "Effect": "Allow", "Action": "ssm:StartSession", "Resource": start, "Condition": start_condition },
            { "Sid": "ControlOwnSessions", "Effect": "Allow", "Action": ["ssm:TerminateSession", "ssm:ResumeSession"], "Resource": own_sessions, "Condition": condition },
            { "Sid": "OpenOwnDataChannels", "Effect": "Allow", "Action": "ssmmessages:OpenDataChannel", "Resource": own_sessions, "Condition": condition },
        ]
    }))
}

/// The size IAM counts: the document without whitespace.
pub fn policy_size(document: &serde_json::Value) -> usize {
    document.to_string().chars().filter(|c| !c.is_whitespace()).count()
}

pub fn limit_for(target: &GrantTarget) -> usize {
    match target {
        GrantTarget::IamUser { .. } => USER_POLICY_LIMIT,
        GrantTarget::IamRoleSession { .. } | GrantTarget::SessionRole { .. } => ROLE_POLICY_LIMIT,
    }
}

/// The document, or why it cannot be attached. `existing` is the size of the principal's other
/// inline policies (IAM's limit is per principal, across all its inline policies).
pub fn build(
    settings: &GrantSettings,
    target: &GrantTarget,
    node: &NodeId,
    deadline: &DateTime<Utc>,
    existing: usize,
) -> Result<String, GrantRefusal> {
    let document = policy_document(settings, target, node, deadline).ok_or(GrantRefusal::NotAttachable)?;
    let size = policy_size(&document) + existing;
    let limit = limit_for(target);
    if size > limit {
        return Err(GrantRefusal::TooLarge { size, limit });
    }
    Ok(document.to_string())
}

/// What the request records about its grant (shown by the API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantRecord {
    pub policy_name: String,
    pub target: GrantTarget,
    pub attached_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detached_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminated_sessions: Vec<String>,
    /// The Step Functions execution that expires this grant (a revocation stops it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// Approved extensions applied to this grant, oldest first: each moved `deadline` once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<AppliedExtension>,
}

/// One approved extension request, applied to the grant it extends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedExtension {
    pub request_id: crate::domain::ids::RequestId,
    pub minutes: u32,
    /// The deadline before and after it.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// The execution that held the grant before the extension's took it over (and stopped it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_execution: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GrantSettings {
        GrantSettings {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            session_documents: vec![DEFAULT_SESSION_DOCUMENT.into(), "AWS-StartPortForwardingSession".into()],
            mode: GrantMode::Attach,
            session_role_name: "jit-session".into(),
            member_accounts: vec![],
        }
    }

    fn deadline() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:30:00.123+02:00").unwrap().with_timezone(&Utc)
    }

    fn user() -> GrantTarget {
        GrantTarget::IamUser { name: "operator".into() }
    }

    fn role() -> GrantTarget {
        GrantTarget::IamRoleSession { role: "OnCall".into(), role_id: "AROAEXAMPLE123".into(), session: "alice".into() }
    }

    #[test]
    fn start_session_names_exactly_one_node_with_the_right_arn_form() {
        for (node, arn) in [
            ("i-0123456789abcdef0", "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"),
            ("mi-0123456789abcdef0", "arn:aws:ssm:eu-west-1:123456789012:managed-instance/mi-0123456789abcdef0"),
        ] {
            let node = NodeId::try_from(node.to_owned()).unwrap();
            let doc = policy_document(&settings(), &user(), &node, &deadline()).unwrap();
            let resources: Vec<&str> =
                doc["Statement"][0]["Resource"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
            assert_eq!(doc["Statement"][0]["Action"], "ssm:StartSession");
            let nodes: Vec<&&str> =
                resources.iter().filter(|r| r.contains(":instance/") || r.contains(":managed-instance/")).collect();
            assert_eq!(nodes, vec![&arn]);
            assert!(resources.iter().all(|r| !r.contains('*')), "no wildcard resource for StartSession: {resources:?}");
            assert!(resources.contains(&"arn:aws:ssm:eu-west-1:123456789012:document/SSM-SessionManagerRunShell"));
            assert!(resources.contains(&"arn:aws:ssm:eu-west-1::document/AWS-StartPortForwardingSession"));
        }
    }

    #[test]
    fn every_statement_carries_the_deadline_in_iso_8601_utc() {
        let node = NodeId::try_from("i-0123456789abcdef0".to_owned()).unwrap();
        for target in [user(), role()] {
            let doc = policy_document(&settings(), &target, &node, &deadline()).unwrap();
            let statements = doc["Statement"].as_array().unwrap();
            assert_eq!(statements.len(), 3);
            assert_eq!(statements[0]["Condition"]["BoolIfExists"]["ssm:SessionDocumentAccessCheck"], "true");
            assert_eq!(statements[2]["Action"], "ssmmessages:OpenDataChannel");
            for s in statements {
                assert_eq!(s["Effect"], "Allow");
                assert_eq!(s["Condition"]["DateLessThan"]["aws:CurrentTime"], "2026-11-21T08:30:00Z");
            }
        }
    }

    #[test]
    fn role_grants_are_bound_to_the_requesting_session() {
        let node = NodeId::try_from("i-0123456789abcdef0".to_owned()).unwrap();
        let doc = policy_document(&settings(), &role(), &node, &deadline()).unwrap();
        for s in doc["Statement"].as_array().unwrap() {
            assert_eq!(s["Condition"]["StringEquals"]["aws:userid"], "AROAEXAMPLE123:alice");
        }
        assert_eq!(doc["Statement"][1]["Resource"], "arn:aws:ssm:eu-west-1:123456789012:session/alice-*");
        let user_doc = policy_document(&settings(), &user(), &node, &deadline()).unwrap();
        assert!(user_doc["Statement"][0]["Condition"].get("StringEquals").is_none());
        assert_eq!(
            user_doc["Statement"][1]["Resource"],
            "arn:aws:ssm:eu-west-1:123456789012:session/${aws:username}-*"
        );
    }

    #[test]
    fn size_limits_are_checked_per_principal_kind() {
        let node = NodeId::try_from("i-0123456789abcdef0".to_owned()).unwrap();
        assert!(build(&settings(), &user(), &node, &deadline(), 0).is_ok());
        let err = build(&settings(), &user(), &node, &deadline(), 1800).unwrap_err();
        assert!(matches!(err, GrantRefusal::TooLarge { limit: USER_POLICY_LIMIT, .. }), "{err}");
        assert!(build(&settings(), &role(), &node, &deadline(), 1800).is_ok(), "roles allow 10,240");
    }

    #[test]
    fn policy_names_round_trip_to_their_request() {
        let id = RequestId::generate();
        assert_eq!(request_of_policy(&policy_name(&id)), Some(id));
        assert_eq!(request_of_policy("jit-nonsense"), None);
        assert_eq!(request_of_policy("AdminAccess"), None);
    }

    #[test]
    fn targets_are_camel_case_and_older_snake_case_records_still_read() {
        let json = serde_json::to_value(role()).unwrap();
        assert_eq!(json["roleId"], "AROAEXAMPLE123");
        let old: GrantTarget = serde_json::from_value(
            serde_json::json!({"type": "iamRoleSession", "role": "OnCall", "role_id": "AROAEXAMPLE123", "session": "alice"}),
        )
        .unwrap();
        assert_eq!(old, role());
        let session_role = GrantTarget::SessionRole { role_arn: "arn:aws:iam::1:role/r".into() };
        assert_eq!(serde_json::to_value(session_role).unwrap()["roleArn"], "arn:aws:iam::1:role/r");
    }

    #[test]
    fn a_node_is_reachable_in_the_stacks_account_and_its_member_accounts_only() {
        let settings = GrantSettings { member_accounts: vec!["222233334444".into()], ..settings() };
        let cases = [
            ("i-0123456789abcdef0", Ok(false)),
            (&format!("arn:aws:ec2:eu-west-1:{}:instance/i-0123456789abcdef0", settings.account), Ok(false)),
            ("arn:aws:ec2:eu-west-1:222233334444:instance/i-0123456789abcdef0", Ok(true)),
            ("arn:aws:ec2:us-east-2:222233334444:instance/i-0123456789abcdef0", Err("NodeOutsideRegion")),
            ("arn:aws:ec2:eu-west-1:999988887777:instance/i-0123456789abcdef0", Err("NodeAccountNotMember")),
            ("arn:aws-cn:ec2:cn-north-1:222233334444:instance/i-0123456789abcdef0", Err("NodeOutsidePartition")),
        ];
        for (raw, expected) in cases {
            let node = NodeId::try_from(raw.to_owned()).unwrap();
            let got = settings.check_node(&node).map(|()| settings.is_member_node(&node)).map_err(|e| {
                assert_eq!(e.field, "nodeId");
                e.code
            });
            assert_eq!(got, expected.map_err(str::to_owned), "{raw}");
        }
        let member = NodeId::try_from("arn:aws:ec2:us-east-2:222233334444:instance/i-0123456789abcdef0".to_owned());
        let location = settings.node_location(&member.unwrap());
        assert_eq!(document_arn(&location, "Doc"), "arn:aws:ssm:us-east-2:222233334444:document/Doc");
    }

    #[test]
    fn identity_center_users_always_get_credentials_and_others_the_stacks_mode() {
        let ic = CallerArn::try_from("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_1/carol".to_owned())
            .unwrap();
        let user = CallerArn::try_from("arn:aws:iam::123456789012:user/operator".to_owned()).unwrap();
        for configured in [GrantMode::Attach, GrantMode::Credentials] {
            assert_eq!(GrantMode::for_request(configured, &ic, false), GrantMode::Credentials);
            assert_eq!(GrantMode::for_request(configured, &user, false), configured);
            assert_eq!(GrantMode::for_request(configured, &user, true), GrantMode::Credentials);
        }
        let session_role = GrantTarget::SessionRole { role_arn: "arn:aws:iam::123456789012:role/jit-session".into() };
        let node = NodeId::try_from("i-0123456789abcdef0".to_owned()).unwrap();
        assert_eq!(build(&settings(), &session_role, &node, &deadline(), 0), Err(GrantRefusal::NotAttachable));
        assert_eq!("credentials".parse(), Ok(GrantMode::Credentials));
        assert!("both".parse::<GrantMode>().is_err());
    }
}
