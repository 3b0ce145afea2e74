//! Cedar decision time for policy sets of 10, 100 and 1,000 statements with realistic entities
//! (an IAM user in groups with principal tags; a node with five tags). Run by `make bench`:
//! `target/release/bench-cedar`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use jit_bench::{quantile, row};
use jit_shared::domain::ids::{DurationMinutes, NodeId};
use jit_shared::domain::principal::{GroupRef, PrincipalIdentity, ResolvedPrincipal};
use jit_shared::policy::{NodeInfo, PolicyFile, PolicySet};

/// `n` statements over 10 files: nine in ten are permits on a team's environment with a
/// principal-tag condition, one in ten forbids a data class; plus one all-nodes manual policy.
fn policy_set(n: usize) -> PolicySet {
    let mut files = Vec::new();
    for f in 0..10 {
        let mut text = String::new();
        for i in (f..n).step_by(10) {
            if i % 10 == 9 {
                text.push_str(&format!(
                    "@id(\"deny-{i}\")\nforbid (principal, action == AWS::SSM::Action::\"getTokenForInstanceAccess\", resource)\n\
                     when {{ resource.hasTag(\"DataClass\") && resource.getTag(\"DataClass\") == \"class-{i}\" }};\n\n"
                ));
            } else {
                text.push_str(&format!(
                    "@id(\"team-{i}\")\n@accessWindowMinutes(\"60\")\npermit (principal, action == AWS::SSM::Action::\"getTokenForInstanceAccess\", resource)\n\
                     when {{ resource.hasTag(\"Team\") && resource.getTag(\"Team\") == \"team-{i}\" &&\n\
                     resource.hasTag(\"Environment\") && resource.getTag(\"Environment\") == \"Development\" &&\n\
                     context.iam.principalTags.hasTag(\"Team\") && context.iam.principalTags.getTag(\"Team\") == \"team-{i}\" }};\n\n"
                ));
            }
        }
        if !text.is_empty() {
            files.push(PolicyFile { path: format!("auto-approval/bench-{f}.cedar"), text });
        }
    }
    files.push(PolicyFile {
        path: "manual/all.yaml".into(),
        text: "name: all\ntargets:\n  allNodes: true\nmaxDurationMinutes: 240\nlevels:\n  - minApprovals: 1\n    approvers:\n      - iamGroup: DevOps\n".into(),
    });
    PolicySet::from_files(&files).expect("the generated policy set is valid")
}

fn main() {
    let now = Utc::now();
    let principal = ResolvedPrincipal {
        identity: PrincipalIdentity::IamUser {
            arn: "arn:aws:iam::123456789012:user/operator".into(),
            name: "operator".into(),
        },
        groups: vec![
            GroupRef::IamGroup { arn: "arn:aws:iam::123456789012:group/DevOps".into(), name: "DevOps".into() },
            GroupRef::IamGroup { arn: "arn:aws:iam::123456789012:group/OnCall".into(), name: "OnCall".into() },
        ],
        attributes: BTreeMap::new(),
        principal_tags: BTreeMap::from([("Team".into(), "team-3".into()), ("CostCenter".into(), "42".into())]),
    };
    let node = NodeInfo {
        node_id: NodeId::try_from("i-0123456789abcdef0".to_owned()).unwrap(),
        tags: BTreeMap::from([
            ("Name".into(), "web-dev-3".into()),
            ("Environment".into(), "Development".into()),
            ("Team".into(), "team-3".into()),
            ("DataClass".into(), "internal".into()),
            ("Owner".into(), "platform".into()),
        ]),
    };
    let duration = DurationMinutes::try_from(30).unwrap();
    for n in [10usize, 100, 1000] {
        let set = policy_set(n);
        let decision = set.decide(&principal, &node, duration, now);
        assert_eq!(decision.deciding_policy_ids, vec!["team-3".to_owned()], "the benchmark decides for real");
        for _ in 0..200 {
            std::hint::black_box(set.decide(&principal, &node, duration, now));
        }
        let mut samples: Vec<u128> = (0..20_000)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(set.decide(std::hint::black_box(&principal), &node, duration, now));
                start.elapsed().as_nanos()
            })
            .collect();
        samples.sort_unstable();
        let micros = |q| quantile(&samples, q).unwrap_or_default() as f64 / 1000.0;
        let goal = if n == 1000 { "p99 < 50 µs" } else { "" };
        row(
            &format!("Cedar decision, {n} policies"),
            &format!("median {:.1} µs, p99 {:.1} µs", micros(0.5), micros(0.99)),
            goal,
            "target/release/bench-cedar",
        );
    }
}
