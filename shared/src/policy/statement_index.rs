//! Which Cedar statements can apply to a node, found by the resource tags they test.
//!
//! Evaluating every statement of a large set for each request is linear in the set (about 6 ms at
//! 1,000 statements). Nearly every real auto-approval or deny-access statement starts with
//! `resource.hasTag("K") && resource.getTag("K") == "V"`; such a statement is false, without
//! any evaluation error, on a node that lacks that tag value. So only statements whose leading
//! tag test the node passes (plus those the index cannot read) reach Cedar, and Cedar's answer,
//! its reasons and its errors are the same as evaluating the whole set.

use crate::policy::engine::EngineError;
use std::collections::{BTreeMap, HashMap};

use cedar_policy::Policy;
use serde_json::Value;

/// What a node must carry for a statement's condition to be able to hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TagRequirement {
    /// The index cannot tell: the statement is always evaluated.
    None,
    Key(String),
    KeyValue(String, String),
}

/// Reads the requirement from the statement's JSON form. Only a prefix of the first `when`
/// clause that cannot raise an error is used: `resource.hasTag("K")` tests, then at most one
/// `resource.getTag("K") == "V"` whose key was tested before it (the schema validator insists on
/// that guard). Anything that could error before the tag test keeps the statement unindexed, so
/// that its error still reaches the fail-closed check.
fn tag_requirement(json: Option<&Value>) -> TagRequirement {
    let Some(json) = json else { return TagRequirement::None };
    let Some(first) = json.get("conditions").and_then(Value::as_array).and_then(|c| c.first()) else {
        return TagRequirement::None;
    };
    if first.get("kind").and_then(Value::as_str) != Some("when") {
        return TagRequirement::None;
    }
    let Some(body) = first.get("body") else { return TagRequirement::None };
    let mut conjuncts = Vec::new();
    flatten_and(body, &mut conjuncts);

    let mut tested_keys: Vec<&str> = Vec::new();
    for c in conjuncts {
        if let Some(key) = resource_tag_call(c, "hasTag") {
            tested_keys.push(key);
            continue;
        }
        if let Some((key, value)) = resource_tag_equality(c) {
            if tested_keys.contains(&key) {
                return TagRequirement::KeyValue(key.to_owned(), value.to_owned());
            }
        }
        break;
    }
    tested_keys.first().map_or(TagRequirement::None, |k| TagRequirement::Key((*k).to_owned()))
}

/// `a && b && c` parses left-nested; this lists the conjuncts in evaluation order.
fn flatten_and<'a>(expr: &'a Value, out: &mut Vec<&'a Value>) {
    match expr.get("&&") {
        Some(and) => {
            if let (Some(l), Some(r)) = (and.get("left"), and.get("right")) {
                flatten_and(l, out);
                flatten_and(r, out);
            } else {
                out.push(expr);
            }
        }
        None => out.push(expr),
    }
}

fn string_literal(expr: &Value) -> Option<&str> {
    expr.get("Value").and_then(Value::as_str)
}

/// `resource.<op>("K")` with a literal key.
fn resource_tag_call<'a>(expr: &'a Value, op: &str) -> Option<&'a str> {
    let call = expr.get(op)?;
    if call.get("left")?.get("Var")?.as_str()? != "resource" {
        return None;
    }
    string_literal(call.get("right")?)
}

/// `resource.getTag("K") == "V"`, either way round.
fn resource_tag_equality(expr: &Value) -> Option<(&str, &str)> {
    let eq = expr.get("==")?;
    let (l, r) = (eq.get("left")?, eq.get("right")?);
    if let (Some(k), Some(v)) = (resource_tag_call(l, "getTag"), string_literal(r)) {
        return Some((k, v));
    }
    Some((resource_tag_call(r, "getTag")?, string_literal(l)?))
}

/// True when the statement's scope or conditions look at who is asking (`principal`, or
/// `context`, which holds the principal's tags), or name any entity in a condition (a literal
/// user's groups exist only once the requester is resolved). Read from the JSON form,
/// conservatively: any mention counts.
fn reads_principal(json: Option<&Value>) -> bool {
    let Some(json) = json else { return true };
    let scoped = json.get("principal").and_then(|p| p.get("op")).and_then(Value::as_str) != Some("All");
    scoped || json.get("conditions").is_some_and(mentions_principal)
}

fn mentions_principal(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k == "Var" && matches!(v.as_str(), Some("principal" | "context")))
                || k == "__entity"
                || mentions_principal(v)
        }),
        Value::Array(list) => list.iter().any(mentions_principal),
        _ => false,
    }
}

