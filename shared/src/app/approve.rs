//! Manual approval: decisions through the API and mail links, the approver's queue, cancel, and
//! the expiry of requests that waited too long. The rules are `domain::approval`; this module
//! resolves who is acting, writes the result with one conditional write, and retries on a
//! concurrent change by re-reading and deciding again (so a retry is never counted twice).

use chrono::{DateTime, Utc};

use crate::app::common::{
    approver_keys, caller_counted_as, counted_as, is_administrator, load, parse_id, person_of_caller, plan_names_any,
    resolve_caller, until_written, write, Attempt,
};
use crate::app::error::{FieldError, ServiceError};
use crate::domain::administrators::Administrators;
use crate::domain::approval::{Channel, Comment, Person, Verdict};
use crate::domain::approval_rules::{self as approval, Decider, Refusal};
use crate::domain::approval_token::{self, SigningKey, TokenClaims};
use crate::domain::break_glass::ReviewVerdict;
use crate::domain::ids::RequestId;
use crate::domain::principal::{CallerArn, PrincipalIdentity, ResolvedPrincipal};
use crate::domain::request::AccessRequest;
use crate::domain::status::RequestStatus;
use crate::ports::{DirectoryError, PrincipalDirectory, RequestStore, Transition};

pub const PENDING_EXPIRY_ACTOR: &str = "system:pending-expiry";

pub struct ApprovalDeps<'a> {
    pub store: &'a dyn RequestStore,
    pub directory: &'a dyn PrincipalDirectory,
    pub key: &'a SigningKey,
    /// Principal ARNs that may revoke any request (besides the request's approvers).
    pub administrators: &'a Administrators,
    /// Who is whom (`contacts.yaml`): a person's identities count as one.
    pub people: &'a crate::policy::contacts::People,
    /// Seals the approval the last level completes (`ApprovalSeal`).
    pub seal: &'a dyn crate::ports::ApprovalSeal,
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
    comment_field(&crate::app::submit::body_object(body, &["comment"])?)
}

