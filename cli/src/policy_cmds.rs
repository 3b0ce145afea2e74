//! `jit policy validate` and `jit policy explain`: offline tooling for policy authors.

use std::collections::BTreeMap;
use std::path::Path;

use jit_shared::domain::ids::{DurationMinutes, NodeId, NodeLocation};
use jit_shared::domain::principal::{CallerArn, CallerKind, GroupRef, PrincipalIdentity, ResolvedPrincipal};
use jit_shared::domain::request::{Approver, Decision};
use jit_shared::policy::{Effect, NodeInfo, PolicySet};

/// Loads and validates a policy directory; the error text names file, line and fix.
pub fn validate(dir: &Path) -> Result<String, String> {
    let set = PolicySet::load_dir(dir).map_err(|e| e.to_string())?;
    let mut out = format!("policy set {} is valid:\n", dir.display());
    for s in set.statements() {
        let kind = if s.effect == Effect::Permit { "auto-approval" } else { "deny-access" };
        let window = s.window_minutes.map(|w| format!(", window {w} min")).unwrap_or_default();
        out.push_str(&format!("  {kind:<14} {} ({}:{}{window})\n", s.id, s.file, s.line));
    }
    for m in set.manual_policies() {
        out.push_str(&format!(
            "  {:<14} {} ({}:{}, {} level(s), max {} min)\n",
            "manual",
            m.id(),
            m.file,
            m.line,
            m.levels.len(),
            m.max_duration_minutes
        ));
    }
    if let Some(b) = set.break_glass() {
        let members: Vec<String> = b.members.iter().map(Approver::index_key).collect();
        out.push_str(&format!(
            "  {:<14} members {} (break-glass.yaml, max {} min, reviewed within {} min, {} security contact(s))\n",
            "break-glass",
            members.join(", "),
            b.max_duration_minutes,
            b.review_within_minutes,
            b.security_contacts.len()
        ));
    }
    for w in set.warnings() {
        out.push_str(&format!(
            "warning: {}:{}: {}
  fix: {}
",
            w.file, w.line, w.message, w.fix
        ));
    }
    Ok(out)
}

/// Inputs to an offline decision.
#[derive(Debug, Clone, Default)]
pub struct ExplainInput {
    /// An IAM user ARN, an assumed-role ARN, or `identity-center:<user id>`.
    pub principal: String,
    pub groups: Vec<String>,
    pub attributes: Vec<(String, String)>,
    pub principal_tags: Vec<(String, String)>,
    pub node_id: String,
    pub node_tags: Vec<(String, String)>,
    pub duration_minutes: u32,
    /// The instant to decide at (RFC 3339); `None`: now.
    pub at: Option<String>,
    /// The IANA time zone of `context.local`; empty: UTC.
    pub time_zone: String,
    /// Decide it as a break-glass request.
    pub break_glass: bool,
}

pub fn parse_pair(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("'{raw}' is not KEY=VALUE"))
}

fn principal_of(input: &ExplainInput) -> Result<ResolvedPrincipal, String> {
    let tags: BTreeMap<String, String> = input.principal_tags.iter().cloned().collect();
    if let Some(user_id) = input.principal.strip_prefix("identity-center:") {
        return Ok(ResolvedPrincipal {
            identity: PrincipalIdentity::IdentityCenterUser {
                user_id: user_id.to_owned(),
                user_name: user_id.to_owned(),
            },
            groups: input
                .groups
                .iter()
                .map(|g| GroupRef::IdentityCenterGroup { id: g.clone(), display_name: None })
                .collect(),
            attributes: input.attributes.iter().cloned().collect(),
            principal_tags: tags,
        });
    }
    let caller = CallerArn::try_from(input.principal.clone()).map_err(|e| {
        format!("--principal: {}; use an IAM user ARN, an assumed-role ARN or identity-center:<user id>", e.message)
    })?;
    let identity = match caller.kind() {
        CallerKind::IamUser { name } => PrincipalIdentity::IamUser { arn: caller.to_string(), name: name.clone() },
        CallerKind::AssumedRole { role_name, session_name } => PrincipalIdentity::IamRole {
            arn: format!("arn:{}:iam::{}:role/{role_name}", caller.partition(), caller.account()),
            name: role_name.clone(),
            session_name: session_name.clone(),
        },
    };
    let groups = input
        .groups
        .iter()
        .map(|g| {
            let arn = if g.starts_with("arn:") {
                g.clone()
            } else {
                format!("arn:{}:iam::{}:group/{g}", caller.partition(), caller.account())
            };
            let name = arn.rsplit('/').next().unwrap_or(g).to_owned();
            GroupRef::IamGroup { arn, name }
        })
        .collect();
    Ok(ResolvedPrincipal { identity, groups, attributes: BTreeMap::new(), principal_tags: tags })
}

