//! What a function's cold start spends, step by step: each step of the composition root timed on
//! its first call in a fresh process (run it several times; the first call pays each crate's
//! one-time setup). Usage: `bench-init` with the environment `bench-coldstart` gives a function
//! (`JIT_TABLE_NAME`, `JIT_ACCOUNT_ID`, `JIT_APPROVAL_KEY_ID`, AWS credentials and region);
//! `docs/performance.md` shows a run.
#![allow(clippy::unwrap_used, reason = "a bench stops loudly on a broken expectation")]

use std::time::Instant;

use jit_shared::adapters::wiring;

fn step<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    eprintln!("{name:<40} {:>8.0} µs", start.elapsed().as_secs_f64() * 1e6);
    out
}

#[tokio::main]
async fn main() {
    step("logging::init", jit_shared::adapters::logging::init);
    let stack = step("StackConfig::from_env", || jit_shared::config::StackConfig::from_env().unwrap());
    let start = Instant::now();
    let sdk = wiring::sdk_config(&stack.region).await;
    eprintln!("{:<40} {:>8.0} µs", "sdk_config", start.elapsed().as_secs_f64() * 1e6);
    step("store (DynamoDB)", || wiring::store(&sdk, &stack));
    step("store again (DynamoDB)", || wiring::store(&sdk, &stack));
    step("iam_directory (IAM)", || wiring::iam_directory(&sdk));
    step("granter (IAM twice)", || wiring::granter(&sdk, &stack));
    step("sessions (SSM)", || wiring::sessions(&sdk, &stack));
    step("executions (SFN)", || wiring::executions(&sdk, "arn:aws:states:us-east-1:123456789012:stateMachine:x"));
    step("approval_seal (KMS)", || wiring::approval_seal(&sdk).unwrap());
    step("node_directory (Tagging, SSM)", || wiring::node_directory(&sdk, &stack));
    step("publisher (EventBridge)", || wiring::publisher(&sdk, "bus"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut files: Vec<jit_shared::policy::PolicyFile> = Vec::new();
    collect(&dir, &dir, &mut files);
    step("policy_time_zone", || jit_shared::config::policy_time_zone().unwrap());
    step("schema", || jit_shared::policy::policy_set::load_schema().unwrap());
    step("PolicySet::from_files", || jit_shared::policy::PolicySet::from_files(&files).unwrap());
    step("PolicySet::from_files again", || jit_shared::policy::PolicySet::from_files(&files).unwrap());
    let schema = jit_shared::policy::policy_set::load_schema().unwrap();
    let validator = step("validator", || jit_shared::policy::cedar_statements::validator(&schema));
    for f in &files {
        let name = f.path.clone();
        step(&name, || {
            if name.ends_with(".cedar") {
                let _ = jit_shared::policy::cedar_statements::parse_cedar_file(&f.path, &f.text, &validator);
            } else if name == "contacts.yaml" {
                let _ = jit_shared::policy::contacts::parse_contacts(&f.text);
            } else if name == "break-glass.yaml" {
                let _ = jit_shared::policy::break_glass::parse_break_glass(&f.text);
            } else {
                let _ = jit_shared::policy::manual::parse_manual_policy(&f.path, &f.text);
            }
        });
    }
}

fn collect(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<jit_shared::policy::PolicyFile>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "cedar" || e == "yaml") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push(jit_shared::policy::PolicyFile { path: rel, text: std::fs::read_to_string(&path).unwrap() });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
}
