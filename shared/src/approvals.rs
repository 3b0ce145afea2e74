//! Manual approval: decisions through the API and mail links, the approver's queue, cancel, and
//! the expiry of requests that waited too long. The rules are `domain::approval`; this module
//! resolves who is acting, writes the result with one conditional write, and retries on a
//! concurrent change by re-reading and deciding again (so a retry is never counted twice).

use chrono::{DateTime, Utc};

use crate::domain::approval::{self, Channel, Comment, Decider, Person, Refusal, Verdict};
use crate::domain::approval_token::{self, SigningKey, TokenClaims, TokenError};
use crate::domain::errors::{FieldError, ServiceError};
use crate::domain::ids::RequestId;
use crate::domain::principal::{CallerArn, PrincipalIdentity, ResolvedPrincipal};
use crate::domain::request::AccessRequest;
use crate::domain::status::RequestStatus;
use crate::events::StatusEvent;
use crate::intake::approver_keys;
use crate::ports::{DirectoryError, EventPublisher, PortError, PrincipalDirectory, RequestStore, Transition, TransitionError};

pub const PENDING_EXPIRY_ACTOR: &str = "system:pending-expiry";
/// Conflicting writes are re-read and re-decided this many times before giving up with 503.
const MAX_ATTEMPTS: usize = 8;

pub struct ApprovalDeps<'a> {
    pub store: &'a dyn RequestStore,
    pub events: &'a dyn EventPublisher,
    pub directory: &'a dyn PrincipalDirectory,
    pub key: &'a SigningKey,
    /// Principal ARNs that may revoke any request (besides the request's approvers).
    pub administrators: &'a [String],
}

fn refusal_to_error(r: Refusal) -> ServiceError {
    let message = r.to_string();
    match r {
        Refusal::NotPending(_) => ServiceError::Conflict { code: "RequestNotPending", message },
        Refusal::DeadlinePassed(_) => ServiceError::Conflict { code: "ApprovalDeadlinePassed", message },
        Refusal::AlreadyDecided => ServiceError::Conflict { code: "AlreadyDecided", message },
        Refusal::WrongLevel { .. } => ServiceError::Conflict { code: "LevelChanged", message },
        Refusal::NoPlan => ServiceError::Conflict { code: "NotManualApproval", message },
        Refusal::OwnRequest | Refusal::NotAnApprover { .. } => ServiceError::Forbidden(message),
    }
}

