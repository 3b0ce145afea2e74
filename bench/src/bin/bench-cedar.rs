//! Cedar decision time for policy sets of 10 to 10,000 statements with realistic entities (an
//! IAM user in groups with principal tags; a node with five tags). Absolute times move with the
//! machine, so the goals are ratios measured in the same run: the engine at 10,000 statements
//! against itself at 10 (decision time does not grow with the set), and against plain Cedar
//! evaluating the whole 10,000-statement set. Run by `make bench`: `target/release/bench-cedar`.
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
        location: jit_shared::domain::ids::NodeLocation {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        },
        tags: BTreeMap::from([
            ("Name".into(), "web-dev-3".into()),
            ("Environment".into(), "Development".into()),
            ("Team".into(), "team-3".into()),
            ("DataClass".into(), "internal".into()),
            ("Owner".into(), "platform".into()),
        ]),
    };
    let duration = DurationMinutes::try_from(30).unwrap();
    let command = "target/release/bench-cedar";
    let mut medians = Vec::new();
    for n in [10usize, 100, 1_000, 10_000] {
        let set = policy_set(n);
        let decision = set.decide(&principal, &node, duration, now);
        assert_eq!(decision.deciding_policy_ids, vec!["team-3".to_owned()], "the benchmark decides for real");
        let samples = timed(20_000, || {
            std::hint::black_box(set.decide(std::hint::black_box(&principal), &node, duration, now));
        });
        let (median, p99) = (micros(&samples, 0.5), micros(&samples, 0.99));
        medians.push((n, median, set));
        row(&format!("Cedar decision, {n} policies"), &format!("median {median:.1} µs, p99 {p99:.1} µs"), "", command);
    }
    let (_, at_10, _) = &medians[0];
    let (_, at_10k, big) = &medians[medians.len() - 1];
    let growth = at_10k / at_10;
    row(
        "Cedar decision, 10,000 policies against 10 (medians, same run)",
        &format!("{growth:.2}×{}", if growth <= 1.5 { "" } else { " (goal missed)" }),
        "≤ 1.5×",
        command,
    );
    let whole = big.whole_set().unwrap();
    assert!(whole.is_allowed(&principal, &node, now).unwrap(), "plain Cedar allows too");
    let plain = timed(50, || {
        std::hint::black_box(whole.is_allowed(std::hint::black_box(&principal), &node, now).unwrap());
    });
    let plain_median = micros(&plain, 0.5);
    let speedup = plain_median / at_10k;
    row(
        "Cedar decision, 10,000 policies: the engine against plain Cedar over the whole set (medians, same run)",
        &format!(
            "{speedup:.0}× faster{} (plain Cedar {:.1} ms, the engine {at_10k:.1} µs)",
            if speedup >= 100.0 { "" } else { " (goal missed)" },
            plain_median / 1000.0
        ),
        "≥ 100×",
        command,
    );
    load_rows(command);
}

/// What evaluate-request does at a cold start with the repository's `policies/`: the schema
/// parsed, then every file parsed and validated against it (the two rows show the split).
fn load_rows(command: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let set = jit_shared::policy::PolicySet::load_dir(&dir).unwrap();
    let schema = timed(200, || {
        std::hint::black_box(jit_shared::policy::policy_set::load_schema().unwrap());
    });
    let load = timed(200, || {
        std::hint::black_box(jit_shared::policy::PolicySet::load_dir(&dir).unwrap());
    });
    row(
        &format!(
            "Policy set load, warm (policies/, {} statements; bench-init times a cold one)",
            set.statements().count()
        ),
        &format!(
            "median {:.2} ms, of which the schema {:.2} ms",
            micros(&load, 0.5) / 1000.0,
            micros(&schema, 0.5) / 1000.0
        ),
        "",
        command,
    );
}

/// Nanosecond samples of `runs` calls after a warm-up, sorted.
fn timed(runs: usize, mut call: impl FnMut()) -> Vec<u128> {
    for _ in 0..runs.min(200) {
        call();
    }
    let mut samples: Vec<u128> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            call();
            start.elapsed().as_nanos()
        })
        .collect();
    samples.sort_unstable();
    samples
}

fn micros(sorted: &[u128], q: f64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "nanosecond timings are far inside the exact range of f64")]
    let nanos = quantile(sorted, q).unwrap_or_default() as f64;
    nanos / 1000.0
}
