//! `contacts.yaml` at the root of the policy set: who gets approval mail, and where.
//!
//! ```yaml
//! contacts:
//!   - iamUser: approver-a
//!     email: approver-a@example.com
//!   - identityCenterUser: carol
//!     email: carol@example.com
//!     sameAs:                      # the same person's other identities
//!       - iamUser: carol.smith
//!     slackUserId: U024BE7LH       # optional: approval requests in Slack (docs/chat.md)
//! ```
//!
//! A contact is a person: `sameAs` lists their other IAM and Identity Center users, which then
//! count as this person (`People`): never approving a request made under another of them, and
//! counted once however many of them approve.
//!
//! The notifier mails each contact who is, when a level opens, an approver of that level
//! (directly or through a group, resolved then). The address is used only to create the
//! person's SNS email subscription (`jit contacts subscriptions`), whose filter policy matches
//! the `recipient` message attribute `Person::key`, so each person receives only their own
//! links. Requesters get their notifications the same way.
//!
//! `slackUserId` ties a Slack user to the person: their approval requests are also posted to them
//! in Slack, and a click on Approve or Reject by that Slack user decides as this person.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::domain::approval::Person;
use crate::domain::slack::SlackUserId;
use crate::policy::manual::LineError;

/// The reserved file name at the root of a policy directory.
pub const CONTACTS_FILE: &str = "contacts.yaml";
pub const MAX_CONTACTS: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub person: Person,
    pub email: String,
    /// The same person's other identities.
    pub same_as: Vec<Person>,
    /// Their Slack user, when they decide in Slack too.
    pub slack_user_id: Option<SlackUserId>,
}

/// Who is whom: each listed identity's key, mapped to its person's primary key, and each listed
/// Slack user to their person.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct People {
    same_as: std::collections::BTreeMap<String, String>,
    slack: std::collections::BTreeMap<SlackUserId, Person>,
}

impl People {
    pub fn from_contacts(contacts: &[Contact]) -> Self {
        let mut people = Self::default();
        for c in contacts {
            for other in &c.same_as {
                people.same_as.insert(other.key(), c.person.key());
            }
            if let Some(slack) = &c.slack_user_id {
                people.slack.insert(slack.clone(), c.person.clone());
            }
        }
        people
    }

    /// The person whose contact lists this Slack user (`slackUserId`), if any.
    pub fn of_slack_user(&self, user: &SlackUserId) -> Option<&Person> {
        self.slack.get(user)
    }

