//! Stand-ins for IAM, Session Manager, Step Functions, the directory and the bus, each keeping
//! the state the campaign measures afterwards, and builders for stored requests with
//! deterministic ids (so that a case replays exactly).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jit_shared::domain::approval::{ApprovalProgress, Person};
use jit_shared::domain::events::{EventEnvelope, StatusEvent};
use jit_shared::domain::grant::GrantMode;
use jit_shared::domain::ids::{DurationMinutes, NodeId, RequestId};
use jit_shared::domain::principal::{CallerArn, ResolvedPrincipal};
use jit_shared::domain::request::{AccessRequest, AuditRecord, Decision};
use jit_shared::domain::status::RequestStatus;
use jit_shared::ports::{
    AccessGranter, DirectoryError, EventPublisher, ExecutionControl, GrantPrincipal, GrantWriteError, Mail, Mailer,
    PortError, PrincipalDirectory, RequestStore, RoleFacts, SessionControl, Transition,
};

/// An IAM user of the stack's account by name, or any caller by its full ARN.
pub fn arn(user: &str) -> CallerArn {
    if user.starts_with("arn:") {
        return CallerArn::try_from(user.to_owned()).unwrap();
    }
    CallerArn::try_from(format!("arn:aws:iam::123456789012:user/{user}")).unwrap()
}

/// `req-` and 32 hex digits, from a number: the same ids on every run.
pub fn request_id(n: u64) -> RequestId {
    RequestId::try_from(format!("req-{n:032x}")).unwrap()
}

/// Every mail sent, in order.
#[allow(dead_code, reason = "the fault campaign sends no mail")]
#[derive(Default)]
pub struct Outbox(pub Mutex<Vec<Mail>>);

#[async_trait]
impl Mailer for Outbox {
    async fn send_all(&self, mails: &[Mail]) -> Result<(), PortError> {
        self.0.lock().unwrap().extend_from_slice(mails);
        Ok(())
    }
}

/// IAM inline policies by principal and name.
#[derive(Default)]
pub struct Iam {
    policies: Mutex<BTreeMap<(String, String), String>>,
}

fn principal_key(principal: &GrantPrincipal) -> String {
    format!("{principal:?}")
}

impl Iam {
    pub fn has(&self, principal: &GrantPrincipal, name: &str) -> bool {
        self.policies.lock().unwrap().contains_key(&(principal_key(principal), name.to_owned()))
    }

    /// (principal, policy name) of every policy.
    pub fn all(&self) -> Vec<(String, String)> {
        self.policies.lock().unwrap().keys().cloned().collect()
    }

    /// Puts a policy outside the stack (an orphan left by a lost teardown).
    pub fn put_directly(&self, principal: &GrantPrincipal, name: &str) {
        self.policies.lock().unwrap().insert((principal_key(principal), name.to_owned()), "{}".into());
    }
}

#[async_trait]
impl AccessGranter for Iam {
    async fn role(&self, role: &str) -> Result<RoleFacts, GrantWriteError> {
        Ok(RoleFacts { role_id: format!("AROA{role}"), pins_session_names: true })
    }
    async fn put_policy(&self, principal: &GrantPrincipal, name: &str, document: &str) -> Result<(), GrantWriteError> {
        self.policies.lock().unwrap().insert((principal_key(principal), name.to_owned()), document.to_owned());
        Ok(())
    }
    async fn delete_policy(&self, principal: &GrantPrincipal, name: &str) -> Result<bool, PortError> {
        Ok(self.policies.lock().unwrap().remove(&(principal_key(principal), name.to_owned())).is_some())
    }
    async fn list_policies(&self, principal: &GrantPrincipal) -> Result<Vec<String>, PortError> {
        let key = principal_key(principal);
        Ok(self.policies.lock().unwrap().keys().filter(|(p, _)| *p == key).map(|(_, n)| n.clone()).collect())
    }
}

/// One Session Manager session.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub node: String,
    pub owner: String,
    pub open: bool,
}

/// Session Manager: sessions the campaign's users open; `terminate` ends them.
#[derive(Default)]
pub struct Ssm {
    sessions: Mutex<Vec<Session>>,
}

impl Ssm {
    pub fn open(&self, node: &NodeId, owner: &str) -> String {
        let mut sessions = self.sessions.lock().unwrap();
        let id = format!("{}-{:04}", owner.rsplit('/').next().unwrap_or("s"), sessions.len() + 1);
        sessions.push(Session { id: id.clone(), node: node.as_str().to_owned(), owner: owner.to_owned(), open: true });
        id
    }

    pub fn still_open(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().iter().filter(|s| s.open).cloned().collect()
    }
}

