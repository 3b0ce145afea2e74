//! Manual-approval policies: one YAML document per file.
//!
//! ```yaml
//! name: production
//! description: Production needs a DevOps engineer, then a lead
//! targets:
//!   tags:
//!     - { key: Environment, value: Production }
//!   # optional: only nodes of these accounts (default: every account the stack serves)
//!   accounts: ["222233334444"]
//! maxDurationMinutes: 240
//! levels:
//!   - minApprovals: 1
//!     approvers:
//!       - iamGroup: DevOps
//!   - minApprovals: 1
//!     approvers:
//!       - iamUser: lead
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::ids::MAX_DURATION_MINUTES;
use crate::domain::request::{ApprovalLevel, ApprovalPlan, Approver};
use crate::policy::yaml_spans::{self, SpannedYaml};

pub const MAX_LEVELS: usize = 5;
pub const MAX_APPROVERS_PER_LEVEL: usize = 5;
pub const MAX_TAG_TARGETS: usize = 50;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManualPolicyDoc {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub targets: TargetsDoc,
    pub max_duration_minutes: u32,
    pub levels: Vec<LevelDoc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetsDoc {
    #[serde(default)]
    pub all_nodes: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<TagTarget>>,
    /// Only nodes of these accounts; absent: every account.
    #[serde(default)]
    pub accounts: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagTarget {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LevelDoc {
    pub min_approvals: u8,
    pub approvers: Vec<Approver>,
    /// After this many minutes at the level, its approvers are reminded once.
    #[serde(default)]
    pub remind_after_minutes: Option<u32>,
    /// After this many minutes at the level, `escalateTo` may decide it too.
    #[serde(default)]
    pub escalate_after_minutes: Option<u32>,
    #[serde(default)]
    pub escalate_to: Vec<Approver>,
}

/// Which nodes a manual policy covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Targets {
    AllNodes,
    /// OR'ed: the policy applies when the node has any of these tags.
    Tags(Vec<TagTarget>),
}

/// A validated manual-approval policy and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualPolicy {
    pub name: String,
    pub description: Option<String>,
    pub targets: Targets,
    /// Only nodes of these accounts; empty: every account the stack serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    pub max_duration_minutes: u32,
    pub levels: Vec<ApprovalLevel>,
    pub file: String,
    pub line: usize,
    /// Line of each tag target, for conflict messages.
    #[serde(skip)]
    pub target_lines: Vec<usize>,
}

impl ManualPolicy {
    /// The policy id recorded in decisions.
    pub fn id(&self) -> String {
        format!("manual/{}", self.name)
    }

    pub fn matches_tags(&self, tags: &BTreeMap<String, String>) -> bool {
        match &self.targets {
            Targets::AllNodes => true,
            Targets::Tags(targets) => targets.iter().any(|t| tags.get(&t.key) == Some(&t.value)),
        }
    }

    pub fn covers_account(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.iter().any(|a| a == account)
    }

    /// Whether two policies could both apply to a node of some account.
    pub fn accounts_overlap(&self, other: &ManualPolicy) -> bool {
        self.accounts.is_empty()
            || other.accounts.is_empty()
            || self.accounts.iter().any(|a| other.accounts.contains(a))
    }

    pub fn plan(&self) -> ApprovalPlan {
        ApprovalPlan { policy_name: self.name.clone(), levels: self.levels.clone() }
    }
}

/// A problem at one line of one manual policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
    pub fix: String,
}

impl LineError {
    /// This problem, in `file`.
    pub fn located(self, file: &str) -> crate::policy::PolicyLoadError {
        crate::policy::PolicyLoadError { file: file.to_owned(), line: self.line, message: self.message, fix: self.fix }
    }
}

/// A policy file's YAML read as `T`: a syntax error, or a key or value `T` does not take, is
/// reported at its line, with `shape` (what the file holds) as the fix.
pub(crate) fn read_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    shape: &str,
) -> Result<(SpannedYaml, T), Vec<LineError>> {
    let doc = yaml_spans::parse(text).map_err(|e| {
        vec![LineError { line: e.line, message: e.message, fix: "correct the YAML syntax at this line".into() }]
    })?;
    let parsed = serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let path = yaml_spans::path_key(e.path());
        vec![LineError {
            line: doc.line_of(&path),
            message: format!("at '{path}': {}", e.into_inner()),
            fix: shape.to_owned(),
        }]
    })?;
    Ok((doc, parsed))
}

fn err(doc: &SpannedYaml, path: &str, message: impl Into<String>, fix: impl Into<String>) -> LineError {
    LineError { line: doc.line_of(path), message: message.into(), fix: fix.into() }
}

