//! Fault injection at the ports: every call the lifecycle, the revoke and the sweep make to the
//! outside world goes through a `Faulty` wrapper, which counts it per call site and, when the
//! case's plan names that site and occurrence, fails it (once, or from then on until the
//! campaign's recovery), or lets it take effect and then fails it (a lost reply, or a crash of
//! the function right after a committed write).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jit_shared::domain::approval::Person;
use jit_shared::domain::credentials::{CredentialsSpec, IssuedCredentials};
use jit_shared::domain::ids::{NodeId, RequestId};
use jit_shared::domain::principal::{CallerArn, ResolvedPrincipal};
use jit_shared::domain::request::{AccessRequest, AuditRecord};
use jit_shared::ports::{
    AccessGranter, ApprovalSeal, CreateOutcome, CredentialIssuer, DirectoryError, ExecutionControl, GrantPrincipal,
    GrantWriteError, IdempotencyRecord, ListQuery, Page, PortError, PrincipalDirectory, RequestStore, RoleFacts,
    RoleTrust, SessionControl, Transition, TransitionError,
};

/// One external call site: a port method, named with the AWS call behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    StoreGet,
    StoreTransition,
    StoreHoldForRevoke,
    StoreCreate,
    StoreListByRequester,
    StoreListPendingByApprover,
    StoreAuditTrail,
    StoreListPendingPastDeadline,
    StoreListGrantsPastDeadline,
    StoreListAwaitingGrant,
    StoreListEndedSince,
    StoreListSubmittedBefore,
    IamRole,
    IamPutPolicy,
    IamDeletePolicy,
    IamListPolicies,
    SsmLiveSessions,
    SsmTerminate,
    SfnStart,
    SfnStop,
    SealCheck,
    SealSeal,
    StsIssue,
    DirectoryResolve,
    DirectoryResolvePerson,
    DirectoryCheckExists,
    DirectoryRoleTrust,
}

impl Site {
    /// The port method and the AWS call behind it.
    pub fn name(self) -> &'static str {
        match self {
            Site::StoreGet => "RequestStore::get (DynamoDB GetItem)",
            Site::StoreTransition => "RequestStore::transition (DynamoDB TransactWriteItems)",
            Site::StoreHoldForRevoke => "RequestStore::hold_for_revoke (DynamoDB UpdateItem)",
            Site::StoreCreate => "RequestStore::create (DynamoDB TransactWriteItems)",
            Site::StoreListByRequester => "RequestStore::list_by_requester (DynamoDB Query)",
            Site::StoreListPendingByApprover => "RequestStore::list_pending_by_approver (DynamoDB Query)",
            Site::StoreAuditTrail => "RequestStore::audit_trail (DynamoDB Query)",
            Site::StoreListPendingPastDeadline => "RequestStore::list_pending_past_deadline (DynamoDB Query)",
            Site::StoreListGrantsPastDeadline => "RequestStore::list_grants_past_deadline (DynamoDB Query)",
            Site::StoreListAwaitingGrant => "RequestStore::list_awaiting_grant (DynamoDB Query)",
            Site::StoreListEndedSince => "RequestStore::list_ended_since (DynamoDB Query)",
            Site::StoreListSubmittedBefore => "RequestStore::list_submitted_before (DynamoDB Query)",
            Site::IamRole => "AccessGranter::role (IAM GetRole)",
            Site::IamPutPolicy => "AccessGranter::put_policy (IAM PutUserPolicy / PutRolePolicy)",
            Site::IamDeletePolicy => "AccessGranter::delete_policy (IAM DeleteUserPolicy / DeleteRolePolicy)",
            Site::IamListPolicies => "AccessGranter::list_policies (IAM ListUserPolicies / ListRolePolicies)",
            Site::SsmLiveSessions => "SessionControl::live_sessions (SSM DescribeSessions)",
            Site::SsmTerminate => "SessionControl::terminate (SSM TerminateSession)",
            Site::SfnStart => "ExecutionControl::start (Step Functions StartExecution)",
            Site::SfnStop => "ExecutionControl::stop (Step Functions StopExecution)",
            Site::SealCheck => "ApprovalSeal::check (KMS VerifyMac)",
            Site::SealSeal => "ApprovalSeal::seal (KMS GenerateMac)",
            Site::StsIssue => "CredentialIssuer::issue (STS AssumeRole)",
            Site::DirectoryResolve => "PrincipalDirectory::resolve (IAM / Identity Store)",
            Site::DirectoryResolvePerson => "PrincipalDirectory::resolve_person (IAM / Identity Store)",
            Site::DirectoryCheckExists => "PrincipalDirectory::check_exists (IAM / Identity Store)",
            Site::DirectoryRoleTrust => "PrincipalDirectory::role_trust (IAM GetRole)",
        }
    }

    /// Whether the call changes something outside: a lost reply or a crash can follow its effect.
    pub fn mutating(self) -> bool {
        matches!(
            self,
            Site::StoreTransition
                | Site::StoreHoldForRevoke
                | Site::StoreCreate
                | Site::IamPutPolicy
                | Site::IamDeletePolicy
                | Site::SsmTerminate
                | Site::SfnStart
                | Site::SfnStop
                | Site::StsIssue
        )
    }
}

