//! Cedar evaluation of a submitted request: resolve the node, and the requester when a statement
//! that can apply to the node looks at them; decide; store the decision with a conditional status
//! change.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::app::common::{write, Attempt};
use crate::app::error::{FieldError, ServiceError};
use crate::domain::approval::ApprovalProgress;
use crate::domain::events::{EventEnvelope, EventKind, StatusEvent};
use crate::domain::ids::RequestId;
use crate::domain::principal::ResolvedPrincipal;
use crate::domain::request::{AccessRequest, Decision, DecisionRule};
use crate::domain::status::RequestStatus;
use crate::policy::PolicySet;
use crate::ports::{DirectoryError, NodeDirectory, PrincipalDirectory, RequestStore, Transition};

/// The audit actor of automated decisions.
pub const EVALUATOR_ACTOR: &str = "system:evaluator";

pub struct EvaluationDeps<'a> {
    pub store: &'a dyn RequestStore,
    pub principals: &'a dyn PrincipalDirectory,
    pub nodes: &'a dyn NodeDirectory,
    pub policies: &'a PolicySet,
    /// How long a `Pending` request waits for approvals before it expires.
    pub pending_timeout_minutes: u32,
    /// Seals auto-approvals (`ApprovalSeal`).
    pub seal: &'a dyn crate::ports::ApprovalSeal,
    /// How many live (pending, or approved in attach mode before their deadline) requests one requester may
    /// hold; one more that would hold something (an attach-mode grant, or approvers' attention)
    /// is refused (`TooManyActiveRequests`), so nobody fills a shared role's inline-policy budget
    /// or floods approvers.
    pub max_active_requests: u32,
}

/// The newest requests of a requester looked at for the limit: far more than the limit.
const ACTIVE_LOOKBACK: u32 = 100;

/// The refusal when the requester already holds `max_active_requests` live requests.
async fn over_active_limit(
    deps: &EvaluationDeps<'_>,
    request: &AccessRequest,
    now: DateTime<Utc>,
) -> Result<Option<Decision>, ServiceError> {
    let query = crate::ports::ListQuery { status: None, limit: ACTIVE_LOOKBACK, after: None };
    let page = deps.store.list_by_requester(&request.requester, &query).await?;
    let live: Vec<&AccessRequest> = page
        .items
        .iter()
        .filter(|r| r.request_id != request.request_id)
        // An extension holds nothing more than the grant it extends, which it must not count.
        .filter(|r| Some(&r.request_id) != request.extends.as_ref())
        // What holds something: approvers' attention, or an inline policy on a principal. A
        // credentials-mode approval holds neither.
        .filter(|r| match r.status {
            RequestStatus::Pending => true,
            RequestStatus::Approved => {
                r.grant_mode == crate::domain::grant::GrantMode::Attach && now < crate::app::lifecycle::deadline_of(r)
            }
            _ => false,
        })
        .collect();
    if live.len() < usize::try_from(deps.max_active_requests).unwrap_or(usize::MAX) {
        return Ok(None);
    }
    let ids: Vec<&str> = live.iter().take(3).map(|r| r.request_id.as_str()).collect();
    Ok(Some(unresolvable(
        "TooManyActiveRequests",
        format!(
            "you already hold {} live requests (at most {} at once: {}{}); cancel or wait for one to end",
            live.len(),
            deps.max_active_requests,
            ids.join(", "),
            if live.len() > ids.len() { ", …" } else { "" }
        ),
        now,
    )))
}

#[derive(Debug, Clone, PartialEq)]
pub enum EvaluationOutcome {
    Decided(Box<AccessRequest>),
    /// Duplicate delivery, or the request was already decided: nothing was changed.
    AlreadyDecided(RequestStatus),
    UnknownRequest,
}

fn unresolvable(code: &str, message: String, now: DateTime<Utc>) -> Decision {
    Decision {
        outcome: RequestStatus::Failed,
        rule: DecisionRule::UnresolvableRequest,
        deciding_policy_ids: vec![],
        deny_policy_ids: vec![],
        failure_code: Some(code.to_owned()),
        message,
        max_duration_minutes: None,
        approval_plan: None,
        node_tags: BTreeMap::new(),
        node_location: None,
        decided_at: now,
    }
}

