//! The approval rules, pure: who may decide a pending request at its current level, and what a
//! decision does to its progress (levels complete in order; one person counts once; the
//! requester never decides their own request).

use chrono::{DateTime, Utc};

use crate::domain::approval::{ApprovalEntry, ApprovalProgress, Channel, Comment, Person, Verdict};
use crate::domain::request::{AccessRequest, ApprovalPlan, Approver};
use crate::domain::status::RequestStatus;

/// Someone who wants to decide, as resolved now (group memberships are current).
#[derive(Clone, Debug)]
pub struct Decider {
    pub person: Person,
    /// Whom the person counts as (`Person::counted_as`).
    pub counted_as: String,
    pub actor: String,
    /// `Approver::index_key`s the person holds now: themself and their groups.
    pub approver_keys: Vec<String>,
    pub channel: Channel,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request is {0}, not Pending; decisions are no longer accepted")]
    NotPending(RequestStatus),
    #[error("the request's approval deadline ({0}) has passed")]
    DeadlinePassed(DateTime<Utc>),
    #[error("the requester cannot approve or reject their own request")]
    OwnRequest,
    #[error("you are not an approver of level {level} of this request")]
    NotAnApprover { level: u8 },
    #[error("you already decided on this request; one approver counts once")]
    AlreadyDecided,
    #[error("this decision was for level {wanted}, but the request is at level {current}")]
    WrongLevel { wanted: u8, current: u8 },
    #[error("the request has no approval plan")]
    NoPlan,
}

/// The effect of an accepted decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub status: RequestStatus,
    pub progress: ApprovalProgress,
    pub entry: ApprovalEntry,
    /// The level this decision completed, if it did.
    pub level_completed: Option<u8>,
}

pub fn plan_of(request: &AccessRequest) -> Option<&ApprovalPlan> {
    request.decision.as_ref().and_then(|d| d.approval_plan.as_ref())
}

