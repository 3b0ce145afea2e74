//! EventBridge events on the project's own bus, `source` `jit-node-access`, `detail` a
//! `StatusEvent`. Samples live in `events/`. Detail types:
//!
//! - `Access Request <Status>` for every status change (`Access Request Approved`, ...);
//!   a rejection's event carries the rejecting `approval` entry.
//! - `Access Request Approval Recorded` for every approval that counted.
//! - `Access Request Level Completed` when an approval completes a level (`levelCompleted`).
//! - `Access Request Credentials Issued` for every issuance of credentials (`credentials`: the
//!   access key id, role and expiration, never the secret).
//! - `Access Request Approval Reminder` when a level waited its `remindAfterMinutes`, and
//!   `Access Request Level Escalated` when it waited its `escalateAfterMinutes` (`nudge`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::approval::{ApprovalEntry, ApprovalProgress, Verdict};
use crate::domain::credentials::CredentialsIssue;
use crate::domain::grant::GrantMode;
use crate::domain::grant::GrantRecord;
use crate::domain::ids::{NodeId, RequestId};
use crate::domain::principal::CallerArn;
use crate::domain::request::{AccessRequest, AuditRecord, Decision};
use crate::domain::status::RequestStatus;

pub const EVENT_SOURCE: &str = "jit-node-access";
pub const SCHEMA_VERSION: u32 = 1;

pub fn detail_type(status: RequestStatus) -> String {
    format!("Access Request {status}")
}

pub const APPROVAL_RECORDED: &str = "Access Request Approval Recorded";
pub const LEVEL_COMPLETED: &str = "Access Request Level Completed";
pub const CREDENTIALS_ISSUED: &str = "Access Request Credentials Issued";
pub const APPROVAL_REMINDER: &str = "Access Request Approval Reminder";
pub const LEVEL_ESCALATED: &str = "Access Request Level Escalated";
pub const ACCESS_EXTENDED: &str = "Access Request Extended";
pub const BREAK_GLASS_REVIEWED: &str = "Access Request Break-Glass Reviewed";

/// What an event reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    #[default]
    StatusChanged,
    ApprovalRecorded,
    LevelCompleted,
    CredentialsIssued,
    ApprovalReminder,
    LevelEscalated,
    /// An approved extension moved the deadline of this (`Approved`) request.
    Extended,
    /// A break-glass grant's review was decided (`review` says how).
    BreakGlassReviewed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    pub schema_version: u32,
    pub request_id: RequestId,
    pub status: RequestStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<RequestStatus>,
    pub requester: CallerArn,
    pub node_id: NodeId,
    pub reason: String,
    pub duration_minutes: u32,
    /// No duration was asked for (`AccessRequest::duration_from_policy`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duration_from_policy: bool,
    /// Who made the change: a principal ARN or `system:<component>`.
    pub actor: String,
    pub at: DateTime<Utc>,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default)]
    pub kind: EventKind,
    /// The approval or rejection behind this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_completed: Option<u8>,
    /// Approval progress (current level, deadline, decisions so far) of manual requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ApprovalProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantRecord>,
    /// How access is (or would be) given.
    #[serde(default = "GrantMode::stored_default")]
    pub grant_mode: GrantMode,
    /// The credentials issued (`Credentials Issued` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsIssue>,
    /// The reminder or escalation (`Approval Reminder`, `Level Escalated` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge: Option<crate::domain::approval::Nudge>,
    /// The applied extension (`Access Request Extended` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<crate::domain::grant::AppliedExtension>,
    /// Scheduled access: when it starts (`AccessRequest::starts_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// An extension: the request it extends (`AccessRequest::extends`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<RequestId>,
    /// A break-glass request (`AccessRequest::break_glass`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// Its review (`AccessRequest::review`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<crate::domain::break_glass::Review>,
}