/// Handles one "Access Request Submitted" EventBridge envelope.
pub async fn handle_submitted_event(
    deps: &EvaluationDeps<'_>,
    envelope: &EventEnvelope,
    now: DateTime<Utc>,
) -> Result<EvaluationOutcome, ServiceError> {
    let d = &envelope.detail;
    if d.status != RequestStatus::Submitted || d.kind != EventKind::StatusChanged {
        return Err(FieldError::new("detail.status", "UnexpectedEvent", "only Submitted events are evaluated").into());
    }
    // The event carries the whole submitted request, so the usual case needs no read: the
    // decision's write is conditional on the stored request being exactly this one (status,
    // version, requester, node, duration, reason, creation time). Anything else (a redelivery
    // after the decision, an event that does not match the table, a failed lookup) falls back to
    // the stored request. The decision's events come from the table's stream, so a redelivery
    // has nothing to publish.
    if let Some(submitted) = submitted_request(d) {
        match decide_and_store(deps, submitted, now).await {
            Ok(Some(outcome)) => return Ok(outcome),
            Ok(None) => {
                tracing::info!(request_id = %d.request_id, "the stored request is not at the event's version or differs from it; reading it")
            }
            Err(e) => {
                tracing::warn!(request_id = %d.request_id, error = %e, "deciding on the event failed; reading the stored request")
            }
        }
    }
    evaluate(deps, &d.request_id, now).await
}

/// The request a Submitted event describes, as stored at submission (version 1).
fn submitted_request(d: &StatusEvent) -> Option<AccessRequest> {
    if d.status != RequestStatus::Submitted || d.version != 1 || d.previous_status.is_some() {
        return None;
    }
    // The write's condition does not cover these; what they change is decided on the stored
    // request, never on an event's word.
    if d.starts_at.is_some() || d.extends.is_some() || d.break_glass {
        return None;
    }
    let at = stored_precision(d.at)?;
    Some(AccessRequest { created_at: at, updated_at: at, decision: None, progress: None, grant: None, ..d.request()? })
}

/// The table keeps times to the microsecond.
fn stored_precision(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.timestamp_micros())
}

/// Reads the request and decides it, unless it was already decided.
pub async fn evaluate(
    deps: &EvaluationDeps<'_>,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<EvaluationOutcome, ServiceError> {
    let Some(request) = deps.store.get(id).await? else {
        tracing::warn!(request_id = %id, "evaluation event for an unknown request");
        return Ok(EvaluationOutcome::UnknownRequest);
    };
    if request.status != RequestStatus::Submitted {
        return Ok(EvaluationOutcome::AlreadyDecided(request.status));
    }
    match decide_and_store(deps, request, now).await? {
        Some(outcome) => Ok(outcome),
        None => {
            let current = deps.store.get(id).await?.map_or(RequestStatus::Submitted, |r| r.status);
            Ok(EvaluationOutcome::AlreadyDecided(current))
        }
    }
}

/// Decides a Submitted request and stores the decision; `None` when the conditional write finds
/// the stored request changed (or different from `request`).
async fn decide_and_store(
    deps: &EvaluationDeps<'_>,
    request: AccessRequest,
    now: DateTime<Utc>,
) -> Result<Option<EvaluationOutcome>, ServiceError> {
    let decision = decide(deps, &request, false, now).await?;
    // The limit protects what a live request holds: an inline policy on a principal (attach
    // mode, whose budget a shared role shares) or an approver's attention (manual approval). A
    // credentials-mode auto-approval holds neither, so it costs no extra read.
    // An emergency is not held to the limit: it is rare, alarmed and reviewed.
    let limited = match decision.outcome {
        RequestStatus::Pending => true,
        RequestStatus::Approved => {
            request.grant_mode == crate::domain::grant::GrantMode::Attach && !request.break_glass
        }
        _ => false,
    };
    let decision = match limited {
        true => over_active_limit(deps, &request, now).await?.unwrap_or(decision),
        false => decision,
    };
    store_decision(deps, &request, decision, now).await
}

