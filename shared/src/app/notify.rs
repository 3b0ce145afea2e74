//! Mail on request events: a personal approval link to each approver of a level when it opens,
//! and a note to the requester when others decided for them (see [`requester_is_told`]).
//! Mail is plain text; user text is indented so it cannot pose as our lines.
//!
//! Chat, when set up, besides the mail: Slack and Teams messages to each approver personally (a
//! Teams card carries the same personal link as the mail, so it goes only to that person's own
//! webhook), and Amazon Q Developer notices to a shared channel, which name the request and how
//! to decide but never carry a link.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::app::common::approver_keys;
use crate::app::error::ServiceError;
use crate::domain::amazon_q::ApproverNotice;
use crate::domain::approval::{Person, Verdict};
use crate::domain::approval_rules as approval;
use crate::domain::approval_token::{self, SigningKey, TokenClaims};
use crate::domain::events::{detail_type, EventEnvelope, EventKind, StatusEvent, EVENT_SOURCE};
use crate::domain::ids::RequestId;
use crate::domain::request::{AccessRequest, Approver};
use crate::domain::status::RequestStatus;
use crate::policy::contacts::Contact;
use crate::ports::{
    Audience, ChatTopic, DirectoryError, Mail, Mailer, PrincipalDirectory, RequestStore, TeamsDelivery,
};

/// Where links point and what the mail says about the stack.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The API's base URL; links are `<base>/decide/<token>`.
    pub api_base_url: String,
    pub account: String,
    pub region: String,
}

pub struct NotifyDeps<'a> {
    pub store: &'a dyn RequestStore,
    pub directory: &'a dyn PrincipalDirectory,
    pub mailer: &'a dyn Mailer,
    pub contacts: &'a [Contact],
    pub key: &'a SigningKey,
    pub links: &'a LinkSettings,
    /// Slack, when set up: each approver with a `slackUserId` also gets a message with Approve and
    /// Reject buttons.
    pub chat: Option<&'a dyn crate::ports::ChatNotifier>,
    /// Teams, when set up: each approver with a webhook of their own also gets a card whose button
    /// opens their personal link.
    pub teams: Option<&'a dyn crate::ports::TeamsNotifier>,
    /// Amazon Q Developer in chat applications, when set up: a notice per opened level, reminder,
    /// escalation and told status change on its SNS topic, for a shared channel.
    pub chat_topic: Option<&'a dyn crate::ports::ChatTopic>,
    /// Who is mailed, besides the node's approvers, when someone breaks glass
    /// (`break-glass.yaml`'s `securityContacts`).
    pub security_contacts: &'a [Person],
}

