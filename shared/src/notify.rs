//! Mail on request events: a personal approval link to each approver of a level when it opens,
//! and a note to the requester when their request ends up approved, rejected, cancelled,
//! expired or failed. Mail is plain text; user text is indented so it cannot pose as our lines.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::approval::{self, Person, Verdict};
use crate::domain::approval_token::{self, SigningKey, TokenClaims};
use crate::domain::errors::ServiceError;
use crate::domain::ids::RequestId;
use crate::domain::request::{AccessRequest, ApprovalPlan, Approver};
use crate::domain::status::RequestStatus;
use crate::events::{EventEnvelope, EventKind};
use crate::intake::approver_keys;
use crate::policy::contacts::Contact;
use crate::ports::{Audience, DirectoryError, Mail, Mailer, PrincipalDirectory, RequestStore};

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
}

fn indent(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\n              ")
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Handles one event from the bus; returns how many mails were sent.
pub async fn handle_event(deps: &NotifyDeps<'_>, envelope: &EventEnvelope, now: DateTime<Utc>) -> Result<usize, ServiceError> {
    let detail = &envelope.detail;
    let id = RequestId::try_from(detail.request_id.clone())?;
    match (detail.kind, detail.status) {
        (EventKind::StatusChanged, RequestStatus::Pending) => mail_approvers(deps, &id, 1, now).await,
        (EventKind::LevelCompleted, RequestStatus::Pending) => match detail.level_completed {
            Some(level) => mail_approvers(deps, &id, level.saturating_add(1), now).await,
            None => Ok(0),
        },
        (
            EventKind::StatusChanged,
            RequestStatus::Approved
            | RequestStatus::Rejected
            | RequestStatus::Cancelled
            | RequestStatus::Expired
            | RequestStatus::Revoked
            | RequestStatus::Failed,
        ) => mail_requester(deps, envelope).await,
        _ => Ok(0),
    }
}

/// Mails every contact who may approve `level` now. A redelivered event for a level that has
/// already moved on sends nothing, so the next level's approvers never get mail early.
async fn mail_approvers(deps: &NotifyDeps<'_>, id: &RequestId, level: u8, now: DateTime<Utc>) -> Result<usize, ServiceError> {
    let Some(request) = deps.store.get(id).await? else { return Ok(0) };
    let (Some(plan), Some(progress)) = (approval::plan_of(&request), request.approval.as_ref()) else { return Ok(0) };
    if request.status != RequestStatus::Pending || progress.current_level != level || now >= progress.pending_until {
        return Ok(0);
    }
    let requester = Person::from_caller(&request.requester);
    let mut sent = 0;
    for contact in deps.contacts {
        if contact.person == requester || progress.has_acted(&contact.person.key()) {
            continue;
        }
        // Someone who no longer exists (an offboarded user still in contacts.yaml) gets no mail.
        let looked_up = match keys_without_lookup(&contact.person, plan, level) {
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
        if approval::matching_approver(plan, level, &keys).is_none() {
            continue;
        }
        let claims = TokenClaims {
            request_id: id.clone(),
            approver: contact.person.key(),
            level,
            expires: progress.pending_until.timestamp(),
            nonce: approval_token::nonce(),
        };
        let token = approval_token::sign(deps.key, &claims).map_err(ServiceError::Internal)?;
        let link = format!("{}/decide/{token}", deps.links.api_base_url.trim_end_matches('/'));
        deps.mailer.send(&approver_mail(&request, &contact.person, level, &link, &deps.links.account, &deps.links.region)).await?;
        sent += 1;
    }
    tracing::info!(request_id = %id, level, sent, "approval mail sent");
    Ok(sent)
}

/// A contact's approver keys when the level names no group they could be in: their own key is
/// then all that can match, and only their existence needs checking, not their groups. (Whoever
/// follows the link is resolved in full when they decide.)
fn keys_without_lookup(person: &Person, plan: &ApprovalPlan, level: u8) -> Option<Vec<String>> {
    let approvers = &plan.levels.get(usize::from(level).checked_sub(1)?)?.approvers;
    let (own, in_groups) = match person {
        Person::IamUser(name) => (Approver::IamUser(name.clone()), approvers.iter().any(|a| matches!(a, Approver::IamGroup(_)))),
        Person::IamRoleSession { role, .. } => (Approver::IamRole(role.clone()), false),
        Person::IdentityCenterUser(name) => {
            (Approver::IdentityCenterUser(name.clone()), approvers.iter().any(|a| matches!(a, Approver::IdentityCenterGroup(_))))
        }
    };
    (!in_groups).then(|| vec![own.index_key()])
}

pub fn approver_mail(request: &AccessRequest, to: &Person, level: u8, link: &str, account: &str, region: &str) -> Mail {
    let decision = request.decision.as_ref();
    let plan = approval::plan_of(request);
    let levels = plan.map_or(0, |p| p.levels.len());
    let needed = plan.and_then(|p| p.levels.get(usize::from(level).saturating_sub(1))).map_or(1, |l| l.min_approvals);
    let progress = request.approval.as_ref();
    let so_far = progress.map_or(0, |p| p.approvals_at(level));
    let tags = decision.map(|d| d.node_tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")).unwrap_or_default();
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
    Mail {
        audience: Audience::Approvers,
        recipient: to.key(),
        subject: format!("Approval needed: access to {} (level {level} of {levels})", request.node_id),
        body,
    }
}

async fn mail_requester(deps: &NotifyDeps<'_>, envelope: &EventEnvelope) -> Result<usize, ServiceError> {
    let d = &envelope.detail;
    let Ok(requester) = crate::domain::principal::CallerArn::try_from(d.requester.clone()) else { return Ok(0) };
    let person = Person::from_caller(&requester);
    let why = match (&d.approval, &d.decision) {
        (Some(entry), _) if entry.verdict == Verdict::Reject => {
            format!("Rejected by {} at level {}{}", entry.actor, entry.level, entry.comment.as_ref().map(|c| format!(": {}", c.as_str())).unwrap_or_default())
        }
        (_, Some(decision)) if d.status == RequestStatus::Failed || d.previous_status == Some(RequestStatus::Submitted) => decision.message.clone(),
        _ => match d.status {
            RequestStatus::Approved => "All approval levels completed.".to_owned(),
            RequestStatus::Cancelled => "You cancelled the request.".to_owned(),
            RequestStatus::Expired if d.previous_status == Some(RequestStatus::Approved) => "The access window ended; the access was removed.".to_owned(),
            RequestStatus::Expired => "Nobody decided before the approval deadline.".to_owned(),
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
        account = deps.links.account,
        region = deps.links.region,
    );
    let mail = Mail { audience: Audience::Requesters, recipient: person.key(), subject: format!("Access request {}: {}", d.node_id, d.status), body };
    deps.mailer.send(&mail).await?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::ApprovalLevel;

    fn plan(approvers: Vec<Approver>) -> ApprovalPlan {
        ApprovalPlan { policy_name: "p".into(), levels: vec![ApprovalLevel { min_approvals: 1, approvers }] }
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
            (&oncall, vec![Approver::IamGroup("DevOps".into()), Approver::IdentityCenterGroup("g-1".into())], Some(vec!["iam-role#oncall".to_owned()])),
        ];
        for (person, approvers, expected) in cases {
            assert_eq!(keys_without_lookup(person, &plan(approvers.clone()), 1), expected, "{person} with {approvers:?}");
        }
        assert_eq!(keys_without_lookup(&alice, &plan(vec![]), 2), None, "a level the plan does not have is looked up (and then matches nothing)");
    }
}
