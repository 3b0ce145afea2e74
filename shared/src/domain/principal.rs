//! Who is calling. API Gateway (AWS_IAM authorization) hands us the caller's ARN; everything we
//! know about the caller starts from parsing it here.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::errors::FieldError;

/// The role name prefix IAM Identity Center gives the roles behind permission sets.
pub const IDENTITY_CENTER_ROLE_PREFIX: &str = "AWSReservedSSO_";

/// A caller ARN: an IAM user or an assumed-role session (which covers Identity Center users).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallerArn {
    arn: String,
    partition: String,
    account: String,
    kind: CallerKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallerKind {
    IamUser { name: String },
    AssumedRole { role_name: String, session_name: String },
}

impl CallerArn {
    pub fn as_str(&self) -> &str {
        &self.arn
    }
    pub fn account(&self) -> &str {
        &self.account
    }
    pub fn partition(&self) -> &str {
        &self.partition
    }
    pub fn kind(&self) -> &CallerKind {
        &self.kind
    }
    /// True for the roles IAM Identity Center creates for permission sets.
    pub fn is_identity_center(&self) -> bool {
        matches!(&self.kind, CallerKind::AssumedRole { role_name, .. } if role_name.starts_with(IDENTITY_CENTER_ROLE_PREFIX))
    }
}

/// IAM's longest role name.
pub const MAX_ROLE_NAME_CHARS: usize = 64;

/// A name as IAM and STS allow it (users, roles, session names).
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

impl TryFrom<String> for CallerArn {
    type Error = FieldError;
    fn try_from(arn: String) -> Result<Self, Self::Error> {
        let bad = || {
            FieldError::new(
                "principal",
                "UnsupportedPrincipal",
                format!("'{arn}' is not an IAM user or assumed-role ARN"),
            )
        };
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [scheme, partition, service, region, account, resource] = parts.as_slice() else {
            return Err(bad());
        };
        if *scheme != "arn"
            || !partition.starts_with("aws")
            || !region.is_empty()
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let kind = match *service {
            "iam" => {
                let path_and_name = resource.strip_prefix("user/").ok_or_else(bad)?;
                let name = path_and_name.rsplit('/').next().unwrap_or_default();
                if !valid_name(name) {
                    return Err(bad());
                }
                CallerKind::IamUser { name: name.to_owned() }
            }
            "sts" => {
                let rest = resource.strip_prefix("assumed-role/").ok_or_else(bad)?;
                let (role_name, session_name) = rest.split_once('/').ok_or_else(bad)?;
                if !valid_name(role_name) || !valid_name(session_name) {
                    return Err(bad());
                }
                CallerKind::AssumedRole { role_name: role_name.to_owned(), session_name: session_name.to_owned() }
            }
            _ => return Err(bad()),
        };
        Ok(Self { partition: (*partition).to_owned(), account: (*account).to_owned(), kind, arn })
    }
}

impl From<CallerArn> for String {
    fn from(value: CallerArn) -> Self {
        value.arn
    }
}

impl fmt::Display for CallerArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// A group the principal belongs to, in the directory it comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum GroupRef {
    IamGroup { arn: String, name: String },
    IdentityCenterGroup { id: String, display_name: Option<String> },
}

/// The requester as the policy engine sees it: who, in which groups, with which attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPrincipal {
    pub identity: PrincipalIdentity,
    pub groups: Vec<GroupRef>,
    /// Identity Center user attributes (`employeeNumber`, `costCenter`, `organization`, `division`).
    pub attributes: BTreeMap<String, String>,
    /// IAM principal tags, seen by policies as `context.iam.principalTags`.
    pub principal_tags: BTreeMap<String, String>,
}