/// Parses the optional `{"comment": "…"}` body of approve, reject, cancel and revoke.
pub fn parse_comment_body(body: &[u8]) -> Result<Option<Comment>, FieldError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if body.len() > 16 * 1024 {
        return Err(FieldError::new("body", "BodyTooLarge", "the body must be at most 16 KiB"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| FieldError::new("body", "InvalidJson", format!("the body is not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(FieldError::new("body", "InvalidBody", "the body must be a JSON object"));
    };
    if let Some(unknown) = map.keys().find(|k| k.as_str() != "comment") {
        return Err(FieldError::new(unknown.clone(), "UnknownField", "unknown field; allowed: comment"));
    }
    match map.get("comment") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Comment::parse_optional(Some(s)),
        Some(_) => Err(FieldError::new("comment", "InvalidType", "must be a string")),
    }
}

fn actor_of(principal: &ResolvedPrincipal) -> String {
    match &principal.identity {
        PrincipalIdentity::IamUser { arn, .. } => arn.clone(),
        PrincipalIdentity::IamRole { arn, session_name, .. } => format!("{arn} (session {session_name})"),
        PrincipalIdentity::IdentityCenterUser { user_name, .. } => format!("identity-center-user/{user_name}"),
    }
}

async fn load(store: &dyn RequestStore, id: &RequestId) -> Result<AccessRequest, ServiceError> {
    store.get(id).await?.ok_or_else(|| ServiceError::NotFound(format!("no access request {id} visible to you")))
}

/// Moves an overdue pending request to `Expired` (the write itself checks the deadline).
async fn expire_one(store: &dyn RequestStore, events: &dyn EventPublisher, request: &AccessRequest, now: DateTime<Utc>) -> Result<bool, ServiceError> {
    let deadline = request.approval.as_ref().map(|p| p.pending_until);
    let reason = match deadline {
        Some(d) => format!("no decision before the approval deadline {}", d.to_rfc3339()),
        None => "no decision before the approval deadline".to_owned(),
    };
    match store.transition(&Transition::status_change(request, RequestStatus::Expired, PENDING_EXPIRY_ACTOR, reason, now)).await {
        Ok(updated) => {
            publish(events, StatusEvent::for_change(&updated, RequestStatus::Pending, PENDING_EXPIRY_ACTOR, None, None)).await?;
            Ok(true)
        }
        Err(TransitionError::Conflict) => Ok(false),
        Err(TransitionError::NotAllowed(e)) => Err(ServiceError::Internal(e.to_string())),
        Err(TransitionError::Port(e)) => Err(e.into()),
    }
}

async fn publish(events: &dyn EventPublisher, list: Vec<StatusEvent>) -> Result<(), ServiceError> {
    for event in &list {
        events.publish(event).await.map_err(|e| {
            tracing::error!(request_id = %event.request_id, error = %e, "change stored but its event was not published");
            ServiceError::from(e)
        })?;
    }
    Ok(())
}

/// Decides for `decider`, re-reading and re-deciding when another write got there first.
async fn apply(
    deps: &ApprovalDeps<'_>,
    id: &RequestId,
    decider: &Decider,
    verdict: Verdict,
    comment: Option<Comment>,
    level: Option<u8>,
    now: DateTime<Utc>,
) -> Result<AccessRequest, ServiceError> {
    for _ in 0..MAX_ATTEMPTS {
        let request = load(deps.store, id).await?;
        let step = match approval::decide(&request, decider, verdict, comment.clone(), level, now) {
            Ok(step) => step,
            Err(Refusal::DeadlinePassed(at)) => {
                expire_one(deps.store, deps.events, &request, now).await?;
                return Err(refusal_to_error(Refusal::DeadlinePassed(at)));
            }
            Err(r) => return Err(refusal_to_error(r)),
        };
        let reason = match (verdict, step.level_completed, step.status) {
            (Verdict::Reject, ..) => format!("rejected at level {}", step.entry.level),
            (Verdict::Approve, _, RequestStatus::Approved) => format!("approved: the last level ({}) completed", step.entry.level),
            (Verdict::Approve, Some(l), _) => format!("approval at level {l} completed the level"),
            (Verdict::Approve, None, _) => format!("approval recorded at level {}", step.entry.level),
        };
        let reason = match &step.entry.comment {
            Some(c) => format!("{reason}: {}", c.as_str()),
            None => reason,
        };
        let transition = Transition {
            progress: Some(step.progress.clone()),
            approval: Some(step.entry.clone()),
            level_completed: step.level_completed,
            ..Transition::status_change(&request, step.status, &decider.actor, reason, now)
        };
        match deps.store.transition(&transition).await {
            Ok(updated) => {
                tracing::info!(request_id = %id, status = %updated.status, level = step.entry.level, "approval decision stored");
                publish(deps.events, StatusEvent::for_change(&updated, RequestStatus::Pending, &decider.actor, Some(&step.entry), step.level_completed))
                    .await?;
                return Ok(updated);
            }
            // Someone else changed the request: decide again on what is stored now.
            Err(TransitionError::Conflict) => continue,
            Err(TransitionError::NotAllowed(e)) => return Err(ServiceError::Internal(e.to_string())),
            Err(TransitionError::Port(e)) => return Err(e.into()),
        }
    }
    Err(ServiceError::Unavailable("the request kept changing concurrently; retry".into()))
}

async fn resolve_caller(deps: &ApprovalDeps<'_>, caller: &CallerArn) -> Result<Option<ResolvedPrincipal>, ServiceError> {
    match deps.directory.resolve(caller).await {
        Ok(p) => Ok(Some(p)),
        Err(DirectoryError::NotFound(_)) => Ok(None),
        Err(DirectoryError::Port(e)) => Err(e.into()),
    }
}

/// `POST /requests/{id}/approve|reject` by an authenticated approver.
pub async fn decide_as_caller(
    deps: &ApprovalDeps<'_>,
    caller: &CallerArn,
    id: &str,
    verdict: Verdict,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<AccessRequest, ServiceError> {
    let comment = parse_comment_body(body)?;
    let not_found = || ServiceError::NotFound(format!("no access request {id} visible to you"));
    let id = RequestId::try_from(id.to_owned()).map_err(|_| not_found())?;
    let request = load(deps.store, &id).await?;
    let principal = resolve_caller(deps, caller).await?;
    let keys = principal.as_ref().map(approver_keys).unwrap_or_default();
    let named = approval::plan_of(&request).is_some_and(|plan| plan.all_approvers().any(|a| keys.contains(&a.index_key())));
    if !named && &request.requester != caller {
        // Neither requester nor approver: the request does not exist for this caller.
        return Err(not_found());
    }
    let decider = Decider { person: Person::from_caller(caller), actor: caller.to_string(), approver_keys: keys, channel: Channel::Api };
    apply(deps, &id, &decider, verdict, comment, None, now).await
}

/// `POST /requests/{id}/cancel` by the requester.
pub async fn cancel(deps: &ApprovalDeps<'_>, caller: &CallerArn, id: &str, body: &[u8], now: DateTime<Utc>) -> Result<AccessRequest, ServiceError> {
    let comment = parse_comment_body(body)?;
    let not_found = || ServiceError::NotFound(format!("no access request {id} visible to you"));
    let id = RequestId::try_from(id.to_owned()).map_err(|_| not_found())?;
    for _ in 0..MAX_ATTEMPTS {
        let request = load(deps.store, &id).await?;
        if &request.requester != caller {
            return Err(not_found());
        }
        if request.status != RequestStatus::Pending {
            return Err(ServiceError::Conflict {
                code: "RequestNotPending",
                message: format!("the request is {}; only a Pending request can be cancelled", request.status),
            });
        }
        if request.approval.as_ref().is_some_and(|p| now >= p.pending_until) {
            expire_one(deps.store, deps.events, &request, now).await?;
            return Err(refusal_to_error(Refusal::DeadlinePassed(request.approval.as_ref().map_or(now, |p| p.pending_until))));
        }
        let reason = comment.as_ref().map_or_else(|| "cancelled by the requester".to_owned(), |c| format!("cancelled by the requester: {}", c.as_str()));
        match deps.store.transition(&Transition::status_change(&request, RequestStatus::Cancelled, caller.as_str(), reason, now)).await {
            Ok(updated) => {
                publish(deps.events, StatusEvent::for_change(&updated, RequestStatus::Pending, caller.as_str(), None, None)).await?;
                return Ok(updated);
            }
            Err(TransitionError::Conflict) => continue,
            Err(TransitionError::NotAllowed(e)) => return Err(ServiceError::Internal(e.to_string())),
            Err(TransitionError::Port(e)) => return Err(e.into()),
        }
    }
    Err(ServiceError::Unavailable("the request kept changing concurrently; retry".into()))
}

/// `POST /requests/{id}/revoke`: an approver of the request, or an administrator, ends granted
/// access now. This function may not write IAM: the status change (one conditional write, so one
/// winner against expiry) publishes `Access Request Revoked`, on which the lifecycle function
/// removes the policy, ends live sessions and stops the execution.
pub async fn revoke(deps: &ApprovalDeps<'_>, caller: &CallerArn, id: &str, body: &[u8], now: DateTime<Utc>) -> Result<AccessRequest, ServiceError> {
    let comment = parse_comment_body(body)?;
    let not_found = || ServiceError::NotFound(format!("no access request {id} visible to you"));
    let id = RequestId::try_from(id.to_owned()).map_err(|_| not_found())?;
    let request = load(deps.store, &id).await?;
    let admin = deps.administrators.iter().any(|a| a == caller.as_str());
    if !admin {
        let keys = resolve_caller(deps, caller).await?.as_ref().map(approver_keys).unwrap_or_default();
        let approver = approval::plan_of(&request).is_some_and(|plan| plan.all_approvers().any(|a| keys.contains(&a.index_key())));
        if !approver {
            return Err(if &request.requester == caller {
                ServiceError::Forbidden("only an approver of the request or an administrator can revoke; cancel instead if it is still Pending".into())
            } else {
                not_found()
            });
        }
    }
    let reason = comment.as_ref().map_or_else(|| "revoked".to_owned(), |c| format!("revoked: {}", c.as_str()));
    let mut current = request;
    for _ in 0..MAX_ATTEMPTS {
        if current.status != RequestStatus::Approved {
            return Err(ServiceError::Conflict {
                code: "RequestNotApproved",
                message: format!("the request is {}; only Approved access can be revoked", current.status),
            });
        }
        match deps.store.transition(&Transition::status_change(&current, RequestStatus::Revoked, caller.as_str(), reason.clone(), now)).await {
            Ok(updated) => {
                publish(deps.events, StatusEvent::for_change(&updated, RequestStatus::Approved, caller.as_str(), None, None)).await?;
                return Ok(updated);
            }
            Err(TransitionError::Conflict) => current = load(deps.store, &id).await?,
            Err(TransitionError::NotAllowed(e)) => return Err(ServiceError::Internal(e.to_string())),
            Err(TransitionError::Port(e)) => return Err(e.into()),
        }
    }
    Err(ServiceError::Unavailable("the request kept changing concurrently; retry".into()))
}

/// `GET /approvals`: pending requests waiting on the caller at their current level, newest first.
pub async fn waiting_for(deps: &ApprovalDeps<'_>, caller: &CallerArn, now: DateTime<Utc>) -> Result<Vec<AccessRequest>, ServiceError> {
    let Some(principal) = resolve_caller(deps, caller).await? else {
        return Ok(vec![]);
    };
    let keys = approver_keys(&principal);
    let decider = Decider { person: Person::from_caller(caller), actor: caller.to_string(), approver_keys: keys.clone(), channel: Channel::Api };
    let mut ids = std::collections::BTreeSet::new();
    for key in &keys {
        ids.extend(deps.store.list_pending_by_approver(key, 100).await?);
    }
    let mut out = Vec::new();
    for id in ids {
        if let Some(request) = deps.store.get(&id).await? {
            if approval::check_may_decide(&request, &decider, None, now).is_ok() {
                out.push(request);
            }
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    Ok(out)
}

/// Why a mail link was refused. Always a 403 page: the link is not (or no longer) a way in.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Service(ServiceError),
}

impl LinkError {
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Token(_) | Self::Refused(_) => 403,
            Self::Service(e) => e.http_status(),
        }
    }
}

impl From<ServiceError> for LinkError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Conflict { message, .. } | ServiceError::Forbidden(message) | ServiceError::NotFound(message) => Self::Refused(message),
            other => Self::Service(other),
        }
    }
}

