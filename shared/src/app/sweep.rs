//! The sweeper, every few minutes: the backstop that makes access end whatever failed before.
//! Deadline work first (pending requests past their approval deadline, grants past their access
//! deadline), then re-checks of every request that ended recently (its policy, a revoke's deny,
//! its sessions: a lost `Revoked` event or a teardown that failed for good is made good here),
//! requests stuck in `Submitted`, approvals whose lifecycle never started, `jit-` policies of
//! those requests' principals without a live request, and spent denies. Each item is handled on
//! its own: one that fails is recorded (`alarm=SweepItemFailed`) and skipped, the rest proceed.
//! Every step is a conditional write or an idempotent delete, so it is safe next to the lifecycle
//! executions and to itself. Nothing lists IAM principals: IAM cannot list users or roles by tag,
//! and the table knows every principal a grant was ever attached to.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::app::approve::expire_one;
use crate::app::common::{load, write, Attempt};
use crate::app::error::ServiceError;
use crate::app::lifecycle::{attached_to, deadline_of, end_remaining, teardown_request, LifecycleDeps, TeardownOutput};
use crate::domain::credentials;
use crate::domain::grant;
use crate::domain::ids::RequestId;
use crate::domain::status::RequestStatus;
use crate::ports::{GrantPrincipal, RequestStore, Transition};

pub const SWEEPER_ACTOR: &str = "system:sweeper";
/// How long an approved request may wait for its grant before the sweep starts its lifecycle
/// itself (the delivery of its `Approved` event to Step Functions may have failed).
pub const GRANT_GRACE_MINUTES: i64 = 2;
/// How long after a request ended (revoked, expired, failed) every sweep makes sure nothing of
/// its access remains. Covers a lost `Revoked` event, a teardown that failed for good and
/// sessions opened while a removal propagated; about two calls per ended request per sweep.
pub const ENDED_RECHECK_MINUTES: i64 = 120;
/// How long a request may stay `Submitted` before the sweep fails it: evaluation takes
/// seconds, and its event's delivery is retried for at most an hour by the bus, so a request
/// this old has lost its evaluation.
pub const STUCK_SUBMITTED_MINUTES: i64 = 65;

/// One item the sweep could not handle: recorded, alarmed on and skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    /// What was being done (`expire-pending`, `expire-grant`, `recheck-ended`, ...).
    pub step: String,
    /// The request id or policy the step was about.
    pub item: String,
    pub error: String,
}

/// Records an item's failure and logs it for the template's SweepItemFailures alarm.
fn failed(failures: &mut Vec<ItemFailure>, step: &str, item: impl ToString, error: &ServiceError) {
    let item = item.to_string();
    tracing::error!(alarm = "SweepItemFailed", step, item = %item, error = %error, "the sweep could not handle an item; skipped");
    failures.push(ItemFailure { step: step.to_owned(), item, error: error.to_string() });
}

/// Expires every pending request whose deadline has passed. Safe to run concurrently with
/// decisions and with itself: each expiry is a conditional write.
/// An item that fails is recorded in `failures` and skipped.
pub async fn expire_overdue(
    store: &dyn RequestStore,
    now: DateTime<Utc>,
    failures: &mut Vec<ItemFailure>,
) -> Result<Vec<RequestId>, ServiceError> {
    let mut expired = Vec::new();
    loop {
        let ids = store.list_pending_past_deadline(now, 50).await?;
        let mut progressed = false;
        for id in &ids {
            let one = async {
                let Some(request) = store.get(id).await? else { return Ok(false) };
                if request.status != RequestStatus::Pending {
                    return Ok(false);
                }
                expire_one(store, &request, now).await
            };
            match one.await {
                Ok(true) => {
                    expired.push(id.clone());
                    progressed = true;
                }
                Ok(false) => {}
                Err(e) => failed(failures, "expire-pending", id, &e),
            }
        }
        if ids.len() < 50 || !progressed {
            return Ok(expired);
        }
    }
}

/// How many waiting requests one sweep looks at for reminders and escalations.
pub const NUDGE_SCAN: u32 = 500;

