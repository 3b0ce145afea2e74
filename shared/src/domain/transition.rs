//! One change to a stored request: a status change on the status machine's graph, or one of the
//! two in-place changes (an approval on a `Pending` request, a grant record on an `Approved`
//! one). `check` is the only place these rules live; a store turns a checked change into its
//! conditions and items, and `after` / `audit` / `change_record` say what it stores.

use chrono::{DateTime, Utc};

use crate::domain::approval::{ApprovalEntry, ApprovalProgress};
use crate::domain::credentials::{CredentialsIssue, CredentialsRecord};
use crate::domain::events::ChangeRecord;
use crate::domain::grant::GrantRecord;
use crate::domain::ids::RequestId;
use crate::domain::request::{AccessRequest, AuditRecord, Decision};
use crate::domain::status::{RequestStatus, TransitionError};

/// A change to apply only if the stored request is still `basis` (same status, version and own
/// fields): the caller read (or was handed) `basis` and decided on it.
///
/// Leaving `Pending` is additionally conditioned on the stored approval deadline: to `Expired`
/// only once it has passed, anywhere else only before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub to: RequestStatus,
    pub decision: Option<Decision>,
    /// The new approval progress (set when entering `Pending` and with every decision).
    pub progress: Option<ApprovalProgress>,
    /// The approval or rejection this change records.
    pub approval: Option<ApprovalEntry>,
    pub level_completed: Option<u8>,
    /// The grant as it stands after this change (attached, or detached on teardown).
    pub grant: Option<GrantRecord>,
    /// Credentials issued by this change (credentials mode).
    pub credentials: Option<CredentialsIssue>,
    /// The seal of the approval this change makes (`AccessRequest::approval_seal`).
    pub approval_seal: Option<String>,
    /// The duration the decision sets on a request that asked for none
    /// (`AccessRequest::duration_from_policy`); only when leaving `Submitted`.
    pub duration: Option<crate::domain::ids::DurationMinutes>,
    /// A reminder or escalation notice recorded on a `Pending` request (in place; `progress`
    /// carries it in `nudges`).
    pub nudge: Option<crate::domain::approval::Nudge>,
    /// An approved extension applied to the grant (in place, with `grant` carrying it).
    pub extension: Option<crate::domain::grant::AppliedExtension>,
    /// A break-glass review opened (with the grant) or decided (in place, in any status).
    pub review: Option<crate::domain::break_glass::Review>,
    /// A status change of another request written in the same transaction, on the same terms:
    /// an extension ends (`Expired`, applied) in the write that applies it, so nobody can revoke
    /// it in between and believe the extra time gone.
    pub companion: Option<Box<Transition>>,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    /// The request as the caller decided on it. Every write bumps the version, so if the
    /// conditional write succeeds, `after()` is exactly what is stored: the store needs no read.
    pub basis: AccessRequest,
}