impl StatusEvent {
    pub fn for_request(request: &AccessRequest, previous: Option<RequestStatus>, actor: &str) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            request_id: request.request_id.clone(),
            status: request.status,
            previous_status: previous,
            requester: request.requester.clone(),
            node_id: request.node_id.clone(),
            reason: request.reason.as_str().to_owned(),
            duration_minutes: request.duration_minutes.get(),
            duration_from_policy: request.duration_from_policy,
            actor: actor.to_owned(),
            at: request.updated_at,
            version: request.version,
            decision: request.decision.clone(),
            kind: EventKind::StatusChanged,
            approval: None,
            level_completed: None,
            progress: request.progress.clone(),
            grant: request.grant.clone(),
            grant_mode: request.grant_mode,
            credentials: None,
            nudge: None,
            extension: None,
            starts_at: request.starts_at,
            extends: request.extends.clone(),
            break_glass: request.break_glass,
            review: request.review.clone(),
        }
    }

    /// The events one stored change produces: the recorded approval, the completed level, the
    /// issued credentials and the status change, in that order, each only when it happened.
    pub fn for_change(
        request: &AccessRequest,
        previous: Option<RequestStatus>,
        actor: &str,
        approval: Option<&ApprovalEntry>,
        level_completed: Option<u8>,
        credentials: Option<&CredentialsIssue>,
    ) -> Vec<Self> {
        let base = Self { approval: approval.cloned(), ..Self::for_request(request, previous, actor) };
        let mut events = Vec::new();
        if let Some(issue) = credentials {
            events.push(Self { kind: EventKind::CredentialsIssued, credentials: Some(issue.clone()), ..base.clone() });
        }
        if approval.is_some_and(|a| a.verdict == Verdict::Approve) {
            events.push(Self { kind: EventKind::ApprovalRecorded, ..base.clone() });
        }
        if let Some(level) = level_completed {
            events.push(Self { kind: EventKind::LevelCompleted, level_completed: Some(level), ..base.clone() });
        }
        if Some(request.status) != previous {
            events.push(Self { kind: EventKind::StatusChanged, ..base });
        }
        events
    }

    /// The request as this event describes it (without its audit trail). Fails only on a
    /// detail whose fields do not make a valid request (a reason too long, say).
    pub fn request(&self) -> Option<AccessRequest> {
        Some(AccessRequest {
            request_id: self.request_id.clone(),
            requester: self.requester.clone(),
            node_id: self.node_id.clone(),
            reason: self.reason.clone().try_into().ok()?,
            duration_minutes: self.duration_minutes.try_into().ok()?,
            duration_from_policy: self.duration_from_policy,
            status: self.status,
            created_at: self.at,
            updated_at: self.at,
            version: self.version,
            decision: self.decision.clone(),
            progress: self.progress.clone(),
            approved_at: None,
            grant: self.grant.clone(),
            grant_mode: self.grant_mode,
            credentials: None,
            approval_seal: None,
            starts_at: self.starts_at,
            extends: self.extends.clone(),
            break_glass: self.break_glass,
            review: self.review.clone(),
            revoke_held_at: None,
        })
    }

    pub fn detail_type(&self) -> String {
        match self.kind {
            EventKind::StatusChanged => detail_type(self.status),
            EventKind::ApprovalRecorded => APPROVAL_RECORDED.to_owned(),
            EventKind::LevelCompleted => LEVEL_COMPLETED.to_owned(),
            EventKind::CredentialsIssued => CREDENTIALS_ISSUED.to_owned(),
            EventKind::ApprovalReminder => APPROVAL_REMINDER.to_owned(),
            EventKind::LevelEscalated => LEVEL_ESCALATED.to_owned(),
            EventKind::Extended => ACCESS_EXTENDED.to_owned(),
            EventKind::BreakGlassReviewed => BREAK_GLASS_REVIEWED.to_owned(),
        }
    }
}

/// What an audit record carries for the event publisher: the request as stored by the change
/// and what the change recorded. The table's stream delivers it once the transaction commits,
/// whatever happens to the function that wrote it, so every change becomes its events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecord {
    pub request: AccessRequest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<RequestStatus>,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_completed: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsIssue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge: Option<crate::domain::approval::Nudge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<crate::domain::grant::AppliedExtension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<crate::domain::break_glass::Review>,
}

impl ChangeRecord {
    pub fn of(audit: &AuditRecord, request: AccessRequest) -> Self {
        Self {
            request,
            previous: audit.from,
            actor: audit.actor.clone(),
            approval: audit.approval.clone(),
            level_completed: audit.level_completed,
            credentials: audit.credentials.clone(),
            nudge: audit.nudge,
            extension: audit.extension.clone(),
            review: audit.review.clone(),
        }
    }

