//! Grant and teardown: the Step Functions tasks (grant → wait → expire), revoke's teardown, and
//! the reconciliation sweep. Every step is idempotent and safe to run concurrently with the
//! others: policies are put and deleted by name (deleting a missing one is success), and the
//! status change that ends access is one conditional write, so exactly one teardown wins and
//! writes the teardown audit record; the others only make sure nothing is left attached.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::common::{load, until_written, write, Attempt};
use crate::app::error::{FieldError, ServiceError};
use crate::domain::credentials;
use crate::domain::grant::{self, GrantMode, GrantRecord, GrantRefusal, GrantSettings, GrantTarget};
use crate::domain::ids::RequestId;
use crate::domain::principal::{CallerArn, CallerKind};
use crate::domain::request::AccessRequest;
use crate::domain::status::RequestStatus;
use crate::ports::{
    AccessGranter, ExecutionControl, GrantPrincipal, GrantWriteError, RequestStore, SessionControl, Transition,
};

pub const LIFECYCLE_ACTOR: &str = "system:lifecycle";

pub struct LifecycleDeps<'a> {
    pub store: &'a dyn RequestStore,
    pub granter: &'a dyn AccessGranter,
    pub sessions: &'a dyn SessionControl,
    pub executions: &'a dyn ExecutionControl,
    pub settings: &'a GrantSettings,
    /// Checks approvals' seals before anything is granted (`ApprovalSeal`).
    pub seal: &'a dyn crate::ports::ApprovalSeal,
}