impl ResolvedPrincipal {
    /// The caller as its ARN alone describes it: no groups, attributes or tags. Only for a
    /// decision in which no applicable statement looks at the requester
    /// (`PolicySet::needs_principal`), where it decides exactly as the resolved one would.
    pub fn from_arn_only(caller: &CallerArn) -> Self {
        let identity = match caller.kind() {
            CallerKind::IamUser { name } => {
                PrincipalIdentity::IamUser { arn: caller.as_str().to_owned(), name: name.clone() }
            }
            CallerKind::AssumedRole { role_name, session_name } if caller.is_identity_center() => {
                PrincipalIdentity::IdentityCenterUser { user_id: session_name.clone(), user_name: session_name.clone() }
            }
            CallerKind::AssumedRole { role_name, session_name } => PrincipalIdentity::IamRole {
                arn: format!("arn:{}:iam::{}:role/{role_name}", caller.partition(), caller.account()),
                name: role_name.clone(),
                session_name: session_name.clone(),
            },
        };
        Self { identity, groups: vec![], attributes: BTreeMap::new(), principal_tags: BTreeMap::new() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PrincipalIdentity {
    IamUser { arn: String, name: String },
    IamRole { arn: String, name: String, session_name: String },
    IdentityCenterUser { user_id: String, user_name: String },
}

/// The attribute names AWS's published schema gives Identity Center users.
pub const IDENTITY_CENTER_ATTRIBUTES: [&str; 4] = ["employeeNumber", "costCenter", "organization", "division"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_arns_of_users_and_sessions_are_understood() {
        let user = CallerArn::try_from("arn:aws:iam::123456789012:user/ops/alice".to_owned()).unwrap();
        assert_eq!(user.kind(), &CallerKind::IamUser { name: "alice".into() });
        assert_eq!(user.account(), "123456789012");
        let session = CallerArn::try_from(
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_0123/bob@example.com".to_owned(),
        )
        .unwrap();
        assert!(session.is_identity_center());
        assert_eq!(
            session.kind(),
            &CallerKind::AssumedRole {
                role_name: "AWSReservedSSO_Ops_0123".into(),
                session_name: "bob@example.com".into()
            }
        );
    }

    #[test]
    fn other_principals_are_refused() {
        for arn in [
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:role/Admin",
            "arn:aws:sts::123456789012:federated-user/x",
            "arn:aws:iam::12345:user/alice",
            "arn:aws:iam:us-east-1:123456789012:user/alice",
            "arn:aws:sts::123456789012:assumed-role/OnlyRole",
            "arn:aws:iam::123456789012:user/bad name",
            "not-an-arn",
        ] {
            assert!(CallerArn::try_from(arn.to_owned()).is_err(), "{arn}");
        }
    }
}

/// Whether a role's trust policy (its `AssumeRolePolicyDocument` as JSON) ties each session name
/// to the IAM user who assumes the role: every `Allow` statement conditions
/// `sts:RoleSessionName` on `${aws:username}` (`StringEquals` or `StringLike`, one value). Any
/// other `Allow` (a service, a federated or SAML principal, a statement without the condition)
/// lets someone else choose the name, so the answer is then `false`, as it is for a document
/// that cannot be read.
pub fn trust_pins_session_names(document: &serde_json::Value) -> bool {
    let statements = match &document["Statement"] {
        serde_json::Value::Array(list) => list.iter().collect::<Vec<_>>(),
        one @ serde_json::Value::Object(_) => vec![one],
        _ => return false,
    };
    let allows: Vec<_> = statements.into_iter().filter(|s| s["Effect"] == "Allow").collect();
    !allows.is_empty()
        && allows.iter().all(|statement| {
            let Some(conditions) = statement["Condition"].as_object() else { return false };
            conditions.iter().any(|(operator, keys)| {
                matches!(operator.as_str(), "StringEquals" | "StringLike")
                    && keys.as_object().is_some_and(|keys| {
                        keys.iter().any(|(key, value)| {
                            key.eq_ignore_ascii_case("sts:RoleSessionName")
                                && match value {
                                    serde_json::Value::String(v) => v == "${aws:username}",
                                    serde_json::Value::Array(v) => v.len() == 1 && v[0] == "${aws:username}",
                                    _ => false,
                                }
                        })
                    })
            })
        })
}

#[cfg(test)]
mod trust_tests {
    use serde_json::json;

    use super::trust_pins_session_names;

    #[test]
    fn only_a_trust_policy_that_pins_every_allow_to_the_user_name_pins_sessions() {
        let pinned = json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:RoleSessionName": "${aws:username}"}}});
        let like = json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "sts:AssumeRole", "Condition": {"StringLike": {"sts:rolesessionname": ["${aws:username}"]}}});
        let open = json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"});
        let service =
            json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
        let other_value = json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "sts:AssumeRole", "Condition": {"StringLike": {"sts:RoleSessionName": "*"}}});
        let deny = json!({"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"});
        let cases = [
            (json!({"Statement": [pinned.clone()]}), true),
            (json!({"Statement": like}), true),
            (json!({"Statement": [pinned.clone(), deny]}), true),
            (json!({"Statement": [pinned.clone(), service]}), false),
            (json!({"Statement": [open]}), false),
            (json!({"Statement": [other_value]}), false),
            (json!({"Statement": []}), false),
            (json!("not a policy"), false),
        ];
        for (document, expected) in cases {
            assert_eq!(trust_pins_session_names(&document), expected, "{document}");
        }
    }
}