/// What the policies decide for `request` now: the node and, where a statement that can apply
/// looks at them, the requester are read afresh. `again` (the recheck at a scheduled start)
/// decides the duration the request holds, also one the first decision took from a policy.
async fn decide(
    deps: &EvaluationDeps<'_>,
    request: &AccessRequest,
    again: bool,
    now: DateTime<Utc>,
) -> Result<Decision, ServiceError> {
    let requested = (again || !request.duration_from_policy).then_some(request.duration_minutes);
    let node = deps.nodes.describe(&request.node_id).await;
    // Break-glass always looks at the requester: membership is by group.
    let principal = match &node {
        Ok(n) if !request.break_glass && !deps.policies.needs_principal(&n.tags) => {
            Ok(ResolvedPrincipal::from_arn_only(&request.requester))
        }
        _ => deps.principals.resolve(&request.requester).await,
    };
    let decision = match (principal, node) {
        (Err(DirectoryError::Port(e)), _) | (_, Err(DirectoryError::Port(e))) => return Err(e.into()),
        (Err(DirectoryError::NotFound(what)), _) => {
            unresolvable("PrincipalNotFound", format!("the requester could not be resolved: {what}"), now)
        }
        (_, Err(DirectoryError::NotFound(_))) => unresolvable(
            "NodeNotFound",
            format!("node {} does not exist or is not visible to jit-node-access", request.node_id),
            now,
        ),
        (Ok(principal), Ok(node)) if request.break_glass => {
            let member =
                deps.policies.break_glass().is_some_and(|b| b.admits(&crate::app::common::approver_keys(&principal)));
            deps.policies.decide_break_glass(&principal, member, &node, requested, now)
        }
        (Ok(principal), Ok(node)) => match extension_total(deps, request, now).await? {
            Err(refusal) => refusal,
            Ok(Some(total)) => deps.policies.decide_extension(&principal, &node, total, now),
            Ok(None) => {
                // A scheduled request is decided as at its start: time-of-day policies see the
                // time access begins, not the time it was asked for.
                let at = request.starts_at.map_or(now, |s| s.max(now));
                deps.policies.decide_for(&principal, &node, requested, at)
            }
        },
    };
    Ok(decision)
}

/// A task of the lifecycle state machine for this function (`statemachine/lifecycle.asl.json`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "task", rename_all = "camelCase")]
pub enum EvaluationTask {
    /// `RecheckAtStart`: a scheduled request, at its start, before it is granted.
    #[serde(rename_all = "camelCase")]
    RecheckAtStart { request_id: RequestId },
}

/// What `RecheckAtStart` returns: the state machine grants only when `permitted`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecheckOutput {
    pub permitted: bool,
    /// The request's status after the recheck.
    pub status: RequestStatus,
    /// Why it is not permitted any more (also the reason of its `Revoked` record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The function's input: the `Submitted` event, or a task of the lifecycle state machine.
pub async fn handle_payload(
    deps: &EvaluationDeps<'_>,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, ServiceError> {
    if payload.get("task").is_some() {
        let task: EvaluationTask = serde_json::from_value(payload)
            .map_err(|e| FieldError::new("task", "InvalidTask", format!("not a task of this function: {e}")))?;
        let EvaluationTask::RecheckAtStart { request_id } = task;
        let out = recheck_at_start(deps, &request_id, now).await?;
        return serde_json::to_value(out).map_err(|e| ServiceError::Internal(e.to_string()));
    }
    let envelope: EventEnvelope = serde_json::from_value(payload)
        .map_err(|e| FieldError::new("detail", "InvalidEvent", format!("not a Submitted event: {e}")))?;
    handle_submitted_event(deps, &envelope, now).await.map(|_| serde_json::Value::Null)
}

