//! Credentials mode: an approved requester gets short-lived STS credentials of the session role
//! in the node's account, narrowed by a session policy to exactly that node, the stack's session
//! document, the sessions of this request and the deadline (as AWS JITNA's `GetAccessToken`).
//! The role session is named after the request, so a revoke can deny exactly its credentials
//! (`aws:userid` = `<role id>:<request id>`) and its sessions are found by owner.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::grant::{deadline_text, document_arn, node_arn, GrantSettings};
use crate::domain::ids::RequestId;
use crate::domain::request::AccessRequest;

/// Role chaining (a Lambda's role assuming another) caps a session at one hour.
pub const MAX_LIFETIME_SECONDS: i64 = 3_600;
/// STS refuses a `DurationSeconds` below 15 minutes.
pub const MIN_STS_SECONDS: i64 = 900;
/// STS's plaintext limit for a session policy.
pub const SESSION_POLICY_LIMIT: usize = 2_048;
/// The session tag naming the request (seen by the role's policies and in CloudTrail).
pub const REQUEST_TAG: &str = "jit:request-id";

/// A secret string: shown as `***` by `Debug`, and without `Display` (formatting it with `{}` does
/// not compile), so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that must send it (the API response).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The session role in `account` (the stack's own account or a member account: the member
/// template creates the role under the same name).
pub fn session_role_arn(settings: &GrantSettings, account: &str) -> String {
    format!("arn:{}:iam::{account}:role/{}", settings.partition, settings.session_role_name)
}

/// The ARN a role session named after the request calls AWS as (the owner of its sessions).
pub fn session_caller_arn(settings: &GrantSettings, account: &str, request: &RequestId) -> String {
    format!("arn:{}:sts::{account}:assumed-role/{}/{request}", settings.partition, settings.session_role_name)
}

/// `SourceIdentity`: the person, as CloudTrail and Session Manager will name them, from whom
/// the requester counts as (`Person::counted_as`, then the people directory): an IAM user or an
/// Identity Center user by name; a role whose sessions are not pinned to their users by
/// `role=<role>` (anyone who may assume it could have picked the session name, so the name
/// proves nothing). STS allows 2–64 characters of `[\w+=,.@-]`: others become `-`, a longer name
/// is cut, a one-character name gets its account appended.
pub fn source_identity(person: &str, account: &str) -> String {
    let name = match person.split_once('#') {
        Some(("iam-role", role)) => format!("role={role}"),
        Some(("iam-role-session", role_and_session)) => format!("role={role_and_session}"),
        Some((_, name)) => name.to_owned(),
        None => person.to_owned(),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    let name: String = name.chars().map(|c| if allowed(c) { c } else { '-' }).take(64).collect();
    if name.chars().count() < 2 {
        format!("{name}@{account}").chars().take(64).collect()
    } else {
        name
    }
}

/// The session policy: what the credentials may do, whatever the role allows.
/// Everything it names lives where the node does: its ARN, the session document of that account
/// and Region (the member template creates it), the sessions.
pub fn session_policy(
    settings: &GrantSettings,
    request: &AccessRequest,
    deadline: &DateTime<Utc>,
) -> serde_json::Value {
    let before_deadline = json!({ "aws:CurrentTime": deadline_text(deadline) });
    let at = settings.node_location(&request.node_id);
    let sessions = format!("arn:{}:ssm:{}:{}:session/{}-*", at.partition, at.region, at.account, request.request_id);
    let mut start = vec![node_arn(&at, &request.node_id)];
    start.extend(settings.session_documents.iter().map(|d| document_arn(&at, d)));
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartSessionOnThisNode",
                "Effect": "Allow",
                "Action": "ssm:StartSession",
                "Resource": start,
                // The document is part of the authorization even when the caller names none, so
                // a plain `start-session` cannot fall back to the default shell document.
                "Condition": { "DateLessThan": before_deadline, "BoolIfExists": { "ssm:SessionDocumentAccessCheck": "true" } }
            },
            {
                "Sid": "ControlThisRequestsSessions",
                "Effect": "Allow",
                "Action": ["ssm:TerminateSession", "ssm:ResumeSession"],
                "Resource": sessions,
                "Condition": { "DateLessThan": before_deadline }
            },
            {
                // Session Manager requires it of every session's caller (since 2025).
                "Sid": "OpenThisRequestsDataChannels",
                "Effect": "Allow",
                "Action": "ssmmessages:OpenDataChannel",
                "Resource": sessions,
                "Condition": { "DateLessThan": before_deadline }
            }
        ]
    })
}