fn indent(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\n              ")
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Handles one event from the bus; returns how many mails were sent.
pub async fn handle_event(
    deps: &NotifyDeps<'_>,
    envelope: &EventEnvelope,
    now: DateTime<Utc>,
) -> Result<usize, ServiceError> {
    let detail = &envelope.detail;
    let id = &detail.request_id;
    match (detail.kind, detail.status) {
        (EventKind::StatusChanged, RequestStatus::Approved) if detail.break_glass => {
            tell_break_glass(deps, envelope).await
        }
        (EventKind::StatusChanged, RequestStatus::Pending) => {
            mail_approvers(deps, id, 1, Notice::Begun, &envelope.id, now).await
        }
        (EventKind::LevelCompleted, RequestStatus::Pending) => match detail.level_completed {
            Some(level) => mail_approvers(deps, id, level.saturating_add(1), Notice::Begun, &envelope.id, now).await,
            None => Ok(0),
        },
        (EventKind::ApprovalReminder, RequestStatus::Pending) => match detail.nudge {
            Some(n) => mail_approvers(deps, id, n.level, Notice::Reminder, &envelope.id, now).await,
            None => Ok(0),
        },
        (EventKind::LevelEscalated, RequestStatus::Pending) => match detail.nudge {
            Some(n) => mail_approvers(deps, id, n.level, Notice::Escalated, &envelope.id, now).await,
            None => Ok(0),
        },
        (EventKind::StatusChanged, _) => {
            if !requester_is_told(detail.status, detail.previous_status) {
                return Ok(0);
            }
            let Some(change) = recorded(deps.store, detail).await? else {
                tracing::warn!(
                    request_id = %id,
                    status = %detail.status,
                    claimed_actor = %detail.actor,
                    "an event the table has no record of: no mail"
                );
                return Ok(0);
            };
            if !requester_is_told(change.status, change.previous_status) {
                return Ok(0);
            }
            if let Some(topic) = deps.chat_topic {
                let notice = crate::domain::amazon_q::status_notice(&change, &envelope.id);
                publish_to_chat(topic, &notice, id).await;
            }
            // A session of a role merely named like Identity Center's is not the user it names.
            let requester = crate::app::common::person_of_caller(deps.directory, &change.requester).await?;
            if requester != Person::from_caller(&change.requester) {
                return Ok(0);
            }
            tell_requester(deps.mailer, deps.contacts, deps.links, &change).await
        }
        _ => Ok(0),
    }
}

/// The change as the table recorded it, when it did (the genuine event comes from its stream):
/// the audit record of the event's version has its status and actor, and the request is the
/// event's requester's, for its node. What the mail and chat say (reason, duration, decision,
/// who approved or rejected and their comment) is taken from the table, never from the event, so
/// an event put on the bus by someone else sends nothing, and a genuine one with its text
/// altered on the way says only what was recorded.
async fn recorded(store: &dyn RequestStore, d: &StatusEvent) -> Result<Option<StatusEvent>, ServiceError> {
    let Some(request) = store.get(&d.request_id).await? else { return Ok(None) };
    if request.requester != d.requester || request.node_id != d.node_id {
        return Ok(None);
    }
    let trail = store.audit_trail(&d.request_id).await?;
    let Some(change) = trail.into_iter().find(|a| a.version == d.version && a.to == d.status && a.actor == d.actor)
    else {
        return Ok(None);
    };
    Ok(Some(StatusEvent {
        status: change.to,
        version: change.version,
        at: change.at,
        approval: change.approval,
        level_completed: change.level_completed,
        ..StatusEvent::for_request(&request, change.from, &change.actor)
    }))
}

/// Status changes the requester hears about whatever the previous status was.
const TOLD_ALWAYS: [RequestStatus; 3] = [RequestStatus::Rejected, RequestStatus::Revoked, RequestStatus::Failed];
/// Status changes the requester hears about only when they end a `Pending` request, that is,
/// when approvers (or nobody, before the approval deadline) decided.
const TOLD_AFTER_PENDING: [RequestStatus; 2] = [RequestStatus::Approved, RequestStatus::Expired];

/// Whether the requester gets mail about a status change: when others decided for them
/// (approved by the approval levels, rejected, revoked, failed, or left undecided until the
/// approval deadline), not when they caused or chose it: an auto-approval (the request they just
/// made shows it, and AWS JITNA sends nothing either), their own cancel, or access ending at the
/// deadline they asked for. Every mail is an SNS call, and these would come with every request.
pub fn requester_is_told(status: RequestStatus, previous: Option<RequestStatus>) -> bool {
    TOLD_ALWAYS.contains(&status) || (TOLD_AFTER_PENDING.contains(&status) && previous == Some(RequestStatus::Pending))
}

/// The bus rule that invokes the notifier: exactly the events it may mail about, so it is not
/// invoked for the others. The template's rule on `NotifyFunction` must be this pattern (a test
/// checks), and the local stack routes with it.
pub fn rule_pattern() -> serde_json::Value {
    let always: Vec<String> = [RequestStatus::Pending].into_iter().chain(TOLD_ALWAYS).map(detail_type).collect();
    let after_pending: Vec<String> = TOLD_AFTER_PENDING.into_iter().map(detail_type).collect();
    let pending = [RequestStatus::Pending.as_str()];
    serde_json::json!({
        "source": [EVENT_SOURCE],
        "$or": [
            {"detail-type": always},
            // The last level's completion comes with the request already Approved: nothing to mail.
            {"detail-type": [crate::domain::events::LEVEL_COMPLETED], "detail": {"status": pending}},
            // A waiting level's reminder and escalation notices.
            {
                "detail-type": [crate::domain::events::APPROVAL_REMINDER, crate::domain::events::LEVEL_ESCALATED],
                "detail": {"status": pending},
            },
            {"detail-type": after_pending, "detail": {"previousStatus": pending}},
            // Someone broke glass: everyone concerned is told at once.
            {"detail-type": [detail_type(RequestStatus::Approved)], "detail": {"breakGlass": [true]}},
        ],
    })
}

/// Someone broke glass: every approver of the node's plan (each level's, and escalation
/// approvers) and the security contacts are mailed at once, the requester excepted. Acts on the
/// stored request, and only on an event the table vouches for.
async fn tell_break_glass(deps: &NotifyDeps<'_>, envelope: &EventEnvelope) -> Result<usize, ServiceError> {
    let d = &envelope.detail;
    if recorded(deps.store, d).await?.is_none() {
        tracing::warn!(request_id = %d.request_id, "a break-glass event the table has no record of: no mail");
        return Ok(0);
    }
    let Some(request) = deps.store.get(&d.request_id).await? else { return Ok(0) };
    if !request.break_glass {
        return Ok(0);
    }
    let people = crate::policy::contacts::People::from_contacts(deps.contacts);
    let requester = crate::app::common::caller_counted_as(deps.directory, &people, &request.requester).await?;
    let audience: Vec<&Approver> = approval::plan_of(&request).map(|p| p.all_approvers().collect()).unwrap_or_default();
    let mut mails = Vec::new();
    for contact in deps.contacts {
        // `requester` is already the person contacts.yaml joins their identities to, and a
        // contact is never another's `sameAs` (`parse_contacts` refuses it).
        if contact.person.counted_as(false) == requester {
            continue;
        }
        let security = deps.security_contacts.contains(&contact.person);
        let approver = !audience.is_empty() && {
            match deps.directory.resolve_person(&contact.person).await {
                Ok(p) => {
                    let keys = approver_keys(&p);
                    audience.iter().any(|a| keys.contains(&a.index_key()))
                }
                Err(DirectoryError::NotFound(_)) => false,
                Err(DirectoryError::Port(e)) => return Err(e.into()),
            }
        };
        if !security && !approver {
            continue;
        }
        mails.push(break_glass_mail(&request, &contact.person, approver, &deps.links.account));
    }
    deps.mailer.send_all(&mails).await?;
    Ok(mails.len())
}

/// The break-glass notice: who, where, why, until when, and what the reader must do.
pub fn break_glass_mail(request: &AccessRequest, to: &Person, reviewer: bool, account: &str) -> Mail {
    let due = request.review.as_ref().map(|r| time(&r.due)).unwrap_or_default();
    let what_to_do = if reviewer {
        format!(
            "You review it: before {due}, acknowledge or flag it\n  jit review {id} --acknowledge --comment \"…\"\n  jit review {id} --flag --comment \"…\"\nor end it now: jit revoke {id}",
            id = request.request_id
        )
    } else if approval::plan_of(request).is_some() {
        format!("The node's approvers review it before {due}; a flag or a missed review raises an alarm.")
    } else {
        format!(
            "No approval policy targets this node: an administrator reviews it before {due}; a flag or a missed review raises an alarm."
        )
    };
    let body = format!(
        "{requester} broke glass: access to node {node} was granted at once, without approval.\n\n\
         Reason:       {reason}\n\
         Node:         {node} (account {account})\n\
         Duration:     {minutes} minutes\n\
         Request:      {id}\n\n\
         {what_to_do}\n",
        requester = request.requester,
        node = request.node_id,
        reason = indent(request.reason.as_str()),
        minutes = request.duration_minutes.get(),
        id = request.request_id,
    );
    Mail {
        audience: Audience::Approvers,
        recipient: to.key(),
        subject: format!("BREAK-GLASS: {} took access to {}", Person::from_caller(&request.requester), request.node_id),
        body,
    }
}

/// Why a level's approvers get mail: the level began, it waited its reminder time, or it
/// escalated (then the mail goes to its escalation approvers only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    Begun,
    Reminder,
    Escalated,
}

