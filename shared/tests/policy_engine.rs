//! The decision table: AWS JITNA's evaluation order and our additions, on in-memory policy sets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::collections::BTreeMap;

use chrono::Utc;
use jit_shared::domain::ids::{DurationMinutes, NodeId, NodeLocation};
use jit_shared::domain::principal::{GroupRef, PrincipalIdentity, ResolvedPrincipal};
use jit_shared::domain::request::DecisionRule;
use jit_shared::domain::status::RequestStatus;
use jit_shared::policy::{NodeInfo, PolicyFile, PolicySet};

const ACCOUNT: &str = "123456789012";

fn file(path: &str, text: &str) -> PolicyFile {
    PolicyFile { path: path.into(), text: text.into() }
}

const DEV_PERMIT: &str = r#"@id("dev-auto")
permit (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { resource.hasTag("Environment") && resource.getTag("Environment") == "Development" };
"#;
const SENSITIVE_FORBID: &str = r#"@id("no-auto-sensitive")
forbid (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { resource.hasTag("DataClass") && resource.getTag("DataClass") == "Sensitive" };
"#;

fn manual(name: &str, targets: &str, max: u32) -> String {
    format!("name: {name}\ntargets: {targets}\nmaxDurationMinutes: {max}\nlevels:\n  - minApprovals: 1\n    approvers:\n      - iamGroup: DevOps\n")
}

fn base_set(with_all_nodes: bool) -> PolicySet {
    let mut files = vec![
        file("auto.cedar", DEV_PERMIT),
        file("deny.cedar", SENSITIVE_FORBID),
        file("prod.yaml", &manual("prod", "{tags: [{key: Environment, value: Production}]}", 240)),
        file("team-a.yaml", &manual("team-a", "{tags: [{key: Team, value: A}]}", 120)),
        file("sensitive.yaml", &manual("sensitive", "{tags: [{key: DataClass, value: Sensitive}]}", 60)),
    ];
    if with_all_nodes {
        files.push(file("default.yaml", &manual("default", "{allNodes: true}", 30)));
    }
    PolicySet::from_files(&files).unwrap()
}

fn iam_user(name: &str, groups: &[&str], tags: &[(&str, &str)]) -> ResolvedPrincipal {
    ResolvedPrincipal {
        identity: PrincipalIdentity::IamUser { arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"), name: name.into() },
        groups: groups
            .iter()
            .map(|g| GroupRef::IamGroup { arn: format!("arn:aws:iam::{ACCOUNT}:group/{g}"), name: (*g).into() })
            .collect(),
        attributes: BTreeMap::new(),
        principal_tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

fn identity_center_user(user_id: &str, groups: &[&str]) -> ResolvedPrincipal {
    ResolvedPrincipal {
        identity: PrincipalIdentity::IdentityCenterUser { user_id: user_id.into(), user_name: "carol".into() },
        groups: groups.iter().map(|g| GroupRef::IdentityCenterGroup { id: (*g).into(), display_name: None }).collect(),
        attributes: BTreeMap::from([("costCenter".to_owned(), "42".to_owned())]),
        principal_tags: BTreeMap::new(),
    }
}

/// A node: a bare id is in the stack's account (`ACCOUNT`, us-east-1), an ARN where it says.
fn node(id: &str, tags: &[(&str, &str)]) -> NodeInfo {
    let node_id = NodeId::try_from(id.to_owned()).unwrap();
    let home = NodeLocation { partition: "aws".into(), account: ACCOUNT.into(), region: "us-east-1".into() };
    NodeInfo {
        location: node_id.resolve(&home),
        node_id,
        tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

fn minutes(m: u32) -> DurationMinutes {
    DurationMinutes::try_from(m).unwrap()
}

struct Case {
    name: &'static str,
    all_nodes_policy: bool,
    tags: &'static [(&'static str, &'static str)],
    duration: u32,
    outcome: RequestStatus,
    rule: DecisionRule,
    deciding: &'static [&'static str],
    denied_by: &'static [&'static str],
}

#[test]
fn decisions_follow_aws_evaluation_order() {
    let cases = [
        Case {
            name: "permit approves",
            all_nodes_policy: false,
            tags: &[("Environment", "Development")],
            duration: 30,
            outcome: RequestStatus::Approved,
            rule: DecisionRule::AutoApproval,
            deciding: &["dev-auto"],
            denied_by: &[],
        },
        Case {
            name: "forbid removes auto-approval and falls to manual",
            all_nodes_policy: false,
            tags: &[("Environment", "Development"), ("DataClass", "Sensitive")],
            duration: 30,
            outcome: RequestStatus::Pending,
            rule: DecisionRule::ManualTagSpecific,
            deciding: &["manual/sensitive"],
            denied_by: &["no-auto-sensitive"],
        },
        Case {
            name: "tag-specific manual policy",
            all_nodes_policy: false,
            tags: &[("Environment", "Production")],
            duration: 200,
            outcome: RequestStatus::Pending,
            rule: DecisionRule::ManualTagSpecific,
            deciding: &["manual/prod"],
            denied_by: &[],
        },
        Case {
            name: "tag-specific beats all-nodes",
            all_nodes_policy: true,
            tags: &[("Environment", "Production")],
            duration: 200,
            outcome: RequestStatus::Pending,
            rule: DecisionRule::ManualTagSpecific,
            deciding: &["manual/prod"],
            denied_by: &[],
        },
        Case {
            name: "all-nodes applies when nothing else does",
            all_nodes_policy: true,
            tags: &[("Environment", "Sandbox")],
            duration: 30,
            outcome: RequestStatus::Pending,
            rule: DecisionRule::ManualAllNodes,
            deciding: &["manual/default"],
            denied_by: &[],
        },
        Case {
            name: "two tag-specific policies conflict",
            all_nodes_policy: true,
            tags: &[("Environment", "Production"), ("Team", "A")],
            duration: 30,
            outcome: RequestStatus::Failed,
            rule: DecisionRule::PolicyConflict,
            deciding: &["manual/prod", "manual/team-a"],
            denied_by: &[],
        },
        Case {
            name: "no policy applies",
            all_nodes_policy: false,
            tags: &[("Environment", "Sandbox")],
            duration: 30,
            outcome: RequestStatus::Failed,
            rule: DecisionRule::NoApplicablePolicy,
            deciding: &[],
            denied_by: &[],
        },
        Case {
            name: "untagged node without all-nodes policy",
            all_nodes_policy: false,
            tags: &[],
            duration: 30,
            outcome: RequestStatus::Failed,
            rule: DecisionRule::NoApplicablePolicy,
            deciding: &[],
            denied_by: &[],
        },
        Case {
            name: "duration above the manual maximum",
            all_nodes_policy: false,
            tags: &[("Environment", "Production")],
            duration: 241,
            outcome: RequestStatus::Failed,
            rule: DecisionRule::DurationExceedsMaximum,
            deciding: &["manual/prod"],
            denied_by: &[],
        },
        Case {
            name: "duration above the auto-approval window",
            all_nodes_policy: false,
            tags: &[("Environment", "Development")],
            duration: 61,
            outcome: RequestStatus::Failed,
            rule: DecisionRule::DurationExceedsMaximum,
            deciding: &["dev-auto"],
            denied_by: &[],
        },
    ];
    let sets = [base_set(false), base_set(true)];
    let alice = iam_user("alice", &[], &[]);
    for c in cases {
        let set = &sets[usize::from(c.all_nodes_policy)];
        let d = set.decide(&alice, &node("i-0123456789abcdef0", c.tags), minutes(c.duration), Utc::now());
        assert_eq!(d.outcome, c.outcome, "{}: {d:?}", c.name);
        assert_eq!(d.rule, c.rule, "{}: {d:?}", c.name);
        let mut ids = d.deciding_policy_ids.clone();
        ids.sort();
        assert_eq!(ids, c.deciding, "{}", c.name);
        assert_eq!(d.deny_policy_ids, c.denied_by, "{}", c.name);
        assert_eq!(d.approval_plan.is_some(), c.outcome == RequestStatus::Pending, "{}", c.name);
        if c.outcome == RequestStatus::Failed {
            assert!(d.failure_code.is_some(), "{}", c.name);
        }
    }
}

#[test]
fn a_failed_duration_names_the_maximum() {
    let d = base_set(false).decide(
        &iam_user("alice", &[], &[]),
        &node("i-0123abcd", &[("Environment", "Production")]),
        minutes(500),
        Utc::now(),
    );
    assert!(d.message.contains("240"), "{}", d.message);
    assert_eq!(d.max_duration_minutes, Some(240));
}

#[test]
fn the_manual_plan_is_recorded_with_the_decision() {
    let d = base_set(false).decide(
        &iam_user("alice", &[], &[]),
        &node("i-0123abcd", &[("Environment", "Production")]),
        minutes(60),
        Utc::now(),
    );
    let plan = d.approval_plan.unwrap();
    assert_eq!(plan.policy_name, "prod");
    assert_eq!(plan.levels.len(), 1);
    assert_eq!(plan.levels[0].min_approvals, 1);
}

#[test]
fn the_aws_launch_post_example_validates_and_decides_as_documented() {
    let launch_post = r#"permit (
    principal in AWS::IdentityStore::Group::"911b8590-7041-70fa-d20b-12345EXAMPLE",
    action == AWS::SSM::Action::"getTokenForInstanceAccess",
    resource)
  when { resource.hasTag("Environment") && resource.getTag("Environment") == "Development" };
"#;
    let set = PolicySet::from_files(&[file("aws-example.cedar", launch_post)]).unwrap();
    assert_eq!(set.statements().next().unwrap().id, "aws-example.cedar#1", "an unnamed statement gets a stable id");
    let dev = node("i-0123456789abcdef0", &[("Environment", "Development")]);
    let member = identity_center_user("user-1", &["911b8590-7041-70fa-d20b-12345EXAMPLE"]);
    let outsider = identity_center_user("user-2", &["another-group"]);
    let d = set.decide(&member, &dev, minutes(60), Utc::now());
    assert_eq!(
        (d.outcome, d.deciding_policy_ids.clone()),
        (RequestStatus::Approved, vec!["aws-example.cedar#1".to_owned()])
    );
    let d = set.decide(&outsider, &dev, minutes(60), Utc::now());
    assert_eq!(d.rule, DecisionRule::NoApplicablePolicy);
    let d =
        set.decide(&member, &node("i-0123456789abcdef0", &[("Environment", "Production")]), minutes(60), Utc::now());
    assert_eq!(d.rule, DecisionRule::NoApplicablePolicy);
}

#[test]
fn iam_principals_are_matched_by_principal_tags_groups_and_arn() {
    let policies = r#"@id("elevated")
permit (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { context.iam.principalTags.hasTag("AccessLevel") && context.iam.principalTags.getTag("AccessLevel") == "Elevated" };
@id("devops-group")
permit (principal in AWS::IAM::Group::"arn:aws:iam::123456789012:group/DevOps", action, resource is AWS::SSM::ManagedInstance);
@id("one-role")
permit (principal == AWS::IAM::Role::"arn:aws:iam::123456789012:role/Oncall", action, resource);
"#;
    let set = PolicySet::from_files(&[file("iam.cedar", policies)]).unwrap();
    let ec2 = node("i-0123abcd", &[]);
    let managed = node("mi-0123456789abcdef0", &[]);
    let decide = |p: &ResolvedPrincipal, n: &NodeInfo| set.decide(p, n, minutes(10), Utc::now()).deciding_policy_ids;
    assert_eq!(decide(&iam_user("a", &[], &[("AccessLevel", "Elevated")]), &ec2), ["elevated"]);
    assert!(decide(&iam_user("a", &[], &[("AccessLevel", "Standard")]), &ec2).is_empty());
    assert_eq!(decide(&iam_user("a", &["DevOps"], &[]), &managed), ["devops-group"]);
    assert!(decide(&iam_user("a", &["DevOps"], &[]), &ec2).is_empty());
    let role = ResolvedPrincipal {
        identity: PrincipalIdentity::IamRole {
            arn: format!("arn:aws:iam::{ACCOUNT}:role/Oncall"),
            name: "Oncall".into(),
            session_name: "dave".into(),
        },
        groups: vec![],
        attributes: BTreeMap::new(),
        principal_tags: BTreeMap::new(),
    };
    assert_eq!(decide(&role, &ec2), ["one-role"]);
}

#[test]
fn identity_center_attributes_are_visible_to_policies() {
    let policy = r#"@id("cost-center-42")
permit (principal, action, resource) when { principal has costCenter && principal.costCenter == "42" };"#;
    let set = PolicySet::from_files(&[file("attrs.cedar", policy)]).unwrap();
    let d = set.decide(&identity_center_user("u", &[]), &node("i-0123abcd", &[]), minutes(10), Utc::now());
    assert_eq!(d.outcome, RequestStatus::Approved);
    let d = set.decide(&iam_user("a", &[], &[]), &node("i-0123abcd", &[]), minutes(10), Utc::now());
    assert_eq!(d.rule, DecisionRule::NoApplicablePolicy);
}

#[test]
fn the_access_window_annotation_sets_the_auto_approval_maximum() {
    let policy = r#"@id("short") @accessWindowMinutes("15") permit (principal, action, resource);"#;
    let set = PolicySet::from_files(&[file("w.cedar", policy)]).unwrap();
    let alice = iam_user("a", &[], &[]);
    assert_eq!(set.decide(&alice, &node("i-0123abcd", &[]), minutes(15), Utc::now()).outcome, RequestStatus::Approved);
    let d = set.decide(&alice, &node("i-0123abcd", &[]), minutes(16), Utc::now());
    assert_eq!((d.outcome, d.max_duration_minutes), (RequestStatus::Failed, Some(15)));
}

#[test]
fn the_shipped_example_policy_set_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let set = PolicySet::load_dir(&dir).unwrap();
    assert!(set.statements().count() >= 3);
    assert_eq!(set.manual_policies().len(), 3);
}

/// Each invalid policy is refused with its file, line and a fix.
#[test]
fn invalid_policies_are_refused_naming_file_line_and_fix() {
    struct Bad {
        what: &'static str,
        files: Vec<PolicyFile>,
        file: &'static str,
        line: usize,
        needle: &'static str,
    }
    let prod = manual("prod", "{tags: [{key: Environment, value: Production}]}", 60);
    let cases = vec![
        Bad {
            what: "syntax",
            files: vec![file(
                "a.cedar",
                "@id(\"x\")\npermit (principal, action, resource)\nwhen { resource.hasTag(\"A\") && };\n",
            )],
            file: "a.cedar",
            line: 3,
            needle: "syntax",
        },
        Bad {
            what: "schema: unknown entity type",
            files: vec![file("b.cedar", "\n\npermit (principal in AWS::IAM::Grop::\"x\", action, resource);\n")],
            file: "b.cedar",
            line: 3,
            needle: "schema",
        },
        Bad {
            what: "schema: unknown attribute",
            files: vec![file(
                "c.cedar",
                "permit (principal, action, resource)\nwhen { principal.shoeSize == \"9\" };\n",
            )],
            file: "c.cedar",
            line: 2,
            needle: "schema",
        },
        Bad {
            what: "AWS doc action form",
            files: vec![file(
                "d.cedar",
                "permit (\n  principal,\n  action == AWS::SSM::getTokenForInstanceAccess,\n  resource);\n",
            )],
            file: "d.cedar",
            line: 3,
            needle: "not valid Cedar",
        },
        Bad {
            what: "limit: duration",
            files: vec![file("e.yaml", &manual("e", "{allNodes: true}", 30_000))],
            file: "e.yaml",
            line: 3,
            needle: "20160",
        },
        Bad {
            what: "conflict",
            files: vec![file("p1.yaml", &prod), file("p2.yaml", &prod.replace("name: prod", "name: prod-too"))],
            file: "p2.yaml",
            line: 2,
            needle: "both target tag Environment=Production",
        },
        Bad {
            what: "duplicate id across files",
            files: vec![file("f.cedar", DEV_PERMIT), file("g.cedar", &format!("\n{DEV_PERMIT}"))],
            file: "g.cedar",
            line: 2,
            needle: "already used at f.cedar:1",
        },
        Bad {
            what: "window on a forbid",
            files: vec![file("h.cedar", "@accessWindowMinutes(\"10\")\nforbid (principal, action, resource);")],
            file: "h.cedar",
            line: 1,
            needle: "no effect",
        },
        Bad { what: "empty set", files: vec![], file: "<policy set>", line: 1, needle: "no policies" },
    ];
    for c in cases {
        let err = PolicySet::from_files(&c.files).unwrap_err();
        let e = err.0.iter().find(|e| e.message.contains(c.needle)).unwrap_or_else(|| panic!("{}: {err}", c.what));
        assert_eq!((e.file.as_str(), e.line), (c.file, c.line), "{}: {e}", c.what);
        assert!(!e.fix.is_empty(), "{}", c.what);
        assert!(err.to_string().contains(&format!("{}:{}", c.file, c.line)), "{}: the message names file:line", c.what);
    }
}

/// Where no statement that can apply to the node looks at the requester, the evaluator decides
/// with the caller's ARN alone (no IAM calls): that decision must equal the resolved one.
#[test]
fn a_decision_that_does_not_need_the_requester_is_the_same_without_resolving_them() {
    let set = PolicySet::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")).unwrap();
    let caller =
        jit_shared::domain::principal::CallerArn::try_from(format!("arn:aws:iam::{ACCOUNT}:user/operator")).unwrap();
    let resolved = iam_user("operator", &["DevOps", "Contractors"], &[("OnCall", "true")]);
    let nodes = [
        node("i-0123456789abcdef0", &[("Environment", "Development")]),
        node("i-0fedcba9876543210", &[("Environment", "Production")]),
        node("i-0aaaaaaaaaaaaaaa1", &[("Environment", "Sandbox")]),
        node("i-00000000000000aa1", &[("Environment", "Development"), ("DataClass", "Sensitive")]),
        node("mi-0123456789abcdef0", &[("Environment", "Staging")]),
    ];
    let mut skipped = 0;
    for n in &nodes {
        if set.needs_principal(&n.tags) {
            continue;
        }
        skipped += 1;
        let now = Utc::now();
        let with = set.decide(&resolved, n, minutes(30), now);
        let without = set.decide(&ResolvedPrincipal::from_arn_only(&caller), n, minutes(30), now);
        assert_eq!(with, without, "node {}", n.node_id);
    }
    assert!(skipped > 0, "the development node's decision does not look at the requester");
    assert!(set.needs_principal(&nodes[4].tags), "the staging permit reads the requester's OnCall tag");
}

/// AWS's JITNA user guide examples, as written there (the action in its valid Cedar form).
const AWS_GUIDE_EXAMPLES: [(&str, &str); 4] = [
    (
        "launch-post group on development",
        r#"permit (
    principal in AWS::IdentityStore::Group::"911b8590-7041-70fa-d20b-12345EXAMPLE",
    action == AWS::SSM::Action::"getTokenForInstanceAccess",
    resource)
  when { resource.hasTag("Environment") && resource.getTag("Environment") == "Development" };"#,
    ),
    (
        "principal tag without hasTag",
        r#"permit (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when {
    context.iam.principalTags.getTag("AccessLevel") == "Elevated" &&
    resource.hasTag("Environment") && resource.getTag("Environment") == "Production"
};"#,
    ),
    (
        "deny-access on production",
        r#"forbid (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { resource.hasTag("Environment") && resource.getTag("Environment") == "Production" };"#,
    ),
    (
        "one Identity Center user",
        r#"permit (
    principal == AWS::IdentityStore::User::"d4a8e4b8-1011-70c0-1a2b-12345EXAMPLE",
    action == AWS::SSM::Action::"getTokenForInstanceAccess",
    resource);"#,
    ),
];

#[test]
fn every_aws_guide_example_loads_and_decides_as_documented() {
    // Arrange: each example alone, with a manual policy for everything else.
    let load = |text: &str| {
        PolicySet::from_files(&[
            file("aws.cedar", text),
            file("default.yaml", &manual("default", "{allNodes: true}", 60)),
        ])
        .unwrap()
    };
    let prod = node("i-0123abcd", &[("Environment", "Production")]);
    let dev = node("i-0123abcd", &[("Environment", "Development")]);
    let elevated = iam_user("a", &[], &[("AccessLevel", "Elevated")]);
    let untagged = iam_user("a", &[], &[]);
    let group_member = identity_center_user("u-1", &["911b8590-7041-70fa-d20b-12345EXAMPLE"]);
    let named_user = identity_center_user("d4a8e4b8-1011-70c0-1a2b-12345EXAMPLE", &[]);
    // (example, requester, node, expected rule)
    let cases: Vec<(usize, &ResolvedPrincipal, &NodeInfo, DecisionRule)> = vec![
        (0, &group_member, &dev, DecisionRule::AutoApproval),
        (0, &group_member, &prod, DecisionRule::ManualAllNodes),
        (0, &untagged, &dev, DecisionRule::ManualAllNodes),
        (1, &elevated, &prod, DecisionRule::AutoApproval),
        (1, &untagged, &prod, DecisionRule::ManualAllNodes),
        (1, &elevated, &dev, DecisionRule::ManualAllNodes),
        (2, &elevated, &prod, DecisionRule::ManualAllNodes),
        (3, &named_user, &prod, DecisionRule::AutoApproval),
        (3, &group_member, &prod, DecisionRule::ManualAllNodes),
    ];
    for (example, who, on, rule) in cases {
        let (what, text) = AWS_GUIDE_EXAMPLES[example];
        // Act
        let d = load(text).decide(who, on, minutes(30), Utc::now());
        // Assert
        assert_eq!(d.rule, rule, "{what}: {d:?}");
    }
    let warned = load(AWS_GUIDE_EXAMPLES[1].1);
    assert!(!warned.warnings().is_empty(), "the unsafe tag read loads with a warning");
    assert!(warned.warnings().iter().all(|w| w.fix.contains("hasTag")), "{:?}", warned.warnings());
    for (what, text) in [AWS_GUIDE_EXAMPLES[0], AWS_GUIDE_EXAMPLES[2], AWS_GUIDE_EXAMPLES[3]] {
        assert!(load(text).warnings().is_empty(), "{what} needs no warning");
    }
}

#[test]
fn a_forbid_whose_evaluation_errors_still_removes_auto_approval() {
    let text = format!(
        "{DEV_PERMIT}\n{}",
        r#"@id("no-auto-without-clearance")
forbid (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { context.iam.principalTags.getTag("Clearance") != "granted" };"#
    );
    let set = PolicySet::from_files(&[
        file("aws.cedar", &text),
        file("default.yaml", &manual("default", "{allNodes: true}", 60)),
    ])
    .unwrap();
    let dev = node("i-0123abcd", &[("Environment", "Development")]);
    let d = set.decide(&iam_user("a", &[], &[]), &dev, minutes(30), Utc::now());
    assert_eq!(d.rule, DecisionRule::ManualAllNodes, "fail closed: {d:?}");
    let d = set.decide(&iam_user("a", &[], &[("Clearance", "granted")]), &dev, minutes(30), Utc::now());
    assert_eq!(d.rule, DecisionRule::AutoApproval, "{d:?}");
}

#[test]
fn statement_ids_with_quotes_or_backslashes_keep_their_rules_and_are_recorded_as_written() {
    for id in ["don't-auto-approve", r#"say "no""#, r"back\slash"] {
        // Arrange: an erroring forbid and a 15-minute permit, both named `id` (and a suffix).
        let cedar = format!(
            r#"@id("{forbid}")
forbid (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when {{ context.iam.principalTags.getTag("Clearance") != "granted" }};
@id("{permit}") @accessWindowMinutes("15")
permit (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when {{ resource.hasTag("Environment") && resource.getTag("Environment") == "Development" }};
"#,
            forbid = id.replace('\\', r"\\").replace('"', r#"\""#),
            permit = format!("{id}-window").replace('\\', r"\\").replace('"', r#"\""#),
        );
        let set = PolicySet::from_files(&[
            file("ids.cedar", &cedar),
            file("default.yaml", &manual("default", "{allNodes: true}", 60)),
        ])
        .unwrap();
        let dev = node("i-0123abcd", &[("Environment", "Development")]);
        let cleared = iam_user("a", &[], &[("Clearance", "granted")]);

        // Act
        let uncleared = set.decide(&iam_user("a", &[], &[]), &dev, minutes(30), Utc::now());
        let too_long = set.decide(&cleared, &dev, minutes(30), Utc::now());
        let within = set.decide(&cleared, &dev, minutes(15), Utc::now());

        // Assert: the erroring forbid removes auto-approval and is named; the window is the permit's.
        assert_eq!(uncleared.rule, DecisionRule::ManualAllNodes, "{id}: {uncleared:?}");
        assert_eq!(uncleared.deny_policy_ids, [id.to_owned()], "{id}");
        assert_eq!((too_long.outcome, too_long.max_duration_minutes), (RequestStatus::Failed, Some(15)), "{id}");
        assert_eq!(within.rule, DecisionRule::AutoApproval, "{id}: {within:?}");
        assert_eq!(within.deciding_policy_ids, [format!("{id}-window")], "{id}");
    }
}

#[test]
fn break_glass_fails_closed_on_a_forbid_that_errors_but_not_on_a_permit_that_errors() {
    let erroring = |effect: &str| {
        format!(
            r#"@id("needs-a-tag")
{effect} (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when {{ context.iam.principalTags.getTag("AccessLevel") == "Elevated" }};
"#
        )
    };
    let cases =
        [("permit", RequestStatus::Approved, None), ("forbid", RequestStatus::Failed, Some("BreakGlassForbidden"))];
    for (effect, outcome, code) in cases {
        // Arrange: alice may break glass; one statement cannot be evaluated for her (no tags).
        let set = PolicySet::from_files(&[
            file("break-glass.yaml", "members:\n  - iamUser: alice\n"),
            file("tagged.cedar", &erroring(effect)),
        ])
        .unwrap();

        // Act
        let d = set.decide_break_glass(&iam_user("alice", &[], &[]), true, &node("i-0123abcd", &[]), None, Utc::now());

        // Assert
        assert_eq!((d.outcome, d.failure_code.as_deref()), (outcome, code), "{effect}: {d:?}");
    }
}

#[test]
fn a_forbid_that_errors_for_a_request_and_matches_for_break_glass_refuses_break_glass() {
    // Arrange: the forbid reads a tag only outside break-glass; alice has no such tag, so for an
    // ordinary request it errors, and for break-glass it matches.
    let forbid = r#"@id("no-glass-on-prod")
forbid (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { resource.hasTag("Environment") && resource.getTag("Environment") == "Production" }
unless { !context.breakGlass && context.iam.principalTags.getTag("Clearance") == "granted" };
"#;
    let set = PolicySet::from_files(&[
        file("break-glass.yaml", "members:\n  - iamUser: alice\n"),
        file("glass.cedar", forbid),
    ])
    .unwrap();
    let prod = node("i-0123abcd", &[("Environment", "Production")]);

    // Act
    let d = set.decide_break_glass(&iam_user("alice", &[], &[]), true, &prod, None, Utc::now());

    // Assert
    assert_eq!((d.outcome, d.failure_code.as_deref()), (RequestStatus::Failed, Some("BreakGlassForbidden")), "{d:?}");
    assert_eq!(d.deciding_policy_ids, ["no-glass-on-prod"]);
}

#[test]
fn the_decision_sees_the_nodes_account_and_region_and_a_manual_policy_may_target_accounts() {
    // Arrange: auto-approval for one member account's development nodes in one Region; every
    // other node of that account goes to its own all-nodes policy, the rest to the default one.
    let member_auto = r#"@id("member-dev-auto")
permit (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when { resource.account == "222233334444" && resource.region == "eu-west-2" &&
       resource.hasTag("Environment") && resource.getTag("Environment") == "Development" };
"#;
    let set = PolicySet::from_files(&[
        file("member.cedar", member_auto),
        file("default.yaml", &manual("default", "{allNodes: true}", 60)),
        file("member.yaml", &manual("member", "{allNodes: true, accounts: ['222233334444']}", 60)),
        file(
            "member-prod.yaml",
            &manual("member-prod", "{tags: [{key: Environment, value: Production}], accounts: ['222233334444']}", 60),
        ),
        file(
            "prod.yaml",
            &manual("prod", "{tags: [{key: Environment, value: Production}], accounts: ['123456789012']}", 60),
        ),
    ])
    .unwrap();
    let dev = [("Environment", "Development")];
    let prod = [("Environment", "Production")];
    type Tags<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Tags, RequestStatus, &str); 6] = [
        ("arn:aws:ec2:eu-west-2:222233334444:instance/i-0123abcd", &dev, RequestStatus::Approved, "member-dev-auto"),
        ("arn:aws:ec2:us-east-1:222233334444:instance/i-0123abcd", &dev, RequestStatus::Pending, "manual/member"),
        ("i-0123abcd", &dev, RequestStatus::Pending, "manual/default"),
        ("arn:aws:ec2:eu-west-2:222233334444:instance/i-0123abcd", &prod, RequestStatus::Pending, "manual/member-prod"),
        ("i-0123abcd", &prod, RequestStatus::Pending, "manual/prod"),
        ("arn:aws:ec2:eu-west-2:444455556666:instance/i-0123abcd", &prod, RequestStatus::Pending, "manual/default"),
    ];
    for (id, tags, outcome, deciding) in cases {
        // Act
        let d = set.decide(&iam_user("alice", &[], &[]), &node(id, tags), minutes(30), Utc::now());
        // Assert
        assert_eq!((d.outcome, d.deciding_policy_ids.clone()), (outcome, vec![deciding.to_owned()]), "{id} {tags:?}");
        let location = d.node_location.unwrap();
        assert_eq!(location.account, id.split(':').nth(4).unwrap_or(ACCOUNT), "the record names the account");
    }
}

#[test]
fn manual_policies_overlap_only_where_their_accounts_do() {
    let cases = [
        ("{allNodes: true}", "{allNodes: true}", true),
        ("{allNodes: true}", "{allNodes: true, accounts: ['222233334444']}", false),
        (
            "{allNodes: true, accounts: ['222233334444']}",
            "{allNodes: true, accounts: ['222233334444', '444455556666']}",
            true,
        ),
        ("{allNodes: true, accounts: ['222233334444']}", "{allNodes: true, accounts: ['444455556666']}", false),
        ("{tags: [{key: T, value: A}]}", "{tags: [{key: T, value: A}], accounts: ['222233334444']}", true),
        (
            "{tags: [{key: T, value: A}], accounts: ['444455556666']}",
            "{tags: [{key: T, value: A}], accounts: ['222233334444']}",
            false,
        ),
    ];
    for (a, b, clash) in cases {
        let got = PolicySet::from_files(&[file("a.yaml", &manual("a", a, 60)), file("b.yaml", &manual("b", b, 60))]);
        assert_eq!(got.is_err(), clash, "{a} vs {b}");
    }
    for bad in [
        "{allNodes: true, accounts: []}",
        "{allNodes: true, accounts: ['2222']}",
        "{allNodes: true, accounts: [222233334444]}",
    ] {
        let err = PolicySet::from_files(&[file("a.yaml", &manual("a", bad, 60))]).unwrap_err().to_string();
        assert!(err.contains("a.yaml:2") && err.contains("accounts"), "{bad}: {err}");
    }
}

#[test]
fn an_auto_approval_for_business_hours_holds_at_ten_and_not_at_three_in_the_policy_time_zone() {
    // Arrange: development nodes are auto-approved on weekdays from 09:00 to 18:00, Berlin time;
    // otherwise the manual default policy applies.
    let business_hours = r#"@id("dev-business-hours")
permit (principal, action == AWS::SSM::Action::"getTokenForInstanceAccess", resource)
when {
    resource.hasTag("Environment") && resource.getTag("Environment") == "Development" &&
    context.local.hour >= 9 && context.local.hour < 18 &&
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"].contains(context.local.weekday) &&
    context.requestTime > datetime("2026-01-01")
};
"#;
    let set = PolicySet::from_files(&[
        file("hours.cedar", business_hours),
        file("default.yaml", &manual("default", "{allNodes: true}", 30)),
    ])
    .unwrap()
    .with_time_zone(jit_shared::policy::local_time::PolicyTimeZone::named("Europe/Berlin").unwrap());
    let dev = node("i-0123456789abcdef0", &[("Environment", "Development")]);
    let alice = iam_user("alice", &[], &[]);
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
    // (instant, outcome): Wednesday 2 December 2026; Berlin is UTC+1 in winter.
    let cases = [
        ("2026-12-02T09:00:00Z", RequestStatus::Approved), // 10:00 in Berlin
        ("2026-12-02T02:00:00Z", RequestStatus::Pending),  // 03:00
        ("2026-12-02T16:59:00Z", RequestStatus::Approved), // 17:59
        ("2026-12-02T17:00:00Z", RequestStatus::Pending),  // 18:00
        ("2026-12-05T09:00:00Z", RequestStatus::Pending),  // Saturday 10:00
        ("2025-12-03T09:00:00Z", RequestStatus::Pending),  // before the policy's first day
    ];
    for (instant, outcome) in cases {
        // Act
        let d = set.decide(&alice, &dev, minutes(30), at(instant));
        // Assert
        assert_eq!(d.outcome, outcome, "{instant}: {}", d.message);
        if outcome == RequestStatus::Approved {
            assert_eq!(d.deciding_policy_ids, ["dev-business-hours"], "{instant}");
        }
    }
}