/// How an injected failure is classified by the adapters (`PortError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Throttling, 5xx, a timeout: the task is retried.
    Transient,
    /// Access denied, a bad request: the task fails for good.
    Permanent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The nth call fails, the next ones succeed.
    FailOnce(Class),
    /// The nth call and every later one fail, until the campaign's recovery.
    FailAlways(Class),
    /// The nth call takes effect (the write commits), then the caller sees a transient error.
    LostReply,
    /// The nth call takes effect, then the function crashes: nothing more of that invocation
    /// runs, and the invoker sees a crash (`Runtime.ExitError`), not the function's error.
    CrashAfterCommit,
}

impl Kind {
    /// The kinds that apply to a site.
    pub fn for_site(site: Site) -> Vec<Kind> {
        let mut kinds = vec![
            Kind::FailOnce(Class::Transient),
            Kind::FailOnce(Class::Permanent),
            Kind::FailAlways(Class::Transient),
            Kind::FailAlways(Class::Permanent),
        ];
        if site.mutating() {
            kinds.extend([Kind::LostReply, Kind::CrashAfterCommit]);
        }
        kinds
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::FailOnce(Class::Transient) => "fail once (transient)",
            Kind::FailOnce(Class::Permanent) => "fail once (permanent)",
            Kind::FailAlways(Class::Transient) => "fail always (transient)",
            Kind::FailAlways(Class::Permanent) => "fail always (permanent)",
            Kind::LostReply => "lost reply after the effect",
            Kind::CrashAfterCommit => "crash after the effect",
        }
    }
}

/// One fault of a plan: the `nth` call (from 1) of `site` in the faulty phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub site: Site,
    pub nth: u32,
    pub kind: Kind,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on call #{} of {}", self.kind.label(), self.nth, self.site.name())
    }
}

/// What a call does under the plan.
pub enum Gate {
    Pass,
    Fail(PortError),
    /// Make the call, then fail with this error if it succeeded.
    AfterEffect(PortError),
}

#[derive(Default)]
struct State {
    active: bool,
    plan: Vec<Fault>,
    seen: BTreeMap<Site, u32>,
    injected: u32,
    crashed: bool,
}

/// The plan of one case and what happened to it.
#[derive(Default)]
pub struct Faults {
    state: Mutex<State>,
}

fn error(class: Class, what: &str) -> PortError {
    match class {
        Class::Transient => PortError::Transient(format!("injected: {what} throttled")),
        Class::Permanent => PortError::Permanent(format!("injected: AccessDenied on {what}")),
    }
}

impl Faults {
    /// Starts the faulty phase with `plan` (empty: a fault-free run that only counts calls).
    pub fn start(&self, plan: &[Fault]) {
        let mut s = self.state.lock().unwrap();
        *s = State { active: true, plan: plan.to_vec(), ..State::default() };
    }

    /// The recovery: no call fails from now on, and calls are no longer counted.
    pub fn recover(&self) {
        let mut s = self.state.lock().unwrap();
        s.active = false;
        s.crashed = false;
    }

    /// Whether the invocation that just ended crashed; clears it for the next one.
    pub fn take_crash(&self) -> bool {
        std::mem::take(&mut self.state.lock().unwrap().crashed)
    }

    pub fn injected(&self) -> u32 {
        self.state.lock().unwrap().injected
    }