fn valid_policy_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn valid_principal_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Parses and checks one manual policy file; every problem found is returned, not just the first.
pub fn parse_manual_policy(file: &str, text: &str) -> Result<ManualPolicy, Vec<LineError>> {
    let doc = yaml_spans::parse(text).map_err(|e| {
        vec![LineError { line: e.line, message: e.message, fix: "correct the YAML syntax at this line".into() }]
    })?;
    let parsed: ManualPolicyDoc = serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let path = yaml_spans::path_key(e.path());
        let inner = e.into_inner().to_string();
        let fix = if inner.contains("unknown field") || inner.contains("unknown variant") {
            "use only the documented keys: name, description, targets (allNodes | tags: [{key, value}], and optionally accounts: [12-digit ids]), maxDurationMinutes, levels: [{minApprovals, approvers: [iamUser | iamGroup | iamRole | identityCenterUser | identityCenterGroup], and optionally remindAfterMinutes, and escalateAfterMinutes with escalateTo: [approvers]}]"
        } else if inner.contains("missing field") {
            "add the missing key"
        } else {
            "give this key a value of the documented type"
        };
        let where_ = if path.is_empty() { String::new() } else { format!("at '{path}': ") };
        vec![err(&doc, &path, format!("{where_}{inner}"), fix)]
    })?;

    let mut errors = Vec::new();
    if !valid_policy_name(&parsed.name) {
        errors.push(err(
            &doc,
            "name",
            format!("policy name '{}' is not valid", parsed.name),
            "use 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    let targets = match (&parsed.targets.all_nodes, &parsed.targets.tags) {
        (Some(true), None) => Targets::AllNodes,
        (None | Some(false), Some(tags)) if !tags.is_empty() => {
            if tags.len() > MAX_TAG_TARGETS {
                errors.push(err(
                    &doc,
                    "targets.tags",
                    format!("{} tag targets; the limit is {MAX_TAG_TARGETS}", tags.len()),
                    "split the policy or target fewer tags",
                ));
            }
            for (i, t) in tags.iter().enumerate() {
                if !(1..=128).contains(&t.key.chars().count()) || t.key.starts_with("aws:") {
                    errors.push(err(
                        &doc,
                        &format!("targets.tags.{i}.key"),
                        format!("tag key '{}' is not valid", t.key),
                        "use a tag key of 1 to 128 characters that does not start with 'aws:'",
                    ));
                }
                if t.value.chars().count() > 256 {
                    errors.push(err(
                        &doc,
                        &format!("targets.tags.{i}.value"),
                        "tag value is longer than 256 characters",
                        "shorten the tag value",
                    ));
                }
                if tags[..i].contains(t) {
                    errors.push(err(
                        &doc,
                        &format!("targets.tags.{i}"),
                        format!("tag target {}={} is listed twice", t.key, t.value),
                        "remove the duplicate",
                    ));
                }
            }
            Targets::Tags(tags.clone())
        }
        _ => {
            errors.push(err(
                &doc,
                "targets",
                "targets must be either 'allNodes: true' or a non-empty 'tags' list, not both",
                "write 'targets: {allNodes: true}' or 'targets: {tags: [{key: K, value: V}]}'",
            ));
            Targets::AllNodes
        }
    };
    let accounts = parsed.targets.accounts.clone().unwrap_or_default();
    if parsed.targets.accounts.as_ref().is_some_and(Vec::is_empty) {
        errors.push(err(
            &doc,
            "targets.accounts",
            "targets.accounts is empty, so the policy would apply to no node",
            "list at least one 12-digit account id, or remove 'accounts' to cover every account",
        ));
    }
    for (i, a) in accounts.iter().enumerate() {
        if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(err(
                &doc,
                &format!("targets.accounts.{i}"),
                format!("targets.accounts: '{a}' is not a 12-digit account id"),
                "write the 12-digit account id in quotes, e.g. \"222233334444\"",
            ));
        } else if accounts[..i].contains(a) {
            errors.push(err(
                &doc,
                &format!("targets.accounts.{i}"),
                format!("targets.accounts: account {a} is listed twice"),
                "remove the duplicate",
            ));
        }
    }
    if !(1..=MAX_DURATION_MINUTES).contains(&parsed.max_duration_minutes) {
        errors.push(err(
            &doc,
            "maxDurationMinutes",
            format!(
                "maxDurationMinutes {} is outside 1 to {MAX_DURATION_MINUTES} (336 hours)",
                parsed.max_duration_minutes
            ),
            format!("set maxDurationMinutes between 1 and {MAX_DURATION_MINUTES}"),
        ));
    }
    if parsed.levels.is_empty() || parsed.levels.len() > MAX_LEVELS {
        errors.push(err(
            &doc,
            "levels",
            format!("{} approval levels; a policy needs 1 to {MAX_LEVELS}", parsed.levels.len()),
            format!("define between 1 and {MAX_LEVELS} levels"),
        ));
    }
    for (li, level) in parsed.levels.iter().enumerate() {
        let base = format!("levels.{li}");
        let n = level.approvers.len();
        if n == 0 || n > MAX_APPROVERS_PER_LEVEL {
            errors.push(err(
                &doc,
                &format!("{base}.approvers"),
                format!("level {} has {n} approvers; a level needs 1 to {MAX_APPROVERS_PER_LEVEL}", li + 1),
                "name between 1 and 5 approvers (use a group for more people)",
            ));
        }
        let has_group =
            level.approvers.iter().any(|a| matches!(a, Approver::IamGroup(_) | Approver::IdentityCenterGroup(_)));
        let ceiling = if has_group { MAX_APPROVERS_PER_LEVEL } else { n };
        if level.min_approvals == 0 || usize::from(level.min_approvals) > ceiling.max(1) {
            errors.push(err(
                &doc,
                &format!("{base}.minApprovals"),
                format!(
                    "level {} asks for {} approvals but can get at most {}",
                    li + 1,
                    level.min_approvals,
                    ceiling.max(1)
                ),
                "set minApprovals between 1 and the number of approvers that can act (at most 5)",
            ));
        }
        if let Some(m) =
            level.remind_after_minutes.filter(|m| !(1..=crate::domain::ids::MAX_DURATION_MINUTES).contains(m))
        {
            errors.push(err(
                &doc,
                &format!("{base}.remindAfterMinutes"),
                format!("level {} reminds after {m} minutes", li + 1),
                "set remindAfterMinutes between 1 and 20160",
            ));
        }
        match (level.escalate_after_minutes, level.escalate_to.len()) {
            (None, 0) => {}
            (Some(m), 1..=MAX_APPROVERS_PER_LEVEL) if (1..=crate::domain::ids::MAX_DURATION_MINUTES).contains(&m) => {}
            (Some(m), 1..=MAX_APPROVERS_PER_LEVEL) => errors.push(err(
                &doc,
                &format!("{base}.escalateAfterMinutes"),
                format!("level {} escalates after {m} minutes", li + 1),
                "set escalateAfterMinutes between 1 and 20160",
            )),
            (Some(_), n) => errors.push(err(
                &doc,
                &format!("{base}.escalateTo"),
                format!("level {} escalates to {n} approvers", li + 1),
                "name between 1 and 5 escalation approvers (use a group for more people)",
            )),
            (None, _) => errors.push(err(
                &doc,
                &format!("{base}.escalateTo"),
                format!("level {} names escalation approvers but no escalateAfterMinutes", li + 1),
                "add escalateAfterMinutes: how long the level waits before they may decide it",
            )),
        }
        // Approvers and escalation approvers are checked alike, each named at its own path.
        let named: Vec<(String, &Approver)> = level
            .approvers
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("{base}.approvers.{i}"), a))
            .chain(level.escalate_to.iter().enumerate().map(|(i, a)| (format!("{base}.escalateTo.{i}"), a)))
            .collect();
        for (ai, (path, approver)) in named.iter().enumerate() {
            let approver = *approver;
            let name = match approver {
                Approver::IamUser(n)
                | Approver::IamGroup(n)
                | Approver::IamRole(n)
                | Approver::IdentityCenterUser(n)
                | Approver::IdentityCenterGroup(n) => n,
            };
            if !valid_principal_name(name) {
                errors.push(err(
                    &doc,
                    path,
                    format!("approver name '{name}' is not valid"),
                    "use the IAM or Identity Center name (1 to 128 of letters, digits and +=,.@_-), not an ARN",
                ));
            }
            if named[..ai].iter().any(|(_, a)| *a == approver) {
                errors.push(err(
                    &doc,
                    path,
                    format!("approver '{name}' is listed twice in level {}", li + 1),
                    "remove the duplicate",
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let target_lines = match &targets {
        Targets::AllNodes => vec![doc.line_of("targets")],
        Targets::Tags(tags) => (0..tags.len()).map(|i| doc.line_of(&format!("targets.tags.{i}"))).collect(),
    };
    Ok(ManualPolicy {
        name: parsed.name,
        description: parsed.description,
        targets,
        accounts,
        max_duration_minutes: parsed.max_duration_minutes,
        levels: parsed
            .levels
            .into_iter()
            .map(|l| ApprovalLevel {
                min_approvals: l.min_approvals,
                approvers: l.approvers,
                remind_after_minutes: l.remind_after_minutes,
                escalate_after_minutes: l.escalate_after_minutes,
                escalate_to: l.escalate_to,
            })
            .collect(),
        file: file.to_owned(),
        line: doc.line_of("name"),
        target_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "name: prod\ntargets:\n  tags:\n    - key: Environment\n      value: Production\nmaxDurationMinutes: 240\nlevels:\n  - minApprovals: 1\n    approvers:\n      - iamGroup: DevOps\n      - iamUser: alice\n";

    #[test]
    fn a_level_may_escalate_to_other_approvers_after_a_while_and_half_an_escalation_is_refused() {
        let escalating = format!("{VALID}    escalateAfterMinutes: 30\n    escalateTo:\n      - iamGroup: Managers\n");
        let p = parse_manual_policy("prod.yaml", &escalating).unwrap();
        assert_eq!(p.levels[0].escalate_after_minutes, Some(30));
        assert_eq!(p.levels[0].escalate_to, vec![Approver::IamGroup("Managers".into())]);
        // (text appended to the level, what the error says)
        let cases = [
            ("    escalateAfterMinutes: 30\n", "escalates to 0 approvers"),
            ("    escalateTo:\n      - iamGroup: Managers\n", "no escalateAfterMinutes"),
            ("    escalateAfterMinutes: 0\n    escalateTo:\n      - iamGroup: Managers\n", "escalates after 0 minutes"),
            ("    escalateAfterMinutes: 30\n    escalateTo:\n      - iamUser: alice\n", "'alice' is listed twice"),
        ];
        for (extra, says) in cases {
            let errors = parse_manual_policy("prod.yaml", &format!("{VALID}{extra}")).unwrap_err();
            assert!(errors.iter().any(|e| e.message.contains(says)), "{extra}: {errors:?}");
        }
    }

    #[test]
    fn a_valid_policy_parses_into_its_plan() {
        let p = parse_manual_policy("prod.yaml", VALID).unwrap();
        assert_eq!(p.id(), "manual/prod");
        assert_eq!(p.targets, Targets::Tags(vec![TagTarget { key: "Environment".into(), value: "Production".into() }]));
        assert_eq!(p.levels[0].approvers, vec![Approver::IamGroup("DevOps".into()), Approver::IamUser("alice".into())]);
        assert_eq!(p.target_lines, vec![4]);
        let tags = BTreeMap::from([("Environment".to_owned(), "Production".to_owned())]);
        assert!(p.matches_tags(&tags));
        assert!(!p.matches_tags(&BTreeMap::new()));
    }

    #[test]
    fn invalid_policies_are_refused_at_the_right_line_with_a_fix() {
        let cases: &[(&str, &str, usize, &str)] = &[
            ("duration above the limit", "maxDurationMinutes: 240", 6, "maxDurationMinutes 20161"),
            ("too many approvals", "  - minApprovals: 1", 8, "asks for 6 approvals"),
            ("unknown key", "maxDurationMinutes: 240", 6, "unknown field"),
            ("bad approver type", "      - iamUser: alice", 11, "unknown variant"),
            ("wrong type", "maxDurationMinutes: 240", 6, "invalid type"),
        ];
        let replacements = [
            "maxDurationMinutes: 20161",
            "  - minApprovals: 6",
            "maxDurationMinute: 240",
            "      - iamPerson: alice",
            "maxDurationMinutes: lots",
        ];
        for ((what, from, line, needle), to) in cases.iter().zip(replacements) {
            let text = VALID.replace(from, to);
            let errors = parse_manual_policy("prod.yaml", &text).unwrap_err();
            let e = errors.iter().find(|e| e.message.contains(needle)).unwrap_or_else(|| panic!("{what}: {errors:?}"));
            assert_eq!(e.line, *line, "{what}: {e:?}");
            assert!(!e.fix.is_empty(), "{what}");
        }
    }

    #[test]
    fn level_and_approver_counts_are_limited() {
        let six = (0..6).map(|i| format!("      - iamUser: u{i}\n")).collect::<String>();
        let text = format!("name: p\ntargets: {{allNodes: true}}\nmaxDurationMinutes: 60\nlevels:\n  - minApprovals: 1\n    approvers:\n{six}");
        let errors = parse_manual_policy("p.yaml", &text).unwrap_err();
        assert!(errors.iter().any(|e| e.message.contains("6 approvers")), "{errors:?}");
        let level = "  - minApprovals: 1\n    approvers:\n      - iamUser: a\n";
        let text =
            format!("name: p\ntargets: {{allNodes: true}}\nmaxDurationMinutes: 60\nlevels:\n{}", level.repeat(6));
        let errors = parse_manual_policy("p.yaml", &text).unwrap_err();
        assert!(errors.iter().any(|e| e.message.contains("6 approval levels")), "{errors:?}");
    }

    #[test]
    fn targets_must_be_exactly_one_kind() {
        let text = VALID.replace("targets:\n", "targets:\n  allNodes: true\n");
        let errors = parse_manual_policy("p.yaml", &text).unwrap_err();
        assert!(errors[0].message.contains("either"), "{errors:?}");
        assert_eq!(errors[0].line, 2);
    }
}
