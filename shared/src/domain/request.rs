//! The access request, its decision record and its audit trail.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::approval::{ApprovalEntry, ApprovalProgress};
use crate::domain::credentials::{CredentialsIssue, CredentialsRecord};
use crate::domain::grant::{GrantMode, GrantRecord};
use crate::domain::ids::{DurationMinutes, NodeId, NodeLocation, Reason, RequestId};
use crate::domain::principal::CallerArn;
use crate::domain::status::RequestStatus;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequest {
    pub request_id: RequestId,
    pub requester: CallerArn,
    pub node_id: NodeId,
    pub reason: Reason,
    /// How long access lasts once approved. When the requester asked for no duration
    /// (`duration_from_policy`), the decision sets it to the deciding policy's auto-approval
    /// window or manual maximum; until then it holds the longest any request may last.
    pub duration_minutes: DurationMinutes,
    /// No duration was asked for: the deciding policy's window or maximum applies, as in AWS
    /// JITNA (whose requests carry no duration).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duration_from_policy: bool,
    pub status: RequestStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bumped by every stored status change; the optimistic-lock token of conditional writes.
    pub version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Manual approval progress: present from `Pending` on. (`approval` in JSON, as the API has
    /// always named it; a single recorded decision is an `ApprovalEntry`.)
    #[serde(rename = "approval", default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ApprovalProgress>,
    /// When the request became `Approved`: the access window starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<DateTime<Utc>>,
    /// The IAM grant: policy name, principal, attached at, deadline (and when it was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantRecord>,
    /// How access is given once approved (chosen at submission).
    #[serde(default = "GrantMode::stored_default")]
    pub grant_mode: GrantMode,
    /// Credentials issued for the request (credentials mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsRecord>,
    /// The MAC the deciding function put on the approval (`approval_message`, KMS HMAC): what
    /// grants trust, so an `Approved` item written by anyone else grants nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_seal: Option<String>,
    /// Scheduled access: decided at submission, granted at this time (not before), lasting
    /// `duration_minutes` from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// An extension: this request asks for `duration_minutes` more on the `Approved` request it
    /// names (same requester and node). Approved, it moves that request's deadline; it grants
    /// nothing of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<RequestId>,
    /// A break-glass request: granted at once to a member of the break-glass group, told to
    /// everyone concerned, and reviewed afterwards (`review`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// The review a break-glass grant opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<crate::domain::break_glass::Review>,
    /// When a revoke that lost a write to a concurrent one held the request
    /// (`RequestStore::hold_for_revoke`): from then on no credentials are issued or recorded for
    /// it, so a requester fetching in a loop cannot keep the revoke from landing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_held_at: Option<DateTime<Utc>>,
}

impl AccessRequest {
    /// What an approval's seal covers: who may reach which node for how long. Unambiguous (a
    /// JSON array) and versioned, so no two requests share a message.
    pub fn approval_message(&self) -> Vec<u8> {
        let mut message = serde_json::json!([
            "jit-node-access approval v1",
            self.request_id.as_str(),
            self.requester.as_str(),
            self.node_id.as_str(),
            self.duration_minutes.get(),
            RequestStatus::Approved.as_str(),
        ]);
        // A schedule or an extension is part of what was approved; requests without either
        // keep the v1 message, so earlier seals still verify.
        if let Some(list) = message.as_array_mut() {
            if let Some(at) = &self.starts_at {
                list.push(serde_json::json!({ "startsAt": crate::domain::grant::deadline_text(at) }));
            }
            if let Some(of) = &self.extends {
                list.push(serde_json::json!({ "extends": of.as_str() }));
            }
            if self.break_glass {
                list.push(serde_json::json!({ "breakGlass": true }));
            }
        }
        message.to_string().into_bytes()
    }

    /// When access may start: the schedule's start, or once approved.
    pub fn access_start(&self) -> DateTime<Utc> {
        let approved = self.approved_at.unwrap_or(self.updated_at);
        self.starts_at.map_or(approved, |s| s.max(approved))
    }

    /// Whether a scheduled request's access has yet to start at `now`.
    pub fn not_started(&self, now: DateTime<Utc>) -> bool {
        self.starts_at.is_some_and(|s| now < s)
    }

    /// When access ends: the grant's recorded deadline (moved by approved extensions), else the
    /// start plus the requested duration.
    pub fn access_deadline(&self) -> DateTime<Utc> {
        if let Some(g) = &self.grant {
            return g.deadline;
        }
        self.access_start() + chrono::Duration::minutes(i64::from(self.duration_minutes.get()))
    }
}

/// Which rule of the evaluation order decided the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionRule {
    /// An auto-approval `permit` matched and no deny-access `forbid` did.
    AutoApproval,
    /// A tag-specific manual-approval policy applies.
    ManualTagSpecific,
    /// The all-nodes manual-approval policy applies (no tag-specific one does).
    ManualAllNodes,
    /// Two or more tag-specific manual-approval policies apply to the node.
    PolicyConflict,
    /// No auto-approval and no manual-approval policy applies.
    NoApplicablePolicy,
    /// The requested duration is above the deciding policy's maximum.
    DurationExceedsMaximum,
    /// The requester or the node could not be resolved.
    UnresolvableRequest,
    /// A break-glass request: granted at once to a member, or refused (`failure_code`).
    BreakGlass,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub outcome: RequestStatus,
    pub rule: DecisionRule,
    /// The policies that decided: the matching permits, the manual policy, or the conflicting ones.
    pub deciding_policy_ids: Vec<String>,
    /// Deny-access policies that matched and so removed auto-approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny_policy_ids: Vec<String>,
    /// Failure code for `Failed` outcomes (`NoApplicablePolicy`, `PolicyConflict`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    pub message: String,
    /// The most access this decision allows, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_plan: Option<ApprovalPlan>,
    /// The node's tags when it was decided (shown to approvers, kept for the audit).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_tags: BTreeMap<String, String>,
    /// The account and Region the node was decided in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_location: Option<NodeLocation>,
    pub decided_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPlan {
    pub policy_name: String,
    pub levels: Vec<ApprovalLevel>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalLevel {
    pub min_approvals: u8,
    pub approvers: Vec<Approver>,
    /// After this many minutes at this level, its approvers are reminded (once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_after_minutes: Option<u32>,
    /// After this many minutes at this level, `escalate_to` may decide it too (and are told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalate_to: Vec<Approver>,
}

/// Who may approve. IAM principals are named by their IAM name; Identity Center users by user
/// name, Identity Center groups by group id or display name. Group membership is resolved when
/// the approver acts, not when the request is made.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Approver {
    IamUser(String),
    IamGroup(String),
    IamRole(String),
    IdentityCenterUser(String),
    IdentityCenterGroup(String),
}

impl Approver {
    /// The key under which pending requests are indexed for this approver.
    pub fn index_key(&self) -> String {
        match self {
            Self::IamUser(n) => format!("iam-user#{n}"),
            Self::IamGroup(n) => format!("iam-group#{n}"),
            Self::IamRole(n) => format!("iam-role#{n}"),
            Self::IdentityCenterUser(n) => format!("ic-user#{n}"),
            Self::IdentityCenterGroup(n) => format!("ic-group#{n}"),
        }
    }
}

impl ApprovalPlan {
    /// Everyone who may decide some level: its approvers and, once it escalates, its escalation
    /// approvers (the approver index lists them all; who may act now is `check_may_decide`'s).
    pub fn all_approvers(&self) -> impl Iterator<Item = &Approver> {
        self.levels.iter().flat_map(|l| l.approvers.iter().chain(l.escalate_to.iter()))
    }
}

/// One status change, stored append-only next to the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub request_id: RequestId,
    /// The request version this change produced; unique per request.
    pub version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<RequestStatus>,
    pub to: RequestStatus,
    /// The principal ARN, or `system:<component>` for automated changes.
    pub actor: String,
    pub at: DateTime<Utc>,
    pub reason: String,
    /// The approval or rejection this change records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalEntry>,
    /// The approval level this change completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_completed: Option<u8>,
    /// The credentials this change issued (never their secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsIssue>,
    /// The reminder or escalation notice this change records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge: Option<crate::domain::approval::Nudge>,
    /// The approved extension this change applied (the deadline it moved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<crate::domain::grant::AppliedExtension>,
    /// The break-glass review this change opened or decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<crate::domain::break_glass::Review>,
}