/// A scheduled request was decided when it was asked for, up to `MAX_SCHEDULE_DAYS` before it
/// starts. At its start it is decided again, as a new request for the duration it holds would be,
/// on the node's tags, the requester's groups and the policies of now: it is still granted when
/// the policies approve it outright, or when people approved it and the same manual policy, with
/// the same levels and approvers, still applies; otherwise it is revoked, with the reason, before
/// anything is granted.
pub async fn recheck_at_start(
    deps: &EvaluationDeps<'_>,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<RecheckOutput, ServiceError> {
    let Some(request) = deps.store.get(id).await? else {
        tracing::warn!(request_id = %id, "recheck of an unknown request");
        return Ok(RecheckOutput {
            permitted: false,
            status: RequestStatus::Failed,
            reason: Some("unknown request".into()),
        });
    };
    // Only an approved request not granted yet has anything to recheck; the Grant task refuses
    // anything else on its own.
    if request.status != RequestStatus::Approved || request.grant.is_some() || request.starts_at.is_none() {
        let permitted = request.status == RequestStatus::Approved;
        return Ok(RecheckOutput { permitted, status: request.status, reason: None });
    }
    let now_decided = decide(deps, &request, true, now).await?;
    let approved_by_people = request.decision.as_ref().is_some_and(|d| d.outcome == RequestStatus::Pending);
    // Their approvals were for that policy's levels and approvers: a policy of the same name whose
    // levels changed asks people who have not approved.
    let same_manual_policy = request.decision.as_ref().is_some_and(|d| {
        !d.deciding_policy_ids.is_empty()
            && d.deciding_policy_ids == now_decided.deciding_policy_ids
            && d.approval_plan.is_some()
            && d.approval_plan == now_decided.approval_plan
    });
    let permitted = match now_decided.outcome {
        RequestStatus::Approved => true,
        RequestStatus::Pending => approved_by_people && same_manual_policy,
        _ => false,
    };
    if permitted {
        tracing::info!(request_id = %id, "still permitted at its start");
        return Ok(RecheckOutput { permitted, status: request.status, reason: None });
    }
    let reason = match now_decided.outcome {
        RequestStatus::Pending if approved_by_people => format!(
            "no longer permitted at its start: the approval policy that applies now ({}) is not the one its approvers approved under",
            now_decided.deciding_policy_ids.join(", ")
        ),
        RequestStatus::Pending => {
            format!("no longer permitted at its start: the policies now ask for approval ({})", now_decided.message)
        }
        _ => format!("no longer permitted at its start: {}", now_decided.message),
    };
    let change = Transition::status_change(&request, RequestStatus::Revoked, EVALUATOR_ACTOR, reason.clone(), now);
    match write(deps.store, &change).await? {
        Attempt::Done(updated) => {
            tracing::warn!(request_id = %id, %reason, "revoked at its start");
            Ok(RecheckOutput { permitted: false, status: updated.status, reason: Some(reason) })
        }
        // Changed meanwhile: cancelled or revoked is an answer; anything else is decided again by
        // the state machine's retry.
        Attempt::Conflict => match deps.store.get(id).await? {
            Some(current) if current.status != RequestStatus::Approved => {
                Ok(RecheckOutput { permitted: false, status: current.status, reason: None })
            }
            _ => Err(ServiceError::Unavailable("the request changed during its recheck; retry".into())),
        },
    }
}

/// The line the template's BreakGlassGranted metric filter turns into its alarm.
pub fn alarm_break_glass_granted(request: &AccessRequest) {
    tracing::warn!(
        alarm = "BreakGlassGranted",
        request_id = %request.request_id,
        requester = %request.requester,
        node = %request.node_id,
        "break-glass access granted"
    );
}

/// An extension is decided as a new request for the new total: the access the request it
/// extends has had and still has, plus the minutes asked for. `Err` is the refusal when that
/// request is no longer a live grant of the same requester on the same node.
async fn extension_total(
    deps: &EvaluationDeps<'_>,
    request: &AccessRequest,
    now: DateTime<Utc>,
) -> Result<Result<Option<crate::domain::ids::DurationMinutes>, Decision>, ServiceError> {
    let Some(of) = &request.extends else { return Ok(Ok(None)) };
    let original = deps.store.get(of).await?;
    let live = original.filter(|o| {
        o.status == RequestStatus::Approved
            && o.requester == request.requester
            && o.node_id == request.node_id
            && o.grant_mode == request.grant_mode
            && now < o.access_deadline()
    });
    let Some(original) = live else {
        return Ok(Err(unresolvable(
            "ExtendedRequestEnded",
            format!("{of} is no longer active: nothing to extend"),
            now,
        )));
    };
    let had = (original.access_deadline() - original.access_start()).num_minutes();
    let total = u32::try_from(had).unwrap_or(u32::MAX).saturating_add(request.duration_minutes.get());
    match crate::domain::ids::DurationMinutes::try_from(total) {
        Ok(total) => Ok(Ok(Some(total))),
        Err(_) => Ok(Err(unresolvable(
            "DurationExceedsMaximum",
            format!(
                "{of} would last {total} minutes in all, more than any request may ({})",
                crate::domain::ids::DurationMinutes::MAX.get()
            ),
            now,
        ))),
    }
}

