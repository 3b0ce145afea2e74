//! Who may revoke any request (`AdministratorArns`): IAM users (with or without a path), IAM
//! roles (any session of the role), one exact role session, or the members of an Identity Center
//! group. A role administrator matters most: auto-approved access has no approver, so without
//! one nobody but the requester's approvers could end it early.

use crate::domain::errors::SettingError;
use crate::domain::principal::{CallerArn, CallerKind, GroupRef, ResolvedPrincipal};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Administrator {
    IamUser {
        account: String,
        name: String,
    },
    /// Every session of the role.
    IamRole {
        account: String,
        name: String,
    },
    /// One session, as API Gateway names it.
    RoleSession(String),
    /// Members of the group, by group id or display name.
    IdentityCenterGroup(String),
}

/// The stack's administrators, parsed once at cold start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Administrators(Vec<Administrator>);

fn last_segment(path_and_name: &str) -> &str {
    path_and_name.rsplit('/').next().unwrap_or(path_and_name)
}

/// A stack without administrators (the local stack, tests).
pub static NO_ADMINISTRATORS: Administrators = Administrators(Vec::new());

impl Administrators {
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses `arn:aws:iam::<account>:user/[path/]name`, `arn:aws:iam::<account>:role/[path/]name`,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>` and
    /// `identity-center-group:<group id or name>`; any other entry is an error naming it.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, SettingError> {
        let mut out = Vec::new();
        for raw in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            if let Some(group) = raw.strip_prefix("identity-center-group:") {
                if group.is_empty() {
                    return Err(SettingError::EmptyGroup(raw.to_owned()));
                }
                out.push(Administrator::IdentityCenterGroup(group.to_owned()));
                continue;
            }
            let fields: Vec<&str> = raw.splitn(6, ':').collect();
            let parsed = match fields.as_slice() {
                ["arn", p, "iam", "", account, resource] if p.starts_with("aws") && account.len() == 12 => {
                    if let Some(user) = resource.strip_prefix("user/") {
                        Some(Administrator::IamUser {
                            account: (*account).to_owned(),
                            name: last_segment(user).to_owned(),
                        })
                    } else {
                        resource.strip_prefix("role/").map(|role| Administrator::IamRole {
                            account: (*account).to_owned(),
                            name: last_segment(role).to_owned(),
                        })
                    }
                }
                ["arn", p, "sts", "", account, resource]
                    if p.starts_with("aws") && account.len() == 12 && resource.starts_with("assumed-role/") =>
                {
                    CallerArn::try_from(raw.to_owned()).ok().map(|_| Administrator::RoleSession(raw.to_owned()))
                }
                _ => None,
            };
            match parsed {
                Some(a) if !matches!(&a, Administrator::IamUser { name, .. } | Administrator::IamRole { name, .. } if name.is_empty()) => {
                    out.push(a)
                }
                _ => return Err(SettingError::NotAnAdministrator(raw.to_owned())),
            }
        }
        Ok(Self(out))
    }

    /// Whether the caller is an administrator by who they are (no directory lookup needed).
    pub fn names_caller(&self, caller: &CallerArn) -> bool {
        self.0.iter().any(|a| match (a, caller.kind()) {
            (Administrator::IamUser { account, name }, CallerKind::IamUser { name: n }) => {
                account == caller.account() && name == n
            }
            (Administrator::IamRole { account, name }, CallerKind::AssumedRole { role_name, .. }) => {
                account == caller.account() && name == role_name
            }
            (Administrator::RoleSession(arn), CallerKind::AssumedRole { .. }) => arn == caller.as_str(),
            _ => false,
        })
    }

    /// Whether the resolved caller is an administrator through an Identity Center group.
    pub fn names_member(&self, principal: &ResolvedPrincipal) -> bool {
        self.0.iter().any(|a| match a {
            Administrator::IdentityCenterGroup(g) => principal.groups.iter().any(|group| match group {
                GroupRef::IdentityCenterGroup { id, display_name } => id == g || display_name.as_deref() == Some(g),
                GroupRef::IamGroup { .. } => false,
            }),
            _ => false,
        })
    }

    /// Whether any administrator needs the caller's groups to be recognised.
    pub fn needs_groups(&self) -> bool {
        self.0.iter().any(|a| matches!(a, Administrator::IdentityCenterGroup(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(arn: &str) -> CallerArn {
        CallerArn::try_from(arn.to_owned()).unwrap()
    }

    #[test]
    fn administrators_match_users_with_paths_every_session_of_a_role_and_exact_sessions() {
        let admins = Administrators::parse([
            "arn:aws:iam::123456789012:user/ops/alice",
            "arn:aws:iam::123456789012:role/Admin",
            "arn:aws:sts::123456789012:assumed-role/OnCall/bob",
        ])
        .unwrap();
        let cases = [
            ("arn:aws:iam::123456789012:user/ops/alice", true),
            ("arn:aws:iam::123456789012:user/alice", true),
            ("arn:aws:iam::999988887777:user/alice", false),
            ("arn:aws:sts::123456789012:assumed-role/Admin/anyone", true),
            ("arn:aws:sts::999988887777:assumed-role/Admin/anyone", false),
            ("arn:aws:sts::123456789012:assumed-role/OnCall/bob", true),
            ("arn:aws:sts::123456789012:assumed-role/OnCall/carol", false),
            ("arn:aws:iam::123456789012:user/Admin", false),
        ];
        for (arn, expected) in cases {
            assert_eq!(admins.names_caller(&caller(arn)), expected, "{arn}");
        }
    }

    #[test]
    fn an_identity_center_group_makes_its_members_administrators() {
        let admins = Administrators::parse(["identity-center-group:Platform"]).unwrap();
        let mut member = ResolvedPrincipal::from_arn_only(&caller(
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_1/carol",
        ));
        assert!(admins.needs_groups());
        assert!(!admins.names_member(&member));
        member.groups.push(GroupRef::IdentityCenterGroup { id: "g-1".into(), display_name: Some("Platform".into()) });
        assert!(admins.names_member(&member));
    }

    #[test]
    fn anything_else_is_refused_naming_the_entry() {
        for bad in
            ["alice", "arn:aws:iam::123456789012:group/Admins", "arn:aws:iam::123:role/x", "identity-center-group:"]
        {
            let err = Administrators::parse([bad]).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
        assert_eq!(Administrators::parse(["", " "]).unwrap(), Administrators::none());
    }
}
