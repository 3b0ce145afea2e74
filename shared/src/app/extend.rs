//! Applying an approved extension (`submit::extend` made it, evaluation and approvals decided
//! it like any request): the Grant task of the extension's own execution moves the deadline of
//! the request it extends, in IAM (attach mode: the policy put again with the new deadline) and
//! in the table (credentials mode: the next credentials end at the new deadline). The same
//! conditional write hands the grant to the extension's execution, which then stops the one that
//! held it and waits for the new deadline in its place: exactly one execution ever waits on a
//! grant, and a stale one whose Expire still ran finds the grant taken over and leaves it
//! (`lifecycle::teardown_request`). The extension request itself grants nothing and ends in
//! that same write: `Expired`, saying where it went, so once applied it can no longer be revoked
//! as if the extra time went with it (revoking the original ends the access).

use chrono::{DateTime, Duration, Utc};

use crate::app::common::{load, until_written, write, Attempt};
use crate::app::error::ServiceError;
use crate::app::lifecycle::{attached_to, held_by_another, GrantOutput, LifecycleDeps, LIFECYCLE_ACTOR};
use crate::domain::grant::{self, AppliedExtension, GrantMode};
use crate::domain::request::AccessRequest;
use crate::domain::status::RequestStatus;
use crate::ports::{GrantWriteError, Transition};

/// Moves the extended request's deadline by the extension's minutes (once, however often this
/// runs), takes its grant over for `execution`, and ends the extension. Returns the extended
/// request's grant (the execution waits for its new deadline); when that request has ended
/// meanwhile, the extension fails, nothing changes and nothing is granted.
pub async fn apply(
    deps: &LifecycleDeps<'_>,
    extension: &AccessRequest,
    execution: Option<&str>,
    now: DateTime<Utc>,
) -> Result<GrantOutput, ServiceError> {
    let Some(of) = extension.extends.clone() else {
        return Err(ServiceError::Internal(format!("{} extends nothing", extension.request_id)));
    };
    let applied = until_written!("applying an extension", |attempt| {
        let original = load(deps.store, &of).await?;
        if let Some(done) = applied_step(&original, extension) {
            return Ok(Attempt::Done(Ok((done, original.clone()))));
        }
        // A revoke of the extension since it was read wins: nothing is applied.
        let extension = if attempt == 0 { extension.clone() } else { load(deps.store, &extension.request_id).await? };
        if extension.status != RequestStatus::Approved {
            return Ok(Attempt::Done(Err(format!(
                "{} is {} and was not applied; nothing changed",
                extension.request_id, extension.status
            ))));
        }
        let live = original.status == RequestStatus::Approved
            && original.requester == extension.requester
            && original.node_id == extension.node_id
            && original.grant_mode == extension.grant_mode
            && original.grant.as_ref().is_some_and(|g| g.detached_at.is_none())
            && now < original.access_deadline();
        if !live {
            if original.status.is_terminal() {
                // Ended while this ran: a policy put again by an earlier round must go.
                if let Some(principal) = attached_to(&original) {
                    deps.granter.delete_policy(&principal, &grant::policy_name(&original.request_id)).await?;
                }
            }
            return Ok(Attempt::Done(Err(format!(
                "{of} ended before the extension could be applied; nothing changed"
            ))));
        }
        let Some(record) = original.grant.clone() else {
            return Ok(Attempt::Done(Err(format!("{of} has no grant to extend; nothing changed"))));
        };
        let from = original.access_deadline();
        let to = from + Duration::minutes(i64::from(extension.duration_minutes.get()));
        // The extension was decided for the total it would make then; other extensions applied
        // since must not stack it past what its decision allows.
        let allowed = extension.decision.as_ref().and_then(|d| d.max_duration_minutes).unwrap_or(0);
        if (to - original.access_start()).num_minutes() > i64::from(allowed) {
            tracing::warn!(request_id = %of, extension = %extension.request_id, allowed, "extension refused: the total would exceed what its decision allows");
            return Ok(Attempt::Done(Err(format!(
                "other extensions applied since it was decided: {of} would last more than the {allowed} minutes its decision allows; nothing changed"
            ))));
        }
        let step = AppliedExtension {
            request_id: extension.request_id.clone(),
            minutes: extension.duration_minutes.get(),
            from,
            to,
            at: now,
            replaced_execution: record.execution.clone().filter(|held| Some(held.as_str()) != execution),
        };
        let mut extensions = record.extensions.clone();
        extensions.push(step.clone());
        let change = Transition {
            grant: Some(grant::GrantRecord {
                deadline: to,
                extensions,
                execution: execution.map(str::to_owned).or(record.execution.clone()),
                ..record
            }),
            extension: Some(step.clone()),
            companion: Some(Box::new(Transition::status_change(
                &extension,
                RequestStatus::Expired,
                LIFECYCLE_ACTOR,
                format!("applied to {of}: its access now ends at {}", grant::deadline_text(&to)),
                now,
            ))),
            ..Transition::status_change(
                &original,
                RequestStatus::Approved,
                LIFECYCLE_ACTOR,
                format!(
                    "extended by {} minutes until {} ({}: {})",
                    extension.duration_minutes.get(),
                    grant::deadline_text(&to),
                    extension.request_id,
                    extension.reason.as_str()
                ),
                now,
            )
        };
        Ok(match write(deps.store, &change).await? {
            Attempt::Done(updated) => {
                tracing::info!(request_id = %of, extension = %extension.request_id, deadline = %to, "extension applied");
                Attempt::Done(Ok((step, updated)))
            }
            Attempt::Conflict => Attempt::Conflict,
        })
    })?;
    match applied {
        Ok((step, original)) => waiting_on(deps, &step, original, extension, execution, now).await,
        Err(why) => {
            // Not applied: the extension fails (unless it already ended, say revoked).
            until_written!("failing an extension", |attempt| {
                let current =
                    if attempt == 0 { extension.clone() } else { load(deps.store, &extension.request_id).await? };
                if current.status != RequestStatus::Approved {
                    return Ok(Attempt::Done(()));
                }
                let change =
                    Transition::status_change(&current, RequestStatus::Failed, LIFECYCLE_ACTOR, why.clone(), now);
                Ok(match write(deps.store, &change).await? {
                    Attempt::Done(_) => Attempt::Done(()),
                    Attempt::Conflict => Attempt::Conflict,
                })
            })?;
            Ok(GrantOutput::new(false, &now, extension.clone()))
        }
    }
}

