//! The seed file: demo (or your own) nodes and principals for the local stack.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub nodes: Vec<SeedNode>,
    #[serde(default)]
    pub principals: Vec<SeedPrincipal>,
    /// Principals (IAM or Identity Center users) who get a Teams webhook: the local stack gives
    /// each a stand-in (`POST /teams-webhook/<person key>`), as `TeamsWebhooksParameter` does
    /// when deployed.
    #[serde(default, rename = "teamsWebhooks")]
    pub teams_webhooks: Vec<String>,
    /// Seeded IAM users who are the local stack's administrators (`JIT_ADMIN_ARNS` when
    /// deployed): they may revoke any request and review any break-glass grant, which matters for
    /// a node that no manual policy targets (its break-glass grant names no approvers).
    #[serde(default)]
    pub administrators: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedNode {
    pub id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PrincipalKind {
    IamUser,
    IamRole,
    IdentityCenterUser,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedPrincipal {
    /// Also the name of its credentials profile.
    pub name: String,
    pub kind: PrincipalKind,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Identity Center user attributes (see docs: the emulator does not return them).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub principal_tags: BTreeMap<String, String>,
}

impl Seed {
    /// The people `teamsWebhooks` names (`parse` checked each is a seeded user).
    pub fn teams_people(&self) -> Vec<jit_shared::domain::approval::Person> {
        use jit_shared::domain::approval::Person;
        self.teams_webhooks
            .iter()
            .filter_map(|name| self.principals.iter().find(|p| &p.name == name))
            .filter_map(|p| match p.kind {
                PrincipalKind::IamUser => Some(Person::IamUser(p.name.clone())),
                PrincipalKind::IdentityCenterUser => Some(Person::IdentityCenterUser(p.name.clone())),
                PrincipalKind::IamRole => None,
            })
            .collect()
    }

    /// The administrators as `JIT_ADMIN_ARNS` would name them in `account` (`parse` checked each
    /// is a seeded IAM user).
    pub fn administrator_arns(&self, account: &str) -> Vec<String> {
        self.administrators.iter().map(|name| format!("arn:aws:iam::{account}:user/{name}")).collect()
    }

    /// Accounts other than `home` that the seed's nodes (named by ARN) live in, once each.
    pub fn member_accounts(&self, home: &str) -> Vec<String> {
        let mut accounts: Vec<String> = Vec::new();
        for n in &self.nodes {
            let Ok(id) = jit_shared::domain::ids::NodeId::try_from(n.id.clone()) else { continue };
            if let Some(location) = id.location() {
                if location.account != home && !accounts.contains(&location.account) {
                    accounts.push(location.account.clone());
                }
            }
        }
        accounts
    }
}

pub fn parse(path: &str, text: &str) -> Result<Seed, String> {
    let doc = jit_shared::policy::yaml_spans::parse(text).map_err(|e| format!("{path}:{}: {}", e.line, e.message))?;
    let seed: Seed = serde_json::from_value(doc.value).map_err(|e| format!("{path}: {e}"))?;
    for n in &seed.nodes {
        jit_shared::domain::ids::NodeId::try_from(n.id.clone())
            .map_err(|e| format!("{path}: node '{}': {}", n.id, e.message))?;
    }
    let mut names = std::collections::BTreeSet::new();
    for p in &seed.principals {
        let ok = (1..=64).contains(&p.name.len())
            && p.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok || !names.insert(p.name.clone()) {
            return Err(format!(
                "{path}: principal name '{}' is invalid or repeated (letters, digits, '-', '_', '.')",
                p.name
            ));
        }
    }
    for name in &seed.teams_webhooks {
        let user = seed.principals.iter().any(|p| &p.name == name && p.kind != PrincipalKind::IamRole);
        if !user {
            return Err(format!("{path}: teamsWebhooks: '{name}' is not a seeded iamUser or identityCenterUser"));
        }
    }
    for name in &seed.administrators {
        if !seed.principals.iter().any(|p| &p.name == name && p.kind == PrincipalKind::IamUser) {
            return Err(format!("{path}: administrators: '{name}' is not a seeded iamUser"));
        }
    }
    Ok(seed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_demo_seed_parses() {
        let seed = super::parse("local/seed.yaml", include_str!("../../../local/seed.yaml")).unwrap();
        assert!(seed.nodes.len() >= 4);
        assert!(seed.principals.iter().any(|p| p.name == "operator"));
        assert!(!seed.teams_people().is_empty(), "the demo shows a Teams webhook");
    }

    #[test]
    fn a_teams_webhook_is_only_for_a_seeded_user() {
        let seed = |names: &str| {
            super::parse("s.yaml", &format!("principals:\n  - {{name: a, kind: iamUser}}\n  - {{name: r, kind: iamRole}}\nteamsWebhooks: [{names}]\n"))
        };
        assert_eq!(seed("a").unwrap().teams_people(), [jit_shared::domain::approval::Person::IamUser("a".into())]);
        assert!(seed("r").is_err(), "a role is no person");
        assert!(seed("nobody").is_err());
    }

    #[test]
    fn an_administrator_is_a_seeded_iam_user() {
        let seed = |names: &str| {
            super::parse("s.yaml", &format!("principals:\n  - {{name: a, kind: iamUser}}\n  - {{name: r, kind: iamRole}}\nadministrators: [{names}]\n"))
        };
        assert_eq!(seed("a").unwrap().administrator_arns("123456789012"), ["arn:aws:iam::123456789012:user/a"]);
        assert!(seed("r").is_err() && seed("nobody").is_err());
        let shipped = super::parse("local/seed.yaml", include_str!("../../../local/seed.yaml")).unwrap();
        let admins = shipped.administrator_arns("123456789012");
        assert!(jit_shared::domain::administrators::Administrators::parse(admins.iter().map(String::as_str)).is_ok());
    }
}
