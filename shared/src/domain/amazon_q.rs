//! Amazon Q Developer in chat applications, pure: the custom notifications the notifier publishes
//! to the chat SNS topic, which Amazon Q posts to the team channels mapped to it.
//!
//! A custom notification is the SNS message body
//! `{"version": "1.0", "source": "custom", "id", "content": {"textType": "client-markdown", "title",
//! "description", "nextSteps", "keywords"}, "metadata": {"threadId", "summary", "eventType",
//! "relatedResources", "additionalContext"}}`; notices of one request share its id as `threadId`,
//! so a channel that threads them keeps a request's story together.
//!
//! A channel is shared, so a notice never carries a personal approval link or token: it names the
//! request and says how to decide (`jit approve <id>`), and each approver's own link stays in
//! their mail and personal chats.

use chrono::SecondsFormat;
use serde_json::{json, Value};

use crate::domain::approval::Verdict;
use crate::domain::approval_rules as approval;
use crate::domain::events::StatusEvent;
use crate::domain::request::AccessRequest;
use crate::domain::status::RequestStatus;

/// Why approvers are being told about a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApproverNotice {
    /// The level opened.
    Opened,
    /// It has waited its reminder time.
    Reminder,
    /// It escalated to its escalation approvers.
    Escalated,
}

/// The `metadata.eventType` of approver notices, by kind.
pub const APPROVAL_NEEDED: &str = "AccessRequestApprovalNeeded";
pub const APPROVAL_REMINDER: &str = "AccessRequestApprovalReminder";
pub const APPROVAL_ESCALATED: &str = "AccessRequestLevelEscalated";