#[derive(Clone, Debug)]
struct Entry {
    policy: Policy,
    reads_principal: bool,
}

/// The statements of a set, grouped by their tag requirement.
#[derive(Clone, Debug, Default)]
pub(crate) struct StatementIndex {
    unindexed: Vec<Entry>,
    by_key: HashMap<String, Vec<Entry>>,
    by_key_value: HashMap<String, HashMap<String, Vec<Entry>>>,
}

impl StatementIndex {
    pub(crate) fn add(&mut self, policy: Policy) {
        // Cedar re-parses a statement's text for its JSON form, so it is made once here.
        let json = policy.to_json().ok();
        let requirement = tag_requirement(json.as_ref());
        let entry = Entry { reads_principal: reads_principal(json.as_ref()), policy };
        match requirement {
            TagRequirement::None => self.unindexed.push(entry),
            TagRequirement::Key(k) => self.by_key.entry(k).or_default().push(entry),
            TagRequirement::KeyValue(k, v) => self.by_key_value.entry(k).or_default().entry(v).or_default().push(entry),
        }
    }

    fn selected<'a>(&'a self, tags: &'a BTreeMap<String, String>) -> impl Iterator<Item = &'a Entry> + 'a {
        let tagged = tags.iter().flat_map(move |(k, v)| {
            let by_key = self.by_key.get(k).into_iter().flatten();
            by_key.chain(self.by_key_value.get(k).and_then(|values| values.get(v)).into_iter().flatten())
        });
        self.unindexed.iter().chain(tagged)
    }

    /// The statements whose condition can hold on a node with these tags.
    pub(crate) fn candidates(&self, tags: &BTreeMap<String, String>) -> Result<cedar_policy::PolicySet, EngineError> {
        // Ids are unique across the set (checked at load), so a clash here is a bug; the caller
        // then skips auto-approval.
        cedar_policy::PolicySet::from_policies(self.selected(tags).map(|e| e.policy.clone()))
            .map_err(|e| EngineError::Selection(e.to_string()))
    }

    /// Every statement, as one Cedar set (the baseline the index is measured against).
    pub(crate) fn all(&self) -> Result<cedar_policy::PolicySet, EngineError> {
        let tagged =
            self.by_key.values().flatten().chain(self.by_key_value.values().flat_map(|v| v.values().flatten()));
        cedar_policy::PolicySet::from_policies(self.unindexed.iter().chain(tagged).map(|e| e.policy.clone()))
            .map_err(|e| EngineError::Selection(e.to_string()))
    }

    /// Whether any statement that can apply to such a node looks at the requester.
    pub(crate) fn needs_principal(&self, tags: &BTreeMap<String, String>) -> bool {
        self.selected(tags).any(|e| e.reads_principal)
    }

    #[cfg(test)]
    fn unindexed_len(&self) -> usize {
        self.unindexed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirement_of(src: &str) -> TagRequirement {
        let policy: Policy = src.parse().unwrap();
        tag_requirement(policy.to_json().ok().as_ref())
    }

    #[test]
    fn the_leading_tag_test_of_a_statement_is_what_the_index_reads() {
        let action = r#"action == AWS::SSM::Action::"getTokenForInstanceAccess""#;
        let kv = |k: &str, v: &str| TagRequirement::KeyValue(k.into(), v.into());
        let cases: Vec<(String, TagRequirement)> = vec![
            (
                format!(
                    r#"permit (principal, {action}, resource) when {{ resource.hasTag("Team") && resource.getTag("Team") == "a" }};"#
                ),
                kv("Team", "a"),
            ),
            (
                format!(
                    r#"permit (principal, {action}, resource) when {{ resource.hasTag("Team") && "a" == resource.getTag("Team") && context.x }};"#
                ),
                kv("Team", "a"),
            ),
            (
                format!(
                    r#"permit (principal, {action}, resource) when {{ resource.hasTag("A") && resource.hasTag("B") && resource.getTag("B") == "b" }};"#
                ),
                kv("B", "b"),
            ),
            (
                format!(r#"forbid (principal, {action}, resource) when {{ resource.hasTag("Prod") }};"#),
                TagRequirement::Key("Prod".into()),
            ),
            (
                format!(
                    r#"permit (principal, {action}, resource) when {{ resource.hasTag("Team") && principal.x == 1 }};"#
                ),
                TagRequirement::Key("Team".into()),
            ),
            // Something that may error comes first: evaluated every time.
            (
                format!(
                    r#"permit (principal, {action}, resource) when {{ principal.x == 1 && resource.hasTag("Team") }};"#
                ),
                TagRequirement::None,
            ),
            // An unguarded getTag could error on a node without the tag.
            (
                format!(r#"permit (principal, {action}, resource) when {{ resource.getTag("Team") == "a" }};"#),
                TagRequirement::None,
            ),
            // A tag of something other than the node.
            (
                format!(
                    r#"permit (principal, {action}, resource) when {{ context.iam.principalTags.hasTag("Team") }};"#
                ),
                TagRequirement::None,
            ),
            // The first clause is an `unless`, or there is no clause.
            (
                format!(r#"permit (principal, {action}, resource) unless {{ resource.hasTag("Team") }};"#),
                TagRequirement::None,
            ),
            (format!(r#"permit (principal, {action}, resource);"#), TagRequirement::None),
            // A disjunction is not a requirement.
            (
                format!(
                    r#"permit (principal, {action}, resource) when {{ resource.hasTag("A") || resource.hasTag("B") }};"#
                ),
                TagRequirement::None,
            ),
        ];
        for (src, expected) in cases {
            assert_eq!(requirement_of(&src), expected, "{src}");
        }
    }

    #[test]
    fn statements_that_look_at_the_requester_are_recognised() {
        let cases = [
            (r#"permit (principal, action, resource) when { resource.hasTag("Team") };"#, false),
            (r#"permit (principal, action, resource);"#, false),
            (r#"permit (principal in AWS::IAM::Group::"g", action, resource);"#, true),
            (r#"permit (principal == AWS::IAM::User::"u", action, resource);"#, true),
            (r#"permit (principal is AWS::IAM::User, action, resource);"#, true),
            (
                r#"permit (principal, action, resource) when { resource.hasTag("T") && context.iam.principalTags.hasTag("T") };"#,
                true,
            ),
            (r#"forbid (principal, action, resource) unless { principal.costCenter == "1" };"#, true),
            (
                r#"forbid (principal, action, resource) when { resource.hasTag("E") && AWS::IAM::User::"bob" in AWS::IAM::Group::"Suspended" };"#,
                true,
            ),
        ];
        for (src, expected) in cases {
            let policy: Policy = src.parse().unwrap();
            assert_eq!(reads_principal(policy.to_json().ok().as_ref()), expected, "{src}");
        }
    }

    #[test]
    fn the_requester_is_needed_only_where_an_applicable_statement_looks_at_it() {
        let mut index = StatementIndex::default();
        for (id, src) in [
            (
                "dev",
                r#"permit (principal, action, resource) when { resource.hasTag("Env") && resource.getTag("Env") == "dev" };"#,
            ),
            (
                "staff",
                r#"permit (principal in AWS::IAM::Group::"staff", action, resource) when { resource.hasTag("Env") && resource.getTag("Env") == "staging" };"#,
            ),
        ] {
            let policy: Policy = src.parse().unwrap();
            index.add(policy.new_id(cedar_policy::PolicyId::new(id)));
        }
        let node = |env: &str| BTreeMap::from([("Env".to_owned(), env.to_owned())]);
        assert!(!index.needs_principal(&node("dev")));
        assert!(index.needs_principal(&node("staging")));
        assert!(!index.needs_principal(&BTreeMap::new()));
    }

    #[test]
    fn candidates_are_the_unindexed_statements_and_those_whose_tag_test_the_node_passes() {
        let mut index = StatementIndex::default();
        for (id, src) in [
            (
                "team-a",
                r#"permit (principal, action, resource) when { resource.hasTag("Team") && resource.getTag("Team") == "a" };"#,
            ),
            (
                "team-b",
                r#"permit (principal, action, resource) when { resource.hasTag("Team") && resource.getTag("Team") == "b" };"#,
            ),
            ("prod", r#"forbid (principal, action, resource) when { resource.hasTag("Prod") };"#),
            ("all", r#"permit (principal, action, resource);"#),
        ] {
            let policy: Policy = src.parse().unwrap();
            index.add(policy.new_id(cedar_policy::PolicyId::new(id)));
        }
        assert_eq!(index.unindexed_len(), 1);
        let tags = BTreeMap::from([("Team".to_owned(), "a".to_owned()), ("Prod".to_owned(), "yes".to_owned())]);
        let mut ids: Vec<String> =
            index.candidates(&tags).unwrap().policies().map(|p| AsRef::<str>::as_ref(p.id()).to_owned()).collect();
        ids.sort();
        assert_eq!(ids, ["all", "prod", "team-a"]);
        let ids: Vec<String> = index
            .candidates(&BTreeMap::new())
            .unwrap()
            .policies()
            .map(|p| AsRef::<str>::as_ref(p.id()).to_owned())
            .collect();
        assert_eq!(ids, ["all"]);
    }

    /// Statements of every shape the index reads or refuses, including ones that raise
    /// evaluation errors (`context.missing`), so that errors are compared too.
    const STATEMENTS: [(&str, &str); 8] = [
        (
            "team-a",
            r#"permit (principal, action, resource) when { resource.hasTag("Team") && resource.getTag("Team") == "a" };"#,
        ),
        (
            "team-b-dev",
            r#"permit (principal, action, resource) when { resource.hasTag("Env") && resource.hasTag("Team") && resource.getTag("Team") == "b" && resource.getTag("Env") == "dev" };"#,
        ),
        (
            "deny-prod",
            r#"forbid (principal, action, resource) when { resource.hasTag("Env") && resource.getTag("Env") == "prod" };"#,
        ),
        ("deny-pci", r#"forbid (principal, action, resource) when { resource.hasTag("PCI") };"#),
        (
            "erroring-forbid",
            r#"forbid (principal, action, resource) when { resource.hasTag("Team") && resource.getTag("Team") == "b" && context.missing };"#,
        ),
        (
            "erroring-first",
            r#"forbid (principal, action, resource) when { context.missing && resource.hasTag("Env") };"#,
        ),
        ("unguarded", r#"permit (principal, action, resource) when { resource.getTag("Env") == "dev" };"#),
        (
            "any-dev",
            r#"permit (principal, action, resource) when { resource.hasTag("Env") && resource.getTag("Env") == "dev" || resource.hasTag("Team") };"#,
        ),
    ];

    fn response_facts(r: &cedar_policy::Response) -> (cedar_policy::Decision, Vec<String>, Vec<String>) {
        let mut reasons: Vec<String> = r.diagnostics().reason().map(ToString::to_string).collect();
        let mut errors: Vec<String> = r.diagnostics().errors().map(ToString::to_string).collect();
        reasons.sort();
        errors.sort();
        (r.decision(), reasons, errors)
    }

    proptest::proptest! {
        /// The index changes nothing but speed: for any node, Cedar over the candidates gives
        /// the same decision, reasons and errors as Cedar over the whole set.
        #[test]
        fn deciding_over_the_candidates_equals_deciding_over_the_whole_set(
            team in proptest::option::of(proptest::sample::select(vec!["a", "b", "c"])),
            env in proptest::option::of(proptest::sample::select(vec!["dev", "prod"])),
            pci in proptest::bool::ANY,
        ) {
            let mut index = StatementIndex::default();
            let mut whole = cedar_policy::PolicySet::new();
            for (id, src) in STATEMENTS {
                let policy: Policy = src.parse().unwrap();
                let policy = policy.new_id(cedar_policy::PolicyId::new(id));
                whole.add(policy.clone()).unwrap();
                index.add(policy);
            }
            let mut tags = BTreeMap::new();
            if let Some(t) = team { tags.insert("Team".to_owned(), t.to_owned()); }
            if let Some(e) = env { tags.insert("Env".to_owned(), e.to_owned()); }
            if pci { tags.insert("PCI".to_owned(), "yes".to_owned()); }
            let resource: cedar_policy::EntityUid = r#"Node::"i-1""#.parse().unwrap();
            let tag_values = tags.iter().map(|(k, v)| (k.clone(), cedar_policy::RestrictedExpression::new_string(v.clone())));
            let node = cedar_policy::Entity::new_with_tags(resource.clone(), [], [], tag_values).unwrap();
            let entities = cedar_policy::Entities::from_entities([node], None).unwrap();
            let request = cedar_policy::Request::new(
                r#"User::"u""#.parse().unwrap(), r#"Action::"go""#.parse().unwrap(), resource, cedar_policy::Context::empty(), None,
            ).unwrap();
            let authorizer = cedar_policy::Authorizer::new();
            let full = authorizer.is_authorized(&request, &whole, &entities);
            let indexed = authorizer.is_authorized(&request, &index.candidates(&tags).unwrap(), &entities);
            proptest::prop_assert_eq!(response_facts(&full), response_facts(&indexed));
        }
    }
}
