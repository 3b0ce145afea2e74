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
    Ok(seed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_demo_seed_parses() {
        let seed = super::parse("local/seed.yaml", include_str!("../../../local/seed.yaml")).unwrap();
        assert!(seed.nodes.len() >= 4);
        assert!(seed.principals.iter().any(|p| p.name == "operator"));
    }
}