/// The Grant task of an extension that has already ended: when the write that applied it
/// succeeded but the task did not finish (its reply lost, or the take-over failed), the retry
/// completes the take-over and waits for the extended deadline; otherwise nothing is granted.
pub async fn resume(
    deps: &LifecycleDeps<'_>,
    extension: &AccessRequest,
    execution: Option<&str>,
    now: DateTime<Utc>,
) -> Result<GrantOutput, ServiceError> {
    let nothing = GrantOutput::new(false, &now, extension.clone());
    let Some(of) = &extension.extends else { return Ok(nothing) };
    let original = load(deps.store, of).await?;
    match applied_step(&original, extension) {
        Some(step) if original.status == RequestStatus::Approved => {
            waiting_on(deps, &step, original, extension, execution, now).await
        }
        _ => Ok(nothing),
    }
}

/// The step `extension` made on `original`, once applied.
fn applied_step(original: &AccessRequest, extension: &AccessRequest) -> Option<AppliedExtension> {
    original.grant.as_ref()?.extensions.iter().find(|x| x.request_id == extension.request_id).cloned()
}

/// After the extension is applied: the take-over, then the extended request's grant for this
/// execution to wait on (unless a later extension's execution has taken it over meanwhile).
async fn waiting_on(
    deps: &LifecycleDeps<'_>,
    step: &AppliedExtension,
    original: AccessRequest,
    extension: &AccessRequest,
    execution: Option<&str>,
    now: DateTime<Utc>,
) -> Result<GrantOutput, ServiceError> {
    take_over(deps, step, &original, execution).await?;
    Ok(if held_by_another(execution, &original) {
        GrantOutput::new(false, &now, extension.clone())
    } else {
        GrantOutput::new(true, &original.access_deadline(), original)
    })
}

/// After the write that moved the deadline: the execution that held the grant stops (it would
/// otherwise expire it at the old deadline), and in attach mode the policy is put again with the
/// stored deadline (after the stop, so that a removal by a stale Expire is undone). Idempotent:
/// a retried task does it again.
async fn take_over(
    deps: &LifecycleDeps<'_>,
    step: &AppliedExtension,
    original: &AccessRequest,
    execution: Option<&str>,
) -> Result<(), ServiceError> {
    if let Some(previous) = step.replaced_execution.as_deref().filter(|p| Some(*p) != execution) {
        deps.executions.stop(previous, "extended").await?;
    }
    if held_by_another(execution, original) {
        return Ok(());
    }
    put_back(deps, original).await
}

/// Puts an extended attach-mode grant's policy again with the stored deadline: after a takeover,
/// and after a stale expiry that removed it before finding the grant taken over.
pub(crate) async fn put_back(deps: &LifecycleDeps<'_>, original: &AccessRequest) -> Result<(), ServiceError> {
    if original.grant_mode != GrantMode::Attach {
        return Ok(());
    }
    let (Some(principal), Some(record)) = (attached_to(original), original.grant.as_ref()) else { return Ok(()) };
    let document = grant::build(deps.settings, &record.target, &original.node_id, &original.access_deadline(), 0)
        .map_err(|refusal| ServiceError::Internal(format!("extending the grant policy: {refusal}")))?;
    match deps.granter.put_policy(&principal, &record.policy_name, &document).await {
        Ok(()) => {}
        Err(GrantWriteError::Port(e)) => return Err(e.into()),
        Err(e) => return Err(ServiceError::Internal(format!("extending the grant policy: {e}"))),
    }
    // A revoke that landed since the write has already removed the policy: the put above must
    // not outlive it.
    if load(deps.store, &original.request_id).await?.status != RequestStatus::Approved {
        deps.granter.delete_policy(&principal, &record.policy_name).await?;
    }
    Ok(())
}