#[async_trait]
impl SessionControl for Ssm {
    async fn live_sessions(&self, node: &NodeId, owner_arn: &str) -> Result<Vec<String>, PortError> {
        let sessions = self.sessions.lock().unwrap();
        Ok(sessions
            .iter()
            .filter(|s| s.open && s.node == node.as_str() && s.owner == owner_arn)
            .map(|s| s.id.clone())
            .collect())
    }
    async fn terminate(&self, _node: &NodeId, session_id: &str) -> Result<(), PortError> {
        for s in self.sessions.lock().unwrap().iter_mut().filter(|s| s.id == session_id) {
            s.open = false;
        }
        Ok(())
    }
}

/// Step Functions: executions the sweeper started and executions stopped.
#[derive(Default)]
pub struct Sfn {
    pub started: Mutex<Vec<(RequestId, String)>>,
    pub stopped: Mutex<Vec<String>>,
}

pub const EXECUTION_PREFIX: &str = "arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:";

impl Sfn {
    pub fn is_stopped(&self, execution: &str) -> bool {
        self.stopped.lock().unwrap().iter().any(|e| e == execution)
    }
}

#[async_trait]
impl ExecutionControl for Sfn {
    async fn start(&self, request_id: &RequestId) -> Result<String, PortError> {
        let mut started = self.started.lock().unwrap();
        let execution = format!("{EXECUTION_PREFIX}sweeper-{}", started.len() + 1);
        started.push((request_id.clone(), execution.clone()));
        Ok(execution)
    }
    async fn stop(&self, execution_arn: &str, _cause: &str) -> Result<(), PortError> {
        self.stopped.lock().unwrap().push(execution_arn.to_owned());
        Ok(())
    }
}

/// Every caller is an IAM user without groups.
pub struct Users;

#[async_trait]
impl PrincipalDirectory for Users {
    async fn resolve(&self, caller: &CallerArn) -> Result<ResolvedPrincipal, DirectoryError> {
        Ok(ResolvedPrincipal::from_arn_only(caller))
    }
    async fn resolve_person(&self, person: &Person) -> Result<ResolvedPrincipal, DirectoryError> {
        match person {
            Person::IamUser(name) => Ok(ResolvedPrincipal::from_arn_only(&arn(name))),
            other => Err(DirectoryError::NotFound(other.to_string())),
        }
    }
}

/// The event bus: what was published, in order.
#[derive(Default)]
pub struct Bus {
    pub published: Mutex<Vec<StatusEvent>>,
}

#[async_trait]
impl EventPublisher for Bus {
    async fn publish(&self, events: &[StatusEvent]) -> Result<(), PortError> {
        self.published.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

/// A `Submitted` request as `submit` stores it, with a deterministic id, written to `store`
/// with its first audit record. Built from the sample event, so that fields added to the
/// request later take their defaults here too.
pub async fn create(
    store: &dyn RequestStore,
    id: &RequestId,
    user: &str,
    node: &str,
    mode: GrantMode,
    at: DateTime<Utc>,
) -> AccessRequest {
    let sample: EventEnvelope = serde_json::from_str(include_str!("../../../events/request-submitted.json")).unwrap();
    let mut request = sample.detail.request().unwrap();
    request.request_id = id.clone();
    request.requester = arn(user);
    request.node_id = NodeId::try_from(node.to_owned()).unwrap();
    request.duration_minutes = DurationMinutes::try_from(30).unwrap();
    request.status = RequestStatus::Submitted;
    request.version = 1;
    request.created_at = at;
    request.updated_at = at;
    request.grant_mode = mode;
    let audit: AuditRecord = serde_json::from_value(serde_json::json!({
        "requestId": id,
        "version": 1,
        "to": "Submitted",
        "actor": request.requester,
        "at": at,
        "reason": request.reason,
    }))
    .unwrap();
    store.create(&request, &audit, None).await.unwrap();
    request
}

/// The evaluator's decision: `Approved` (sealed, as the deciding functions seal it) or
/// `Pending` until `pending_until`.
pub async fn decide(
    store: &dyn RequestStore,
    request: &AccessRequest,
    to: RequestStatus,
    pending_until: Option<DateTime<Utc>>,
    seal: &jit_shared::adapters::memory::MemorySeal,
    at: DateTime<Utc>,
) -> AccessRequest {
    let decision: Decision = serde_json::from_value(serde_json::json!({
        "outcome": to,
        "rule": if to == RequestStatus::Approved { "AutoApproval" } else { "ManualAllNodes" },
        "decidingPolicyIds": ["chaos"],
        "message": "decided by the fault campaign",
        "maxDurationMinutes": 60,
        "decidedAt": at,
    }))
    .unwrap();
    let change = Transition {
        decision: Some(decision),
        progress: pending_until.map(ApprovalProgress::start),
        approval_seal: (to == RequestStatus::Approved).then(|| seal.seal_now(&request.approval_message())),
        ..Transition::status_change(request, to, "system:evaluator", "decided", at)
    };
    store.transition(&change).await.unwrap()
}