/// Everything one `sts:AssumeRole` call carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialsSpec {
    pub role_arn: String,
    /// The request id: `aws:userid` of the session ends with it.
    pub session_name: String,
    pub source_identity: String,
    /// The session policy, compact JSON.
    pub policy: String,
    pub duration_seconds: i32,
    pub tags: Vec<(String, String)>,
    /// When what the credentials allow ends: the access deadline, or the credentials' own end.
    pub not_after: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsRefusal {
    #[error("access ended at {0}")]
    AccessEnded(String),
    #[error("the session policy would be {size} characters, above STS's {limit}-character limit")]
    PolicyTooLarge { size: usize, limit: usize },
}

/// The `AssumeRole` call for `request` at `now`, access lasting until `deadline`. The lifetime
/// is what remains of the access, at most an hour; STS will not issue less than 15 minutes,
/// so near the deadline the credentials outlive it, but every statement of their policy ends at
/// the deadline, which is what `not_after` reports.
pub fn spec(
    settings: &GrantSettings,
    request: &AccessRequest,
    person: &str,
    deadline: &DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<CredentialsSpec, CredentialsRefusal> {
    let remaining = (*deadline - now).num_seconds();
    if remaining <= 0 {
        return Err(CredentialsRefusal::AccessEnded(deadline_text(deadline)));
    }
    let seconds = remaining.clamp(MIN_STS_SECONDS, MAX_LIFETIME_SECONDS);
    let policy = session_policy(settings, request, deadline).to_string();
    let size = policy.chars().filter(|c| !c.is_whitespace()).count();
    if size > SESSION_POLICY_LIMIT {
        return Err(CredentialsRefusal::PolicyTooLarge { size, limit: SESSION_POLICY_LIMIT });
    }
    let duration_seconds = i32::try_from(seconds).unwrap_or(900);
    Ok(CredentialsSpec {
        role_arn: session_role_arn(settings, &settings.node_location(&request.node_id).account),
        session_name: request.request_id.to_string(),
        source_identity: source_identity(person, request.requester.account()),
        policy,
        duration_seconds,
        tags: vec![(REQUEST_TAG.to_owned(), request.request_id.to_string())],
        not_after: (*deadline).min(now + Duration::seconds(remaining.min(MAX_LIFETIME_SECONDS))),
    })
}

/// The session role's inline policy that revokes one request's credentials.
pub const DENY_PREFIX: &str = "jit-deny-";

pub fn deny_policy_name(request: &RequestId) -> String {
    format!("{DENY_PREFIX}{request}")
}

/// The request a deny policy belongs to, if the name is one of ours.
pub fn request_of_deny(name: &str) -> Option<RequestId> {
    RequestId::try_from(name.strip_prefix(DENY_PREFIX)?.to_owned()).ok()
}

/// Denies everything to the role sessions named after the request: `aws:userid` of a role
/// session is `<role id>:<session name>`, and only this stack names sessions `req-…`.
pub fn deny_document(request: &RequestId) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "RevokedAccessRequest",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": { "StringLike": { "aws:userid": format!("*:{request}") } }
        }]
    })
}

/// How many one-request denies a session role carries at most. Each takes about 200 of the role's
/// 10,240 inline-policy characters (its own policy takes about 520), so this leaves room for
/// about 19 `issued-before` denies (also about 200 each), which a revoke writes instead once the
/// role holds this many. A new one is needed only for a request fetched within seconds of the
/// latest one's time, and the sweeper removes the superseded ones every run.
pub const MAX_REQUEST_DENIES: usize = 30;
/// The name of the alarm a revoke that denied by issue time logs (the template's filters read it).
pub const EARLIER_CREDENTIALS_DENIED_ALARM: &str = "EarlierCredentialsDenied";
/// The session role's inline policy that denies every credential of the role issued before a
/// time (`jit-deny-before-<epoch seconds>`): a revoke's fallback when the role's budget for
/// one-request denies is spent, as IAM's own "revoke active sessions" does.
pub const ISSUED_BEFORE_PREFIX: &str = "jit-deny-before-";
/// How long after the recorded issuance time STS may have issued the credentials: the credentials
/// function takes the time first and calls STS within its 10 s timeout, plus clock skew. An
/// `issued-before` deny covers a request only when its time is at least this much later.
const ISSUE_SLACK_SECONDS: i64 = 15;

/// The name of the `issued-before` deny for `before` (whole seconds).
pub fn issued_before_policy_name(before: DateTime<Utc>) -> String {
    format!("{ISSUED_BEFORE_PREFIX}{}", before.timestamp())
}

