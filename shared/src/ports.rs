//! The boundary between the domain and the outside world. Adapters in `adapters/` implement
//! these with AWS SDK clients; the domain only ever sees domain types.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::approval::Person;
use crate::domain::credentials::{CredentialsSpec, IssuedCredentials};
use crate::domain::events::StatusEvent;
use crate::domain::ids::{NodeId, RequestId};
use crate::domain::principal::{CallerArn, ResolvedPrincipal};
use crate::domain::request::{AccessRequest, AuditRecord};
use crate::domain::status::RequestStatus;
use crate::policy::NodeInfo;

/// A dependency failure, classified once so every entry point retries (or not) the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Throttling, 5xx, timeouts: a retry may succeed.
    #[error("transient failure: {0}")]
    Transient(String),
    /// Anything else: configuration, permissions, malformed data.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Ties an `Idempotency-Key` to the request it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub caller: CallerArn,
    pub key: String,
    /// SHA-256 of the normalized request body.
    pub body_hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    Created,
    /// The key was used before with the same body: this is the request it created.
    Replayed(Box<AccessRequest>),
    /// The key was used before with a different body.
    KeyReused,
}

pub use crate::domain::transition::Transition;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    NotAllowed(#[from] crate::domain::status::TransitionError),
    /// The stored request is no longer at `from`/`expected_version`: someone else moved it.
    #[error("the request changed concurrently")]
    Conflict,
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Where a page of the requester's list starts: after this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    pub created_at: DateTime<Utc>,
    pub request_id: RequestId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub status: Option<RequestStatus>,
    pub limit: u32,
    pub after: Option<ListPosition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<AccessRequest>,
    pub next: Option<ListPosition>,
}