/// What an approver agrees to besides the node and the reason, as every channel shows it, before
/// the requester's own text: more time on a grant already running, or access for a duration, and
/// a start later than now.
pub fn terms(request: &AccessRequest) -> Vec<(&'static str, String)> {
    let minutes = request.duration_minutes.get();
    let mut terms = vec![match &request.extends {
        Some(of) => ("Extension", format!("of {of} by {minutes} more minutes (it is already granted)")),
        None => ("Duration", format!("{minutes} minutes")),
    }];
    if let Some(at) = &request.starts_at {
        terms.push(("Starts at", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    terms
}

/// Who asks for what, in one line (chat headers and notices).
pub fn summary(request: &AccessRequest) -> String {
    let (who, node) = (&request.requester, &request.node_id);
    match (&request.extends, &request.starts_at) {
        (Some(of), _) => format!("{who} asks for more time on their running access to node {node} ({of})"),
        (None, Some(at)) => format!(
            "{who} asks for access to node {node} from {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        (None, None) => format!("{who} asks for access to node {node}"),
    }
}

/// The plan entry of `level` that lets someone holding `keys` act, if any: one of its approvers,
/// or, once the level has escalated, one of its escalation approvers.
pub fn matching_approver<'a>(
    plan: &'a ApprovalPlan,
    level: u8,
    keys: &[String],
    escalated: bool,
) -> Option<&'a Approver> {
    let index = usize::from(level).checked_sub(1)?;
    let l = plan.levels.get(index)?;
    let escalation = l.escalate_to.iter().filter(|_| escalated);
    l.approvers.iter().chain(escalation).find(|a| keys.contains(&a.index_key()))
}

/// When the request's current level began waiting: the decision that made it `Pending` (level
/// 1), else the approval that completed the level before.
pub fn level_since(request: &AccessRequest, progress: &ApprovalProgress) -> Option<DateTime<Utc>> {
    match progress.current_level {
        0 | 1 => request.decision.as_ref().map(|d| d.decided_at),
        level => progress
            .entries
            .iter()
            .filter(|e| e.level == level - 1 && e.verdict == Verdict::Approve)
            .map(|e| e.at)
            .max(),
    }
}

/// The notice the current level of a waiting request is due at `now`, if any: its escalation
/// first, then its reminder; each once per level (`ApprovalProgress::nudges`).
pub fn nudge_due(request: &AccessRequest, now: DateTime<Utc>) -> Option<crate::domain::approval::NudgeKind> {
    use crate::domain::approval::NudgeKind;
    if request.status != RequestStatus::Pending {
        return None;
    }
    let (plan, progress) = (plan_of(request)?, request.progress.as_ref()?);
    if now >= progress.pending_until {
        return None;
    }
    let level = progress.current_level;
    if has_escalated(request, plan, progress, now) && !progress.was_nudged(level, NudgeKind::Escalation) {
        return Some(NudgeKind::Escalation);
    }
    let remind_after = plan.levels.get(usize::from(level).saturating_sub(1))?.remind_after_minutes?;
    let since = level_since(request, progress)?;
    (now >= since + chrono::Duration::minutes(i64::from(remind_after))
        && !progress.was_nudged(level, NudgeKind::Reminder))
    .then_some(NudgeKind::Reminder)
}

/// Whether the current level has escalated at `now` (`escalateAfterMinutes` since it began).
pub fn has_escalated(
    request: &AccessRequest,
    plan: &ApprovalPlan,
    progress: &ApprovalProgress,
    now: DateTime<Utc>,
) -> bool {
    let Some(level) = plan.levels.get(usize::from(progress.current_level).saturating_sub(1)) else {
        return false;
    };
    match (level.escalate_after_minutes, level_since(request, progress)) {
        (Some(minutes), Some(since)) if !level.escalate_to.is_empty() => {
            now >= since + chrono::Duration::minutes(i64::from(minutes))
        }
        _ => false,
    }
}

/// Checks who may act without deciding anything (the confirmation page and `GET /approvals`).
/// `requester` is whom the requester counts as (`Person::counted_as`).
pub fn check_may_decide<'a>(
    request: &'a AccessRequest,
    requester: &str,
    decider: &Decider,
    level: Option<u8>,
    now: DateTime<Utc>,
) -> Result<(&'a ApprovalProgress, &'a Approver), Refusal> {
    if request.status != RequestStatus::Pending {
        return Err(Refusal::NotPending(request.status));
    }
    let (Some(plan), Some(progress)) = (plan_of(request), request.progress.as_ref()) else {
        return Err(Refusal::NoPlan);
    };
    if now >= progress.pending_until {
        return Err(Refusal::DeadlinePassed(progress.pending_until));
    }
    if requester == decider.counted_as {
        return Err(Refusal::OwnRequest);
    }
    if let Some(wanted) = level {
        if wanted != progress.current_level {
            return Err(Refusal::WrongLevel { wanted, current: progress.current_level });
        }
    }
    if progress.has_acted(&decider.counted_as) {
        return Err(Refusal::AlreadyDecided);
    }
    let escalated = has_escalated(request, plan, progress, now);
    let approver = matching_approver(plan, progress.current_level, &decider.approver_keys, escalated)
        .ok_or(Refusal::NotAnApprover { level: progress.current_level })?;
    Ok((progress, approver))
}

/// Applies one decision. `level` is the level a mail link was issued for (None for the API).
pub fn decide(
    request: &AccessRequest,
    requester: &str,
    decider: &Decider,
    verdict: Verdict,
    comment: Option<Comment>,
    level: Option<u8>,
    now: DateTime<Utc>,
) -> Result<Step, Refusal> {
    let (progress, approver) = check_may_decide(request, requester, decider, level, now)?;
    let plan = plan_of(request).ok_or(Refusal::NoPlan)?;
    let entry = ApprovalEntry {
        level: progress.current_level,
        verdict,
        approver: decider.person.clone(),
        actor: decider.actor.clone(),
        matched: approver.index_key(),
        channel: decider.channel,
        at: now,
        comment,
        counted_as: Some(decider.counted_as.clone()),
    };
    let mut next = progress.clone();
    next.entries.push(entry.clone());
    if verdict == Verdict::Reject {
        return Ok(Step { status: RequestStatus::Rejected, progress: next, entry, level_completed: None });
    }
    let level = progress.current_level;
    let needed = plan.levels.get(usize::from(level).saturating_sub(1)).map_or(1, |l| usize::from(l.min_approvals));
    if next.approvals_at(level) < needed {
        return Ok(Step { status: RequestStatus::Pending, progress: next, entry, level_completed: None });
    }
    let last = usize::from(level) >= plan.levels.len();
    if last {
        Ok(Step { status: RequestStatus::Approved, progress: next, entry, level_completed: Some(level) })
    } else {
        next.current_level = level + 1;
        Ok(Step { status: RequestStatus::Pending, progress: next, entry, level_completed: Some(level) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::CallerArn;
    use crate::domain::request::{ApprovalLevel, Decision, DecisionRule};
    use chrono::Duration;

    fn arn(user: &str) -> CallerArn {
        CallerArn::try_from(format!("arn:aws:iam::123456789012:user/{user}")).unwrap()
    }

    fn pending(plan: Vec<(u8, Vec<Approver>)>, now: DateTime<Utc>) -> AccessRequest {
        AccessRequest {
            request_id: crate::domain::ids::RequestId::generate(),
            requester: arn("operator"),
            node_id: "i-0123456789abcdef0".to_owned().try_into().unwrap(),
            reason: "test".to_owned().try_into().unwrap(),
            duration_minutes: 30.try_into().unwrap(),
            duration_from_policy: false,
            status: RequestStatus::Pending,
            created_at: now,
            updated_at: now,
            version: 2,
            decision: Some(Decision {
                outcome: RequestStatus::Pending,
                rule: DecisionRule::ManualTagSpecific,
                deciding_policy_ids: vec!["manual/production".into()],
                deny_policy_ids: vec![],
                failure_code: None,
                message: "needs approval".into(),
                max_duration_minutes: Some(240),
                approval_plan: Some(ApprovalPlan {
                    policy_name: "production".into(),
                    levels: plan
                        .into_iter()
                        .map(|(min, approvers)| ApprovalLevel { min_approvals: min, approvers, ..Default::default() })
                        .collect(),
                }),
                node_tags: Default::default(),
                node_location: None,
                decided_at: now,
            }),
            progress: Some(ApprovalProgress::start(now + Duration::hours(24))),
            approved_at: None,
            grant: None,
            grant_mode: crate::domain::grant::GrantMode::Attach,
            credentials: None,
            approval_seal: None,
            starts_at: None,
            extends: None,
            break_glass: false,
            review: None,
            revoke_held_at: None,
        }
    }

    fn user(name: &str, groups: &[&str]) -> Decider {
        let mut keys = vec![Approver::IamUser(name.into()).index_key()];
        keys.extend(groups.iter().map(|g| Approver::IamGroup((*g).into()).index_key()));
        Decider {
            person: Person::IamUser(name.into()),
            counted_as: Person::IamUser(name.into()).key(),
            actor: arn(name).to_string(),
            approver_keys: keys,
            channel: Channel::Api,
        }
    }

    fn two_levels(now: DateTime<Utc>) -> AccessRequest {
        pending(
            vec![
                (1, vec![Approver::IamUser("a1".into()), Approver::IamGroup("Leads".into())]),
                (
                    2,
                    vec![
                        Approver::IamUser("b1".into()),
                        Approver::IamUser("b2".into()),
                        Approver::IamUser("b3".into()),
                    ],
                ),
            ],
            now,
        )
    }

    /// Whom the request's requester counts as, their role (if any) not pinning session names.
    fn requester(r: &AccessRequest) -> String {
        Person::from_caller(&r.requester).counted_as(false)
    }

    fn apply(r: &mut AccessRequest, d: &Decider, v: Verdict, now: DateTime<Utc>) -> Result<Step, Refusal> {
        let step = decide(r, &requester(r), d, v, None, None, now)?;
        r.status = step.status;
        r.progress = Some(step.progress.clone());
        Ok(step)
    }

    #[test]
    fn two_levels_approve_only_after_the_right_approvals_in_order() {
        let now = Utc::now();
        let mut r = two_levels(now);
        assert_eq!(apply(&mut r, &user("b1", &[]), Verdict::Approve, now), Err(Refusal::NotAnApprover { level: 1 }));
        let step = apply(&mut r, &user("lead", &["Leads"]), Verdict::Approve, now).unwrap();
        assert_eq!(
            (step.status, step.level_completed, step.entry.matched.as_str()),
            (RequestStatus::Pending, Some(1), "iam-group#Leads")
        );
        assert_eq!(apply(&mut r, &user("a1", &[]), Verdict::Approve, now), Err(Refusal::NotAnApprover { level: 2 }));
        let step = apply(&mut r, &user("b1", &[]), Verdict::Approve, now).unwrap();
        assert_eq!((step.status, step.level_completed), (RequestStatus::Pending, None));
        let step = apply(&mut r, &user("b3", &[]), Verdict::Approve, now).unwrap();
        assert_eq!((step.status, step.level_completed), (RequestStatus::Approved, Some(2)));
        assert_eq!(
            apply(&mut r, &user("b2", &[]), Verdict::Approve, now),
            Err(Refusal::NotPending(RequestStatus::Approved))
        );
    }

    #[test]
    fn approval_by_the_requester_is_refused_even_when_named() {
        let now = Utc::now();
        let mut r = pending(vec![(1, vec![Approver::IamUser("operator".into())])], now);
        assert_eq!(apply(&mut r, &user("operator", &[]), Verdict::Approve, now), Err(Refusal::OwnRequest));
        assert_eq!(apply(&mut r, &user("operator", &[]), Verdict::Reject, now), Err(Refusal::OwnRequest));
    }

    #[test]
    fn an_identity_center_requester_cannot_approve_through_another_permission_set() {
        let now = Utc::now();
        let mut r = pending(vec![(1, vec![Approver::IdentityCenterUser("carol".into())])], now);
        r.requester =
            CallerArn::try_from("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_1/carol".to_owned())
                .unwrap();
        let carol = Decider {
            person: Person::IdentityCenterUser("carol".into()),
            counted_as: Person::IdentityCenterUser("carol".into()).key(),
            actor: "identity-center-user/carol".into(),
            approver_keys: vec![Approver::IdentityCenterUser("carol".into()).index_key()],
            channel: Channel::EmailLink,
        };
        assert_eq!(apply(&mut r, &carol, Verdict::Approve, now), Err(Refusal::OwnRequest));
    }

    #[test]
    fn a_duplicate_approval_counts_once() {
        let now = Utc::now();
        let mut r = pending(vec![(2, vec![Approver::IamGroup("Leads".into())])], now);
        apply(&mut r, &user("x", &["Leads"]), Verdict::Approve, now).unwrap();
        assert_eq!(apply(&mut r, &user("x", &["Leads"]), Verdict::Approve, now), Err(Refusal::AlreadyDecided));
        assert_eq!(r.progress.as_ref().unwrap().approvals_at(1), 1);
        assert_eq!(r.status, RequestStatus::Pending);
    }

    #[test]
    fn one_rejection_at_any_level_ends_the_request() {
        let now = Utc::now();
        let mut r = two_levels(now);
        apply(&mut r, &user("a1", &[]), Verdict::Approve, now).unwrap();
        apply(&mut r, &user("b1", &[]), Verdict::Approve, now).unwrap();
        let step = apply(&mut r, &user("b2", &[]), Verdict::Reject, now).unwrap();
        assert_eq!(step.status, RequestStatus::Rejected);
        assert_eq!(
            apply(&mut r, &user("b3", &[]), Verdict::Approve, now),
            Err(Refusal::NotPending(RequestStatus::Rejected))
        );
    }

    #[test]
    fn decisions_after_the_deadline_or_for_another_level_are_refused() {
        let now = Utc::now();
        let r = two_levels(now);
        let later = now + Duration::hours(24);
        assert!(matches!(
            decide(&r, &requester(&r), &user("a1", &[]), Verdict::Approve, None, None, later),
            Err(Refusal::DeadlinePassed(_))
        ));
        assert_eq!(
            decide(&r, &requester(&r), &user("a1", &[]), Verdict::Approve, None, Some(2), now),
            Err(Refusal::WrongLevel { wanted: 2, current: 1 })
        );
    }

    /// A session of role `role` named `session`, approving through the role's approver entry.
    fn session(role: &str, session: &str, pinned: bool) -> Decider {
        let person = Person::IamRoleSession { role: role.into(), session: session.into() };
        Decider {
            counted_as: person.counted_as(pinned),
            person,
            actor: format!("arn:aws:sts::123456789012:assumed-role/{role}/{session}"),
            approver_keys: vec![Approver::IamRole(role.into()).index_key()],
            channel: Channel::Api,
        }
    }

    #[test]
    fn sessions_of_a_role_that_does_not_pin_names_are_one_person() {
        // Arrange: two approvals needed from the Ops role's sessions.
        let now = Utc::now();
        let mut r = pending(vec![(2, vec![Approver::IamRole("Ops".into()), Approver::IamUser("b1".into())])], now);
        // Act: one person assumes the role twice with two session names.
        apply(&mut r, &session("Ops", "alice", false), Verdict::Approve, now).unwrap();
        let second = apply(&mut r, &session("Ops", "alice-again", false), Verdict::Approve, now);
        // Assert: counted once; a different person completes the level.
        assert_eq!(second, Err(Refusal::AlreadyDecided));
        let step = apply(&mut r, &user("b1", &[]), Verdict::Approve, now).unwrap();
        assert_eq!(step.status, RequestStatus::Approved);
    }

    #[test]
    fn sessions_of_a_role_that_pins_names_are_the_users_they_name() {
        let now = Utc::now();
        let cases = [
            // (requester, approver, pinned, expected)
            (
                "arn:aws:sts::123456789012:assumed-role/Ops/alice",
                session("Ops", "alice", true),
                Err(Refusal::OwnRequest),
            ),
            ("arn:aws:iam::123456789012:user/alice", session("Ops", "alice", true), Err(Refusal::OwnRequest)),
            ("arn:aws:iam::123456789012:user/alice", session("Ops", "bob", true), Ok(RequestStatus::Approved)),
            ("arn:aws:iam::123456789012:user/alice", session("Ops", "alice", false), Ok(RequestStatus::Approved)),
        ];
        for (requester_arn, decider, expected) in cases {
            let mut r = pending(vec![(1, vec![Approver::IamRole("Ops".into())])], now);
            r.requester = CallerArn::try_from(requester_arn.to_owned()).unwrap();
            let requester = Person::from_caller(&r.requester).counted_as(true);
            let got = decide(&r, &requester, &decider, Verdict::Approve, None, None, now).map(|s| s.status);
            assert_eq!(got, expected, "{requester_arn} by {}", decider.actor);
        }
    }

    #[test]
    fn every_chat_channel_shows_an_extension_or_a_schedule_before_the_requesters_text() {
        let now = Utc::now();
        let base = pending(vec![(1, vec![Approver::IamUser("lead".into())])], now);
        let of = crate::domain::ids::RequestId::generate();
        let extension = AccessRequest { extends: Some(of.clone()), ..base.clone() };
        let scheduled = AccessRequest { starts_at: Some(now + chrono::Duration::days(2)), ..base.clone() };
        let to_slack = crate::domain::slack::SlackUserId::try_from("U0123ABCD".to_owned()).unwrap();
        let lead = Person::IamUser("lead".into());
        let cases = [
            (
                &extension,
                "by 30 more minutes (it is already granted)",
                format!("more time on their running access to node i-0123456789abcdef0 ({of})"),
            ),
            (&scheduled, "Starts at", "asks for access to node i-0123456789abcdef0 from ".to_owned()),
            (&base, "30 minutes", "asks for access to node i-0123456789abcdef0".to_owned()),
        ];
        for (request, term, said) in cases {
            let slack = crate::domain::slack::approval_message(request, &to_slack, 1, now).to_string();
            let teams =
                crate::domain::teams::approval_card(request, &lead, 1, "https://example.com/decide/t", now).to_string();
            for (channel, text) in [("slack", &slack), ("teams", &teams)] {
                assert!(text.contains(term), "{channel}: {term}");
                assert!(text.contains(&said), "{channel}: {said}");
                let (first_term, reason) = (text.find(terms(request)[0].0).unwrap(), text.find("Reason").unwrap());
                assert!(first_term < reason, "{channel}: what is approved comes before the reason");
            }
        }
    }

    #[test]
    fn a_slack_reason_is_shown_verbatim_not_as_fields_or_links() {
        let now = Utc::now();
        let mut request = pending(vec![(1, vec![Approver::IamUser("lead".into())])], now);
        request.reason = "*Duration*\n15 minutes <https://evil.example|approve here>".to_owned().try_into().unwrap();
        let to = crate::domain::slack::SlackUserId::try_from("U0123ABCD".to_owned()).unwrap();

        let message = crate::domain::slack::approval_message(&request, &to, 1, now);

        let blocks = message["blocks"].as_array().unwrap();
        let reason =
            blocks.iter().find_map(|b| b["text"]["text"].as_str().filter(|t| t.starts_with("*Reason*"))).unwrap();
        assert_eq!(reason, "*Reason*\n```*Duration*\n15 minutes &lt;https://evil.example|approve here&gt;```");
    }

    #[test]
    fn person_keys_round_trip() {
        for p in [
            Person::IamUser("a".into()),
            Person::IdentityCenterUser("c@x".into()),
            Person::IamRoleSession { role: "R".into(), session: "s".into() },
        ] {
            assert_eq!(Person::parse_key(&p.key()), Some(p.clone()));
        }
        let long_role = format!("iam-role-session#{}/s", "r".repeat(65));
        for bad in [
            "",
            "iam-user#",
            "nobody#x",
            "iam-role-session#nosession",
            "iam-user",
            "iam-role-session#/s",
            "iam-role-session#r/",
            "iam-role-session#bad role/s",
            "iam-user#a/b",
            "ic-user#<script>",
            long_role.as_str(),
        ] {
            assert_eq!(Person::parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn comments_are_bounded_and_plain() {
        assert_eq!(Comment::parse_optional(Some("  ")).unwrap(), None);
        assert_eq!(Comment::parse_optional(Some(&"x".repeat(1000))).unwrap().unwrap().as_str().len(), 1000);
        assert_eq!(Comment::parse_optional(Some(&"x".repeat(1001))).unwrap_err().field, "comment");
        assert_eq!(Comment::parse_optional(Some("a\u{7}b")).unwrap_err().field, "comment");
        assert_eq!(Comment::parse_optional(Some("<b>ok</b>\nline")).unwrap().unwrap().as_str(), "<b>ok</b>\nline");
    }
}