/// The time an `issued-before` deny covers up to, if the name is one.
pub fn issued_before_of(name: &str) -> Option<DateTime<Utc>> {
    let seconds: i64 = name.strip_prefix(ISSUED_BEFORE_PREFIX)?.parse().ok()?;
    DateTime::from_timestamp(seconds, 0)
}

/// Denies everything to the role's credentials issued before `before` (whole seconds).
pub fn issued_before_document(before: DateTime<Utc>) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "RevokedAccessRequestsIssuedBefore",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": { "DateLessThan": { "aws:TokenIssueTime": deadline_text(&before) } }
        }]
    })
}

/// The time an `issued-before` deny written at `now` for the request must cover up to: `now`, or
/// a few seconds later when its last credentials were issued just before (see
/// `ISSUE_SLACK_SECONDS`), so that it covers them for certain.
/// Whole seconds, rounded up: the deny's name and condition carry seconds.
pub fn issued_before_covering(request: &AccessRequest, now: DateTime<Utc>) -> DateTime<Utc> {
    let last = request.credentials.as_ref().map(|c| c.last.issued_at + Duration::seconds(ISSUE_SLACK_SECONDS));
    let before = last.map_or(now, |l| l.max(now));
    let up = i64::from(before.timestamp_subsec_nanos() > 0);
    DateTime::from_timestamp(before.timestamp() + up, 0).unwrap_or(before)
}

/// Whether an `issued-before` deny up to `before` denies every credential issued for the request.
pub fn covered_by_issued_before(request: &AccessRequest, before: DateTime<Utc>) -> bool {
    request.credentials.as_ref().is_some_and(|c| c.last.issued_at + Duration::seconds(ISSUE_SLACK_SECONDS) <= before)
}

/// Whether an `issued-before` deny up to `before` denies nothing any more at `now`: every
/// credential issued before it has expired.
pub fn issued_before_is_spent(before: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    before + Duration::seconds(MAX_LIFETIME_SECONDS + ISSUE_SLACK_SECONDS) <= now
}

/// Whether credentials issued for the request might still do something at `now`: some were
/// issued, the last of them has not expired, and the deadline (which their policy carries) has
/// not passed. While this holds, a revoke's deny must stay.
pub fn may_still_be_used(request: &AccessRequest, now: DateTime<Utc>) -> bool {
    request.credentials.as_ref().is_some_and(|c| now < c.valid_until.min(request.access_deadline()))
}

/// What STS returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    /// When STS ends the credentials.
    pub expiration: DateTime<Utc>,
}

/// One issuance, as the audit record and its event tell it (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsIssue {
    pub access_key_id: String,
    pub role_arn: String,
    pub issued_at: DateTime<Utc>,
    /// When STS ends the credentials (they may outlive the deadline; their policy does not).
    pub expiration: DateTime<Utc>,
}

/// What the request keeps about its credentials: how many were issued and until when the last
/// of them is valid (a revoke's deny must stay at least that long).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRecord {
    pub issued: u32,
    pub last: CredentialsIssue,
    /// The latest expiration of any credentials issued for the request.
    pub valid_until: DateTime<Utc>,
}

impl CredentialsRecord {
    /// The record after one more issuance.
    pub fn after(previous: Option<&CredentialsRecord>, issue: CredentialsIssue) -> Self {
        let valid_until = previous.map_or(issue.expiration, |p| p.valid_until.max(issue.expiration));
        Self { issued: previous.map_or(0, |p| p.issued) + 1, last: issue, valid_until }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grant::{GrantMode, DEFAULT_SESSION_DOCUMENT};
    use crate::domain::ids::NodeId;
    use crate::domain::principal::CallerArn;

    fn settings() -> GrantSettings {
        GrantSettings {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "111122223333".into(),
            session_documents: vec![DEFAULT_SESSION_DOCUMENT.into()],
            mode: GrantMode::Credentials,
            session_role_name: "jit-session".into(),
            member_accounts: vec!["444455556666".into()],
        }
    }

    /// The request for the same node in member account 444455556666, Region us-east-2.
    fn in_member_account(mut r: AccessRequest) -> AccessRequest {
        let arn = format!("arn:aws:ec2:us-east-2:444455556666:instance/{}", r.node_id.instance_id());
        r.node_id = NodeId::try_from(arn).unwrap();
        r
    }

    fn request(requester: &str) -> AccessRequest {
        let env: crate::domain::events::EventEnvelope =
            serde_json::from_str(include_str!("../../../events/request-approved.json")).unwrap();
        let mut r = env.detail.request().unwrap();
        r.requester = CallerArn::try_from(requester.to_owned()).unwrap();
        r
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_session_policy_names_the_node_the_document_the_deadline_and_the_data_channel() {
        let home = request("arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Ops_1/carol@example.com");
        let doc = session_policy(&settings(), &home, &at("2026-12-02T10:00:00Z"));
        assert_eq!(
            doc["Statement"][0]["Resource"],
            json!([
                format!("arn:aws:ec2:eu-west-1:111122223333:instance/{}", home.node_id),
                "arn:aws:ssm:eu-west-1:111122223333:document/SSM-SessionManagerRunShell"
            ])
        );
        let r = in_member_account(home);
        let doc = session_policy(&settings(), &r, &at("2026-12-02T10:00:00Z"));
        let s = doc["Statement"].as_array().unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0]["Resource"],
            json!([
                format!("arn:aws:ec2:us-east-2:444455556666:instance/{}", r.node_id.instance_id()),
                "arn:aws:ssm:us-east-2:444455556666:document/SSM-SessionManagerRunShell"
            ])
        );
        assert_eq!(s[0]["Condition"]["BoolIfExists"]["ssm:SessionDocumentAccessCheck"], "true");
        assert_eq!(s[2]["Action"], "ssmmessages:OpenDataChannel");
        let own = format!("arn:aws:ssm:us-east-2:444455556666:session/{}-*", r.request_id);
        assert_eq!((&s[1]["Resource"], &s[2]["Resource"]), (&json!(own), &json!(own)));
        for statement in s {
            assert_eq!(statement["Effect"], "Allow");
            assert_eq!(statement["Condition"]["DateLessThan"]["aws:CurrentTime"], "2026-12-02T10:00:00Z");
        }
    }