pub fn explain(dir: &Path, input: &ExplainInput) -> Result<Decision, String> {
    let zone = match input.time_zone.trim() {
        "" => jit_shared::policy::local_time::PolicyTimeZone::default(),
        name => jit_shared::policy::local_time::PolicyTimeZone::named(name).map_err(|e| format!("--time-zone: {e}"))?,
    };
    let at = match &input.at {
        None => jit_shared::now(),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| format!("--at: '{text}' is not an RFC 3339 instant such as 2026-12-02T03:00:00Z ({e})"))?,
    };
    let set = PolicySet::load_dir(dir).map_err(|e| e.to_string())?.with_time_zone(zone);
    let principal = principal_of(input)?;
    let node_id = NodeId::try_from(input.node_id.clone()).map_err(|e| format!("--node: {}", e.message))?;
    // A bare instance id is in the stack's account: the principal's, when its ARN names one.
    let home = NodeLocation {
        partition: "aws".into(),
        account: input.principal.split(':').nth(4).filter(|a| a.len() == 12).unwrap_or("123456789012").to_owned(),
        region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
    };
    let node = NodeInfo { location: node_id.resolve(&home), node_id, tags: input.node_tags.iter().cloned().collect() };
    let duration =
        DurationMinutes::try_from(input.duration_minutes).map_err(|e| format!("--duration: {}", e.message))?;
    if input.break_glass {
        let keys = jit_shared::app::common::approver_keys(&principal);
        let member = set.break_glass().is_some_and(|b| b.admits(&keys));
        return Ok(set.decide_break_glass(&principal, member, &node, Some(duration), at));
    }
    Ok(set.decide(&principal, &node, duration, at))
}

pub fn render_decision(d: &Decision) -> String {
    let mut out = format!("outcome:   {}\nrule:      {:?}\n", d.outcome, d.rule);
    out.push_str(&format!(
        "policies:  {}\n",
        if d.deciding_policy_ids.is_empty() { "(none)".to_owned() } else { d.deciding_policy_ids.join(", ") }
    ));
    if !d.deny_policy_ids.is_empty() {
        out.push_str(&format!("denied by: {} (auto-approval removed)\n", d.deny_policy_ids.join(", ")));
    }
    if let Some(code) = &d.failure_code {
        out.push_str(&format!("failure:   {code}\n"));
    }
    if let Some(max) = d.max_duration_minutes {
        out.push_str(&format!("maximum:   {max} minutes\n"));
    }
    if let Some(plan) = &d.approval_plan {
        for (i, level) in plan.levels.iter().enumerate() {
            let names: Vec<String> = level.approvers.iter().map(|a| a.index_key()).collect();
            out.push_str(&format!("level {}:   {} of [{}]\n", i + 1, level.min_approvals, names.join(", ")));
        }
    }
    out.push_str(&format!("why:       {}\n", d.message));
    out
}

/// Shell commands creating each contact's email subscriptions. The filter policy is what makes a
/// personal approval link reach only its person; each address must confirm its subscription.
pub fn subscription_commands(
    contacts: &[jit_shared::policy::contacts::Contact],
    approver_topic: &str,
    requester_topic: &str,
) -> String {
    let mut out = String::from(
        "#!/bin/sh\n# Generated by `jit contacts`: one approver and one requester subscription per contact.\nset -e\n",
    );
    for c in contacts {
        let filter = jit_shared::adapters::mail::filter_policy(&c.person.key());
        for topic in [approver_topic, requester_topic] {
            out.push_str(&format!(
                "aws sns subscribe --topic-arn '{topic}' --protocol email --notification-endpoint '{}' --attributes '{{\"FilterPolicy\":{}}}'\n",
                c.email,
                serde_json::Value::String(filter.clone())
            ));
        }
    }
    out
}