/// The optional `comment` of a body: absent, null or blank is none.
fn comment_field(map: &serde_json::Map<String, serde_json::Value>) -> Result<Option<Comment>, FieldError> {
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

/// Moves an overdue pending request to `Expired` (the write itself checks the deadline); false
/// when another write got there first.
pub(crate) async fn expire_one(
    store: &dyn RequestStore,
    request: &AccessRequest,
    now: DateTime<Utc>,
) -> Result<bool, ServiceError> {
    let reason = match request.progress.as_ref().map(|p| p.pending_until) {
        Some(d) => format!("no decision before the approval deadline {}", d.to_rfc3339()),
        None => "no decision before the approval deadline".to_owned(),
    };
    let change = Transition::status_change(request, RequestStatus::Expired, PENDING_EXPIRY_ACTOR, reason, now);
    Ok(matches!(write(store, &change).await?, Attempt::Done(_)))
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
    until_written!("approval", |_| {
        let request = load(deps.store, id).await?;
        let requester = caller_counted_as(deps.directory, deps.people, &request.requester).await?;
        let step = match approval::decide(&request, &requester, decider, verdict, comment.clone(), level, now) {
            Ok(step) => step,
            Err(Refusal::DeadlinePassed(at)) => {
                expire_one(deps.store, &request, now).await?;
                return Err(refusal_to_error(Refusal::DeadlinePassed(at)));
            }
            Err(r) => return Err(refusal_to_error(r)),
        };
        let reason = match (verdict, step.level_completed, step.status) {
            (Verdict::Reject, ..) => format!("rejected at level {}", step.entry.level),
            (Verdict::Approve, _, RequestStatus::Approved) => {
                format!("approved: the last level ({}) completed", step.entry.level)
            }
            (Verdict::Approve, Some(l), _) => format!("approval at level {l} completed the level"),
            (Verdict::Approve, None, _) => format!("approval recorded at level {}", step.entry.level),
        };
        let reason = match &step.entry.comment {
            Some(c) => format!("{reason}: {}", c.as_str()),
            None => reason,
        };
        let approval_seal = match step.status {
            RequestStatus::Approved => Some(deps.seal.seal(&request.approval_message()).await?),
            _ => None,
        };
        let transition = Transition {
            progress: Some(step.progress.clone()),
            approval: Some(step.entry.clone()),
            level_completed: step.level_completed,
            approval_seal,
            ..Transition::status_change(&request, step.status, &decider.actor, reason, now)
        };
        let result = write(deps.store, &transition).await?;
        if let Attempt::Done(updated) = &result {
            tracing::info!(request_id = %id, status = %updated.status, level = step.entry.level, "approval decision stored");
        }
        Ok(result)
    })
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
    let id = parse_id(id)?;
    let request = load(deps.store, &id).await?;
    let keys = resolve_caller(deps.directory, caller).await?.as_ref().map(approver_keys).unwrap_or_default();
    if !plan_names_any(&request, &keys) && &request.requester != caller {
        // Neither requester nor approver: the request does not exist for this caller.
        return Err(crate::app::common::not_found(id.as_str()));
    }
    let person = person_of_caller(deps.directory, caller).await?;
    let decider = Decider {
        counted_as: counted_as(deps.directory, deps.people, &person).await?,
        person,
        actor: caller.to_string(),
        approver_keys: keys,
        channel: Channel::Api,
    };
    apply(deps, &id, &decider, verdict, comment, None, now).await
}

/// `POST /requests/{id}/cancel` by the requester.
pub async fn cancel(
    deps: &ApprovalDeps<'_>,
    caller: &CallerArn,
    id: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<AccessRequest, ServiceError> {
    let comment = parse_comment_body(body)?;
    let id = parse_id(id)?;
    let reason = comment.as_ref().map_or_else(
        || "cancelled by the requester".to_owned(),
        |c| format!("cancelled by the requester: {}", c.as_str()),
    );
    until_written!("cancel", |_| {
        let request = load(deps.store, &id).await?;
        if &request.requester != caller {
            return Err(crate::app::common::not_found(id.as_str()));
        }
        // A scheduled approval is withdrawn while its access has not started (its execution's
        // Grant then finds it Cancelled and grants nothing); `Transition::check` holds the rule.
        let scheduled = request.status == RequestStatus::Approved && request.not_started(now);
        let undecided = matches!(request.status, RequestStatus::Submitted | RequestStatus::Pending);
        if !undecided && !scheduled {
            return Err(ServiceError::Conflict {
                code: "RequestNotPending",
                message: format!(
                    "the request is {}; only a request not decided yet (Submitted or Pending), or a scheduled one \
                     before it starts, can be cancelled",
                    request.status
                ),
            });
        }
        let pending_until = request.progress.as_ref().map(|p| p.pending_until).filter(|_| !scheduled);
        if let Some(deadline) = pending_until.filter(|d| now >= *d) {
            expire_one(deps.store, &request, now).await?;
            return Err(refusal_to_error(Refusal::DeadlinePassed(deadline)));
        }
        write(
            deps.store,
            &Transition::status_change(&request, RequestStatus::Cancelled, caller.as_str(), reason.clone(), now),
        )
        .await
    })
}

/// `POST /requests/{id}/revoke`: an approver of the request, or an administrator, ends granted
/// access now. This function may not write IAM: its status change (one conditional write, so one
/// winner against expiry) becomes `Access Request Revoked` on the table's stream, on which the
/// state machine's revoke branch removes the grant, ends live sessions and stops the execution.
pub async fn revoke(
    deps: &ApprovalDeps<'_>,
    caller: &CallerArn,
    id: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<AccessRequest, ServiceError> {
    let comment = parse_comment_body(body)?;
    let id = parse_id(id)?;
    let request = load(deps.store, &id).await?;
    if !is_administrator(deps.administrators, deps.directory, caller).await? {
        let keys = resolve_caller(deps.directory, caller).await?.as_ref().map(approver_keys).unwrap_or_default();
        if !plan_names_any(&request, &keys) {
            return Err(if &request.requester == caller {
                ServiceError::Forbidden("only an approver of the request or an administrator can revoke; cancel instead if it is still Pending".into())
            } else {
                crate::app::common::not_found(id.as_str())
            });
        }
    }
    let reason = comment.as_ref().map_or_else(|| "revoked".to_owned(), |c| format!("revoked: {}", c.as_str()));
    match revoke_stored(deps.store, request, caller, &reason, now).await? {
        Some(revoked) => Ok(revoked),
        None => {
            let current = load(deps.store, &id).await?;
            Err(ServiceError::Conflict {
                code: "RequestNotApproved",
                message: format!("the request is {}; only Approved access can be revoked", current.status),
            })
        }
    }
}

/// `POST /requests/{id}/review`: an approver of a break-glass request's node policy, or an
/// administrator, acknowledges or flags it (`{"verdict": "acknowledge" | "flag", "comment"}`),
/// once, whatever its status. Never the requester, under any of their identities. A flag raises
/// the BreakGlassFlagged alarm.
pub async fn review(
    deps: &ApprovalDeps<'_>,
    caller: &CallerArn,
    id: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<AccessRequest, ServiceError> {
    let (verdict, comment) = parse_review_body(body)?;
    let id = parse_id(id)?;
    let request = load(deps.store, &id).await?;
    let Some(open) = request.review.clone().filter(|_| request.break_glass) else {
        return Err(crate::app::common::not_found(id.as_str()));
    };
    let requester = crate::app::common::caller_counted_as(deps.directory, deps.people, &request.requester).await?;
    let reviewer = crate::app::common::caller_counted_as(deps.directory, deps.people, caller).await?;
    if requester == reviewer {
        return Err(ServiceError::Forbidden("the requester cannot review their own break-glass access".into()));
    }
    if !is_administrator(deps.administrators, deps.directory, caller).await? {
        let keys = resolve_caller(deps.directory, caller).await?.as_ref().map(approver_keys).unwrap_or_default();
        if !plan_names_any(&request, &keys) {
            return Err(crate::app::common::not_found(id.as_str()));
        }
    }
    let Some(decided) = open.decide(verdict, caller.as_str(), comment.clone(), now) else {
        return Err(ServiceError::Conflict {
            code: "AlreadyReviewed",
            message: format!("{id} was already reviewed ({:?} by {})", open.verdict, open.by.unwrap_or_default()),
        });
    };
    let reason = format!(
        "break-glass review: {}{}",
        match verdict {
            ReviewVerdict::Acknowledge => "acknowledged",
            ReviewVerdict::Flag => "flagged",
        },
        comment.as_ref().map(|c| format!(": {}", c.as_str())).unwrap_or_default()
    );
    let updated = until_written!("review", |attempt| {
        let current = if attempt == 0 { request.clone() } else { load(deps.store, &id).await? };
        if !current.review.as_ref().is_some_and(crate::domain::break_glass::Review::is_open) {
            return Err(ServiceError::Conflict {
                code: "AlreadyReviewed",
                message: format!("{id} was already reviewed"),
            });
        }
        let change = Transition {
            review: Some(decided.clone()),
            ..Transition::status_change(&current, current.status, caller.as_str(), reason.clone(), now)
        };
        write(deps.store, &change).await
    })?;
    if verdict == ReviewVerdict::Flag {
        tracing::warn!(alarm = "BreakGlassFlagged", request_id = %id, reviewer = %caller, "break-glass access flagged in review");
    }
    Ok(updated)
}

/// `{"verdict": "acknowledge" | "flag", "comment": "…"}`.
fn parse_review_body(body: &[u8]) -> Result<(ReviewVerdict, Option<Comment>), FieldError> {
    let map = crate::app::submit::body_object(body, &["verdict", "comment"])?;
    let verdict = match map.get("verdict") {
        Some(serde_json::Value::String(v)) => v.parse()?,
        None | Some(serde_json::Value::Null) => {
            return Err(FieldError::new("verdict", "MissingField", "is required: \"acknowledge\" or \"flag\""))
        }
        Some(_) => return Err(FieldError::new("verdict", "InvalidType", "must be a string")),
    };
    Ok((verdict, comment_field(&map)?))
}

/// Moves `request` (as read) to `Revoked`, re-reading on a concurrent change; `None` when it is
/// no longer `Approved` (ended meanwhile, or by someone else).
async fn revoke_stored(
    store: &dyn RequestStore,
    request: AccessRequest,
    caller: &CallerArn,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<AccessRequest>, ServiceError> {
    let id = request.request_id.clone();
    let mut held = false;
    until_written!("revoke", |attempt| {
        if attempt > 0 && !held {
            // A write landed between our read and ours. If it recorded credentials, the requester
            // could keep doing so and win every round: hold the request so that none can, then
            // decide again on what is stored. Only after a loss, so a plain revoke costs no call.
            // Without the hold the revoke may still land, so a failed hold is tried again next round.
            match store.hold_for_revoke(&id, now).await {
                Ok(_) => held = true,
                Err(e) => tracing::warn!(request_id = %id, error = %e, "could not hold the request for its revoke"),
            }
        }
        let current = if attempt == 0 { request.clone() } else { load(store, &id).await? };
        if current.status != RequestStatus::Approved {
            return Ok(Attempt::Done(None));
        }
        let change = Transition::status_change(&current, RequestStatus::Revoked, caller.as_str(), reason, now);
        Ok(match write(store, &change).await? {
            Attempt::Done(revoked) => Attempt::Done(Some(revoked)),
            Attempt::Conflict => Attempt::Conflict,
        })
    })
}

/// How many live requests one person revoke reads at most (far above what one person holds; more
/// is refused rather than silently half done).
pub const MAX_LIVE_REQUESTS_SCANNED: u32 = 1000;

/// What `POST /people/{person}/revoke` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonRevoke {
    /// The person as asked (their key).
    pub person: String,
    /// Whom that identity counts as (the same person behind every identity `contacts.yaml` joins).
    pub counted_as: String,
    /// The requests this call revoked.
    pub revoked: Vec<RequestId>,
    /// Requests of the person that ended while this call ran (nothing left to revoke).
    pub already_ended: Vec<RequestId>,
}

/// `POST /people/{person}/revoke` by an administrator: every `Approved` request of the person,
/// whichever of their identities asked (one person counts once: a role session counts as its
/// role when the role does not pin session names, so every such session's access ends), is
/// revoked, each with its own conditional write; each becomes `Access Request Revoked`, whose
/// revoke branch ends the grant and the sessions. Idempotent: a retry revokes what is still live.
pub async fn revoke_person(
    deps: &ApprovalDeps<'_>,
    caller: &CallerArn,
    person: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<PersonRevoke, ServiceError> {
    let comment = parse_comment_body(body)?;
    let person = Person::try_from(person.to_owned())?;
    if !is_administrator(deps.administrators, deps.directory, caller).await? {
        return Err(ServiceError::Forbidden("only an administrator can revoke every grant of a person".into()));
    }
    let target = counted_as(deps.directory, deps.people, &person).await?;
    // Every live request: granted ones by deadline (none is further than the longest access
    // away), and approved ones whose grant is not recorded yet.
    let horizon = now + chrono::Duration::minutes(i64::from(crate::domain::ids::MAX_DURATION_MINUTES) * 2);
    let mut live = deps.store.list_grants_past_deadline(horizon, MAX_LIVE_REQUESTS_SCANNED).await?;
    live.extend(deps.store.list_awaiting_grant(horizon, MAX_LIVE_REQUESTS_SCANNED).await?);
    if live.len() >= usize::try_from(MAX_LIVE_REQUESTS_SCANNED).unwrap_or(usize::MAX) {
        return Err(ServiceError::Unavailable(format!(
            "more than {MAX_LIVE_REQUESTS_SCANNED} live requests to look through; revoke by request id instead"
        )));
    }
    live.sort();
    live.dedup();
    let reason = match &comment {
        Some(c) => format!("revoked with every grant of {person}: {}", c.as_str()),
        None => format!("revoked with every grant of {person}"),
    };
    let mut out =
        PersonRevoke { person: person.key(), counted_as: target.clone(), revoked: vec![], already_ended: vec![] };
    let mut first_error = None;
    for id in live {
        let Some(request) = deps.store.get(&id).await? else { continue };
        if request.status != RequestStatus::Approved
            || caller_counted_as(deps.directory, deps.people, &request.requester).await? != target
        {
            continue;
        }
        // Each request alone: one failed write does not leave the others' access up.
        match revoke_stored(deps.store, request, caller, &reason, now).await {
            Ok(Some(_)) => out.revoked.push(id),
            Ok(None) => out.already_ended.push(id),
            Err(e) => {
                tracing::error!(request_id = %id, error = %e, "revoking one request of a person failed");
                first_error.get_or_insert(e);
            }
        }
    }
    tracing::info!(person = %out.person, revoked = out.revoked.len(), "every grant of a person revoked");
    match first_error {
        // A retry revokes what is still live; what this call revoked stays revoked.
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `GET /approvals`: pending requests waiting on the caller at their current level, newest first.
pub async fn waiting_for(
    deps: &ApprovalDeps<'_>,
    caller: &CallerArn,
    now: DateTime<Utc>,
) -> Result<Vec<AccessRequest>, ServiceError> {
    let Some(principal) = resolve_caller(deps.directory, caller).await? else {
        return Ok(vec![]);
    };
    let keys = approver_keys(&principal);
    let person = person_of_caller(deps.directory, caller).await?;
    let decider = Decider {
        counted_as: counted_as(deps.directory, deps.people, &person).await?,
        person,
        actor: caller.to_string(),
        approver_keys: keys.clone(),
        channel: Channel::Api,
    };
    let mut ids = std::collections::BTreeSet::new();
    for key in &keys {
        ids.extend(deps.store.list_pending_by_approver(key, 100).await?);
    }
    let mut out = Vec::new();
    for id in ids {
        if let Some(request) = deps.store.get(&id).await? {
            let requester = caller_counted_as(deps.directory, deps.people, &request.requester).await?;
            if approval::check_may_decide(&request, &requester, &decider, None, now).is_ok() {
                out.push(request);
            }
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    Ok(out)
}

/// How many decided requests `GET /approvals?decided=true` returns.
pub const DECIDED_PAGE: u32 = 50;

/// `GET /approvals?decided=true`: the requests the caller decided (approved or rejected, at any
/// level, with any of their identities: one person counts once), newest decision first.
pub async fn decided_by(deps: &ApprovalDeps<'_>, caller: &CallerArn) -> Result<Vec<AccessRequest>, ServiceError> {
    let person = caller_counted_as(deps.directory, deps.people, caller).await?;
    let mut out = Vec::new();
    for id in deps.store.list_decided_by(&person, DECIDED_PAGE).await? {
        if let Some(request) = deps.store.get(&id).await? {
            out.push(request);
        }
    }
    Ok(out)
}

/// How many open break-glass reviews `reviews_for` reads at most (far more than are ever open).
const OPEN_REVIEWS_READ: u32 = 100;

/// `GET /approvals?review=open`: the break-glass grants whose review the caller may decide now
/// (an approver of the node's plan, or an administrator; never the requester), soonest due first.
pub async fn reviews_for(deps: &ApprovalDeps<'_>, caller: &CallerArn) -> Result<Vec<AccessRequest>, ServiceError> {
    // Every open review: due by the end of year 9999 (the store's sort keys are RFC 3339 text, so
    // the bound must keep a four-digit year).
    let end_of_time = DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let ids = deps.store.list_reviews_past_due(end_of_time, OPEN_REVIEWS_READ).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let admin = is_administrator(deps.administrators, deps.directory, caller).await?;
    let keys = resolve_caller(deps.directory, caller).await?.as_ref().map(approver_keys).unwrap_or_default();
    let me = caller_counted_as(deps.directory, deps.people, caller).await?;
    let mut out = Vec::new();
    for id in ids {
        let Some(request) = deps.store.get(&id).await? else { continue };
        let open =
            request.break_glass && request.review.as_ref().is_some_and(crate::domain::break_glass::Review::is_open);
        if !open || !(admin || plan_names_any(&request, &keys)) {
            continue;
        }
        if caller_counted_as(deps.directory, deps.people, &request.requester).await? == me {
            continue;
        }
        out.push(request);
    }
    Ok(out)
}

/// What the confirmation page shows.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub request: AccessRequest,
    pub claims: TokenClaims,
    pub person: Person,
}

/// A link that cannot be used (bad token, person gone) is `Forbidden`: the pages show every
/// refusal as one 403 (`http::error::link_status`).
async fn link_decider(
    deps: &ApprovalDeps<'_>,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(TokenClaims, Decider, AccessRequest), ServiceError> {
    let claims = approval_token::verify(deps.key, token, now).map_err(|e| ServiceError::Forbidden(e.to_string()))?;
    let person = claims.approver.clone();
    let principal = match deps.directory.resolve_person(&person).await {
        Ok(p) => p,
        Err(DirectoryError::NotFound(_)) => return Err(ServiceError::Forbidden(format!("{person} no longer exists"))),
        Err(DirectoryError::Port(e)) => return Err(e.into()),
    };
    let decider = Decider {
        actor: actor_of(&principal),
        approver_keys: approver_keys(&principal),
        counted_as: counted_as(deps.directory, deps.people, &person).await?,
        person,
        channel: Channel::EmailLink,
    };
    let request = load(deps.store, &claims.request_id).await?;
    Ok((claims, decider, request))
}

/// `GET /decide/{token}`: checks the link and shows what it would decide. Changes nothing.
pub async fn view_link(deps: &ApprovalDeps<'_>, token: &str, now: DateTime<Utc>) -> Result<LinkView, ServiceError> {
    let (claims, decider, request) = link_decider(deps, token, now).await?;
    let requester = caller_counted_as(deps.directory, deps.people, &request.requester).await?;
    approval::check_may_decide(&request, &requester, &decider, Some(claims.level), now).map_err(refusal_to_error)?;
    Ok(LinkView { request, claims, person: decider.person })
}

/// `POST /decide/{token}` from the confirmation page.
pub async fn decide_with_link(
    deps: &ApprovalDeps<'_>,
    token: &str,
    verdict: Verdict,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Result<AccessRequest, ServiceError> {
    let comment = Comment::parse_optional(comment)?;
    let (claims, decider, _) = link_decider(deps, token, now).await?;
    apply(deps, &claims.request_id, &decider, verdict, comment, Some(claims.level), now).await
}

/// `POST /chat/slack`: an Approve or Reject click in a Slack message, by the Slack user `user`
/// (the callback's signature was checked by the caller). The Slack user is the person whose
/// contact lists them (`slackUserId` in `contacts.yaml`); from there it is the same decision as
/// through the API or a mail link: the requester cannot decide, one person counts once, and the
/// click is for the level the message was sent for.
pub async fn decide_with_slack(
    deps: &ApprovalDeps<'_>,
    user: &crate::domain::slack::SlackUserId,
    id: &RequestId,
    level: u8,
    verdict: Verdict,
    comment: Option<Comment>,
    now: DateTime<Utc>,
) -> Result<AccessRequest, ServiceError> {
    let Some(person) = deps.people.of_slack_user(user).cloned() else {
        return Err(ServiceError::Forbidden(format!(
            "Slack user {user} is not anyone in contacts.yaml; add slackUserId: {user} to their contact entry"
        )));
    };
    let principal = match deps.directory.resolve_person(&person).await {
        Ok(p) => p,
        Err(DirectoryError::NotFound(_)) => return Err(ServiceError::Forbidden(format!("{person} no longer exists"))),
        Err(DirectoryError::Port(e)) => return Err(e.into()),
    };
    let decider = Decider {
        actor: format!("{} (Slack {user})", actor_of(&principal)),
        approver_keys: approver_keys(&principal),
        counted_as: counted_as(deps.directory, deps.people, &person).await?,
        person,
        channel: Channel::Slack,
    };
    apply(deps, id, &decider, verdict, comment, Some(level), now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::submit::MAX_BODY_BYTES;

    fn refusal(got: Result<impl std::fmt::Debug, FieldError>) -> (String, String) {
        let e = got.unwrap_err();
        (e.field, e.code)
    }

    #[test]
    fn review_and_comment_bodies_over_the_limit_are_refused_naming_the_body() {
        let comment = "x".repeat(MAX_BODY_BYTES);
        let review = format!(r#"{{"verdict": "flag", "comment": "{comment}"}}"#);
        let plain = format!(r#"{{"comment": "{comment}"}}"#);

        let cases = [refusal(parse_review_body(review.as_bytes())), refusal(parse_comment_body(plain.as_bytes()))];

        for got in cases {
            assert_eq!(got, ("body".to_owned(), "BodyTooLarge".to_owned()));
        }
    }

    #[test]
    fn a_blank_review_comment_is_no_comment_as_on_every_other_route() {
        let (verdict, comment) = parse_review_body(br#"{"verdict": "acknowledge", "comment": "   "}"#).unwrap();

        assert_eq!((verdict, comment), (ReviewVerdict::Acknowledge, None));
        assert_eq!(parse_comment_body(br#"{"comment": " "}"#).unwrap(), None);
    }

    #[test]
    fn review_bodies_name_the_field_they_refuse() {
        let cases: [(&[u8], (&str, &str)); 4] = [
            (br#"{"verdict": "flag", "extra": 1}"#, ("extra", "UnknownField")),
            (br#"{"comment": "x"}"#, ("verdict", "MissingField")),
            (br#"{"verdict": 3}"#, ("verdict", "InvalidType")),
            (br#"[]"#, ("body", "InvalidBody")),
        ];
        for (body, (field, code)) in cases {
            assert_eq!(refusal(parse_review_body(body)), (field.to_owned(), code.to_owned()), "{body:?}");
        }
    }
}