    #[test]
    fn the_lifetime_is_what_remains_at_most_an_hour_and_never_past_the_deadline() {
        let r = request("arn:aws:iam::111122223333:user/operator");
        let now = at("2026-12-02T08:00:00Z");
        let cases = [
            ("2026-12-02T12:00:00Z", 3_600, "2026-12-02T09:00:00Z"),
            ("2026-12-02T08:30:00Z", 1_800, "2026-12-02T08:30:00Z"),
            // STS's 15-minute floor: the credentials live longer, their policy does not.
            ("2026-12-02T08:05:00Z", 900, "2026-12-02T08:05:00Z"),
        ];
        for (deadline, seconds, not_after) in cases {
            let spec = spec(&settings(), &r, "iam-user#operator", &at(deadline), now).unwrap();
            assert_eq!((spec.duration_seconds, spec.not_after), (seconds, at(not_after)), "deadline {deadline}");
        }
        let ended = spec(&settings(), &r, "iam-user#operator", &now, now).unwrap_err();
        assert!(matches!(ended, CredentialsRefusal::AccessEnded(_)), "{ended}");
    }

    #[test]
    fn the_call_names_the_request_the_person_and_the_role_of_the_nodes_account() {
        // (requester, whom they count as, the source identity)
        let cases = [
            ("arn:aws:iam::111122223333:user/operator", "iam-user#operator", "operator"),
            (
                "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Ops_1/carol@example.com",
                "ic-user#carol@example.com",
                "carol@example.com",
            ),
            // A role that pins session names: the session is the IAM user of that name.
            ("arn:aws:sts::111122223333:assumed-role/OnCall/alice", "iam-user#alice", "alice"),
            // One that does not: any of its sessions could be named alice.
            ("arn:aws:sts::111122223333:assumed-role/Shared/alice", "iam-role#Shared", "role=Shared"),
            ("arn:aws:iam::111122223333:user/q", "iam-user#q", "q@111122223333"),
            ("arn:aws:iam::111122223333:user/x", "ic-user#Zoë Smith", "Zo--Smith"),
            // STS takes 64 characters at most: a longer name is cut there.
            ("arn:aws:iam::111122223333:user/x", &format!("ic-user#{}@example.com", "a".repeat(70)), &"a".repeat(64)),
        ];
        for (requester, person, identity) in cases {
            let r = in_member_account(request(requester));
            let spec = spec(&settings(), &r, person, &(r.updated_at + Duration::hours(2)), r.updated_at).unwrap();
            assert_eq!(spec.source_identity, identity, "{person}");
            assert_eq!(spec.session_name, r.request_id.as_str());
            assert_eq!(spec.role_arn, "arn:aws:iam::444455556666:role/jit-session");
            assert_eq!(spec.tags, vec![(REQUEST_TAG.to_owned(), r.request_id.to_string())]);
            assert!(spec.policy.len() <= SESSION_POLICY_LIMIT);
        }
    }