/// Records the reminder (`remindAfterMinutes`) and escalation (`escalateAfterMinutes`) notices
/// that waiting levels are due, each once per level, as in-place changes whose events
/// (`Approval Reminder`, `Level Escalated`) the notifier mails. An item that fails is recorded in
/// `failures` and skipped.
pub async fn nudge_waiting(
    store: &dyn RequestStore,
    now: DateTime<Utc>,
    failures: &mut Vec<ItemFailure>,
) -> Result<Vec<RequestId>, ServiceError> {
    use crate::domain::approval::{Nudge, NudgeKind};
    // Every pending request: none waits longer than the longest approval deadline.
    let horizon = now + Duration::minutes(i64::from(crate::domain::ids::MAX_DURATION_MINUTES) * 2);
    let mut nudged = Vec::new();
    for id in store.list_pending_past_deadline(horizon, NUDGE_SCAN).await? {
        let one = async {
            let Some(request) = store.get(&id).await? else { return Ok(false) };
            let Some(due) = crate::domain::approval_rules::nudge_due(&request, now) else { return Ok(false) };
            let mut progress =
                request.progress.clone().unwrap_or_else(|| crate::domain::approval::ApprovalProgress::start(now));
            let nudge = Nudge { level: progress.current_level, kind: due, at: now };
            progress.nudges.push(nudge);
            let reason = match due {
                NudgeKind::Reminder => {
                    format!("level {} waited its reminder time: its approvers are reminded", nudge.level)
                }
                NudgeKind::Escalation => {
                    format!("level {} waited its escalation time: its escalation approvers may decide it", nudge.level)
                }
            };
            let change = Transition {
                progress: Some(progress),
                nudge: Some(nudge),
                ..Transition::status_change(&request, RequestStatus::Pending, SWEEPER_ACTOR, reason, now)
            };
            // A decision or another sweep got there first: next sweep looks again.
            Ok(matches!(write(store, &change).await?, Attempt::Done(_)))
        };
        match one.await {
            Ok(true) => nudged.push(id),
            Ok(false) => {}
            Err(e) => failed(failures, "nudge-pending", &id, &e),
        }
    }
    Ok(nudged)
}

/// Approved requests that never got a grant. Their `Approved` event left through the table's
/// stream, but its delivery from the bus to Step Functions may have failed (the rule's retries
/// and dead-letter queue exhausted, or the rule being replaced). Within the access window the
/// sweep starts an execution itself (one for a request whose first is merely slow ends
/// harmlessly); after it, the request fails: nothing was ever attached, and unlike access ending
/// at its deadline this is our failure, which the requester is told of.
async fn restart_stalled(
    deps: &LifecycleDeps<'_>,
    now: DateTime<Utc>,
    stop: std::time::Instant,
    report: &mut SweepReport,
) -> Result<(), ServiceError> {
    let ids = deps.store.list_awaiting_grant(now - Duration::minutes(GRANT_GRACE_MINUTES), DEADLINE_SCAN).await?;
    for (done, id) in ids.iter().enumerate() {
        if out_of_time(stop, ids.len() - done, &mut report.deadline_deferred) {
            break;
        }
        if let Err(e) = restart_one(deps, id, now, report).await {
            failed(&mut report.item_failures, "restart-lifecycle", id, &e);
        }
    }
    Ok(())
}

/// How many items of each deadline list (grants past their deadline, approvals without a grant,
/// requests never evaluated) one sweep reads, newest first. It works through them until its
/// budget is spent; items that fail for good gather at the old end, behind the newer ones.
pub const DEADLINE_SCAN: u32 = 500;

/// The moment one of `phases` phases still to run must stop by: an equal share of the time left
/// until `stop`.
fn share(stop: std::time::Instant, phases: u32) -> std::time::Instant {
    let now = std::time::Instant::now();
    now + stop.saturating_duration_since(now) / phases.max(1)
}

/// Whether `stop` has passed, with `left` items of a list not handled: they are added to
/// `deferred` (the next sweep lists them again) and logged.
fn out_of_time(stop: std::time::Instant, left: usize, deferred: &mut usize) -> bool {
    if std::time::Instant::now() < stop {
        return false;
    }
    *deferred += left;
    tracing::warn!(deferred = left, "work left for the next sweep: this run's time budget is spent");
    true
}