impl Transition {
    /// A plain status change with no approval bookkeeping.
    pub fn status_change(
        request: &AccessRequest,
        to: RequestStatus,
        actor: &str,
        reason: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            to,
            decision: None,
            progress: None,
            approval: None,
            level_completed: None,
            grant: None,
            credentials: None,
            approval_seal: None,
            duration: None,
            nudge: None,
            extension: None,
            review: None,
            companion: None,
            actor: actor.to_owned(),
            reason: reason.into(),
            at,
            basis: request.clone(),
        }
    }

    pub fn request_id(&self) -> &RequestId {
        &self.basis.request_id
    }

    pub fn from(&self) -> RequestStatus {
        self.basis.status
    }

    pub fn expected_version(&self) -> u32 {
        self.basis.version
    }

    pub fn is_in_place(&self) -> bool {
        self.from() == self.to
    }

    /// An approval that leaves the request `Pending`, or a grant or an issuance of credentials
    /// recorded on an `Approved` request, stays in place; anything else must be an edge of the
    /// status graph.
    pub fn check(&self) -> Result<(), TransitionError> {
        if let Some(other) = &self.companion {
            // One companion, of another request, itself a valid change.
            if other.request_id() == self.request_id() || other.companion.is_some() {
                return Err(TransitionError { from: other.from(), to: other.to });
            }
            other.check()?;
        }
        self.check_own()
    }

    fn check_own(&self) -> Result<(), TransitionError> {
        let from = self.from();
        if self.duration.is_some() && (from != RequestStatus::Submitted || !self.basis.duration_from_policy) {
            // Only the decision sets a duration, and only on a request that asked for none.
            return Err(TransitionError { from, to: self.to });
        }
        if self.credentials.is_some() && self.basis.revoke_held_at.is_some() {
            // A revoke holds the request: it issues nothing more.
            return Err(TransitionError { from, to: self.to });
        }
        let approval_in_place = from == RequestStatus::Pending && (self.approval.is_some() || self.nudge.is_some());
        let grant_in_place = from == RequestStatus::Approved && (self.grant.is_some() || self.credentials.is_some());
        if self.is_in_place() && (approval_in_place || grant_in_place) {
            return Ok(());
        }
        // Deciding a break-glass review changes nothing else, whatever the status (access may
        // well have ended by then); only an open review can be decided.
        let review_decided = self.basis.break_glass
            && self.basis.review.as_ref().is_some_and(crate::domain::break_glass::Review::is_open)
            && self.review.as_ref().is_some_and(|r| !r.is_open());
        if self.is_in_place() && review_decided {
            return Ok(());
        }
        if from == RequestStatus::Approved && self.to == RequestStatus::Cancelled {
            // Withdrawing an approval is possible only while a scheduled access has not started
            // and nothing was granted yet; once it has, only a revoke ends it.
            let granted = self.basis.grant.as_ref().is_some_and(|g| g.detached_at.is_none());
            if !self.basis.not_started(self.at) || granted {
                return Err(TransitionError { from, to: self.to });
            }
        }
        from.check_transition(self.to)
    }

    /// Whether this change records a grant that is attached now (the by-deadline index needs it).
    pub fn attaches_grant(&self) -> bool {
        self.is_in_place()
            && self.from() == RequestStatus::Approved
            && self.grant.as_ref().is_some_and(|g| g.detached_at.is_none())
    }

    /// The request as stored once the write succeeds.
    pub fn after(&self) -> AccessRequest {
        let b = &self.basis;
        let becomes_approved = self.to == RequestStatus::Approved && b.status != RequestStatus::Approved;
        AccessRequest {
            status: self.to,
            version: b.version + 1,
            updated_at: self.at,
            decision: self.decision.clone().or_else(|| b.decision.clone()),
            progress: self.progress.clone().or_else(|| b.progress.clone()),
            approved_at: if becomes_approved { Some(self.at) } else { b.approved_at },
            grant: self.grant.clone().or_else(|| b.grant.clone()),
            credentials: match &self.credentials {
                Some(issue) => Some(CredentialsRecord::after(b.credentials.as_ref(), issue.clone())),
                None => b.credentials.clone(),
            },
            approval_seal: self.approval_seal.clone().or_else(|| b.approval_seal.clone()),
            duration_minutes: self.duration.unwrap_or(b.duration_minutes),
            review: self.review.clone().or_else(|| b.review.clone()),
            ..b.clone()
        }
    }

    /// The audit record written in the same transaction.
    pub fn audit(&self) -> AuditRecord {
        AuditRecord {
            request_id: self.basis.request_id.clone(),
            version: self.basis.version + 1,
            from: Some(self.from()),
            to: self.to,
            actor: self.actor.clone(),
            at: self.at,
            reason: self.reason.clone(),
            approval: self.approval.clone(),
            level_completed: self.level_completed,
            credentials: self.credentials.clone(),
            nudge: self.nudge,
            extension: self.extension.clone(),
            review: self.review.clone(),
        }
    }

    /// What the audit record carries for the event publisher (the table's stream).
    pub fn change_record(&self) -> ChangeRecord {
        ChangeRecord::of(&self.audit(), self.after())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(status: RequestStatus) -> AccessRequest {
        let env: crate::domain::events::EventEnvelope =
            serde_json::from_str(include_str!("../../../events/request-submitted.json")).unwrap();
        let mut r = env.detail.request().unwrap();
        r.status = status;
        r
    }

    #[test]
    fn a_companion_must_be_another_requests_valid_change() {
        let approved = request(RequestStatus::Approved);
        let mut other = request(RequestStatus::Approved);
        other.request_id =
            crate::domain::ids::RequestId::try_from("req-00000000000000000000000000000001".to_owned()).unwrap();
        let with = |companion: &AccessRequest, to| Transition {
            companion: Some(Box::new(Transition::status_change(companion, to, "t", "t", Utc::now()))),
            ..Transition::status_change(&approved, RequestStatus::Expired, "t", "t", Utc::now())
        };

        assert!(with(&other, RequestStatus::Expired).check().is_ok());
        assert!(with(&approved, RequestStatus::Expired).check().is_err(), "not the same request twice");
        assert!(with(&other, RequestStatus::Pending).check().is_err(), "the companion is checked too");
    }

    #[test]
    fn only_graph_edges_and_the_two_in_place_changes_pass_the_check() {
        let entry: ApprovalEntry = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(include_str!("../../../events/request-approval-recorded.json"))
                .unwrap()["detail"]["approval"]
                .clone(),
        )
        .unwrap();
        let grant: GrantRecord = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(include_str!("../../../events/lifecycle-expire-task.json"))
                .unwrap()["grant"]["request"]["grant"]
                .clone(),
        )
        .unwrap();
        for from in RequestStatus::ALL {
            for to in RequestStatus::ALL {
                let plain = Transition::status_change(&request(from), to, "t", "t", Utc::now());
                // Approved -> Cancelled needs a schedule that has not started (below).
                let cancels_approval = (from, to) == (RequestStatus::Approved, RequestStatus::Cancelled);
                assert_eq!(
                    plain.check().is_ok(),
                    from.successors().contains(&to) && !cancels_approval,
                    "{from} -> {to}"
                );
                let with_approval = Transition { approval: Some(entry.clone()), ..plain.clone() };
                let with_grant = Transition { grant: Some(grant.clone()), ..plain.clone() };
                let edge = from.successors().contains(&to) && !cancels_approval;
                assert_eq!(
                    with_approval.check().is_ok(),
                    edge || (from == to && from == RequestStatus::Pending),
                    "{from} -> {to} with an approval"
                );
                assert_eq!(
                    with_grant.check().is_ok(),
                    edge || (from == to && from == RequestStatus::Approved),
                    "{from} -> {to} with a grant"
                );
            }
        }
    }

    #[test]
    fn an_approval_is_withdrawn_only_while_its_scheduled_access_has_not_started() {
        let now = Utc::now();
        let scheduled = |starts_in: i64| AccessRequest {
            starts_at: Some(now + chrono::Duration::minutes(starts_in)),
            ..request(RequestStatus::Approved)
        };
        let cancel = |r: &AccessRequest| {
            Transition::status_change(r, RequestStatus::Cancelled, "t", "plans changed", now).check().is_ok()
        };
        assert!(cancel(&scheduled(30)), "before its start");
        assert!(!cancel(&scheduled(0)), "at its start");
        assert!(!cancel(&scheduled(-5)), "after its start");
        assert!(!cancel(&request(RequestStatus::Approved)), "unscheduled");
    }

    #[test]
    fn after_bumps_the_version_and_keeps_what_the_change_does_not_set() {
        let basis = request(RequestStatus::Submitted);
        let now = Utc::now();
        let t = Transition::status_change(&basis, RequestStatus::Approved, "system:evaluator", "auto", now);
        let after = t.after();
        assert_eq!(
            (after.status, after.version, after.approved_at, after.updated_at),
            (RequestStatus::Approved, basis.version + 1, Some(now), now)
        );
        assert_eq!(
            (after.requester, after.node_id, after.created_at),
            (basis.requester.clone(), basis.node_id.clone(), basis.created_at)
        );
        let audit = t.audit();
        assert_eq!(
            (audit.from, audit.to, audit.version),
            (Some(RequestStatus::Submitted), RequestStatus::Approved, basis.version + 1)
        );
        let record = t.change_record();
        assert_eq!(record.events().iter().map(|e| e.detail_type()).collect::<Vec<_>>(), ["Access Request Approved"]);
    }
}