/// The Step Functions task payloads (the local stack sends the same ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "camelCase")]
pub enum Task {
    #[serde(rename_all = "camelCase")]
    Grant {
        request_id: RequestId,
        /// The execution running this task (`$$.Execution.Id`), recorded with the grant so that
        /// a revocation can stop it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        execution: Option<String>,
        /// Set only by the `GrantRechecked` state, after `RecheckAtStart` permitted a scheduled
        /// request at its start; a scheduled request is granted by no other path.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rechecked: bool,
    },
    #[serde(rename_all = "camelCase")]
    Expire {
        /// What the Grant task of the same execution returned (`"grant.$": "$"`, a path that
        /// always exists), the request's one id included. The teardown targets come from its
        /// `request` instead of a read, and the write that ends access is conditioned on that
        /// still being what the table holds.
        grant: Box<GrantOutput>,
    },
    /// The revoke branch (the `Revoked` rule's execution): the first pass at once, the second
    /// after IAM's propagation delay.
    #[serde(rename_all = "camelCase")]
    Revoke {
        request_id: RequestId,
        #[serde(default)]
        second_pass: bool,
    },
    #[serde(rename_all = "camelCase")]
    RecordFailure {
        request_id: RequestId,
        failed_task: String,
        #[serde(default)]
        error: serde_json::Value,
        /// The failing execution: a duplicate execution's failure leaves the grant another
        /// execution holds alone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        execution: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantOutput {
    /// False when there was nothing to grant (no longer Approved, or already past the deadline).
    pub granted: bool,
    /// When the Wait state ends (ISO 8601 UTC).
    pub deadline: String,
    pub policy_name: String,
    /// The request as the task last saw it: as stored with its grant when granted (what the
    /// Expire task tears down), as read otherwise.
    pub request: Box<AccessRequest>,
    /// A scheduled access not granted yet: the state machine waits until then (ISO 8601 UTC:
    /// the start, or a few seconds ahead when it has passed), decides it again (`RecheckAtStart`)
    /// and, when still permitted, runs the Grant task with `rechecked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
}

impl GrantOutput {
    pub fn new(granted: bool, deadline: &DateTime<Utc>, request: AccessRequest) -> Self {
        Self {
            granted,
            deadline: grant::deadline_text(deadline),
            policy_name: grant::policy_name(&request.request_id),
            request: Box::new(request),
            starts_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeardownOutput {
    pub request_id: RequestId,
    pub status: RequestStatus,
    /// Whether this run removed the policy (false: it was already gone).
    pub detached: bool,
    pub terminated_sessions: Vec<String>,
}

impl TeardownOutput {
    /// Nothing ended here: the request as stored.
    fn not_ended(request: &AccessRequest) -> Self {
        Self {
            request_id: request.request_id.clone(),
            status: request.status,
            detached: false,
            terminated_sessions: vec![],
        }
    }
}

/// `arn:…:stateMachine:<name>` → `arn:…:execution:<name>:`, the prefix of its executions' ARNs.
pub fn execution_prefix(state_machine_arn: &str) -> String {
    format!("{}:", state_machine_arn.replacen(":stateMachine:", ":execution:", 1))
}

/// Whether `arn` is an execution under `prefix` (see `execution_prefix`): a revocation stops only
/// executions of its own stack's state machine, whatever ARN a grant record names.
pub fn is_execution_of(prefix: &str, arn: &str) -> bool {
    arn.strip_prefix(prefix).is_some_and(|name| !name.is_empty() && !name.contains(':'))
}

fn principal_of(caller: &CallerArn) -> GrantPrincipal {
    match caller.kind() {
        CallerKind::IamUser { name } => GrantPrincipal::IamUser { name: name.clone() },
        CallerKind::AssumedRole { role_name, .. } => GrantPrincipal::IamRole { name: role_name.clone() },
    }
}

/// When access ends: the approval time plus the requested duration.
pub fn deadline_of(request: &AccessRequest) -> DateTime<Utc> {
    request.access_deadline()
}

/// The principal whose inline policy `jit-<id>` grants the request: none in credentials mode,
/// where nothing is attached (and an Identity Center role could not be written anyway).
pub(crate) fn attached_to(request: &AccessRequest) -> Option<GrantPrincipal> {
    (request.grant_mode == GrantMode::Attach).then(|| principal_of(&request.requester))
}

/// Removes the request's `jit-` policy, if its mode attaches one; `Ok(true)` when this call
/// removed it.
async fn remove_policy(deps: &LifecycleDeps<'_>, request: &AccessRequest) -> Result<bool, ServiceError> {
    match attached_to(request) {
        Some(principal) => Ok(deps.granter.delete_policy(&principal, &grant::policy_name(&request.request_id)).await?),
        None => Ok(false),
    }
}

/// The session role of the node's account, where a revoke's deny goes.
fn session_role(settings: &GrantSettings, request: &AccessRequest) -> GrantPrincipal {
    GrantPrincipal::SessionRole {
        account: settings.node_location(&request.node_id).account,
        name: settings.session_role_name.clone(),
    }
}

/// Whose sessions on the node belong to the request: the requester's own (attach mode), or the
/// session role's session named after the request (credentials mode).
fn session_owner(settings: &GrantSettings, request: &AccessRequest) -> String {
    match request.grant_mode {
        GrantMode::Attach => request.requester.to_string(),
        GrantMode::Credentials => credentials::session_caller_arn(
            settings,
            &settings.node_location(&request.node_id).account,
            &request.request_id,
        ),
    }
}

/// Credentials cannot be recalled: a revoke while some may still be used denies the request's
/// role session everything (`credentials::deny_document`) until the sweeper finds them all
/// expired. The session role carries at most `MAX_REQUEST_DENIES` such denies; past that (or
/// when IAM refuses one for the budget) the revoke denies every credential of the role issued
/// until now instead (`credentials::issued_before_document`): the other holders fetch new
/// ones, and the revoke takes effect whatever the budget. `Ok(true)` when a deny is in place
/// (with `only_if_missing`: when this call wrote it).
async fn deny_issued_credentials(
    deps: &LifecycleDeps<'_>,
    request: &AccessRequest,
    now: DateTime<Utc>,
    only_if_missing: bool,
) -> Result<bool, ServiceError> {
    if request.grant_mode != GrantMode::Credentials || !credentials::may_still_be_used(request, now) {
        return Ok(false);
    }
    let role = session_role(deps.settings, request);
    let name = credentials::deny_policy_name(&request.request_id);
    let existing = deps.granter.list_policies(&role).await?;
    let covered = existing
        .iter()
        .filter_map(|n| credentials::issued_before_of(n))
        .any(|before| credentials::covered_by_issued_before(request, before));
    if covered || existing.contains(&name) {
        return Ok(!only_if_missing);
    }
    let request_denies = existing.iter().filter(|n| credentials::request_of_deny(n).is_some()).count();
    if request_denies < credentials::MAX_REQUEST_DENIES {
        let document = credentials::deny_document(&request.request_id).to_string();
        match deps.granter.put_policy(&role, &name, &document).await {
            Ok(()) => return Ok(true),
            Err(GrantWriteError::Port(e)) => return Err(e.into()),
            Err(GrantWriteError::TooLarge(e)) => {
                tracing::warn!(request_id = %request.request_id, error = %e, "the session role's inline-policy budget is spent: denying every earlier credential of the role instead");
            }
            // The role is gone: the revoke cannot be made good, and must not be recorded as if
            // it were.
            Err(e) => return Err(ServiceError::Internal(format!("denying the revoked request's credentials: {e}"))),
        }
    }
    deny_issued_before(deps, &role, credentials::issued_before_covering(request, now)).await?;
    tracing::warn!(
        request_id = %request.request_id,
        alarm = credentials::EARLIER_CREDENTIALS_DENIED_ALARM,
        "revoked with every credential of the session role issued until now: their holders fetch new ones"
    );
    Ok(true)
}

/// Writes the `issued-before` deny up to `before` on the session role. The earlier ones it
/// supersedes are the sweeper's to remove: this function may put denies, never delete one.
async fn deny_issued_before(
    deps: &LifecycleDeps<'_>,
    role: &GrantPrincipal,
    before: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let name = credentials::issued_before_policy_name(before);
    let document = credentials::issued_before_document(before).to_string();
    deps.granter.put_policy(role, &name, &document).await.map_err(|e| match e {
        GrantWriteError::Port(e) => ServiceError::from(e),
        e => ServiceError::Internal(format!("denying the session role's earlier credentials: {e}")),
    })?;
    Ok(())
}

/// Whether the grant of `request` is held by another execution than `execution`. EventBridge
/// delivers at least once, so one `Approved` can start two executions: whichever records the
/// grant first keeps it, and any other must leave it alone.
pub(crate) fn held_by_another(execution: Option<&str>, request: &AccessRequest) -> bool {
    let recorded = request.grant.as_ref().and_then(|g| g.execution.as_deref());
    matches!((execution, recorded), (Some(mine), Some(theirs)) if mine != theirs)
}

/// Ends an `Approved` request `Failed` because its grant cannot be made, then removes whatever a
/// partial attempt left. The write comes first: if another execution recorded the grant
/// meanwhile, the write is refused and its policy stays.
async fn fail_grant(
    deps: &LifecycleDeps<'_>,
    request: &AccessRequest,
    execution: Option<&str>,
    reason: String,
    now: DateTime<Utc>,
) -> Result<GrantOutput, ServiceError> {
    tracing::warn!(request_id = %request.request_id, %reason, "grant refused");
    let nothing = GrantOutput::new(false, &now, request.clone());
    until_written!("recording a failed grant", |attempt| {
        let current = if attempt == 0 { request.clone() } else { load(deps.store, &request.request_id).await? };
        if held_by_another(execution, &current) {
            return Ok(Attempt::Done(nothing.clone()));
        }
        if current.status != RequestStatus::Approved {
            remove_policy(deps, &current).await?;
            return Ok(Attempt::Done(nothing.clone()));
        }
        let change = Transition::status_change(&current, RequestStatus::Failed, LIFECYCLE_ACTOR, reason.clone(), now);
        match write(deps.store, &change).await? {
            Attempt::Done(updated) => {
                // Credentials fetched before the grant failed (an unscheduled request may be
                // fetched for as soon as it is approved) must not outlive it, nor its sessions.
                end_access(deps, &updated, Deny::Write, now, &mut false, &mut Vec::new()).await?;
                Ok(Attempt::Done(nothing.clone()))
            }
            Attempt::Conflict => Ok(Attempt::Conflict),
        }
    })
}

/// How long the Grant task makes an execution wait before the recheck of a scheduled request
/// whose start has already passed.
pub const PASSED_START_WAIT_SECONDS: i64 = 5;

/// The Grant task: attach `jit-<id>` to the requester's principal and record it (with the
/// execution that will expire it). It reads the request first: whoever can start an execution
/// or put an `Approved` event on the bus still gets a policy only for a request the table holds
/// as `Approved`.
pub async fn grant(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    execution: Option<&str>,
    now: DateTime<Utc>,
) -> Result<GrantOutput, ServiceError> {
    grant_task(deps, id, execution, false, now).await
}

/// The Grant task after `RecheckAtStart` permitted the scheduled request at its start.
pub async fn grant_rechecked(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    execution: Option<&str>,
    now: DateTime<Utc>,
) -> Result<GrantOutput, ServiceError> {
    grant_task(deps, id, execution, true, now).await
}

async fn grant_task(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    execution: Option<&str>,
    rechecked: bool,
    now: DateTime<Utc>,
) -> Result<GrantOutput, ServiceError> {
    let id = id.clone();
    let request = load(deps.store, &id).await?;
    let deadline = deadline_of(&request);
    let nothing = |deadline: DateTime<Utc>| GrantOutput::new(false, &deadline, request.clone());
    if request.extends.is_some() && request.status == RequestStatus::Expired {
        // Applying an extension ends it in the same write: a retry after that write goes on.
        return crate::app::extend::resume(deps, &request, execution, now).await;
    }
    if request.status != RequestStatus::Approved {
        // Revoked or expired before the grant ran (or a put of an earlier attempt of this task
        // landed after the teardown): nothing may stay attached, whoever holds the grant.
        remove_policy(deps, &request).await?;
        return Ok(nothing(deadline));
    }
    if held_by_another(execution, &request) {
        return Ok(nothing(deadline));
    }
    if now >= deadline && request.extends.is_none() {
        // (An extension's own window does not matter: `extend::apply` checks the request it
        // extends.)
        return Ok(nothing(deadline));
    }
    if let Some(starts_at) = request.starts_at.filter(|_| request.not_started(now) || !rechecked) {
        // Scheduled access is granted at its start and not before, once decided again there:
        // the execution waits, rechecks, then grants. A start that has passed (approved after
        // it) is waited for a few seconds, so that an execution of a definition without the
        // recheck, running when this version was deployed, loops slowly until the sweeper's
        // execution takes the grant over rather than spinning.
        let wait_until = starts_at.max(now + chrono::Duration::seconds(PASSED_START_WAIT_SECONDS));
        return Ok(GrantOutput { starts_at: Some(grant::deadline_text(&wait_until)), ..nothing(deadline) });
    }
    if !crate::app::common::approval_is_sealed(deps.seal, &request).await? {
        return fail_grant(deps, &request, execution, crate::app::common::UNSEALED_APPROVAL.to_owned(), now).await;
    }
    if request.extends.is_some() {
        return crate::app::extend::apply(deps, &request, execution, now).await;
    }
    if request.grant_mode == GrantMode::Credentials {
        return record_grant(
            deps,
            &request,
            execution,
            GrantTarget::SessionRole {
                role_arn: credentials::session_role_arn(
                    deps.settings,
                    &deps.settings.node_location(&request.node_id).account,
                ),
            },
            now,
        )
        .await;
    }
    let target = match request.requester.kind() {
        CallerKind::IamUser { name } => GrantTarget::IamUser { name: name.clone() },
        CallerKind::AssumedRole { .. } if request.requester.is_identity_center() => {
            return fail_grant(deps, &request, execution, GrantRefusal::IdentityCenterRole.to_string(), now).await;
        }
        CallerKind::AssumedRole { role_name, session_name } => match deps.granter.role(role_name).await {
            Ok(facts) if !facts.pins_session_names => {
                let refusal = GrantRefusal::UnpinnedRoleSessions { role: role_name.clone() };
                return fail_grant(deps, &request, execution, refusal.to_string(), now).await;
            }
            Ok(facts) => GrantTarget::IamRoleSession {
                role: role_name.clone(),
                role_id: facts.role_id,
                session: session_name.clone(),
            },
            Err(GrantWriteError::Port(e)) => return Err(e.into()),
            Err(e) => return fail_grant(deps, &request, execution, e.to_string(), now).await,
        },
    };
    let principal = principal_of(&request.requester);
    let name = grant::policy_name(&id);
    let document = match grant::build(deps.settings, &target, &request.node_id, &deadline, 0) {
        Ok(d) => d,
        Err(refusal) => return fail_grant(deps, &request, execution, refusal.to_string(), now).await,
    };
    match deps.granter.put_policy(&principal, &name, &document).await {
        Ok(()) => {}
        Err(GrantWriteError::Port(e)) => return Err(e.into()),
        Err(GrantWriteError::TooLarge(m)) => {
            return fail_grant(
                deps,
                &request,
                execution,
                format!(
                    "IAM refused the grant policy: the principal's inline policies would exceed IAM's size limit ({m})"
                ),
                now,
            )
            .await;
        }
        Err(e) => return fail_grant(deps, &request, execution, e.to_string(), now).await,
    }
    record_grant(deps, &request, execution, target, now).await
}

/// Records the grant (with the execution that will end it) on the request read before, once
/// its policy is attached (attach mode) or at once (credentials mode: the requester fetches
/// credentials while the request is `Approved`; the record is what the expiry ends).
async fn record_grant(
    deps: &LifecycleDeps<'_>,
    request: &AccessRequest,
    execution: Option<&str>,
    target: GrantTarget,
    now: DateTime<Utc>,
) -> Result<GrantOutput, ServiceError> {
    let id = request.request_id.clone();
    let name = grant::policy_name(&id);
    let deadline = deadline_of(request);
    let nothing = |deadline: DateTime<Utc>| GrantOutput::new(false, &deadline, request.clone());
    let granted = |deadline: DateTime<Utc>, request: AccessRequest| GrantOutput::new(true, &deadline, request);
    let what = match &target {
        GrantTarget::SessionRole { role_arn } => format!("credentials of {role_arn} for the requester"),
        _ => name.clone(),
    };
    let record = GrantRecord {
        policy_name: name.clone(),
        target,
        attached_at: now,
        deadline,
        detached_at: None,
        terminated_sessions: vec![],
        execution: execution.map(str::to_owned),
        extensions: vec![],
    };
    // The first attempt writes on what was read above when no grant was recorded yet: if a
    // revoke or expiry moved the request while the policy was put, the write's condition fails
    // and the next attempt reads again. A retried task that found a grant already recorded
    // reads again at once, since it returns without writing and a revoke may have just torn the
    // grant down (the policy put back above must then go again).
    until_written!("recording a grant", |attempt| {
        let current =
            if attempt > 0 || request.grant.is_some() { load(deps.store, &id).await? } else { request.clone() };
        if current.status != RequestStatus::Approved {
            // Revoked (or expired) while we attached: the loser of that race removes what it put.
            remove_policy(deps, &current).await?;
            return Ok(Attempt::Done(nothing(deadline)));
        }
        if held_by_another(execution, &current) {
            // Another execution recorded the same grant first (same policy, same deadline).
            return Ok(Attempt::Done(nothing(deadline)));
        }
        if current.grant.as_ref().is_some_and(|g| g.detached_at.is_none()) {
            return Ok(Attempt::Done(granted(deadline, current)));
        }
        let record_it = Transition {
            grant: Some(GrantRecord {
                attached_at: current.grant.as_ref().map_or(now, |g| g.attached_at),
                ..record.clone()
            }),
            ..Transition::status_change(
                &current,
                RequestStatus::Approved,
                LIFECYCLE_ACTOR,
                format!("access granted until {}: {what}", grant::deadline_text(&deadline)),
                now,
            )
        };
        // No event comes of this write: the status did not change, `Approved` already told
        // subscribers, and the grant rides on the event that ends it.
        Ok(match write(deps.store, &record_it).await? {
            Attempt::Done(updated) => {
                tracing::info!(request_id = %id, policy = %name, deadline = %deadline, "grant attached");
                Attempt::Done(granted(deadline, updated))
            }
            Attempt::Conflict => Attempt::Conflict,
        })
    })
}

/// Removes the policy and ends the requester's live sessions on the node, then (if the request
/// is still `Approved`) moves it to `to` with one conditional write.
pub async fn teardown(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    to: RequestStatus,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<TeardownOutput, ServiceError> {
    let request = load(deps.store, id).await?;
    teardown_request(deps, request, to, actor, reason, now).await
}

/// Whether another live request of the same person on the same node covers their sessions there
/// (attach mode: sessions are the requester's own, and IAM grants add up, so a session opened
/// under one request is as much allowed by the other). Ending one request then spares them; the
/// other's end ends them. In credentials mode each request's sessions are its own role
/// session's, so nothing overlaps.
async fn covered_by_another(
    deps: &LifecycleDeps<'_>,
    request: &AccessRequest,
    now: DateTime<Utc>,
) -> Result<Option<RequestId>, ServiceError> {
    if request.grant_mode != GrantMode::Attach {
        return Ok(None);
    }
    let query = crate::ports::ListQuery { status: Some(RequestStatus::Approved), limit: 100, after: None };
    let page = deps.store.list_by_requester(&request.requester, &query).await?;
    Ok(page
        .items
        .into_iter()
        .find(|other| {
            other.request_id != request.request_id
                && other.status == RequestStatus::Approved
                && other.grant_mode == GrantMode::Attach
                && other.node_id == request.node_id
                // Only a grant in force covers: not a schedule yet to start, not an extension
                // (which grants nothing of its own), not an approval whose grant is not recorded.
                && other.grant.as_ref().is_some_and(|g| g.detached_at.is_none())
                && !other.not_started(now)
                && other.extends.is_none()
                && now < deadline_of(other)
        })
        .map(|other| other.request_id))
}

/// Whether an approved request that ends in `status` ended before its deadline, so that
/// credentials already issued for it must be denied: revoked, or failed (its grant could not be
/// made after the requester had fetched credentials).
fn ends_early(status: RequestStatus) -> bool {
    matches!(status, RequestStatus::Revoked | RequestStatus::Failed)
}

/// Whether ending access denies issued credentials (an end before the deadline: revoked, or
/// failed after credentials went out): always written (`Write`: a teardown, which runs once), or
/// only when found missing (`IfMissing`: the re-checks, which run every few minutes and report
/// what they had to fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deny {
    No,
    Write,
    IfMissing,
}

/// Ends what one request's access consists of, each part attempted whatever happened to the
/// one before: the policy removed (attach mode), issued credentials denied (a revoke, while
/// they may be used), the sessions on the node ended (unless another live request covers them).
/// Sessions are ended even when the removal failed (an expiry must not leave shells open because
/// IAM refused a delete); the first error is returned afterwards, so the caller retries.
async fn end_access(
    deps: &LifecycleDeps<'_>,
    request: &AccessRequest,
    deny: Deny,
    now: DateTime<Utc>,
    detached: &mut bool,
    terminated: &mut Vec<String>,
) -> Result<(), ServiceError> {
    let mut first_error = None;
    match remove_policy(deps, request).await {
        Ok(removed) => *detached |= removed,
        Err(e) => first_error = Some(e),
    }
    if deny != Deny::No {
        match deny_issued_credentials(deps, request, now, deny == Deny::IfMissing).await {
            Ok(denied) => *detached |= denied,
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match end_sessions(deps, request, now, terminated).await {
        Ok(()) => {}
        Err(e) => first_error = first_error.or(Some(e)),
    }
    first_error.map_or(Ok(()), Err)
}

/// Ends the request's live sessions on its node (see `covered_by_another`).
async fn end_sessions(
    deps: &LifecycleDeps<'_>,
    request: &AccessRequest,
    now: DateTime<Utc>,
    terminated: &mut Vec<String>,
) -> Result<(), ServiceError> {
    let live = deps.sessions.live_sessions(&request.node_id, &session_owner(deps.settings, request)).await?;
    if live.is_empty() {
        return Ok(());
    }
    if let Some(other) = covered_by_another(deps, request, now).await? {
        tracing::info!(request_id = %request.request_id, covering = %other, sessions = live.len(), "sessions spared: another live request of the requester covers this node");
        return Ok(());
    }
    for session in live {
        deps.sessions.terminate(&request.node_id, &session).await?;
        if !terminated.contains(&session) {
            terminated.push(session);
        }
    }
    Ok(())
}

/// `teardown` on a request already in hand. Its requester and node name what is removed, and
/// the write that records the end is conditioned on the request being exactly this one (status,
/// version and its own fields), so a stale or foreign copy changes nothing in the table: after a
/// refused write it reads the table and, while the request is still `Approved`, removes again
/// before writing (a grant recorded in between may have put the policy back).
pub async fn teardown_request(
    deps: &LifecycleDeps<'_>,
    request: AccessRequest,
    to: RequestStatus,
    actor: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<TeardownOutput, ServiceError> {
    let id = request.request_id.clone();
    let mut current = request;
    let mut detached = false;
    let mut terminated = Vec::new();
    until_written!("teardown", |_| {
        // An end before the deadline (recorded before its event brings us here, or about to be)
        // first makes issued credentials useless; an expiry needs no deny, the session policy's
        // deadline already refuses them.
        let early = (ends_early(to) && current.status == RequestStatus::Approved) || ends_early(current.status);
        let deny = if early { Deny::Write } else { Deny::No };
        end_access(deps, &current, deny, now, &mut detached, &mut terminated).await?;
        let ended = |status| TeardownOutput {
            request_id: id.clone(),
            status,
            detached,
            terminated_sessions: terminated.clone(),
        };
        if current.status != RequestStatus::Approved {
            return Ok(Attempt::Done(ended(current.status)));
        }
        let grant = current.grant.clone().map(|g| GrantRecord {
            detached_at: Some(now),
            terminated_sessions: terminated.clone(),
            ..g
        });
        let change = Transition { grant, ..Transition::status_change(&current, to, actor, reason, now) };
        match write(deps.store, &change).await? {
            Attempt::Done(_) => {
                tracing::info!(request_id = %id, status = %to, detached, sessions = terminated.len(), "access ended");
                Ok(Attempt::Done(ended(to)))
            }
            Attempt::Conflict => {
                let stored = load(deps.store, &id).await?;
                if stored.status != RequestStatus::Approved {
                    return Ok(Attempt::Done(ended(stored.status)));
                }
                let holder = current.grant.as_ref().and_then(|g| g.execution.as_deref());
                if taken_over_by_extension(to, holder, &stored) {
                    // What this stale expiry removed belongs to the extended grant now.
                    if detached {
                        crate::app::extend::put_back(deps, &stored).await?;
                    }
                    return Ok(Attempt::Done(ended(RequestStatus::Approved)));
                }
                current = stored;
                Ok(Attempt::Conflict)
            }
        }
    })
}

/// Makes sure nothing of an ended request's access remains: what the revoke branch runs twice
/// and the sweeper runs on every request that ended recently (`recheck`: a revoke's deny is
/// then written only when found missing, so that what it reports is what it had to fix). Acts
/// on the stored request; one still `Approved` is left to its lifecycle.
pub async fn end_remaining(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    recheck: bool,
    now: DateTime<Utc>,
) -> Result<TeardownOutput, ServiceError> {
    let request = load(deps.store, id).await?;
    let status = request.status;
    if status == RequestStatus::Approved || request.approved_at.is_none() {
        return Ok(TeardownOutput::not_ended(&request));
    }
    let mut detached = false;
    let mut terminated = Vec::new();
    let deny = match (ends_early(status), recheck) {
        (true, true) => Deny::IfMissing,
        (true, false) => Deny::Write,
        (false, _) => Deny::No,
    };
    end_access(deps, &request, deny, now, &mut detached, &mut terminated).await?;
    if detached || !terminated.is_empty() {
        tracing::warn!(request_id = %id, %status, detached, sessions = terminated.len(), "found access left of an ended request: removed");
    }
    Ok(TeardownOutput { request_id: id.clone(), status, detached, terminated_sessions: terminated })
}

/// The Revoke task (the `Revoked` rule starts the state machine's revoke branch): acts only on
/// a request the table shows `Revoked` (the genuine event comes from the table's stream after
/// the write; anyone who may put events on the bus could send one), ends its access, and on the
/// first pass stops the execution its grant recorded. The second pass, after IAM's propagation
/// delay, ends sessions opened while the removal was still propagating.
pub async fn revoke(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    second_pass: bool,
    now: DateTime<Utc>,
) -> Result<TeardownOutput, ServiceError> {
    let request = load(deps.store, id).await?;
    if request.status != RequestStatus::Revoked {
        tracing::warn!(
            request_id = %id,
            stored = %request.status,
            "a revocation for a request the table does not show Revoked: ignored"
        );
        return Ok(TeardownOutput {
            request_id: id.clone(),
            status: request.status,
            detached: false,
            terminated_sessions: vec![],
        });
    }
    // The request is already `Revoked`, so no grant can be recorded after this read: the
    // execution it names is the one to stop.
    let execution = request.grant.as_ref().and_then(|g| g.execution.clone());
    let out = end_remaining(deps, id, false, now).await?;
    if let (false, Some(execution)) = (second_pass, execution) {
        deps.executions.stop(&execution, "revoked").await?;
    }
    tracing::info!(request_id = %id, second_pass, detached = out.detached, sessions = out.terminated_sessions.len(), "revocation torn down");
    Ok(out)
}

/// The Expire task, after the Wait: access ends at the deadline, torn down on `recorded`, the
/// request the Grant task of this execution returned (see `teardown_request`).
pub async fn expire(
    deps: &LifecycleDeps<'_>,
    recorded: AccessRequest,
    now: DateTime<Utc>,
) -> Result<TeardownOutput, ServiceError> {
    // Each credentials issuance is recorded on the request (a new version), so once its requester
    // fetched credentials the copy the grant recorded is stale: read the table first rather than
    // end sessions, lose the conditional write, read it anyway and end sessions again.
    let request = match recorded.grant_mode {
        GrantMode::Attach => recorded,
        GrantMode::Credentials => {
            let stored = load(deps.store, &recorded.request_id).await?;
            let holder = recorded.grant.as_ref().and_then(|g| g.execution.as_deref());
            if taken_over_by_extension(RequestStatus::Expired, holder, &stored) {
                return Ok(TeardownOutput::not_ended(&stored));
            }
            stored
        }
    };
    teardown_request(deps, request, RequestStatus::Expired, LIFECYCLE_ACTOR, "the access window ended", now).await
}

/// An approved extension's execution took the grant over from `holder` (and stopped it): an
/// expiry by `holder` ends nothing, access goes on until the new deadline.
fn taken_over_by_extension(to: RequestStatus, holder: Option<&str>, stored: &AccessRequest) -> bool {
    let taken =
        to == RequestStatus::Expired && stored.status == RequestStatus::Approved && held_by_another(holder, stored);
    if taken {
        tracing::info!(request_id = %stored.request_id, "the grant was taken over by an extension; not expiring it");
    }
    taken
}

/// Runs one task payload (Step Functions, or the local stack).
pub async fn run_task(
    deps: &LifecycleDeps<'_>,
    task: &Task,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, ServiceError> {
    let to_json =
        |v: Result<serde_json::Value, serde_json::Error>| v.map_err(|e| ServiceError::Internal(e.to_string()));
    match task {
        Task::Grant { request_id, execution, rechecked } => {
            to_json(serde_json::to_value(grant_task(deps, request_id, execution.as_deref(), *rechecked, now).await?))
        }
        Task::Expire { grant } => to_json(serde_json::to_value(expire(deps, (*grant.request).clone(), now).await?)),
        Task::Revoke { request_id, second_pass } => {
            to_json(serde_json::to_value(revoke(deps, request_id, *second_pass, now).await?))
        }
        Task::RecordFailure { request_id, failed_task, error, execution } => {
            tracing::error!(%request_id, failed_task, %error, "lifecycle task failed for good; the sweeper reconciles");
            if failed_task == "grant" {
                let request = load(deps.store, request_id).await?;
                if request.status == RequestStatus::Approved {
                    fail_grant(
                        deps,
                        &request,
                        execution.as_deref(),
                        format!("the grant could not be made: {error}"),
                        now,
                    )
                    .await?;
                }
            }
            Ok(serde_json::json!({ "requestId": request_id, "recorded": true }))
        }
    }
}

/// The lifecycle function's whole input: a Step Functions task payload, validated by its type at
/// the door.
pub async fn handle_payload(
    deps: &LifecycleDeps<'_>,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, ServiceError> {
    let task: Task =
        serde_json::from_value(payload).map_err(|e| FieldError::new("task", "InvalidTask", e.to_string()))?;
    run_task(deps, &task, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_executions_of_the_stacks_own_state_machine_are_recognised() {
        let prefix = execution_prefix("arn:aws:states:us-east-1:123456789012:stateMachine:jit-lifecycle");
        let cases = [
            ("arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:5d1c7e2a", true),
            ("arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle-other:5d1c7e2a", false),
            ("arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:", false),
            ("arn:aws:states:us-east-1:123456789012:execution:jit-lifecycle:a:b", false),
            ("arn:aws:states:us-east-1:210987654321:execution:jit-lifecycle:5d1c7e2a", false),
            ("arn:aws:states:us-east-1:123456789012:stateMachine:jit-lifecycle", false),
        ];
        for (arn, expected) in cases {
            assert_eq!(is_execution_of(&prefix, arn), expected, "{arn}");
        }
    }

    #[test]
    fn the_sample_task_payloads_parse() {
        let cases = [
            (include_str!("../../../events/lifecycle-grant-task.json"), "grant"),
            (include_str!("../../../events/lifecycle-expire-task.json"), "expire"),
            (include_str!("../../../events/lifecycle-record-failure-task.json"), "recordFailure"),
            (include_str!("../../../events/lifecycle-revoke-task.json"), "revoke"),
        ];
        for (text, task) in cases {
            let parsed: Task = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap()["task"], task);
        }
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/lifecycle-expire-task.json")).unwrap();
        let ids = sample.to_string().matches(r#""requestId":"#).count();
        assert_eq!(ids, 1, "the Expire payload names its request once");
        let request = sample_request();
        assert!(request.grant.is_some_and(|g| g.execution.is_some()), "as the Grant task records it");
    }

    fn sample_request() -> AccessRequest {
        let Ok(Task::Expire { grant }) =
            serde_json::from_str(include_str!("../../../events/lifecycle-expire-task.json"))
        else {
            panic!("the expire sample carries the Grant task's output");
        };
        *grant.request
    }

    #[test]
    fn the_grant_output_is_what_the_wait_state_reads() {
        let deadline = DateTime::parse_from_rfc3339("2026-11-21T10:30:00Z").unwrap().with_timezone(&Utc);
        let out = GrantOutput::new(true, &deadline, sample_request());
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["deadline"], "2026-11-21T10:30:00Z");
        assert_eq!(v["granted"], true);
        let asl: serde_json::Value =
            serde_json::from_str(include_str!("../../../statemachine/lifecycle.asl.json")).unwrap();
        let text = asl.to_string();
        assert!(text.contains("\"TimestampPath\":\"$.deadline\""), "the Wait reads $.deadline");
        assert!(text.contains("\"$.granted\""), "the Choice reads $.granted");
        let payload = |state: &str| asl["States"][state]["Parameters"]["Payload"].clone();
        assert_eq!(payload("Grant")["execution.$"], "$$.Execution.Id", "the grant records its execution");
        assert_eq!(payload("Expire")["grant.$"], "$", "the expiry gets the Grant task's output");
        assert_eq!(asl["StartAt"], "Route", "a Revoked event's execution is routed first");
        for (state, second_pass) in [("Revoke", false), ("RevokeAgain", true)] {
            assert_eq!(payload(state)["task"], "revoke", "{state}");
            assert_eq!(payload(state)["secondPass"], second_pass, "{state}");
            assert_eq!(payload(state)["requestId.$"], "$.requestId", "{state}");
        }
        assert_eq!(asl["States"]["Revoke"]["Next"], "WaitForPropagation");
        assert_eq!(asl["States"]["WaitForPropagation"]["Next"], "RevokeAgain");
        for state in ["RecordGrantFailure", "RecordExpireFailure"] {
            assert_eq!(payload(state)["execution.$"], "$$.Execution.Id", "{state} names its execution");
        }
        assert_eq!(
            v["request"]["requestId"],
            sample_request().request_id.as_str(),
            "the Grant output names its request"
        );
        assert!(v.get("requestId").is_none(), "and only there");
    }
}