async fn restart_one(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> Result<(), ServiceError> {
    let Some(request) = deps.store.get(id).await? else { return Ok(()) };
    if request.status != RequestStatus::Approved || request.grant.is_some() {
        return Ok(());
    }
    if request.starts_at.is_some_and(|s| now < s + Duration::minutes(GRANT_GRACE_MINUTES)) {
        // Scheduled: its execution waits for the start; only a start long past without a grant
        // means it was lost. (The store lists it from its start already; this guards any store.)
        return Ok(());
    }
    if now < deadline_of(&request) {
        let execution = deps.executions.start(id).await?;
        tracing::warn!(request_id = %id, %execution, "approved without a grant after the grace period: started its lifecycle");
        report.restarted.push(id.to_string());
        return Ok(());
    }
    // "Nothing granted" is only what the table says: a Grant task may have put the policy (or
    // the requester fetched credentials and opened a session) and then failed to record it. So
    // this ends access like any expiry, policy and sessions first, before the request is Failed.
    let ended = teardown_request(
        deps,
        request,
        RequestStatus::Failed,
        SWEEPER_ACTOR,
        "the access window ended before the grant was recorded (its lifecycle never completed)",
        now,
    )
    .await?;
    if ended.status == RequestStatus::Failed {
        tracing::warn!(request_id = %id, detached = ended.detached, sessions = ended.terminated_sessions.len(), "approved, but its window ended without a recorded grant: access ended, Failed");
        report.failed.push(id.to_string());
    }
    Ok(())
}

/// Requests whose evaluation never decided (its function failed for good, or its event was
/// lost): `Failed`, with a reason the requester is told, so that nothing waits forever.
async fn fail_stuck_submitted(
    deps: &LifecycleDeps<'_>,
    now: DateTime<Utc>,
    stop: std::time::Instant,
    report: &mut SweepReport,
) -> Result<(), ServiceError> {
    let ids = deps.store.list_submitted_before(now - Duration::minutes(STUCK_SUBMITTED_MINUTES), DEADLINE_SCAN).await?;
    for (done, id) in ids.iter().enumerate() {
        if out_of_time(stop, ids.len() - done, &mut report.deadline_deferred) {
            break;
        }
        let one = async {
            let Some(request) = deps.store.get(id).await? else { return Ok(false) };
            if request.status != RequestStatus::Submitted {
                return Ok(false);
            }
            let change = Transition::status_change(
                &request,
                RequestStatus::Failed,
                SWEEPER_ACTOR,
                format!(
                    "the request was never evaluated (no decision within {STUCK_SUBMITTED_MINUTES} minutes); submit it again"
                ),
                now,
            );
            Ok::<_, ServiceError>(matches!(write(deps.store, &change).await?, Attempt::Done(_)))
        };
        match one.await {
            Ok(true) => {
                tracing::warn!(request_id = %id, "never evaluated: Failed");
                report.stuck_failed.push(id.to_string());
            }
            Ok(false) => {}
            Err(e) => failed(&mut report.item_failures, "fail-stuck-submitted", id, &e),
        }
    }
    Ok(())
}

/// What one reconciliation sweep fixed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Requests past their deadline whose grant was still attached: torn down and expired.
    pub expired: Vec<String>,
    /// `jit-` policies whose request is no longer live: deleted.
    pub orphans_removed: Vec<String>,
    /// Approved requests still without a grant after the grace period: their lifecycle was
    /// started by the sweep.
    pub restarted: Vec<String>,
    /// Approved requests whose window ended without a grant: `Failed`.
    pub failed: Vec<String>,
    /// Revokes' denies on the session role, removed once no credentials they cover can be used.
    /// Expected work, not drift: not counted in `fixed`.
    pub denies_removed: Vec<String>,
    /// Denies still on the session role after this sweep: each takes about 200 of the role's
    /// 10,240 inline-policy characters (the template alarms on this). The most on any one
    /// account's role, since the budget is per role.
    pub denies_outstanding: usize,
    /// Accounts whose session role could not be read (their teardown role is missing or
    /// refused): their denies stay until a later sweep reaches them.
    pub accounts_unreachable: Vec<String>,
    /// Requests that had ended but still had access left (a policy, a missing deny, live
    /// sessions): removed. A lost `Revoked` event or a teardown that failed for good.
    pub ended_cleaned: Vec<String>,
    /// Requests never evaluated: `Failed`.
    pub stuck_failed: Vec<String>,
    /// Recently ended requests not re-checked by this run for lack of time (the oldest: each is
    /// re-checked every run for two hours, the newest first). Not drift.
    pub ended_deferred: usize,
    /// Items of the deadline lists (grants past their deadline, approvals without a grant,
    /// requests never evaluated) this run had no time left for: the next sweep lists them again.
    pub deadline_deferred: usize,
    /// Items the sweep could not handle (recorded, alarmed, skipped).
    pub item_failures: Vec<ItemFailure>,
}