/// Mails every contact who may approve `level` now (for `Notice::Escalated`, its escalation
/// approvers). A redelivered event for a level that has already moved on sends nothing, so the
/// next level's approvers never get mail early. `event_id` (the bus event's) names the chat
/// channel's notice, the same on a redelivery.
async fn mail_approvers(
    deps: &NotifyDeps<'_>,
    id: &RequestId,
    level: u8,
    notice: Notice,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<usize, ServiceError> {
    let Some(request) = deps.store.get(id).await? else { return Ok(0) };
    let (Some(plan), Some(progress)) = (approval::plan_of(&request), request.progress.as_ref()) else { return Ok(0) };
    if request.status != RequestStatus::Pending || progress.current_level != level || now >= progress.pending_until {
        return Ok(0);
    }
    let people = crate::policy::contacts::People::from_contacts(deps.contacts);
    let requester = crate::app::common::caller_counted_as(deps.directory, &people, &request.requester).await?;
    // Every lookup first, then the mails together, then chat: a lookup that fails mails nobody,
    // so the event's retry does not mail anyone twice.
    let mut mails = Vec::new();
    let mut chat_to = Vec::new();
    for contact in deps.contacts {
        // A contact is a person: their primary identity is whom they count as.
        let who = contact.person.counted_as(false);
        if who == requester || progress.has_acted(&who) {
            continue;
        }
        // Someone who no longer exists (an offboarded user still in contacts.yaml) gets no mail.
        let Some(audience) = plan.levels.get(usize::from(level).saturating_sub(1)).map(|l| match notice {
            Notice::Escalated => &l.escalate_to,
            Notice::Begun | Notice::Reminder => &l.approvers,
        }) else {
            return Ok(0);
        };
        let looked_up = match keys_without_lookup(&contact.person, audience) {
            Some(keys) => deps.directory.check_exists(&contact.person).await.map(|()| keys),
            None => deps.directory.resolve_person(&contact.person).await.map(|p| approver_keys(&p)),
        };
        let keys = match looked_up {
            Ok(keys) => keys,
            Err(DirectoryError::NotFound(what)) => {
                tracing::warn!(contact = %contact.person, %what, "a contact does not resolve; no mail for them");
                continue;
            }
            Err(DirectoryError::Port(e)) => return Err(e.into()),
        };
        if !audience.iter().any(|a| keys.contains(&a.index_key())) {
            continue;
        }
        let claims = TokenClaims {
            request_id: id.clone(),
            approver: contact.person.clone(),
            level,
            expires: progress.pending_until.timestamp(),
            nonce: approval_token::nonce(),
        };
        let token = approval_token::sign(deps.key, &claims)
            .map_err(|e| ServiceError::Internal(format!("serializing the link's claims: {e}")))?;
        let link = approval_token::link(&deps.links.api_base_url, &token);
        let mut mail = approver_mail(&request, &contact.person, level, &link, &deps.links.account, &deps.links.region);
        mail.subject = match notice {
            Notice::Begun => mail.subject,
            Notice::Reminder => format!("Reminder: {}", mail.subject),
            Notice::Escalated => format!("Escalated to you: {}", mail.subject),
        };
        mails.push(mail);
        chat_to.push((contact, link));
    }
    deps.mailer.send_all(&mails).await?;
    let sent = mails.len();
    for (contact, link) in chat_to {
        if let (Some(chat), Some(slack_user)) = (deps.chat, &contact.slack_user_id) {
            // Mail is the channel every approver has: a Slack failure is logged, not retried
            // (a retry of the event would mail everyone again).
            let message = crate::domain::slack::approval_message(&request, slack_user, level, now);
            match chat.post(slack_user, &message).await {
                Ok(()) => tracing::info!(request_id = %id, level, contact = %contact.person, "posted to Slack"),
                Err(e) => {
                    tracing::warn!(request_id = %id, level, contact = %contact.person, error = %e, "posting to Slack failed")
                }
            }
        }
        if let Some(teams) = deps.teams {
            // The card carries this person's link: the port posts it to their own webhook only.
            // Like Slack, a failure is logged, not retried.
            let card = crate::domain::teams::approval_card(&request, &contact.person, level, &link, now);
            match teams.post(&contact.person, &card).await {
                Ok(TeamsDelivery::Posted) => {
                    tracing::info!(request_id = %id, level, contact = %contact.person, "posted to Teams")
                }
                Ok(TeamsDelivery::NoWebhook) => {}
                Err(e) => {
                    tracing::warn!(request_id = %id, level, contact = %contact.person, error = %e, "posting to Teams failed")
                }
            }
        }
    }
    tracing::info!(request_id = %id, level, sent, "approval mail sent");
    if let Some(topic) = deps.chat_topic {
        let kind = match notice {
            Notice::Begun => ApproverNotice::Opened,
            Notice::Reminder => ApproverNotice::Reminder,
            Notice::Escalated => ApproverNotice::Escalated,
        };
        let message = crate::domain::amazon_q::approver_notice(&request, level, kind, event_id);
        publish_to_chat(topic, &message, id).await;
    }
    Ok(sent)
}

/// Publishes a notice for the team channel. Mail stays the channel every approver has: a failure
/// is logged, not retried (a retry of the event would mail everyone again).
async fn publish_to_chat(topic: &dyn ChatTopic, notice: &serde_json::Value, id: &RequestId) {
    match topic.publish(notice).await {
        Ok(()) => tracing::info!(request_id = %id, "published to the chat topic"),
        Err(e) => tracing::warn!(request_id = %id, error = %e, "publishing to the chat topic failed"),
    }
}

/// A contact's approver keys when the level names no group they could be in: their own key is
/// then all that can match, and only their existence needs checking, not their groups. (Whoever
/// follows the link is resolved in full when they decide.)
fn keys_without_lookup(person: &Person, approvers: &[Approver]) -> Option<Vec<String>> {
    let (own, in_groups) = match person {
        Person::IamUser(name) => {
            (Approver::IamUser(name.clone()), approvers.iter().any(|a| matches!(a, Approver::IamGroup(_))))
        }
        Person::IamRoleSession { role, .. } => (Approver::IamRole(role.clone()), false),
        Person::IdentityCenterUser(name) => (
            Approver::IdentityCenterUser(name.clone()),
            approvers.iter().any(|a| matches!(a, Approver::IdentityCenterGroup(_))),
        ),
    };
    (!in_groups).then(|| vec![own.index_key()])
}

pub fn approver_mail(request: &AccessRequest, to: &Person, level: u8, link: &str, account: &str, region: &str) -> Mail {
    let decision = request.decision.as_ref();
    let plan = approval::plan_of(request);
    let levels = plan.map_or(0, |p| p.levels.len());
    let needed = plan.and_then(|p| p.levels.get(usize::from(level).saturating_sub(1))).map_or(1, |l| l.min_approvals);
    let progress = request.progress.as_ref();
    let so_far = progress.map_or(0, |p| p.approvals_at(level));
    let tags = decision
        .map(|d| d.node_tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let deadline = progress.map(|p| time(&p.pending_until)).unwrap_or_default();
    let body = format!(
        "{requester} asks for access to node {node}.\n\n\
         Reason:       {reason}\n\
         Node:         {node}\n\
         Node tags:    {tags}\n\
         Requester:    {requester}\n\
         Account:      {account} ({region})\n\
         Duration:     {minutes} minutes\n\
         Approval:     level {level} of {levels} ({policy}); {so_far} of {needed} approvals so far\n\
         Request:      {id}\n\n\
         Review and decide (the page asks you to confirm; opening it changes nothing):\n\
         {link}\n\n\
         This link is for {to} only. It works once and expires at {deadline}.\n",
        requester = request.requester,
        node = request.node_id,
        reason = indent(request.reason.as_str()),
        tags = indent(&tags),
        minutes = request.duration_minutes.get(),
        policy = plan.map_or("", |p| p.policy_name.as_str()),
        id = request.request_id,
    );
    // An extension or a schedule changes what is approved: say so first.
    let mut lead = String::new();
    if let Some(of) = &request.extends {
        lead.push_str(&format!(
            "This is an extension of {of}, whose access is running: {} more minutes.\n",
            request.duration_minutes.get()
        ));
    }
    if let Some(at) = &request.starts_at {
        lead.push_str(&format!("Scheduled: access would start at {} (not before).\n", time(at)));
    }
    let subject = match &request.extends {
        Some(_) => format!("Approval needed: extend access to {} (level {level} of {levels})", request.node_id),
        None => format!("Approval needed: access to {} (level {level} of {levels})", request.node_id),
    };
    Mail {
        audience: Audience::Approvers,
        recipient: to.key(),
        subject,
        body: if lead.is_empty() { body } else { format!("{lead}\n{body}") },
    }
}

/// Mails the requester about a status change they are told of, if they have a mail contact
/// (without one nobody is subscribed for them, so publishing would only cost). `d` is the change
/// as `recorded` rebuilt it from the table.
async fn tell_requester(
    mailer: &dyn Mailer,
    contacts: &[Contact],
    links: &LinkSettings,
    d: &StatusEvent,
) -> Result<usize, ServiceError> {
    if !requester_is_told(d.status, d.previous_status) {
        return Ok(0);
    }
    let person = Person::from_caller(&d.requester);
    if !contacts.iter().any(|c| c.person == person) {
        return Ok(0);
    }
    let why = match (&d.approval, &d.decision) {
        (Some(entry), _) if entry.verdict == Verdict::Reject => {
            format!(
                "Rejected by {} at level {}{}",
                entry.actor,
                entry.level,
                entry.comment.as_ref().map(|c| format!(": {}", c.as_str())).unwrap_or_default()
            )
        }
        // The evaluator's message explains a decision made at submission; a later failure is the
        // grant's, whose reason is in the audit record, not the event.
        (_, Some(decision)) if d.previous_status == Some(RequestStatus::Submitted) => decision.message.clone(),
        _ => match d.status {
            RequestStatus::Approved => "All approval levels completed.".to_owned(),
            RequestStatus::Expired => "Nobody decided before the approval deadline.".to_owned(),
            RequestStatus::Failed => {
                "The access could not be granted, and nothing is attached; the reason is in the request's audit trail."
                    .to_owned()
            }
            RequestStatus::Revoked if d.actor == crate::app::evaluate::EVALUATOR_ACTOR => {
                "Decided again at its start, the policies no longer grant it, so nothing was granted; what decided is in the request's audit trail."
                    .to_owned()
            }
            RequestStatus::Revoked => format!("Revoked by {}; the access was removed.", d.actor),
            other => format!("The request is now {other}."),
        },
    };
    let body = format!(
        "Your access request {id} for node {node} is {status}.\n\n\
         Why:          {why}\n\
         Reason:       {reason}\n\
         Duration:     {minutes} minutes\n\
         Account:      {account} ({region})\n",
        id = d.request_id,
        node = d.node_id,
        status = d.status,
        why = indent(&why),
        reason = indent(&d.reason),
        minutes = d.duration_minutes,
        account = links.account,
        region = links.region,
    );
    let mail = Mail {
        audience: Audience::Requesters,
        recipient: person.key(),
        subject: format!("Access request {}: {}", d.node_id, d.status),
        body,
    };
    mailer.send_all(std::slice::from_ref(&mail)).await?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PortError;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Outbox(Mutex<Vec<Mail>>);

    #[async_trait::async_trait]
    impl Mailer for Outbox {
        async fn send_all(&self, mails: &[Mail]) -> Result<(), PortError> {
            self.0.lock().map_err(|_| PortError::Permanent("poisoned".into()))?.extend_from_slice(mails);
            Ok(())
        }
    }

    fn links() -> LinkSettings {
        LinkSettings {
            api_base_url: "https://api.example".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    fn event(sample: &str, status: RequestStatus, previous: RequestStatus) -> EventEnvelope {
        let mut envelope: EventEnvelope = serde_json::from_str(sample).unwrap();
        envelope.detail.status = status;
        envelope.detail.previous_status = Some(previous);
        envelope
    }

    #[test]
    fn the_requester_is_told_only_what_others_decided_for_them() {
        use RequestStatus::*;
        let told = [
            (Approved, Pending, true),
            (Approved, Submitted, false),
            (Expired, Pending, true),
            (Expired, Approved, false),
            (Rejected, Pending, true),
            (Revoked, Approved, true),
            (Failed, Submitted, true),
            (Failed, Approved, true),
            (Cancelled, Pending, false),
            (Pending, Submitted, false),
            (Submitted, Submitted, false),
        ];
        for (status, previous, expected) in told {
            assert_eq!(requester_is_told(status, Some(previous)), expected, "{previous} -> {status}");
        }
        assert!(
            !requester_is_told(Approved, None),
            "an event without a previous status is not a decision by approvers"
        );
    }

    #[tokio::test]
    async fn a_requester_with_a_contact_is_mailed_and_one_without_is_not_and_no_call_is_made() {
        let sample = include_str!("../../../events/request-rejected.json");
        let operator = Contact {
            person: Person::IamUser("operator".into()),
            email: "operator@example.com".into(),
            same_as: vec![],
            slack_user_id: None,
        };
        let someone_else = Contact {
            person: Person::IamUser("approver-a".into()),
            email: "a@example.com".into(),
            same_as: vec![],
            slack_user_id: None,
        };
        let cases: [(&[Contact], RequestStatus, RequestStatus, usize); 5] = [
            (std::slice::from_ref(&operator), RequestStatus::Rejected, RequestStatus::Pending, 1),
            (std::slice::from_ref(&someone_else), RequestStatus::Rejected, RequestStatus::Pending, 0),
            (&[], RequestStatus::Rejected, RequestStatus::Pending, 0),
            (std::slice::from_ref(&operator), RequestStatus::Approved, RequestStatus::Submitted, 0),
            (std::slice::from_ref(&operator), RequestStatus::Expired, RequestStatus::Approved, 0),
        ];
        for (contacts, status, previous, expected) in cases {
            let outbox = Outbox::default();
            let sent =
                tell_requester(&outbox, contacts, &links(), &event(sample, status, previous).detail).await.unwrap();
            let mails = outbox.0.lock().unwrap().clone();
            assert_eq!(
                (sent, mails.len()),
                (expected, expected),
                "{previous} -> {status} with {} contacts",
                contacts.len()
            );
            if let Some(mail) = mails.first() {
                assert_eq!((mail.audience, mail.recipient.as_str()), (Audience::Requesters, "iam-user#operator"));
            }
        }
    }

    #[test]
    fn an_extension_or_a_schedule_is_named_as_such_in_the_approvers_mail() {
        let plain = event(
            include_str!("../../../events/request-submitted.json"),
            RequestStatus::Pending,
            RequestStatus::Submitted,
        )
        .detail
        .request()
        .unwrap();
        let to = Person::IamUser("lead".into());
        let mail = |r: &AccessRequest| approver_mail(r, &to, 1, "https://x/decide/t", "123456789012", "us-east-1");
        let of = RequestId::generate();
        let extension = AccessRequest { extends: Some(of.clone()), ..plain.clone() };
        let at = Utc::now();
        let scheduled = AccessRequest { starts_at: Some(at), ..plain.clone() };

        let (plain, extension, scheduled) = (mail(&plain), mail(&extension), mail(&scheduled));

        assert!(plain.subject.starts_with("Approval needed: access to") && !plain.body.contains("extension"));
        assert!(extension.subject.starts_with("Approval needed: extend access to"), "{}", extension.subject);
        assert!(extension.body.starts_with(&format!("This is an extension of {of}")), "{}", extension.body);
        assert!(scheduled.body.starts_with(&format!("Scheduled: access would start at {}", time(&at))));
    }

    #[tokio::test]
    async fn a_failed_grant_is_explained_as_such_and_not_with_the_approval_message() {
        let operator = [Contact {
            person: Person::IamUser("operator".into()),
            email: "operator@example.com".into(),
            same_as: vec![],
            slack_user_id: None,
        }];
        let outbox = Outbox::default();
        let failed = event(
            include_str!("../../../events/request-approved.json"),
            RequestStatus::Failed,
            RequestStatus::Approved,
        );
        let approval_message = failed.detail.decision.as_ref().map(|d| d.message.clone()).unwrap();

        tell_requester(&outbox, &operator, &links(), &failed.detail).await.unwrap();

        let body = outbox.0.lock().unwrap()[0].body.clone();
        assert!(body.contains("could not be granted") && !body.contains(&approval_message), "{body}");
    }

    /// The template's rule is where the pattern takes effect; the local stack uses `rule_pattern`.
    #[test]
    fn the_templates_notify_rule_is_the_notifiers_pattern() {
        let docs = yaml_rust2::YamlLoader::load_from_str(include_str!("../../../template.yaml")).unwrap();
        let pattern = &docs[0]["Resources"]["NotifyFunction"]["Properties"]["Events"]["RequestNeedsMail"]["Properties"]
            ["Pattern"];
        assert!(!pattern.is_badvalue(), "NotifyFunction's RequestNeedsMail rule has a Pattern");
        assert_eq!(yaml_to_json(pattern), rule_pattern());
    }

    fn yaml_to_json(y: &yaml_rust2::Yaml) -> serde_json::Value {
        use yaml_rust2::Yaml;
        match y {
            Yaml::String(s) => serde_json::Value::String(s.clone()),
            Yaml::Boolean(b) => serde_json::Value::Bool(*b),
            Yaml::Array(items) => serde_json::Value::Array(items.iter().map(yaml_to_json).collect()),
            Yaml::Hash(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), yaml_to_json(v))).collect(),
            ),
            other => panic!("unexpected YAML in a pattern: {other:?}"),
        }
    }

    #[test]
    fn a_contact_is_looked_up_only_when_the_level_names_a_group_they_could_be_in() {
        let alice = Person::IamUser("alice".into());
        let carol = Person::IdentityCenterUser("carol".into());
        let oncall = Person::IamRoleSession { role: "oncall".into(), session: "bob".into() };
        let cases = [
            (&alice, vec![Approver::IamUser("alice".into())], Some(vec!["iam-user#alice".to_owned()])),
            (&alice, vec![Approver::IamUser("x".into()), Approver::IamGroup("DevOps".into())], None),
            (&alice, vec![Approver::IdentityCenterGroup("g-1".into())], Some(vec!["iam-user#alice".to_owned()])),
            (&carol, vec![Approver::IamGroup("DevOps".into())], Some(vec!["ic-user#carol".to_owned()])),
            (&carol, vec![Approver::IdentityCenterGroup("g-1".into())], None),
            (
                &oncall,
                vec![Approver::IamGroup("DevOps".into()), Approver::IdentityCenterGroup("g-1".into())],
                Some(vec!["iam-role#oncall".to_owned()]),
            ),
        ];
        for (person, approvers, expected) in cases {
            assert_eq!(keys_without_lookup(person, &approvers), expected, "{person} with {approvers:?}");
        }
    }
}