    #[test]
    fn a_deny_names_only_the_requests_role_session_and_lasts_while_its_credentials_may_be_used() {
        let mut r = request("arn:aws:iam::111122223333:user/operator");
        let doc = deny_document(&r.request_id);
        assert_eq!(doc["Statement"][0]["Effect"], "Deny");
        assert_eq!(doc["Statement"][0]["Condition"]["StringLike"]["aws:userid"], format!("*:{}", r.request_id));
        assert_eq!(request_of_deny(&deny_policy_name(&r.request_id)), Some(r.request_id.clone()));
        assert_eq!(request_of_deny(&format!("jit-{}", r.request_id)), None);
        let now = r.updated_at;
        assert!(!may_still_be_used(&r, now), "none issued");
        let issue = CredentialsIssue {
            access_key_id: "ASIA1".into(),
            role_arn: "r".into(),
            issued_at: now,
            expiration: now + Duration::minutes(30),
        };
        r.credentials = Some(CredentialsRecord::after(None, issue));
        r.approved_at = Some(now);
        r.grant = None;
        assert!(may_still_be_used(&r, now + Duration::minutes(29)));
        assert!(!may_still_be_used(&r, now + Duration::minutes(30)), "all expired");
        assert!(!may_still_be_used(&r, r.access_deadline()), "past the deadline");
    }

    #[test]
    fn an_issued_before_deny_covers_credentials_issued_well_before_it_until_they_have_all_expired() {
        // Arrange: credentials last issued at 10:00:00.5.
        let issued = at("2026-12-04T10:00:00.5Z");
        let mut r = request("arn:aws:iam::111122223333:user/operator");
        let issue =
            CredentialsIssue { access_key_id: "A".into(), role_arn: "r".into(), issued_at: issued, expiration: issued };
        r.credentials = Some(CredentialsRecord::after(None, issue));

        // Act: revoked a second later, and an hour later.
        let soon = issued_before_covering(&r, issued + Duration::seconds(1));
        let late = issued_before_covering(&r, at("2026-12-04T11:00:00.2Z"));

        // Assert: the deny reaches past STS's possible issue time, in whole seconds, and round-trips
        // through its name; it is spent once every credential issued before it has expired.
        assert_eq!(soon, at("2026-12-04T10:00:16Z"), "the slack after the recorded time, rounded up");
        assert_eq!(late, at("2026-12-04T11:00:01Z"));
        assert!(covered_by_issued_before(&r, soon) && !covered_by_issued_before(&r, issued + Duration::seconds(5)));
        assert_eq!(issued_before_of(&issued_before_policy_name(soon)), Some(soon));
        assert_eq!(request_of_deny(&issued_before_policy_name(soon)), None, "not a one-request deny");
        assert_eq!(issued_before_of(&deny_policy_name(&r.request_id)), None);
        let doc = issued_before_document(soon);
        assert_eq!(doc["Statement"][0]["Effect"], "Deny");
        assert_eq!(doc["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"], "2026-12-04T10:00:16Z");
        assert!(!issued_before_is_spent(soon, soon + Duration::minutes(60)));
        assert!(issued_before_is_spent(soon, soon + Duration::minutes(61)));
        assert!(issued_before_policy_name(soon).len() <= 128, "an IAM policy name");
    }

    #[test]
    fn a_session_policy_above_stss_limit_is_refused_before_any_call() {
        // Arrange: a stack configured with enough session documents to push the policy past it.
        let documents = (0..40).map(|i| format!("jit-node-access-session-document-{i}")).collect();
        let settings = GrantSettings { session_documents: documents, ..settings() };
        let r = request("arn:aws:iam::111122223333:user/operator");

        // Act
        let refused = spec(&settings, &r, "iam-user#operator", &(r.updated_at + Duration::hours(1)), r.updated_at);

        // Assert
        match refused {
            Err(CredentialsRefusal::PolicyTooLarge { size, limit }) => assert!(size > limit && limit == 2_048),
            other => panic!("expected PolicyTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn the_record_counts_issuances_and_keeps_the_latest_expiration() {
        let issue = |key: &str, exp: &str| CredentialsIssue {
            access_key_id: key.into(),
            role_arn: "r".into(),
            issued_at: at("2026-12-02T08:00:00Z"),
            expiration: at(exp),
        };
        let first = CredentialsRecord::after(None, issue("ASIA1", "2026-12-02T09:00:00Z"));
        let second = CredentialsRecord::after(Some(&first), issue("ASIA2", "2026-12-02T08:30:00Z"));
        assert_eq!((second.issued, second.last.access_key_id.as_str()), (2, "ASIA2"));
        assert_eq!(second.valid_until, at("2026-12-02T09:00:00Z"));
        assert_eq!(format!("{:?}", Secret::new("wJalr")), "Secret(***)");
    }
}