/// What the confirmation page shows.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub request: AccessRequest,
    pub claims: TokenClaims,
    pub person: Person,
}

async fn link_decider(deps: &ApprovalDeps<'_>, token: &str, now: DateTime<Utc>) -> Result<(TokenClaims, Decider, AccessRequest), LinkError> {
    let claims = approval_token::verify(deps.key, token, now)?;
    let person = Person::parse_key(&claims.approver).ok_or_else(|| LinkError::Refused("the link names no known approver".into()))?;
    let principal = match deps.directory.resolve_person(&person).await {
        Ok(p) => p,
        Err(DirectoryError::NotFound(_)) => return Err(LinkError::Refused(format!("{person} no longer exists"))),
        Err(DirectoryError::Port(e)) => return Err(ServiceError::from(e).into()),
    };
    let decider = Decider { actor: actor_of(&principal), approver_keys: approver_keys(&principal), person, channel: Channel::EmailLink };
    let request = load(deps.store, &claims.request_id).await?;
    Ok((claims, decider, request))
}

/// `GET /decide/{token}`: checks the link and shows what it would decide. Changes nothing.
pub async fn view_link(deps: &ApprovalDeps<'_>, token: &str, now: DateTime<Utc>) -> Result<LinkView, LinkError> {
    let (claims, decider, request) = link_decider(deps, token, now).await?;
    approval::check_may_decide(&request, &decider, Some(claims.level), now).map_err(|r| LinkError::from(refusal_to_error(r)))?;
    Ok(LinkView { request, claims, person: decider.person })
}