/// Stores `decision` with the status change it makes (sealed if it approves); `None` when the
/// conditional write finds the stored request changed.
async fn store_decision(
    deps: &EvaluationDeps<'_>,
    request: &AccessRequest,
    decision: Decision,
    now: DateTime<Utc>,
) -> Result<Option<EvaluationOutcome>, ServiceError> {
    let id = &request.request_id;
    let grants = matches!(decision.outcome, RequestStatus::Approved | RequestStatus::Pending);
    let decision = match decision.max_duration_minutes {
        // Fail closed: a request without a duration never gets the placeholder maximum.
        None if grants && request.duration_from_policy => unresolvable(
            "NoDuration",
            "no duration was asked for and the deciding policy sets none; ask with durationMinutes".into(),
            now,
        ),
        _ => decision,
    };
    // Approvals of a scheduled request may arrive until its start plus the usual wait.
    let waits_from = request.starts_at.map_or(now, |s| s.max(now));
    let progress = (decision.outcome == RequestStatus::Pending).then(|| {
        ApprovalProgress::start(waits_from + chrono::Duration::minutes(i64::from(deps.pending_timeout_minutes)))
    });
    // A request that asked for no duration gets the deciding policy's window or maximum.
    let duration = match decision.outcome {
        RequestStatus::Approved | RequestStatus::Pending if request.duration_from_policy => {
            decision.max_duration_minutes.and_then(|m| crate::domain::ids::DurationMinutes::try_from(m).ok())
        }
        _ => None,
    };
    let mut transition = Transition {
        progress,
        decision: Some(decision.clone()),
        duration,
        ..Transition::status_change(request, decision.outcome, EVALUATOR_ACTOR, decision.message.clone(), now)
    };
    // A break-glass grant opens its review with it.
    if decision.outcome == RequestStatus::Approved && request.break_glass {
        let within = deps
            .policies
            .break_glass()
            .map_or(crate::policy::break_glass::DEFAULT_REVIEW_MINUTES, |b| b.review_within_minutes);
        transition.review =
            Some(crate::domain::break_glass::Review::open(now + chrono::Duration::minutes(i64::from(within))));
    }
    // The seal covers what is granted: the request as it is once this change is stored.
    if decision.outcome == RequestStatus::Approved {
        transition.approval_seal = Some(deps.seal.seal(&transition.after().approval_message()).await?);
    }
    match write(deps.store, &transition).await? {
        Attempt::Done(updated) => {
            tracing::info!(request_id = %id, status = %updated.status, "request decided");
            if updated.break_glass && updated.status == RequestStatus::Approved {
                alarm_break_glass_granted(&updated);
            }
            Ok(Some(EvaluationOutcome::Decided(Box::new(updated))))
        }
        Attempt::Conflict => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_recheck_payload_is_a_task_of_this_function() {
        let sample: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/evaluate-recheck-at-start-task.json")).unwrap();
        let task: EvaluationTask = serde_json::from_value(sample.clone()).unwrap();
        let EvaluationTask::RecheckAtStart { request_id } = &task;
        assert_eq!(request_id.as_str(), sample["requestId"]);
        assert_eq!(serde_json::to_value(&task).unwrap(), sample, "it round-trips to the same payload");
    }

    #[test]
    fn an_unknown_task_or_a_malformed_id_is_refused_naming_the_field() {
        for bad in [
            serde_json::json!({"task": "grant", "requestId": "req-0a1b2c3d4e5f60718293a4b5c6d7e8f9"}),
            serde_json::json!({"task": "recheckAtStart", "requestId": "not-an-id"}),
            serde_json::json!({"task": "recheckAtStart"}),
        ] {
            let err = serde_json::from_value::<EvaluationTask>(bad.clone()).err();
            assert!(err.is_some(), "{bad} is not a task of this function");
        }
    }
}