#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Stores a new `Submitted` request, its first audit record and, when given, the idempotency
    /// record, all or nothing.
    async fn create(
        &self,
        request: &AccessRequest,
        audit: &AuditRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, PortError>;
    /// What `create` would answer for this idempotency record now, without creating anything:
    /// the request an earlier call made with the same key and body (`Replayed`), `KeyReused` for
    /// another body, `None` when the key is unused (or past its 24 hours).
    async fn replay(&self, record: &IdempotencyRecord, now: DateTime<Utc>) -> Result<Option<CreateOutcome>, PortError>;
    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, PortError>;
    /// The requester's requests, newest first.
    async fn list_by_requester(&self, requester: &CallerArn, query: &ListQuery) -> Result<Page, PortError>;
    /// Ids of pending requests that name this approver key (see `Approver::index_key`).
    async fn list_pending_by_approver(&self, approver_key: &str, limit: u32) -> Result<Vec<RequestId>, PortError>;
    /// Ids of requests a person decided (approved or rejected at any level), newest decision
    /// first; `counted_as` is whom the decision counted as (`ApprovalEntry::counted_as`).
    async fn list_decided_by(&self, counted_as: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        let _ = (counted_as, limit);
        Err(PortError::Permanent("this store does not list decisions by person".into()))
    }
    /// Applies a checked change (`Transition::check`) and its audit record atomically,
    /// conditioned on the stored request being the change's `basis`. The audit record carries
    /// the change's `ChangeRecord`, which the table's stream turns into events. Returns the
    /// request as stored afterwards.
    async fn transition(&self, transition: &Transition) -> Result<AccessRequest, TransitionError>;
    /// Holds an `Approved` request for its revoke (`AccessRequest::revoke_held_at`, kept if already
    /// set): no write recording an issuance of credentials succeeds on it from then on. Not a status
    /// change: no version, no audit record, no event. `false` when the request is not `Approved`.
    async fn hold_for_revoke(&self, id: &RequestId, at: DateTime<Utc>) -> Result<bool, PortError>;
    async fn audit_trail(&self, id: &RequestId) -> Result<Vec<AuditRecord>, PortError>;
    /// Pending requests whose approval deadline is at or before `now`, oldest deadline first (the
    /// sweep's reminders reach the longest waiting first; expiring one is a plain conditional
    /// write, which nothing holds back).
    async fn list_pending_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError>;
    // The other deadline lists come newest first: an item that fails for good (a member account
    // whose teardown role is gone) stays at the old end, where it cannot hold back newer ones.
    /// Approved requests with a grant whose deadline is at or before `now`, newest first.
    async fn list_grants_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError>;
    /// Approved requests without a recorded grant, approved at or before `approved_before`,
    /// newest first.
    async fn list_awaiting_grant(
        &self,
        approved_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError>;
    /// Requests that left `Approved` (revoked, expired, failed) at or after `since`, newest
    /// first: the sweeper makes sure nothing of them remains, what ended last first.
    async fn list_ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError>;
    /// Break-glass grants whose review is still open at `now` past its due time, oldest first.
    async fn list_reviews_past_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError>;
    /// Requests still `Submitted` that were created at or before `created_before`, newest first.
    async fn list_submitted_before(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError>;
}

/// Puts events on the bus. Only the publisher (`app::publish`) holds one: use cases write
/// changes, and the table's stream turns them into events.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes all of `events`, in order; on failure none of them may be assumed delivered.
    async fn publish(&self, events: &[StatusEvent]) -> Result<(), PortError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What a role's sessions say about the person behind them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleTrust {
    /// The trust policy ties each session name to the IAM user who assumed the role
    /// (`sts:RoleSessionName` = `${aws:username}` on every statement that lets anyone assume it).
    pub pins_session_names: bool,
    /// The role is one IAM Identity Center made for a permission set: its name starts with
    /// `AWSReservedSSO_` and its path is `/aws-reserved/sso.amazonaws.com/`, which no one else
    /// can create roles under. A role merely named like one is not.
    pub identity_center: bool,
}

#[async_trait]
pub trait PrincipalDirectory: Send + Sync {
    /// Groups, attributes and principal tags of the caller, as of now.
    async fn resolve(&self, caller: &CallerArn) -> Result<ResolvedPrincipal, DirectoryError>;
    /// The same for a person named by a mail link (no caller ARN in hand).
    async fn resolve_person(&self, person: &Person) -> Result<ResolvedPrincipal, DirectoryError>;
    /// `Ok` while the person exists (`NotFound` once they are gone). A full resolution by
    /// default; a directory with a cheaper check overrides it.
    async fn check_exists(&self, person: &Person) -> Result<(), DirectoryError> {
        self.resolve_person(person).await.map(|_| ())
    }
    /// What a role's sessions say about who is behind them. `RoleTrust::default()` (nothing)
    /// when in doubt: then all of the role's sessions count as one person, none as an Identity
    /// Center user.
    async fn role_trust(&self, _role: &str) -> Result<RoleTrust, DirectoryError> {
        Ok(RoleTrust::default())
    }
}

#[async_trait]
pub trait NodeDirectory: Send + Sync {
    /// The node's tags, or `NotFound` when no such node exists.
    async fn describe(&self, node: &NodeId) -> Result<NodeInfo, DirectoryError>;
}

/// Which mail topic a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Approvers,
    Requesters,
}

/// One plain-text mail for one person (`recipient` is `Person::key`, matched by the person's
/// subscription filter policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub audience: Audience,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends the mails of one event together, once everything they depend on has been looked up,
    /// so that a failure before sending mails nobody and the event's retry mails each person once.
    /// An error means some were not sent (the retry may send the others again).
    async fn send_all(&self, mails: &[Mail]) -> Result<(), PortError>;
}

/// Chat messages to one person (Slack's `chat.postMessage` as a direct message from the app's
/// bot): approval requests with Approve and Reject buttons, besides the mail.
#[async_trait]
pub trait ChatNotifier: Send + Sync {
    /// Posts `message` (a `chat.postMessage` body, `domain::slack::approval_message`) to `to`.
    async fn post(&self, to: &crate::domain::slack::SlackUserId, message: &serde_json::Value) -> Result<(), PortError>;
}

/// What became of a Teams card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamsDelivery {
    Posted,
    /// The person has no webhook: nothing was sent.
    NoWebhook,
}

/// Adaptive Cards to one person through their own Teams webhook (a 1:1 chat with them): the
/// card may carry their personal approval link, so it goes only to the webhook listed for `to`.
#[async_trait]
pub trait TeamsNotifier: Send + Sync {
    /// Posts `card` (`domain::teams::approval_card`) to `to`'s webhook, if they have one.
    async fn post(&self, to: &Person, card: &serde_json::Value) -> Result<TeamsDelivery, PortError>;
}