/// User text as a literal code span: chat markdown inside it makes no link, mention (`<!here>`)
/// or formatting. Backticks would end the span, and angle brackets are Slack's mention syntax,
/// so both are swapped for look-alikes; line breaks would end a Slack code span.
pub fn literal(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '<' => '‹',
            '>' => '›',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("`{}`", clip(cleaned.trim(), 500))
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

fn notification(
    id: &str,
    title: String,
    description: String,
    next_steps: Vec<String>,
    keywords: Vec<String>,
    metadata: Value,
) -> Value {
    json!({
        "version": "1.0",
        "source": "custom",
        "id": id,
        "content": {
            "textType": "client-markdown",
            "title": clip(&title, 250),
            "description": clip(&description, 3500),
            "nextSteps": next_steps,
            "keywords": keywords,
        },
        "metadata": metadata,
    })
}

/// The notice that `level` of `request` waits for its approvers (`id`: unique per notice, the
/// bus event's id, so a redelivery publishes the same id). Says how to decide, never with a link.
pub fn approver_notice(request: &AccessRequest, level: u8, kind: ApproverNotice, id: &str) -> Value {
    let plan = approval::plan_of(request);
    let levels = plan.map_or(0, |p| p.levels.len());
    let needed = plan.and_then(|p| p.levels.get(usize::from(level).saturating_sub(1))).map_or(1, |l| l.min_approvals);
    let progress = request.progress.as_ref();
    let so_far = progress.map_or(0, |p| p.approvals_at(level));
    let deadline = progress.map(|p| p.pending_until.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default();
    let tags = request
        .decision
        .as_ref()
        .map(|d| d.node_tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "(none)".into());
    let id_text = request.request_id.as_str();
    let node = request.node_id.as_str();
    let (headline, event_type, who) = match kind {
        ApproverNotice::Opened => ("Approval needed", APPROVAL_NEEDED, "Approvers"),
        ApproverNotice::Reminder => ("Reminder: approval still needed", APPROVAL_REMINDER, "Approvers"),
        ApproverNotice::Escalated => ("Escalated: approval needed", APPROVAL_ESCALATED, "Escalation approvers"),
    };
    let description = format!(
        "*Requester:* {requester}\n*Node:* {node_code} ({tags})\n*Reason:* {reason}\n*Duration:* {minutes} minutes\n\
         *Approval:* level {level} of {levels}, {so_far} of {needed} approvals so far\n*Decide before:* {deadline}\n\
         *Request:* `{id_text}`",
        requester = literal(request.requester.as_str()),
        node_code = literal(node),
        tags = literal(&tags),
        reason = literal(request.reason.as_str()),
        minutes = request.duration_minutes.get(),
    );
    let next_steps = vec![
        format!("{who} of level {level}: `jit approve {id_text}` or `jit reject {id_text}` (see `jit approvals`)"),
        "Or follow the personal link in your own mail or Teams chat; links are never posted to this channel.".into(),
    ];
    let metadata = json!({
        "threadId": id_text,
        "summary": clip(&format!("{headline}: access to {node} (level {level} of {levels})"), 250),
        "eventType": event_type,
        "relatedResources": [node],
        "additionalContext": {
            "requestId": id_text,
            "nodeId": node,
            "level": level.to_string(),
            "status": request.status.as_str(),
        },
    });
    notification(
        id,
        format!("{headline}: access to {node} (level {level} of {levels})"),
        description,
        next_steps,
        vec!["jit-node-access".into(), format!("level {level}")],
        metadata,
    )
}

/// The notice of a status change the requester is told of (`notify::requester_is_told`): which
/// request, its new status and who decided. An approver's comment stays out: it is for the
/// requester's mail and the audit trail, not the channel.
pub fn status_notice(event: &StatusEvent, id: &str) -> Value {
    let id_text = event.request_id.as_str();
    let node = event.node_id.as_str();
    let status = event.status;
    let why = match (&event.approval, status) {
        (Some(entry), RequestStatus::Rejected) if entry.verdict == Verdict::Reject => {
            format!("Rejected by {} at level {}.", literal(&entry.actor), entry.level)
        }
        (_, RequestStatus::Approved) => "All approval levels completed.".to_owned(),
        (_, RequestStatus::Expired) => "Nobody decided before the approval deadline.".to_owned(),
        (_, RequestStatus::Revoked) => format!("Revoked by {}; the access was removed.", literal(&event.actor)),
        (_, RequestStatus::Failed) => "The request failed; the reason is in its audit trail.".to_owned(),
        (_, other) => format!("The request is now {other}."),
    };
    let description = format!(
        "*Requester:* {requester}\n*Node:* {node_code}\n*Reason:* {reason}\n*Why:* {why}\n*Request:* `{id_text}`",
        requester = literal(event.requester.as_str()),
        node_code = literal(node),
        reason = literal(&event.reason),
    );
    let metadata = json!({
        "threadId": id_text,
        "summary": clip(&format!("Access request for {node}: {status}"), 250),
        "eventType": format!("AccessRequest{status}"),
        "relatedResources": [node],
        "additionalContext": {
            "requestId": id_text,
            "nodeId": node,
            "status": status.as_str(),
        },
    });
    notification(
        id,
        format!("Access request for {node}: {status}"),
        description,
        vec![format!("Details: `jit status {id_text}` and `jit audit {id_text}`")],
        vec!["jit-node-access".into(), status.as_str().to_owned()],
        metadata,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_becomes_one_literal_code_span() {
        let cases = [
            ("disk full", "`disk full`"),
            ("<!channel> `rm -rf` [x](https://e.example)", "`‹!channel› 'rm -rf' [x](https://e.example)`"),
            ("two\nlines", "`two lines`"),
        ];
        for (text, expected) in cases {
            assert_eq!(literal(text), expected, "{text}");
        }
    }

    #[test]
    fn a_status_notice_has_the_custom_notification_shape_and_no_comment() {
        let mut envelope: crate::domain::events::EventEnvelope =
            serde_json::from_str(include_str!("../../../events/request-rejected.json")).unwrap();
        let entry = envelope.detail.approval.as_mut().unwrap();
        entry.comment = crate::domain::approval::Comment::parse_optional(Some("secret-ish remark")).unwrap();

        let notice = status_notice(&envelope.detail, "evt-1");

        assert_eq!((notice["version"].as_str(), notice["source"].as_str()), (Some("1.0"), Some("custom")));
        assert_eq!(notice["id"], "evt-1");
        assert_eq!(notice["content"]["textType"], "client-markdown");
        assert_eq!(notice["metadata"]["threadId"], envelope.detail.request_id.as_str());
        assert_eq!(notice["metadata"]["eventType"], "AccessRequestRejected");
        assert!(notice["content"]["description"].as_str().is_some_and(|d| d.contains("Rejected by")), "{notice}");
        assert!(!notice.to_string().contains("secret-ish remark"), "the comment stays out: {notice}");
    }
}