/// The IAM documents the stack writes, for a sample request (`events/request-approved.json`) in
/// a stack of account 123456789012 serving member account 222233334444: the attach-mode grants
/// (IAM user, role session), the credentials-mode session policies (a node of the stack's
/// account, one of a member account) and a revoke's deny. `make iam-lint` runs them through
/// `parliament`; reviewers can read exactly what a grant allows.
pub fn iam_documents() -> Result<Vec<(&'static str, serde_json::Value)>, String> {
    use jit_shared::domain::credentials::{deny_document, session_policy};
    use jit_shared::domain::grant::{self, GrantMode, GrantSettings, GrantTarget, DEFAULT_SESSION_DOCUMENT};
    let envelope: jit_shared::domain::events::EventEnvelope =
        serde_json::from_str(include_str!("../../events/request-approved.json")).map_err(|e| e.to_string())?;
    let request = envelope.detail.request().ok_or("the sample request does not parse")?;
    let settings = GrantSettings {
        partition: "aws".into(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        session_documents: vec![DEFAULT_SESSION_DOCUMENT.into()],
        mode: GrantMode::Credentials,
        session_role_name: "jit-node-access-session".into(),
        member_accounts: vec!["222233334444".into()],
    };
    let deadline = request.access_deadline();
    let attach = |target: GrantTarget| -> Result<serde_json::Value, String> {
        let text = grant::build(&settings, &target, &request.node_id, &deadline, 0).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    let mut member = request.clone();
    member.node_id =
        NodeId::try_from(format!("arn:aws:ec2:us-east-1:222233334444:instance/{}", request.node_id.instance_id()))
            .map_err(|e| e.message)?;
    Ok(vec![
        ("grant-iam-user", attach(GrantTarget::IamUser { name: "operator".into() })?),
        (
            "grant-role-session",
            attach(GrantTarget::IamRoleSession {
                role: "OnCall".into(),
                role_id: "AROAEXAMPLEROLEID0001".into(),
                session: "alice".into(),
            })?,
        ),
        ("session-policy", session_policy(&settings, &request, &deadline)),
        ("session-policy-member-account", session_policy(&settings, &member, &deadline)),
        ("revoke-deny", deny_document(&request.request_id)),
    ])
}

#[cfg(test)]
mod contact_tests {
    #[test]
    fn every_contact_gets_both_subscriptions_with_their_own_filter() {
        let set = jit_shared::policy::PolicySet::load_dir(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies"
        )))
        .unwrap();
        let text =
            super::subscription_commands(set.contacts(), "arn:aws:sns:us-east-1:1:a", "arn:aws:sns:us-east-1:1:r");
        assert_eq!(text.matches("aws sns subscribe").count(), set.contacts().len() * 2);
        assert!(
            text.contains(r#"--notification-endpoint 'carol@example.com' --attributes '{"FilterPolicy":"{\"recipient\":[\"ic-user#carol\"]}"}'"#),
            "{text}"
        );
    }
}

#[cfg(test)]
mod break_glass_tests {
    use super::*;

    #[test]
    fn explain_decides_break_glass_with_the_repositorys_policies() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"));
        let ask = |groups: &[&str], node: &str, tags: &[(&str, &str)]| {
            let input = ExplainInput {
                principal: "arn:aws:iam::123456789012:user/operator".into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                node_id: node.into(),
                node_tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                duration_minutes: 30,
                break_glass: true,
                ..ExplainInput::default()
            };
            let d = explain(dir, &input).unwrap();
            (d.outcome.to_string(), d.failure_code.unwrap_or_default())
        };
        let partner = "arn:aws:ec2:us-east-1:222233334444:instance/i-0bbbbbbbbbbbbbbb2";
        let cases = [
            (ask(&["OnCall"], "i-0123456789abcdef0", &[("Environment", "Development")]), ("Approved", "")),
            (ask(&[], "i-0123456789abcdef0", &[("Environment", "Development")]), ("Failed", "NotInBreakGlassGroup")),
            (ask(&["OnCall"], partner, &[("Environment", "Partner")]), ("Failed", "BreakGlassForbidden")),
            (ask(&["OnCall"], "i-0fedcba9876543210", &[("Environment", "Production")]), ("Approved", "")),
        ];
        for (i, (got, (outcome, code))) in cases.into_iter().enumerate() {
            assert_eq!((got.0.as_str(), got.1.as_str()), (outcome, code), "case {i}");
        }
    }
}
