//! `break-glass.yaml`: who may take access at once in an emergency, for how long at most, who is
//! told besides the node's approvers, and how soon the approvers must review it. Without the
//! file, nobody can break glass. Cedar policies may still forbid it for nodes: a `forbid` that
//! matches only when `context.breakGlass` is true (`PolicySet::decide_break_glass`).
//!
//! ```yaml
//! members:                 # approver syntax: iamUser, iamGroup, iamRole, identityCenterUser, identityCenterGroup
//!   - iamGroup: OnCall
//! maxDurationMinutes: 60   # default 60, at most 240
//! reviewWithinMinutes: 1440  # default 1440 (a day), 15 to 10080
//! securityContacts:        # people of contacts.yaml, mailed at once
//!   - iamUser: security-lead
//! ```

use serde::Deserialize;

use crate::domain::approval::Person;
use crate::domain::request::Approver;
use crate::policy::manual::LineError;

pub const BREAK_GLASS_FILE: &str = "break-glass.yaml";
pub const DEFAULT_MAX_MINUTES: u32 = 60;
pub const LIMIT_MAX_MINUTES: u32 = 240;
pub const DEFAULT_REVIEW_MINUTES: u32 = 1440;
const REVIEW_RANGE: std::ops::RangeInclusive<u32> = 15..=10_080;

/// The loaded break-glass settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlass {
    /// Who may break glass (as approvers are named: users, roles and groups).
    pub members: Vec<Approver>,
    pub max_duration_minutes: u32,
    pub review_within_minutes: u32,
    /// Told at once, with the node's approvers.
    pub security_contacts: Vec<Person>,
}

impl BreakGlass {
    /// Whether someone with these approver keys (`common::approver_keys`: themself and their
    /// groups) is a member.
    pub fn admits(&self, keys: &[String]) -> bool {
        self.members.iter().any(|m| keys.contains(&m.index_key()))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Doc {
    members: Vec<Approver>,
    #[serde(default)]
    max_duration_minutes: Option<u32>,
    #[serde(default)]
    review_within_minutes: Option<u32>,
    #[serde(default)]
    security_contacts: Vec<ContactRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContactRef {
    #[serde(default)]
    iam_user: Option<String>,
    #[serde(default)]
    identity_center_user: Option<String>,
}

/// The security contacts of a policy set's `break-glass.yaml` (none without it): what the
/// notifier needs, without loading the whole set.
pub fn security_contacts_of(files: &[crate::policy::PolicyFile]) -> Result<Vec<Person>, crate::policy::PolicySetError> {
    let Some(file) = files.iter().find(|f| f.path == BREAK_GLASS_FILE) else { return Ok(Vec::new()) };
    parse_break_glass(&file.text)
        .map(|b| b.security_contacts)
        .map_err(|errors| crate::policy::PolicySetError::in_file(&file.path, errors))
}

pub fn parse_break_glass(text: &str) -> Result<BreakGlass, Vec<LineError>> {
    let (doc, parsed): (_, Doc) = crate::policy::manual::read_yaml(
        text,
        "the file has members: [{iamGroup: <name>} | {iamUser: <name>} | …], and optionally maxDurationMinutes, reviewWithinMinutes and securityContacts: [{iamUser: <name>} | {identityCenterUser: <user name>}]",
    )?;
    let mut errors = Vec::new();
    if parsed.members.is_empty() {
        errors.push(LineError {
            line: doc.line_of("members"),
            message: "no members: nobody could break glass".into(),
            fix: "name the on-call group, or delete the file to turn break-glass off".into(),
        });
    }
    let max = parsed.max_duration_minutes.unwrap_or(DEFAULT_MAX_MINUTES);
    if !(1..=LIMIT_MAX_MINUTES).contains(&max) {
        errors.push(LineError {
            line: doc.line_of("maxDurationMinutes"),
            message: format!("maxDurationMinutes is {max}; break-glass access lasts 1 to {LIMIT_MAX_MINUTES} minutes"),
            fix: format!("keep emergencies short: {DEFAULT_MAX_MINUTES} is the default"),
        });
    }
    let review = parsed.review_within_minutes.unwrap_or(DEFAULT_REVIEW_MINUTES);
    if !REVIEW_RANGE.contains(&review) {
        errors.push(LineError {
            line: doc.line_of("reviewWithinMinutes"),
            message: format!(
                "reviewWithinMinutes is {review}; it must be {} to {}",
                REVIEW_RANGE.start(),
                REVIEW_RANGE.end()
            ),
            fix: format!("{DEFAULT_REVIEW_MINUTES} (a day) is the default"),
        });
    }
    let mut security_contacts = Vec::new();
    for (i, c) in parsed.security_contacts.into_iter().enumerate() {
        match (c.iam_user.filter(|n| !n.trim().is_empty()), c.identity_center_user.filter(|n| !n.trim().is_empty())) {
            (Some(n), None) => security_contacts.push(Person::IamUser(n)),
            (None, Some(n)) => security_contacts.push(Person::IdentityCenterUser(n)),
            _ => errors.push(LineError {
                line: doc.line_of(&format!("securityContacts.{i}")),
                message: "a security contact names exactly one of iamUser or identityCenterUser".into(),
                fix: "name a person of contacts.yaml, who is mailed".into(),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(BreakGlass {
        members: parsed.members,
        max_duration_minutes: max,
        review_within_minutes: review,
        security_contacts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_members_loads_with_its_defaults_and_bad_ones_are_refused_at_their_line() {
        let ok = parse_break_glass("members:\n  - iamGroup: OnCall\nsecurityContacts:\n  - iamUser: sec\n").unwrap();
        assert_eq!(ok.members, [Approver::IamGroup("OnCall".into())]);
        assert_eq!((ok.max_duration_minutes, ok.review_within_minutes), (60, 1440));
        assert_eq!(ok.security_contacts, [Person::IamUser("sec".into())]);
        assert!(ok.admits(&["iam-user#x".into(), "iam-group#OnCall".into()]));
        assert!(!ok.admits(&["iam-user#OnCall".into()]));
        let cases = [
            ("members: []\n", 1),
            ("members:\n  - iamGroup: A\nmaxDurationMinutes: 241\n", 3),
            ("members:\n  - iamGroup: A\nreviewWithinMinutes: 5\n", 3),
            ("members:\n  - iamGroup: A\nsecurityContacts:\n  - {}\n", 4),
            ("members:\n  - iamGroup: A\nwho: me\n", 3),
        ];
        for (text, line) in cases {
            let errors = parse_break_glass(text).unwrap_err();
            assert_eq!(errors[0].line, line, "{text}: {errors:?}");
        }
    }
}