/// The chat SNS topic Amazon Q Developer in chat applications posts to team channels from. Its
/// messages are custom notifications (`domain::amazon_q`) and never carry a personal link.
#[async_trait]
pub trait ChatTopic: Send + Sync {
    async fn publish(&self, notification: &serde_json::Value) -> Result<(), PortError>;
}

/// The IAM principal a grant is attached to: the requester's own user, or the role behind the
/// requester's role session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantPrincipal {
    IamUser {
        name: String,
    },
    IamRole {
        name: String,
    },
    /// The session role of `account` (the stack's own or a member account's), which carries a
    /// revoke's deny; a member account's is reached through its teardown role.
    SessionRole {
        account: String,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantWriteError {
    /// IAM refused the document for its size (`LimitExceeded`): the grant cannot be made.
    #[error("IAM refused the policy for its size: {0}")]
    TooLarge(String),
    /// The principal does not exist (any more).
    #[error("the principal does not exist: {0}")]
    NoSuchPrincipal(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// A role, as a role-session grant sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleFacts {
    /// The role's unique id (`AROA…`), for the `aws:userid` session condition.
    pub role_id: String,
    /// Whether its trust policy ties session names to the assuming user
    /// (`domain::principal::trust_pins_session_names`): without that, anyone who may assume
    /// the role could name their session after the requester and use the grant.
    pub pins_session_names: bool,
}

/// Writes and removes the per-request inline policies. Only the grant/expiry function holds an
/// implementation with IAM write permissions.
#[async_trait]
pub trait AccessGranter: Send + Sync {
    /// What a role-session grant needs to know about the role.
    async fn role(&self, role: &str) -> Result<RoleFacts, GrantWriteError>;
    /// Creates or replaces the inline policy (idempotent).
    async fn put_policy(&self, principal: &GrantPrincipal, name: &str, document: &str) -> Result<(), GrantWriteError>;
    /// Deletes the inline policy; `Ok(false)` when it was already gone.
    async fn delete_policy(&self, principal: &GrantPrincipal, name: &str) -> Result<bool, PortError>;
    /// Names of the principal's inline policies.
    async fn list_policies(&self, principal: &GrantPrincipal) -> Result<Vec<String>, PortError>;
}

/// Issues session-role credentials (credentials mode). Only the credentials function holds one
/// (`sts:AssumeRole` on the session roles).
#[async_trait]
pub trait CredentialIssuer: Send + Sync {
    async fn issue(&self, spec: &CredentialsSpec) -> Result<IssuedCredentials, PortError>;
}

/// Seals approvals and checks seals (KMS HMAC): the deciding functions may seal, the granting
/// ones only check, so a grant acts only on an approval one of the deciding functions made.
#[async_trait]
pub trait ApprovalSeal: Send + Sync {
    /// The MAC of `message`, as text.
    async fn seal(&self, message: &[u8]) -> Result<String, PortError>;
    /// Whether `seal` is the MAC of `message`; `Ok(false)` for any seal that does not verify.
    async fn check(&self, message: &[u8], seal: &str) -> Result<bool, PortError>;
}

/// Live Session Manager sessions.
#[async_trait]
pub trait SessionControl: Send + Sync {
    /// Ids of the active sessions on `node` owned by `owner_arn`.
    async fn live_sessions(&self, node: &NodeId, owner_arn: &str) -> Result<Vec<String>, PortError>;
    /// Ends a session on `node` (which says the account and Region it is in); a session that is
    /// already gone counts as ended.
    async fn terminate(&self, node: &NodeId, session_id: &str) -> Result<(), PortError>;
}

/// The per-request lifecycle executions (Step Functions in AWS, a task runner locally). The bus
/// rule for `Approved` starts them; the grant records which one it runs in.
#[async_trait]
pub trait ExecutionControl: Send + Sync {
    /// Starts an execution for an approved request (the sweeper, when the rule's delivery was
    /// lost); returns its ARN. A second execution for the same request ends harmlessly.
    async fn start(&self, request_id: &RequestId) -> Result<String, PortError>;
    /// Stops the execution with this ARN (revoke); a finished or missing execution is fine.
    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<(), PortError>;
}
