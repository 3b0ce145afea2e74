//! Who approves and how: people, comments, verdicts, and the approval progress a pending
//! request carries (the rules that change it are `approval_rules`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::errors::FieldError;
use crate::domain::principal::{valid_name, CallerArn, CallerKind, MAX_ROLE_NAME_CHARS};

pub const MAX_COMMENT_CHARS: usize = 1000;
/// How long a request may wait for approvals when the stack does not configure it.
pub const DEFAULT_PENDING_TIMEOUT_MINUTES: u32 = 24 * 60;

/// A human (or one role session) that can act. Distinct approvers are counted by person, so one
/// IAM user approving through the API and through a mail link counts once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Person {
    IamUser(String),
    IamRoleSession { role: String, session: String },
    IdentityCenterUser(String),
}

/// In events, tokens and mail attributes a person travels as their key, parsed at the door.
impl TryFrom<String> for Person {
    type Error = FieldError;
    fn try_from(key: String) -> Result<Self, Self::Error> {
        Self::parse(&key).ok_or_else(|| {
            FieldError::new(
                "person",
                "InvalidPerson",
                format!(
                    "'{key}' is not a person key (iam-user#NAME, iam-role-session#ROLE/SESSION or ic-user#NAME, \
                     each name of letters, digits and +=,.@_-)"
                ),
            )
        })
    }
}

impl From<Person> for String {
    fn from(p: Person) -> Self {
        p.key()
    }
}

impl Person {
    /// The person behind a caller ARN: Identity Center permission-set sessions are the user.
    pub fn from_caller(caller: &CallerArn) -> Self {
        match caller.kind() {
            CallerKind::IamUser { name } => Self::IamUser(name.clone()),
            CallerKind::AssumedRole { session_name, .. } if caller.is_identity_center() => {
                Self::IdentityCenterUser(session_name.clone())
            }
            CallerKind::AssumedRole { role_name, session_name } => {
                Self::IamRoleSession { role: role_name.clone(), session: session_name.clone() }
            }
        }
    }

    /// Who this identity counts as when deciding and being counted, so one person counts once:
    /// an IAM user or Identity Center user is themself; a role session is the IAM user of the
    /// same name when the role's trust policy pins session names to the assuming user
    /// (`sts:RoleSessionName` = `${aws:username}`, `pinned`), and otherwise the role itself,
    /// since anyone who may assume the role can choose any session name.
    pub fn counted_as(&self, pinned: bool) -> String {
        match self {
            Self::IamRoleSession { session, .. } if pinned => Self::IamUser(session.clone()).key(),
            Self::IamRoleSession { role, .. } => format!("iam-role#{role}"),
            other => other.key(),
        }
    }

    /// A stable key, also the SNS `recipient` message attribute that mail filter policies match.
    pub fn key(&self) -> String {
        match self {
            Self::IamUser(n) => format!("iam-user#{n}"),
            Self::IamRoleSession { role, session } => format!("iam-role-session#{role}/{session}"),
            Self::IdentityCenterUser(n) => format!("ic-user#{n}"),
        }
    }

    pub fn parse_key(key: &str) -> Option<Self> {
        Self::parse(key)
    }

    fn parse(key: &str) -> Option<Self> {
        let (kind, rest) = key.split_once('#')?;
        if rest.is_empty() {
            return None;
        }
        // Each name as IAM and STS spell them, so a key from a path or a file never reaches an
        // IAM lookup that would refuse it.
        let name = |n: &str| valid_name(n).then(|| n.to_owned());
        match kind {
            "iam-user" => Some(Self::IamUser(name(rest)?)),
            "ic-user" => Some(Self::IdentityCenterUser(name(rest)?)),
            "iam-role-session" => {
                let (role, session) = rest.split_once('/')?;
                if role.len() > MAX_ROLE_NAME_CHARS {
                    return None;
                }
                Some(Self::IamRoleSession { role: name(role)?, session: name(session)? })
            }
            _ => None,
        }
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IamUser(n) => write!(f, "IAM user {n}"),
            Self::IamRoleSession { role, session } => write!(f, "IAM role {role} (session {session})"),
            Self::IdentityCenterUser(n) => write!(f, "Identity Center user {n}"),
        }
    }
}

/// An approver's optional comment: trimmed, at most 1,000 characters, no control characters
/// other than newline and tab. Stored and shown as text only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Comment(String);

impl Comment {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An absent or blank comment is no comment.
    pub fn parse_optional(raw: Option<&str>) -> Result<Option<Self>, FieldError> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => Self::try_from(text.to_owned()).map(Some),
        }
    }
}

impl TryFrom<String> for Comment {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let trimmed = value.trim();
        let chars = trimmed.chars().count();
        if chars > MAX_COMMENT_CHARS {
            return Err(FieldError::new(
                "comment",
                "InvalidComment",
                format!("must be at most {MAX_COMMENT_CHARS} characters (got {chars})"),
            ));
        }
        crate::domain::ids::check_visible_text(trimmed, "comment", "InvalidComment")?;
        Ok(Self(trimmed.to_owned()))
    }
}

impl From<Comment> for String {
    fn from(value: Comment) -> Self {
        value.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Approve,
    Reject,
}

/// How the decision reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Channel {
    Api,
    EmailLink,
    /// A button in a Slack message (`POST /chat/slack`).
    Slack,
}

/// One approver's decision, kept on the request and in the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalEntry {
    /// 1-based level the decision was taken at.
    pub level: u8,
    pub verdict: Verdict,
    /// Who decided.
    pub approver: Person,
    /// The caller ARN, or the person for mail-link decisions.
    pub actor: String,
    /// The approver entry of the plan that allowed it (`iam-group#DevOps`, ...).
    pub matched: String,
    pub channel: Channel,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
    /// Whom the decision counted as (`Person::counted_as`): one person counts once, whatever
    /// identity they decided with. Absent on entries recorded before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_as: Option<String>,
}

impl ApprovalEntry {
    /// Whom it counted as; an older entry counts as its approver's own key.
    pub fn counted_as(&self) -> String {
        self.counted_as.clone().unwrap_or_else(|| self.approver.key())
    }
}

/// Where a pending request stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalProgress {
    /// 1-based level waiting for approvals.
    pub current_level: u8,
    /// After this instant the request can only expire.
    pub pending_until: DateTime<Utc>,
    #[serde(default)]
    pub entries: Vec<ApprovalEntry>,
    /// The reminders and escalation notices sent, each once per level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nudges: Vec<Nudge>,
}

/// A notice the sweeper sent for a waiting level: a reminder to its approvers
/// (`remindAfterMinutes`), or its escalation to the escalation approvers (`escalateAfterMinutes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Nudge {
    pub level: u8,
    pub kind: NudgeKind,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NudgeKind {
    Reminder,
    Escalation,
}

impl ApprovalProgress {
    pub fn start(pending_until: DateTime<Utc>) -> Self {
        Self { current_level: 1, pending_until, entries: vec![], nudges: vec![] }
    }

    /// Whether this notice was already sent for `level`.
    pub fn was_nudged(&self, level: u8, kind: NudgeKind) -> bool {
        self.nudges.iter().any(|n| n.level == level && n.kind == kind)
    }

    pub fn approvals_at(&self, level: u8) -> usize {
        self.entries.iter().filter(|e| e.level == level && e.verdict == Verdict::Approve).count()
    }

    /// Whether someone counted as `who` (`Person::counted_as`) already decided.
    pub fn has_acted(&self, who: &str) -> bool {
        self.entries.iter().any(|e| e.counted_as() == who)
    }
}
