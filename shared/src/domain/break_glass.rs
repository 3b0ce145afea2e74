//! The review a break-glass grant opens: the node's approvers (or an administrator) must
//! acknowledge or flag it before `due`. Pure rules; the use case is `app::approve::review`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::approval::Comment;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReviewVerdict {
    /// The emergency was real and the access proportionate.
    Acknowledge,
    /// Something was wrong: raises an alarm for the security team.
    Flag,
}

impl std::str::FromStr for ReviewVerdict {
    type Err = crate::domain::errors::FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "acknowledge" => Ok(Self::Acknowledge),
            "flag" => Ok(Self::Flag),
            _ => Err(crate::domain::errors::FieldError::new(
                "verdict",
                "InvalidVerdict",
                "must be \"acknowledge\" or \"flag\"",
            )),
        }
    }
}

/// A break-glass grant's review: open until someone decides it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub due: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<ReviewVerdict>,
    /// Who reviewed (their caller ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
}

impl Review {
    pub fn open(due: DateTime<Utc>) -> Self {
        Self { due, verdict: None, by: None, at: None, comment: None }
    }

    pub fn is_open(&self) -> bool {
        self.verdict.is_none()
    }

    /// Open past its due time: raises the unreviewed alarm.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.is_open() && now >= self.due
    }

    /// The review decided: refused when it already was (one review, by one person).
    pub fn decide(
        &self,
        verdict: ReviewVerdict,
        by: &str,
        comment: Option<Comment>,
        at: DateTime<Utc>,
    ) -> Option<Self> {
        self.is_open().then(|| Self {
            due: self.due,
            verdict: Some(verdict),
            by: Some(by.to_owned()),
            at: Some(at),
            comment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_is_decided_once_and_is_overdue_only_while_open() {
        let now = Utc::now();
        let open = Review::open(now + chrono::Duration::hours(1));
        assert!(!open.is_overdue(now) && open.is_overdue(now + chrono::Duration::hours(1)));
        let flagged = open.decide(ReviewVerdict::Flag, "arn:aws:iam::123456789012:user/lead", None, now).unwrap();
        assert_eq!(flagged.verdict, Some(ReviewVerdict::Flag));
        assert!(!flagged.is_overdue(now + chrono::Duration::days(2)));
        assert!(flagged.decide(ReviewVerdict::Acknowledge, "x", None, now).is_none(), "decided once");
        assert!("acknowledge".parse::<ReviewVerdict>().is_ok() && "ok".parse::<ReviewVerdict>().is_err());
    }
}