    /// Calls per site in the faulty phase so far.
    pub fn census(&self) -> BTreeMap<Site, u32> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn gate(&self, site: Site) -> Gate {
        let mut s = self.state.lock().unwrap();
        if s.crashed {
            // The process is gone: nothing after the crash reaches the outside world.
            return Gate::Fail(PortError::Transient("the function crashed".into()));
        }
        if !s.active {
            return Gate::Pass;
        }
        let n = {
            let seen = s.seen.entry(site).or_default();
            *seen += 1;
            *seen
        };
        let what = site.name();
        let hit = s.plan.iter().filter(|f| f.site == site).find_map(|fault| match fault.kind {
            Kind::FailOnce(class) if n == fault.nth => Some((Gate::Fail(error(class, what)), false)),
            Kind::FailAlways(class) if n >= fault.nth => Some((Gate::Fail(error(class, what)), false)),
            Kind::LostReply if n == fault.nth => Some((
                Gate::AfterEffect(PortError::Transient(format!("injected: the reply of {what} was lost"))),
                false,
            )),
            Kind::CrashAfterCommit if n == fault.nth => {
                Some((Gate::AfterEffect(PortError::Transient(format!("injected: crashed after {what}"))), true))
            }
            _ => None,
        });
        let Some((gate, crash)) = hit else { return Gate::Pass };
        s.injected += 1;
        s.crashed |= crash;
        gate
    }
}

/// A port behind fault injection.
pub struct Faulty<'a, T: ?Sized> {
    pub inner: &'a T,
    pub faults: &'a Faults,
}

impl<'a, T: ?Sized> Faulty<'a, T> {
    pub fn new(inner: &'a T, faults: &'a Faults) -> Self {
        Self { inner, faults }
    }
}

/// `$call` behind the gate of `$site`.
macro_rules! gated {
    ($self:ident, $site:expr, $call:expr) => {
        match $self.faults.gate($site) {
            Gate::Pass => $call,
            Gate::Fail(e) => Err(e.into()),
            Gate::AfterEffect(e) => match $call {
                Ok(_) => Err(e.into()),
                Err(other) => Err(other),
            },
        }
    };
}

#[async_trait]
impl<T: RequestStore + ?Sized> RequestStore for Faulty<'_, T> {
    async fn create(
        &self,
        request: &AccessRequest,
        audit: &AuditRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, PortError> {
        gated!(self, Site::StoreCreate, self.inner.create(request, audit, idempotency).await)
    }
    async fn replay(&self, record: &IdempotencyRecord, now: DateTime<Utc>) -> Result<Option<CreateOutcome>, PortError> {
        gated!(self, Site::StoreGet, self.inner.replay(record, now).await)
    }
    async fn get(&self, id: &RequestId) -> Result<Option<AccessRequest>, PortError> {
        gated!(self, Site::StoreGet, self.inner.get(id).await)
    }
    async fn list_by_requester(&self, requester: &CallerArn, query: &ListQuery) -> Result<Page, PortError> {
        gated!(self, Site::StoreListByRequester, self.inner.list_by_requester(requester, query).await)
    }
    async fn list_pending_by_approver(&self, approver_key: &str, limit: u32) -> Result<Vec<RequestId>, PortError> {
        gated!(self, Site::StoreListPendingByApprover, self.inner.list_pending_by_approver(approver_key, limit).await)
    }
    async fn transition(&self, t: &Transition) -> Result<AccessRequest, TransitionError> {
        gated!(self, Site::StoreTransition, self.inner.transition(t).await)
    }
    async fn audit_trail(&self, id: &RequestId) -> Result<Vec<AuditRecord>, PortError> {
        gated!(self, Site::StoreAuditTrail, self.inner.audit_trail(id).await)
    }
    async fn hold_for_revoke(&self, id: &RequestId, at: DateTime<Utc>) -> Result<bool, PortError> {
        gated!(self, Site::StoreHoldForRevoke, self.inner.hold_for_revoke(id, at).await)
    }
    async fn list_pending_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        gated!(self, Site::StoreListPendingPastDeadline, self.inner.list_pending_past_deadline(now, limit).await)
    }
    async fn list_grants_past_deadline(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        gated!(self, Site::StoreListGrantsPastDeadline, self.inner.list_grants_past_deadline(now, limit).await)
    }
    async fn list_awaiting_grant(
        &self,
        approved_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError> {
        gated!(self, Site::StoreListAwaitingGrant, self.inner.list_awaiting_grant(approved_before, limit).await)
    }
    async fn list_ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        gated!(self, Site::StoreListEndedSince, self.inner.list_ended_since(since, limit).await)
    }
    async fn list_reviews_past_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<RequestId>, PortError> {
        self.inner.list_reviews_past_due(now, limit).await
    }
    async fn list_submitted_before(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RequestId>, PortError> {
        gated!(self, Site::StoreListSubmittedBefore, self.inner.list_submitted_before(created_before, limit).await)
    }
}

