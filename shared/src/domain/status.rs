//! The request status machine. Every stored status change goes through `RequestStatus::check_transition`,
//! and the store turns the same pair into a DynamoDB condition, so the graph below is the only
//! one that can ever be observed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::errors::FieldError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RequestStatus {
    Submitted,
    Pending,
    Approved,
    Rejected,
    Cancelled,
    Expired,
    Revoked,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a request cannot go from {from} to {to}")]
pub struct TransitionError {
    pub from: RequestStatus,
    pub to: RequestStatus,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 8] = [
        Self::Submitted,
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Cancelled,
        Self::Expired,
        Self::Revoked,
        Self::Failed,
    ];

    /// The statuses this one may move to.
    pub fn successors(self) -> &'static [RequestStatus] {
        use RequestStatus::*;
        match self {
            // Cancelled: by the requester before it was decided (evaluation then finds it ended).
            Submitted => &[Pending, Approved, Failed, Cancelled],
            Pending => &[Approved, Rejected, Cancelled, Expired],
            // Failed: the grant could not be attached (principal gone, IAM size limit).
            // Cancelled: only a scheduled request before its access starts (`Transition::check`).
            Approved => &[Revoked, Expired, Failed, Cancelled],
            Rejected | Cancelled | Expired | Revoked | Failed => &[],
        }
    }

    pub fn check_transition(self, to: RequestStatus) -> Result<(), TransitionError> {
        if self.successors().contains(&to) {
            Ok(())
        } else {
            Err(TransitionError { from: self, to })
        }
    }

    pub fn is_terminal(self) -> bool {
        self.successors().is_empty()
    }

    pub fn as_str(self) -> &'static str {
        use RequestStatus::*;
        match self {
            Submitted => "Submitted",
            Pending => "Pending",
            Approved => "Approved",
            Rejected => "Rejected",
            Cancelled => "Cancelled",
            Expired => "Expired",
            Revoked => "Revoked",
            Failed => "Failed",
        }
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestStatus {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|st| st.as_str()).collect();
            FieldError::new("status", "InvalidStatus", format!("must be one of {}", names.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RequestStatus::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_transition_table_is_exactly_the_documented_graph() {
        let allowed = [
            (Submitted, Pending),
            (Submitted, Approved),
            (Submitted, Failed),
            (Submitted, Cancelled),
            (Pending, Approved),
            (Pending, Rejected),
            (Pending, Cancelled),
            (Pending, Expired),
            (Approved, Revoked),
            (Approved, Expired),
            (Approved, Failed),
            (Approved, Cancelled),
        ];
        for from in RequestStatus::ALL {
            for to in RequestStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.check_transition(to).is_ok(), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_statuses_have_no_way_out() {
        for st in [Rejected, Cancelled, Expired, Revoked, Failed] {
            assert!(st.is_terminal(), "{st}");
        }
        for st in [Submitted, Pending, Approved] {
            assert!(!st.is_terminal(), "{st}");
        }
    }

    #[test]
    fn statuses_parse_from_their_names_only() {
        for st in RequestStatus::ALL {
            assert_eq!(st.as_str().parse::<RequestStatus>().unwrap(), st);
        }
        assert_eq!("pending".parse::<RequestStatus>().unwrap_err().field, "status");
    }

    proptest! {
        #[test]
        fn no_sequence_of_attempts_reaches_a_status_outside_the_graph(
            attempts in proptest::collection::vec(0usize..8, 0..20)
        ) {
            let mut current = Submitted;
            let mut path = vec![current];
            for i in attempts {
                let target = RequestStatus::ALL[i];
                if current.check_transition(target).is_ok() {
                    current = target;
                    path.push(current);
                }
            }
            // The graph is acyclic, so every status appears at most once on a path, and each
            // step is an edge of the graph.
            for pair in path.windows(2) {
                prop_assert!(pair[0].successors().contains(&pair[1]));
            }
            let mut seen = path.clone();
            seen.sort();
            seen.dedup();
            prop_assert_eq!(seen.len(), path.len());
        }
    }
}