    /// The person an identity key (`Person::counted_as`) belongs to: its primary identity's key
    /// when the directory lists it as another identity of someone, else the key itself.
    pub fn person_of(&self, counted_as: String) -> String {
        self.same_as.get(&counted_as).cloned().unwrap_or(counted_as)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    contacts: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    iam_user: Option<String>,
    #[serde(default)]
    identity_center_user: Option<String>,
    email: String,
    #[serde(default)]
    same_as: Vec<Identity>,
    #[serde(default)]
    slack_user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Identity {
    #[serde(default)]
    iam_user: Option<String>,
    #[serde(default)]
    identity_center_user: Option<String>,
}

/// Exactly one of the two names, non-empty.
fn identity(iam_user: Option<String>, identity_center_user: Option<String>) -> Option<Person> {
    match (iam_user, identity_center_user) {
        (Some(n), None) if !n.trim().is_empty() => Some(Person::IamUser(n)),
        (None, Some(n)) if !n.trim().is_empty() => Some(Person::IdentityCenterUser(n)),
        _ => None,
    }
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>'\\\"`$;".contains(c))
}

/// The contacts of a bundled policy set (`contacts.yaml`; none when absent), without loading
/// its Cedar statements: the notification function needs only these, and the set as a whole is
/// validated where decisions are made and by `jit policy validate` in CI.
pub fn contacts_of(files: &[crate::policy::PolicyFile]) -> Result<Vec<Contact>, crate::policy::PolicySetError> {
    let Some(file) = files.iter().find(|f| f.path == CONTACTS_FILE) else { return Ok(Vec::new()) };
    parse_contacts(&file.text).map_err(|errors| crate::policy::PolicySetError::in_file(&file.path, errors))
}

pub fn parse_contacts(text: &str) -> Result<Vec<Contact>, Vec<LineError>> {
    let (doc, parsed): (_, Doc) = crate::policy::manual::read_yaml(
        text,
        "each contact is {iamUser: <name>} or {identityCenterUser: <user name>} plus email: <address>, and optionally sameAs: [{iamUser: <name>} | {identityCenterUser: <user name>}] and slackUserId: <U…>",
    )?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut seen_slack = BTreeSet::new();
    if parsed.contacts.len() > MAX_CONTACTS {
        errors.push(LineError {
            line: doc.line_of("contacts"),
            message: format!("{} contacts; the limit is {MAX_CONTACTS}", parsed.contacts.len()),
            fix: "list only people who approve or request".into(),
        });
    }
    for (i, entry) in parsed.contacts.into_iter().enumerate() {
        let line = doc.line_of(&format!("contacts.{i}"));
        let person = match identity(entry.iam_user, entry.identity_center_user) {
            Some(p) => p,
            None => {
                errors.push(LineError {
                    line,
                    message: "a contact names exactly one of iamUser or identityCenterUser".into(),
                    fix: "keep one of the two keys, with a non-empty name".into(),
                });
                continue;
            }
        };
        if !valid_email(&entry.email) {
            errors.push(LineError {
                line: doc.line_of(&format!("contacts.{i}.email")),
                message: format!("'{}' is not an email address", entry.email),
                fix: "write a plain address like name@example.com".into(),
            });
            continue;
        }
        if !seen.insert(person.key()) {
            errors.push(LineError {
                line,
                message: format!("{person} is listed twice"),
                fix: "keep one entry per person, and each identity in one of them".into(),
            });
            continue;
        }
        let mut same_as = Vec::new();
        for (j, other) in entry.same_as.into_iter().enumerate() {
            let at = doc.line_of(&format!("contacts.{i}.sameAs.{j}"));
            match identity(other.iam_user, other.identity_center_user) {
                Some(p) if seen.insert(p.key()) => same_as.push(p),
                Some(p) => errors.push(LineError {
                    line: at,
                    message: format!("{p} is listed twice"),
                    fix: "keep one entry per person, and each identity in one of them".into(),
                }),
                None => errors.push(LineError {
                    line: at,
                    message: "a sameAs identity names exactly one of iamUser or identityCenterUser".into(),
                    fix: "keep one of the two keys, with a non-empty name".into(),
                }),
            }
        }
        let slack_user_id = match entry.slack_user_id.map(SlackUserId::try_from).transpose() {
            Ok(Some(id)) if !seen_slack.insert(id.clone()) => {
                errors.push(LineError {
                    line: doc.line_of(&format!("contacts.{i}.slackUserId")),
                    message: format!("Slack user {id} is listed for two people"),
                    fix: "give each Slack user to one contact only".into(),
                });
                None
            }
            Ok(id) => id,
            Err(e) => {
                errors.push(LineError {
                    line: doc.line_of(&format!("contacts.{i}.slackUserId")),
                    message: e.message,
                    fix: "copy the member ID from the person's Slack profile (⋮ → Copy member ID)".into(),
                });
                None
            }
        };
        out.push(Contact { person, email: entry.email, same_as, slack_user_id });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_parse_into_people_with_addresses() {
        let c = parse_contacts("contacts:\n  - iamUser: a\n    email: a@example.com\n  - identityCenterUser: carol\n    email: carol@example.com\n").unwrap();
        assert_eq!(c[0].person, Person::IamUser("a".into()));
        assert_eq!(c[1].person.key(), "ic-user#carol");
    }

    #[test]
    fn the_contacts_of_a_bundled_set_come_from_its_contacts_file_only() {
        let file = |path: &str, text: &str| crate::policy::PolicyFile { path: path.into(), text: text.into() };
        let set = [
            file("auto-approval/x.cedar", "not cedar at all"),
            file(CONTACTS_FILE, "contacts:\n  - iamUser: a\n    email: a@example.com\n"),
        ];
        assert_eq!(contacts_of(&set).unwrap().len(), 1, "the Cedar files are not parsed here");
        assert!(contacts_of(&[file("manual/p.yaml", "x")]).unwrap().is_empty(), "no contacts file, no contacts");
        let err = contacts_of(&[file(CONTACTS_FILE, "contacts:\n  - iamUser: a\n    email: nope\n")]).unwrap_err();
        assert_eq!((err.0[0].file.as_str(), err.0[0].line), (CONTACTS_FILE, 3), "{err}");
    }

    #[test]
    fn a_persons_other_identities_count_as_them() {
        let c = parse_contacts(
            "contacts:\n  - identityCenterUser: carol\n    email: carol@example.com\n    sameAs:\n      - iamUser: carol.smith\n",
        )
        .unwrap();
        let people = People::from_contacts(&c);
        assert_eq!(people.person_of("iam-user#carol.smith".into()), "ic-user#carol");
        assert_eq!(people.person_of("ic-user#carol".into()), "ic-user#carol");
        assert_eq!(people.person_of("iam-user#dave".into()), "iam-user#dave");
    }

    #[test]
    fn a_slack_user_is_the_person_whose_contact_lists_them() {
        let c = parse_contacts(
            "contacts:\n  - identityCenterUser: carol\n    email: carol@example.com\n    slackUserId: U024BE7LH\n  - iamUser: dave\n    email: dave@example.com\n",
        )
        .unwrap();
        let people = People::from_contacts(&c);
        let user = |id: &str| SlackUserId::try_from(id.to_owned()).unwrap();
        assert_eq!(people.of_slack_user(&user("U024BE7LH")), Some(&Person::IdentityCenterUser("carol".into())));
        assert_eq!(people.of_slack_user(&user("U999")), None, "an unlisted Slack user is nobody");
        assert_eq!(c[1].slack_user_id, None);
    }

    #[test]
    fn bad_contacts_are_refused_with_their_line() {
        let cases = [
            ("contacts:\n  - iamUser: a\n    email: nope\n", 3),
            ("contacts:\n  - iamUser: a\n    identityCenterUser: b\n    email: a@example.com\n", 2),
            ("contacts:\n  - iamUser: a\n    email: a@example.com\n  - iamUser: a\n    email: b@example.com\n", 4),
            ("contacts:\n  - iamUser: a\n    mail: a@example.com\n", 3),
            ("contacts:\n  - iamUser: a\n    email: a@example.com\n    sameAs:\n      - iamUser: a\n", 5),
            (
                "contacts:\n  - iamUser: a\n    email: a@example.com\n  - iamUser: b\n    email: b@example.com\n    sameAs:\n      - iamUser: a\n",
                7,
            ),
            ("contacts:\n  - iamUser: a\n    email: a@example.com\n    sameAs:\n      - roleSession: x\n", 5),
            ("contacts:\n  - iamUser: a\n    email: a@example.com\n    slackUserId: u024be7lh\n", 4),
            (
                "contacts:\n  - iamUser: a\n    email: a@example.com\n    slackUserId: U024BE7LH\n  - iamUser: b\n    email: b@example.com\n    slackUserId: U024BE7LH\n",
                7,
            ),
        ];
        for (text, line) in cases {
            let errs = parse_contacts(text).unwrap_err();
            assert_eq!(errs[0].line, line, "{text}: {errs:?}");
        }
    }
}