    /// The events this change produces, in order (see `StatusEvent::for_change`); none for a
    /// grant recorded in place.
    pub fn events(&self) -> Vec<StatusEvent> {
        let mut events = StatusEvent::for_change(
            &self.request,
            self.previous,
            &self.actor,
            self.approval.as_ref(),
            self.level_completed,
            self.credentials.as_ref(),
        );
        if let Some(nudge) = self.nudge {
            let kind = match nudge.kind {
                crate::domain::approval::NudgeKind::Reminder => EventKind::ApprovalReminder,
                crate::domain::approval::NudgeKind::Escalation => EventKind::LevelEscalated,
            };
            events.push(StatusEvent {
                kind,
                nudge: Some(nudge),
                ..StatusEvent::for_request(&self.request, self.previous, &self.actor)
            });
        }
        if self.review.as_ref().is_some_and(|r| !r.is_open()) {
            events.push(StatusEvent {
                kind: EventKind::BreakGlassReviewed,
                ..StatusEvent::for_request(&self.request, self.previous, &self.actor)
            });
        }
        if let Some(extension) = &self.extension {
            events.push(StatusEvent {
                kind: EventKind::Extended,
                extension: Some(extension.clone()),
                ..StatusEvent::for_request(&self.request, self.previous, &self.actor)
            });
        }
        events
    }
}

/// The envelope EventBridge delivers to a Lambda target or an SQS queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: StatusEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_event_parses_and_matches_its_detail_type() {
        let samples = [
            (include_str!("../../../events/request-submitted.json"), RequestStatus::Submitted),
            (include_str!("../../../events/request-approved.json"), RequestStatus::Approved),
            (include_str!("../../../events/request-pending.json"), RequestStatus::Pending),
            (include_str!("../../../events/request-failed.json"), RequestStatus::Failed),
            (include_str!("../../../events/request-rejected.json"), RequestStatus::Rejected),
            (include_str!("../../../events/request-approval-recorded.json"), RequestStatus::Pending),
            (include_str!("../../../events/request-level-completed.json"), RequestStatus::Pending),
            (include_str!("../../../events/request-credentials-issued.json"), RequestStatus::Approved),
        ];
        for (text, status) in samples {
            let env: EventEnvelope = serde_json::from_str(text).unwrap();
            assert_eq!(env.source, EVENT_SOURCE);
            assert_eq!(env.detail.status, status);
            assert_eq!(env.detail_type, env.detail.detail_type(), "the sample's detail-type matches its detail");
            assert_eq!(env.detail.schema_version, SCHEMA_VERSION);
        }
    }

    #[test]
    fn one_change_yields_the_approval_the_level_and_the_status_events_in_order() {
        let env: EventEnvelope = serde_json::from_str(include_str!("../../../events/request-rejected.json")).unwrap();
        let entry = env.detail.approval.clone().unwrap();
        let request: AccessRequest = serde_json::from_value(serde_json::json!({
            "requestId": env.detail.request_id, "requester": env.detail.requester, "nodeId": env.detail.node_id,
            "reason": env.detail.reason, "durationMinutes": env.detail.duration_minutes, "status": "Approved",
            "createdAt": env.detail.at, "updatedAt": env.detail.at, "version": 5
        }))
        .unwrap();
        let approve = ApprovalEntry { verdict: Verdict::Approve, ..entry.clone() };
        let kinds: Vec<String> =
            StatusEvent::for_change(&request, Some(RequestStatus::Pending), "x", Some(&approve), Some(2), None)
                .iter()
                .map(|e| e.detail_type())
                .collect();
        assert_eq!(kinds, [APPROVAL_RECORDED, LEVEL_COMPLETED, "Access Request Approved"]);
        let pending = AccessRequest { status: RequestStatus::Pending, ..request.clone() };
        let kinds: Vec<String> =
            StatusEvent::for_change(&pending, Some(RequestStatus::Pending), "x", Some(&approve), None, None)
                .iter()
                .map(|e| e.detail_type())
                .collect();
        assert_eq!(kinds, [APPROVAL_RECORDED]);
        let rejected = AccessRequest { status: RequestStatus::Rejected, ..request };
        let kinds: Vec<String> =
            StatusEvent::for_change(&rejected, Some(RequestStatus::Pending), "x", Some(&entry), None, None)
                .iter()
                .map(|e| e.detail_type())
                .collect();
        assert_eq!(kinds, ["Access Request Rejected"], "a rejection is one status event carrying the entry");
    }
}