#[async_trait]
impl<T: AccessGranter + ?Sized> AccessGranter for Faulty<'_, T> {
    async fn role(&self, role: &str) -> Result<RoleFacts, GrantWriteError> {
        gated!(self, Site::IamRole, self.inner.role(role).await)
    }
    async fn put_policy(&self, principal: &GrantPrincipal, name: &str, document: &str) -> Result<(), GrantWriteError> {
        gated!(self, Site::IamPutPolicy, self.inner.put_policy(principal, name, document).await)
    }
    async fn delete_policy(&self, principal: &GrantPrincipal, name: &str) -> Result<bool, PortError> {
        gated!(self, Site::IamDeletePolicy, self.inner.delete_policy(principal, name).await)
    }
    async fn list_policies(&self, principal: &GrantPrincipal) -> Result<Vec<String>, PortError> {
        gated!(self, Site::IamListPolicies, self.inner.list_policies(principal).await)
    }
}

#[async_trait]
impl<T: SessionControl + ?Sized> SessionControl for Faulty<'_, T> {
    async fn live_sessions(&self, node: &NodeId, owner_arn: &str) -> Result<Vec<String>, PortError> {
        gated!(self, Site::SsmLiveSessions, self.inner.live_sessions(node, owner_arn).await)
    }
    async fn terminate(&self, node: &NodeId, session_id: &str) -> Result<(), PortError> {
        gated!(self, Site::SsmTerminate, self.inner.terminate(node, session_id).await)
    }
}

#[async_trait]
impl<T: ExecutionControl + ?Sized> ExecutionControl for Faulty<'_, T> {
    async fn start(&self, request_id: &RequestId) -> Result<String, PortError> {
        gated!(self, Site::SfnStart, self.inner.start(request_id).await)
    }
    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<(), PortError> {
        gated!(self, Site::SfnStop, self.inner.stop(execution_arn, cause).await)
    }
}

#[async_trait]
impl<T: ApprovalSeal + ?Sized> ApprovalSeal for Faulty<'_, T> {
    async fn seal(&self, message: &[u8]) -> Result<String, PortError> {
        gated!(self, Site::SealSeal, self.inner.seal(message).await)
    }
    async fn check(&self, message: &[u8], seal: &str) -> Result<bool, PortError> {
        gated!(self, Site::SealCheck, self.inner.check(message, seal).await)
    }
}

#[async_trait]
impl<T: CredentialIssuer + ?Sized> CredentialIssuer for Faulty<'_, T> {
    async fn issue(&self, spec: &CredentialsSpec) -> Result<IssuedCredentials, PortError> {
        gated!(self, Site::StsIssue, self.inner.issue(spec).await)
    }
}

#[async_trait]
impl<T: PrincipalDirectory + ?Sized> PrincipalDirectory for Faulty<'_, T> {
    async fn resolve(&self, caller: &CallerArn) -> Result<ResolvedPrincipal, DirectoryError> {
        gated!(self, Site::DirectoryResolve, self.inner.resolve(caller).await)
    }
    async fn resolve_person(&self, person: &Person) -> Result<ResolvedPrincipal, DirectoryError> {
        gated!(self, Site::DirectoryResolvePerson, self.inner.resolve_person(person).await)
    }
    async fn check_exists(&self, person: &Person) -> Result<(), DirectoryError> {
        gated!(self, Site::DirectoryCheckExists, self.inner.check_exists(person).await)
    }
    async fn role_trust(&self, role: &str) -> Result<RoleTrust, DirectoryError> {
        gated!(self, Site::DirectoryRoleTrust, self.inner.role_trust(role).await)
    }
}