impl SweepReport {
    /// How many things the sweep had to fix. Each is drift the lifecycle should have prevented,
    /// so the sweeper logs this and the template alarms on it.
    pub fn fixed(&self) -> usize {
        self.expired.len()
            + self.orphans_removed.len()
            + self.restarted.len()
            + self.failed.len()
            + self.ended_cleaned.len()
            + self.stuck_failed.len()
    }
}

/// Ends access the lifecycle should have ended: torn down and `Expired`, by the sweeper.
async fn expire_found(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<TeardownOutput, ServiceError> {
    let request = load(deps.store, id).await?;
    if request.status == RequestStatus::Approved && now < deadline_of(&request) {
        // The index listed it before it saw an extension move the deadline: not due yet.
        return Ok(TeardownOutput {
            request_id: id.clone(),
            status: request.status,
            detached: false,
            terminated_sessions: vec![],
        });
    }
    let reason = "the access window ended (found by the sweeper)";
    teardown_request(deps, request, RequestStatus::Expired, SWEEPER_ACTOR, reason, now).await
}

/// How long a sweep runs its open-ended work, of the sweeper's 60 s: re-checking recently ended
/// requests grows with traffic (each ended request is re-checked every run for two hours), so it
/// stops here, in time for the rest and for the record the alarms read.
pub const SWEEP_BUDGET: std::time::Duration = std::time::Duration::from_secs(35);

/// `reconcile_within` the sweeper's budget, counted from now.
pub async fn reconcile(deps: &LifecycleDeps<'_>, now: DateTime<Utc>) -> Result<SweepReport, ServiceError> {
    reconcile_within(deps, now, std::time::Instant::now() + SWEEP_BUDGET).await
}

/// Until `stop` (wall-clock; each of the four timed phases gets a fair share of what is left):
/// grants past their deadline torn down, stuck submissions, stalled approvals (each list newest
/// first); spent and superseded denies removed; the re-checks of recently ended requests, newest
/// first; spent denies again (counted after the re-checks, which may write one); orphan policies
/// of the principals those requests name. Idempotent, and safe next to
/// expiry and revoke (see `teardown`). Only a failure to list aborts it; an item's failure is
/// recorded.
pub async fn reconcile_within(
    deps: &LifecycleDeps<'_>,
    now: DateTime<Utc>,
    stop: std::time::Instant,
) -> Result<SweepReport, ServiceError> {
    let mut report = SweepReport::default();
    // Four phases share the budget: each gets a fair share of what is left (what one leaves
    // unused goes to the next), so items that fail for good in one cannot starve the others.
    let past_deadline = deps.store.list_grants_past_deadline(now, DEADLINE_SCAN).await?;
    let phase_stop = share(stop, 4);
    for (done, id) in past_deadline.iter().enumerate() {
        if out_of_time(phase_stop, past_deadline.len() - done, &mut report.deadline_deferred) {
            break;
        }
        match expire_found(deps, id, now).await {
            Ok(out) if out.detached || out.status == RequestStatus::Expired => report.expired.push(id.to_string()),
            Ok(_) => {}
            Err(e) => failed(&mut report.item_failures, "expire-grant", id, &e),
        }
    }
    fail_stuck_submitted(deps, now, share(stop, 3), &mut report).await?;
    restart_stalled(deps, now, share(stop, 2), &mut report).await?;
    // Spent and superseded denies go first, so that a re-check that must write a missing deny
    // finds room on the role; the pass after the re-checks counts what stays.
    remove_spent_denies(deps, now, &mut report).await?;
    let mut principals: Vec<GrantPrincipal> = Vec::new();
    let ended = deps.store.list_ended_since(now - Duration::minutes(ENDED_RECHECK_MINUTES), 1000).await?;
    for (done, id) in ended.iter().enumerate() {
        // The oldest are left: every run for two hours re-checks each, newest first.
        if out_of_time(stop, ended.len() - done, &mut report.ended_deferred) {
            break;
        }
        match recheck_ended(deps, id, now, &mut principals).await {
            Ok(out) if out.detached || !out.terminated_sessions.is_empty() => report.ended_cleaned.push(id.to_string()),
            Ok(_) => {}
            Err(e) => failed(&mut report.item_failures, "recheck-ended", id, &e),
        }
    }
    remove_spent_denies(deps, now, &mut report).await?;
    for principal in principals.iter().take_while(|_| std::time::Instant::now() < stop) {
        if let Err(e) = remove_orphans_of(deps, principal, now, &mut report).await {
            failed(&mut report.item_failures, "remove-orphans", format!("{principal:?}"), &e);
        }
    }
    Ok(report)
}

/// `end_remaining` on one recently ended request; notes the principal it was attached to, whose
/// other `jit-` policies the orphan pass then checks.
async fn recheck_ended(
    deps: &LifecycleDeps<'_>,
    id: &RequestId,
    now: DateTime<Utc>,
    principals: &mut Vec<GrantPrincipal>,
) -> Result<TeardownOutput, ServiceError> {
    let out = end_remaining(deps, id, true, now).await?;
    if let Some(request) = deps.store.get(id).await? {
        if let Some(principal) = attached_to(&request) {
            if !principals.contains(&principal) {
                principals.push(principal);
            }
        }
    }
    Ok(out)
}

/// Removes the `jit-` policies on `principal` whose request is not live (a grant put back by a
/// retried task after its request ended, or one whose request is gone from the table).
async fn remove_orphans_of(
    deps: &LifecycleDeps<'_>,
    principal: &GrantPrincipal,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> Result<(), ServiceError> {
    for name in deps.granter.list_policies(principal).await? {
        let Some(id) = grant::request_of_policy(&name) else { continue };
        let live = match deps.store.get(&id).await? {
            Some(r) => r.status == RequestStatus::Approved && now < deadline_of(&r),
            None => false,
        };
        if live {
            continue;
        }
        if deps.granter.delete_policy(principal, &name).await? {
            tracing::warn!(policy = %name, "removed a jit- policy with no live request");
            report.orphans_removed.push(name);
        }
        if let Some(r) = deps.store.get(&id).await? {
            if r.status == RequestStatus::Approved {
                expire_found(deps, &id, now).await?;
            }
        }
    }
    Ok(())
}

/// A revoke's deny (`jit-deny-<id>` on the session role) must stay while credentials issued for
/// the request may still be used, and no longer: each one takes space in the role's inline
/// policy budget. A request still `Approved` keeps its deny (its revoke has not been recorded
/// yet and will be retried).
async fn remove_spent_denies(
    deps: &LifecycleDeps<'_>,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> Result<(), ServiceError> {
    // Counted afresh on each pass: the last one says what stays.
    report.denies_outstanding = 0;
    for account in deps.settings.accounts() {
        let role = crate::ports::GrantPrincipal::SessionRole {
            account: account.clone(),
            name: deps.settings.session_role_name.clone(),
        };
        // One unreachable member account must not keep the others' denies in place.
        match remove_spent_denies_of(deps, &role, now, report).await {
            Ok(outstanding) => report.denies_outstanding = report.denies_outstanding.max(outstanding),
            Err(e) => {
                tracing::error!(account = %account, error = %e, "could not sweep the session role's denies");
                if !report.accounts_unreachable.contains(&account) {
                    report.accounts_unreachable.push(account);
                }
            }
        }
    }
    Ok(())
}

/// Removes the spent denies on one session role; returns how many one-request denies stay. An
/// `issued-before` deny is spent once every credential issued before it has expired, or once a
/// later one (which denies all it does) is there; a one-request deny also once the latest
/// `issued-before` deny covers its request.
async fn remove_spent_denies_of(
    deps: &LifecycleDeps<'_>,
    role: &crate::ports::GrantPrincipal,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> Result<usize, ServiceError> {
    let policies = deps.granter.list_policies(role).await?;
    let latest_before = policies.iter().filter_map(|n| credentials::issued_before_of(n)).max();
    let mut outstanding = 0;
    for name in policies {
        let spent = if let Some(before) = credentials::issued_before_of(&name) {
            credentials::issued_before_is_spent(before, now) || latest_before.is_some_and(|latest| before < latest)
        } else if let Some(id) = credentials::request_of_deny(&name) {
            match deps.store.get(&id).await? {
                Some(r) => {
                    r.status != RequestStatus::Approved
                        && (!credentials::may_still_be_used(&r, now)
                            || latest_before.is_some_and(|b| credentials::covered_by_issued_before(&r, b)))
                }
                None => true,
            }
        } else {
            continue;
        };
        if !spent {
            outstanding += usize::from(credentials::request_of_deny(&name).is_some());
            continue;
        }
        if deps.granter.delete_policy(role, &name).await? {
            tracing::info!(policy = %name, "removed a revoke's deny: no credentials it covers can be used any more");
            report.denies_removed.push(name);
        }
    }
    Ok(outstanding)
}

/// One scheduled sweep: pending expiry, then grant reconciliation. What it fixed is logged as one
/// `sweep done` record (the template's SweeperFixes metric filter sums its `fixed` field).
pub async fn sweep(deps: &LifecycleDeps<'_>, now: DateTime<Utc>) -> Result<SweepOutcome, ServiceError> {
    let stop = std::time::Instant::now() + SWEEP_BUDGET;
    let mut failures = Vec::new();
    let pending_expired = expire_overdue(deps.store, now, &mut failures).await?;
    let mut grants = reconcile_within(deps, now, stop).await?;
    let nudged = nudge_waiting(deps.store, now, &mut failures).await?;
    grants.item_failures.splice(0..0, failures);
    // Not fixed by the sweep: people must review. Every sweep reports them again, so the alarm
    // stays raised until each is reviewed.
    let unreviewed = deps.store.list_reviews_past_due(now, 100).await?;
    for id in &unreviewed {
        tracing::warn!(request_id = %id, "a break-glass grant is past its review's due time, unreviewed");
    }
    let outcome = SweepOutcome {
        pending_expired: pending_expired.iter().map(ToString::to_string).collect(),
        nudged: nudged.iter().map(ToString::to_string).collect(),
        unreviewed_break_glass: unreviewed.iter().map(ToString::to_string).collect(),
        grants,
    };
    outcome.log();
    Ok(outcome)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepOutcome {
    pub pending_expired: Vec<String>,
    /// Pending requests whose level got its reminder or escalation notice.
    pub nudged: Vec<String>,
    /// Break-glass grants whose review is overdue.
    pub unreviewed_break_glass: Vec<String>,
    pub grants: SweepReport,
}

impl SweepOutcome {
    /// The `sweep done` record CloudWatch alarms on.
    pub fn log(&self) {
        let report = &self.grants;
        tracing::info!(
            pending_expired = self.pending_expired.len(),
            nudged = self.nudged.len(),
            // The template's BreakGlassUnreviewed metric filter reads this field.
            unreviewed_break_glass = self.unreviewed_break_glass.len(),
            grants_expired = report.expired.len(),
            orphans_removed = report.orphans_removed.len(),
            restarted = report.restarted.len(),
            failed = report.failed.len(),
            denies_removed = report.denies_removed.len(),
            // The template's DeniesOutstanding metric filter reads this field.
            denies_outstanding = report.denies_outstanding,
            accounts_unreachable = report.accounts_unreachable.len(),
            ended_cleaned = report.ended_cleaned.len(),
            stuck_failed = report.stuck_failed.len(),
            ended_deferred = report.ended_deferred,
            deadline_deferred = report.deadline_deferred,
            // The template's SweepItemFailures metric filter reads this field.
            item_failures = report.item_failures.len(),
            // The template's SweeperFixes metric filter sums this field.
            fixed = report.fixed(),
            "sweep done"
        );
    }
}