/// `POST /decide/{token}` from the confirmation page.
pub async fn decide_with_link(
    deps: &ApprovalDeps<'_>,
    token: &str,
    verdict: Verdict,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AccessRequest, LinkError> {
    let comment = Comment::parse_optional(comment).map_err(|e| LinkError::Service(e.into()))?;
    let (claims, decider, _) = link_decider(deps, token, now).await?;
    Ok(apply(deps, &claims.request_id, &decider, verdict, comment, Some(claims.level), now).await?)
}

/// Expires every pending request whose deadline has passed. Safe to run concurrently with
/// decisions and with itself: each expiry is a conditional write.
pub async fn expire_overdue(store: &dyn RequestStore, events: &dyn EventPublisher, now: DateTime<Utc>) -> Result<Vec<RequestId>, ServiceError> {
    let mut expired = Vec::new();
    loop {
        let ids = store.list_pending_past_deadline(now, 50).await?;
        let mut progressed = false;
        for id in &ids {
            let Some(request) = store.get(id).await? else { continue };
            if request.status == RequestStatus::Pending && expire_one(store, events, &request, now).await? {
                expired.push(id.clone());
                progressed = true;
            }
        }
        if ids.len() < 50 || !progressed {
            return Ok(expired);
        }
    }
}

impl From<PortError> for LinkError {
    fn from(e: PortError) -> Self {
        Self::Service(e.into())
    }
}
