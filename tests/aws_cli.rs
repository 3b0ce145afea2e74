//! The AWS CLI and boto3 against the local stack through the service model in `clients/aws-cli`
//! (AWS JITNA's operations and shapes): `aws configure add-model` into a temporary home, then
//! (and `paginators-1.json` copied beside it, as docs/aws-cli.md says), then
//! start-access-request, get-access-request, get-access-token, list-access-requests (paged), a
//! manual approval by an approver's profile, extend-access-request, a scheduled start, and
//! break-glass with review-access-request (not JITNA's), as subprocesses of the venv's `aws`
//! (`make venv` installs it beside moto); boto3 does the same from `tests/python/jitna_boto3.py`
//! (and break-glass from a short inline script). Nothing reads or writes the real home: HOME, the
//! config, credentials and data paths are all temporary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use integration_tests::{local_stack, unique, SharedStack};
use serde_json::Value;

const API_VERSION: &str = "2026-12-01";
const DEV_NODE: &str = "i-0123456789abcdef0";
const SENSITIVE_NODE: &str = "i-00000000000000aa1";
/// No policy applies to it: a request for it is `Failed` (`NoApplicablePolicy`) as soon as evaluated.
const SANDBOX_NODE: &str = "i-0aaaaaaaaaaaaaaa1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_dir() -> PathBuf {
    repo().join("clients/aws-cli")
}

/// The venv's bin directory: where the Makefile put moto_server, the AWS CLI and boto3's python.
fn venv_bin() -> PathBuf {
    let moto = jit_cli::emulator::moto_server_path();
    let bin = moto.parent().map(Path::to_path_buf).unwrap_or_default();
    assert!(bin.join("aws").exists(), "{} is missing: run `make venv` (make test does)", bin.join("aws").display());
    bin
}

/// A temporary home with the stack's profiles (and one the stack never issued) and an empty
/// config, the model added by `aws configure add-model` into its `~/.aws/models` and the
/// paginator copied beside it (add-model installs only `service-2.json`).
struct Home {
    dir: PathBuf,
    api_url: String,
}

impl Home {
    fn credentials(&self) -> PathBuf {
        self.dir.join("credentials")
    }

    /// The AWS CLI as `profile`, in this home only; the endpoint from the service's variable.
    fn aws(&self, profile: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(venv_bin().join("aws"));
        isolate(&mut cmd, &self.dir)
            .env("AWS_SHARED_CREDENTIALS_FILE", self.credentials())
            .env("AWS_PROFILE", profile)
            .env("AWS_ENDPOINT_URL_JIT_NODE_ACCESS", &self.api_url)
            .args(args)
            .args(["--output", "json"]);
        cmd.output().unwrap_or_else(|e| panic!("running aws {args:?}: {e}"))
    }

    /// `aws jit-node-access <args>` that must succeed; its JSON output.
    fn jit(&self, profile: &str, args: &[&str]) -> Value {
        let mut all = vec!["jit-node-access"];
        all.extend_from_slice(args);
        let out = self.aws(profile, &all);
        assert!(
            out.status.success(),
            "aws {all:?} as {profile}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("aws {all:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Polls get-access-request until the request was decided and has `status` (at most 30 s):
    /// one not evaluated yet reads `Pending` too (JITNA's name), without a `Decision`.
    fn wait_for(&self, profile: &str, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.jit(profile, &["get-access-request", "--access-request-id", id]);
            if got["AccessRequestStatus"] == status && got.get("Decision").is_some() {
                return got;
            }
            assert!(Instant::now() < deadline, "{id} is still {}, not {status}", got["AccessRequestStatus"]);
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn start(&self, profile: &str, node: &str, reason: &str) -> String {
        let target = format!("Key=InstanceIds,Values={node}");
        let started = self.jit(profile, &["start-access-request", "--reason", reason, "--targets", &target]);
        let id = started["AccessRequestId"].as_str().unwrap_or_else(|| panic!("no AccessRequestId: {started}"));
        id.to_owned()
    }
}

/// Only what the command needs from the environment: the real home, config and any AWS setting
/// of the machine never reach it.
fn isolate<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_DEFAULT_REGION", jit_cli::emulator::REGION)
        .env("AWS_REGION", jit_cli::emulator::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

fn credentials_file(stack: &SharedStack) -> String {
    let mut text = String::new();
    for p in &stack.provisioned.profiles {
        text.push_str(&format!(
            "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            p.name, p.credentials.access_key_id, p.credentials.secret_access_key
        ));
        if let Some(t) = &p.credentials.session_token {
            text.push_str(&format!("aws_session_token = {t}\n"));
        }
    }
    text.push_str("[stranger]\naws_access_key_id = AKIANOTISSUEDBYSTACK\naws_secret_access_key = nope\n");
    text
}

static HOME: OnceLock<Home> = OnceLock::new();

/// One home per test binary, with the model added once.
fn home() -> &'static Home {
    HOME.get_or_init(|| {
        let stack = local_stack();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("jit-aws-cli-home"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config"), "").unwrap();
        std::fs::write(dir.join("credentials"), credentials_file(stack)).unwrap();
        let home = Home { dir, api_url: stack.api_url.clone() };
        let model = model_dir().join("jit-node-access").join(API_VERSION).join("service-2.json");
        let source = format!("file://{}", model.display());
        let added = home.aws(
            "operator",
            &["configure", "add-model", "--service-model", &source, "--service-name", "jit-node-access"],
        );
        assert!(added.status.success(), "add-model: {}", String::from_utf8_lossy(&added.stderr));
        let installed = home.dir.join(".aws/models/jit-node-access").join(API_VERSION);
        assert!(installed.join("service-2.json").exists(), "add-model wrote no {}", installed.display());
        // As docs/aws-cli.md: `cp …/paginators-1.json ~/.aws/models/jit-node-access/<version>/`.
        let paginators = model.with_file_name("paginators-1.json");
        std::fs::copy(&paginators, installed.join("paginators-1.json")).unwrap();
        home
    })
}

#[test]
fn the_aws_cli_starts_a_request_and_gets_jitna_credentials_for_it() {
    // Arrange: carol (an Identity Center user: credentials mode); development nodes are auto-approved.
    let home = home();

    // Act
    let id = home.start("carol", DEV_NODE, "aws cli: check the web logs");
    let approved = home.wait_for("carol", &id, "Approved");
    let token = home.jit("carol", &["get-access-token", "--access-request-id", &id]);
    let listed =
        home.jit("carol", &["list-access-requests", "--access-request-status", "Approved", "--max-results", "100"]);

    // Assert: JITNA's shapes, times in epoch seconds.
    assert_eq!(approved["Targets"], serde_json::json!([{ "Key": "InstanceIds", "Values": [DEV_NODE] }]));
    assert_eq!(approved["Decision"]["Rule"], "AutoApproval");
    assert!(approved["CreatedTime"].is_number(), "{approved}");
    assert_eq!(token["AccessRequestStatus"], "Approved", "{token}");
    let credentials = &token["Credentials"];
    assert!(credentials["AccessKeyId"].as_str().is_some_and(|k| !k.is_empty()), "{token}");
    assert!(credentials["SecretAccessKey"].is_string() && credentials["SessionToken"].is_string(), "{token}");
    let expires = credentials["ExpirationTime"].as_i64().unwrap_or_else(|| panic!("not epoch seconds: {token}"));
    let now = chrono::Utc::now().timestamp();
    assert!((now..=now + 3600).contains(&expires), "expires at {expires}, now {now}");
    assert_eq!(
        (token["Target"].as_str(), token["DocumentName"].as_str()),
        (Some(DEV_NODE), Some("jit-node-access-session"))
    );
    let ids: Vec<&str> =
        listed["AccessRequests"].as_array().unwrap().iter().filter_map(|r| r["AccessRequestId"].as_str()).collect();
    assert!(ids.contains(&id.as_str()), "{id} not in {ids:?}");
}

#[test]
fn an_approver_profile_approves_with_the_aws_cli_and_the_requester_cancels_and_the_approver_revokes() {
    // Arrange: sensitive nodes need one DevOps approval (approver-a is in DevOps).
    let home = home();
    let id = home.start("operator", SENSITIVE_NODE, "aws cli: rotate the keys");
    let pending = home.wait_for("operator", &id, "Pending");
    assert_eq!(pending["ApprovalLevel"], 1, "{pending}");

    // Act + Assert: no credentials while pending, only the status.
    let token = home.jit("operator", &["get-access-token", "--access-request-id", &id]);
    assert_eq!(token, serde_json::json!({ "AccessRequestStatus": "Pending" }));
    let waiting = home.jit("approver-a", &["list-approvals"]);
    assert!(waiting["AccessRequests"].as_array().unwrap().iter().any(|r| r["AccessRequestId"] == id.as_str()));
    let approved =
        home.jit("approver-a", &["approve-access-request", "--access-request-id", &id, "--comment", "ok from the cli"]);
    assert_eq!(approved["AccessRequestStatus"], "Approved", "{approved}");
    assert!(approved["AccessDeadline"].is_number(), "{approved}");
    let decided = home.jit("approver-a", &["list-approvals", "--decided"]);
    assert!(decided["AccessRequests"].as_array().unwrap().iter().any(|r| r["AccessRequestId"] == id.as_str()));
    let revoked = home.jit("approver-a", &["revoke-access-request", "--access-request-id", &id]);
    assert_eq!(revoked["AccessRequestStatus"], "Revoked", "{revoked}");

    let other = home.start("operator", SENSITIVE_NODE, "aws cli: never mind");
    home.wait_for("operator", &other, "Pending");
    let cancelled =
        home.jit("operator", &["cancel-access-request", "--access-request-id", &other, "--comment", "done"]);
    assert_eq!(cancelled["AccessRequestStatus"], "Cancelled", "{cancelled}");
}

/// Polls get-access-request until `done` holds (at most 30 s).
fn read_until(home: &Home, profile: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = home.jit(profile, &["get-access-request", "--access-request-id", id]);
        if done(&got) {
            return got;
        }
        assert!(Instant::now() < deadline, "{id} never reached the expected state: {got}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn the_aws_cli_extends_a_granted_request_and_schedules_one() {
    // Arrange: carol on the development node (60-minute auto-approval window), granted twice:
    // through the model, which asks for no duration and so gets the whole window, and through the
    // native API for 30 minutes (the model has no duration to ask for).
    let home = home();
    let whole_window = home.start("carol", DEV_NODE, "aws cli: the whole window");
    let full = read_until(home, "carol", &whole_window, |r| r["GrantedTime"].is_number());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let carol = integration_tests::client(local_stack(), "carol");
    let half = runtime.block_on(integration_tests::submit_with_reason(&carol, DEV_NODE, 30, "aws cli: extend me"));
    let id = half["requestId"].as_str().unwrap().to_owned();
    let granted = read_until(home, "carol", &id, |r| r["GrantedTime"].is_number());
    let deadline = granted["AccessDeadline"].as_i64().unwrap();

    // Act 1: beyond the window, and no manual policy covers the node: refused, nothing changes.
    let beyond = home.jit(
        "carol",
        &["extend-access-request", "--access-request-id", &whole_window, "--duration-minutes", "20", "--reason", "x"],
    );
    let beyond = beyond["AccessRequestId"].as_str().unwrap().to_owned();
    let refused = read_until(home, "carol", &beyond, |r| r["AccessRequestStatus"] == "Failed");
    assert_eq!(refused["Decision"]["Rule"], "NoApplicablePolicy", "{refused}");
    let unchanged = home.jit("carol", &["get-access-request", "--access-request-id", &whole_window]);
    assert_eq!(unchanged["AccessDeadline"], full["AccessDeadline"], "{unchanged}");

    // Act 2: 20 minutes more on the 30-minute one (50 in all, within the window).
    let extended = home.jit(
        "carol",
        &[
            "extend-access-request",
            "--access-request-id",
            &id,
            "--duration-minutes",
            "20",
            "--reason",
            "aws cli: longer",
        ],
    );

    // Assert: the extension is a request of its own, applied (Expired) once the deadline moved.
    let extension = extended["AccessRequestId"].as_str().unwrap_or_else(|| panic!("{extended}")).to_owned();
    assert_ne!(extension, id);
    let applied = read_until(home, "carol", &extension, |r| r["AccessRequestStatus"] == "Expired");
    assert_eq!((applied["Extends"].as_str(), applied["AccessDurationMinutes"].as_u64()), (Some(id.as_str()), Some(20)));
    let moved = home.jit("carol", &["get-access-request", "--access-request-id", &id]);
    assert_eq!(moved["AccessRequestStatus"], "Approved", "{moved}");
    assert_eq!(moved["AccessDeadline"].as_i64(), Some(deadline + 20 * 60), "{moved}");
    // An extension is not extended itself, and a bad body names the member.
    let again = home.aws(
        "carol",
        &[
            "jit-node-access",
            "extend-access-request",
            "--access-request-id",
            &extension,
            "--duration-minutes",
            "5",
            "--reason",
            "x",
        ],
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("(ConflictException)"), "{err}");
    let bad = home.aws(
        "carol",
        &[
            "jit-node-access",
            "extend-access-request",
            "--access-request-id",
            &id,
            "--duration-minutes",
            "0",
            "--reason",
            "x",
        ],
    );
    assert!(!bad.status.success(), "0 minutes was accepted");

    // Scheduled: an hour ahead, decided now, no credentials before the start, withdrawn.
    let starts = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let target = format!("Key=InstanceIds,Values={DEV_NODE}");
    let scheduled = home.jit(
        "carol",
        &["start-access-request", "--reason", "aws cli: later", "--targets", &target, "--starts-at", &starts],
    );
    let scheduled = scheduled["AccessRequestId"].as_str().unwrap().to_owned();
    let approved = home.wait_for("carol", &scheduled, "Approved");
    let expected = chrono::DateTime::parse_from_rfc3339(&starts).unwrap().timestamp();
    assert_eq!(approved["StartsAt"].as_i64(), Some(expected), "{approved}");
    assert!(approved.get("GrantedTime").is_none(), "nothing granted before the start: {approved}");
    let early = home.aws("carol", &["jit-node-access", "get-access-token", "--access-request-id", &scheduled]);
    let err = String::from_utf8_lossy(&early.stderr);
    assert!(!early.status.success() && err.contains("(ConflictException)"), "{err}");
    let withdrawn = home.jit("carol", &["cancel-access-request", "--access-request-id", &scheduled]);
    assert_eq!(withdrawn["AccessRequestStatus"], "Cancelled", "{withdrawn}");
}

#[test]
fn bad_input_and_refusals_are_clean_aws_cli_errors() {
    let home = home();
    let start = |profile: &str, targets: &[&str]| {
        let mut args = vec!["jit-node-access", "start-access-request", "--reason", "aws cli: bad", "--targets"];
        args.extend_from_slice(targets);
        let out = home.aws(profile, &args);
        assert!(!out.status.success(), "{targets:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for targets in [
        &["Key=InstanceIds,Values=host1"][..],
        &["Key=InstanceIds,Values=i-0123456789abcdef0,i-0fedcba9876543210"],
        &["Key=tag:Environment,Values=Production"],
        &["Key=InstanceIds,Values=i-0123456789abcdef0", "Key=InstanceIds,Values=i-0fedcba9876543210"],
    ] {
        let err = start("operator", targets);
        assert!(err.contains("(ValidationException)") && err.contains("Targets"), "{targets:?}: {err}");
    }
    // JITNA's `Tags` is declared, so the CLI sends it and the server refuses it by name.
    let dev = format!("Key=InstanceIds,Values={DEV_NODE}");
    let err = start("operator", &[dev.as_str(), "--tags", "Key=team,Value=web"]);
    assert!(!err.contains("Unknown options"), "refused client-side: {err}");
    assert!(
        err.contains("(ValidationException)") && err.contains("StartAccessRequest") && err.contains("Tags: "),
        "{err}"
    );
    let err = start("stranger", &["Key=InstanceIds,Values=i-0123456789abcdef0"]);
    assert!(err.contains("(AccessDeniedException)"), "{err}");
    let out = home.aws("operator", &["jit-node-access", "get-access-token", "--access-request-id", "req-0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("(ResourceNotFoundException)"), "{out:?}");
}

/// The ids of a list-access-requests answer, in order.
fn listed_ids(listed: &Value) -> Vec<String> {
    let items = listed["AccessRequests"].as_array().unwrap_or_else(|| panic!("no AccessRequests: {listed}"));
    items.iter().map(|r| r["AccessRequestId"].as_str().unwrap().to_owned()).collect()
}

/// Every id once: the list without duplicates, as a sorted list.
fn each_once(ids: &[String]) -> Vec<String> {
    let mut sorted = ids.to_vec();
    sorted.sort();
    let before = sorted.len();
    sorted.dedup();
    assert_eq!(sorted.len(), before, "an id listed twice: {ids:?}");
    sorted
}

#[test]
fn the_aws_cli_pages_through_every_request_exactly_once() {
    // Arrange: approver-c (no other test of this binary asks as them) asks five times for the
    // sandbox node, which no policy covers: each ends Failed at once and then never changes.
    let home = home();
    let mut created: Vec<String> =
        (0..5).map(|i| home.start("approver-c", SANDBOX_NODE, &format!("aws cli: page {i}"))).collect();
    for id in &created {
        home.wait_for("approver-c", id, "Failed");
    }
    created.sort();

    // Act: the paginator walks two per call; --max-items stops at three and --starting-token
    // resumes; --max-results turns paging off (one call).
    let walked = home.jit("approver-c", &["list-access-requests", "--page-size", "2"]);
    let first = home.jit("approver-c", &["list-access-requests", "--page-size", "2", "--max-items", "3"]);
    let token = first["NextToken"].as_str().unwrap_or_else(|| panic!("no NextToken after 3 items: {first}"));
    let rest = home.jit("approver-c", &["list-access-requests", "--page-size", "2", "--starting-token", token]);
    let one_call = home.jit("approver-c", &["list-access-requests", "--max-results", "100"]);

    // Assert: more than one page (five requests, two a call), every request exactly once.
    let all = listed_ids(&walked);
    assert_eq!(each_once(&all), created, "{walked}");
    assert!(walked.get("NextToken").is_none(), "walked to the end: {walked}");
    let (head, tail) = (listed_ids(&first), listed_ids(&rest));
    assert_eq!(head.len(), 3, "{first}");
    assert_eq!([head, tail].concat(), all, "resumed where --max-items stopped");
    assert_eq!(listed_ids(&one_call), all, "the same order in one call: {one_call}");
}

#[test]
fn boto3_gets_the_same_client_from_the_data_path() {
    // A home of its own with no added model: boto3 reads it from AWS_DATA_PATH.
    let home = home();
    let bare = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("jit-boto3-home"));
    std::fs::create_dir_all(&bare).unwrap();
    let script = repo().join("tests/python/jitna_boto3.py");
    let started = Instant::now();
    let mut cmd = Command::new(venv_bin().join("python"));
    isolate(&mut cmd, &bare)
        .env("AWS_SHARED_CREDENTIALS_FILE", home.credentials())
        .env("AWS_DATA_PATH", model_dir())
        .env("JIT_API_URL", &home.api_url)
        .arg(&script);
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(&bare);
    assert!(out.status.success(), "boto3 script: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["auto"]["target"], DEV_NODE, "{seen}");
    assert_eq!(seen["manual"]["status"], "Approved", "{seen}");
    assert_eq!(seen["badTarget"]["field"], "Targets", "{seen}");
    // `Tags` reaches the server, which names it.
    assert_eq!(
        (seen["tags"]["code"].as_str(), seen["tags"]["field"].as_str(), seen["tags"]["reason"].as_str()),
        (Some("ValidationException"), Some("Tags"), Some("UnsupportedParameter")),
        "{seen}"
    );
    assert!(seen["tags"]["message"].as_str().is_some_and(|m| m.starts_with("Tags: ")), "{seen}");
    // get_paginator walked several pages and returned every request once, as one call does.
    let paged = &seen["paged"];
    assert!(paged["pages"].as_u64().is_some_and(|p| p >= 3), "{seen}");
    assert_eq!(paged["items"], 5, "{seen}");
    assert_eq!(
        (&paged["unique"], &paged["allCreated"], &paged["sameAsOneCall"]),
        (&Value::Bool(true), &Value::Bool(true), &Value::Bool(true)),
        "{seen}"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

/// `aws jit-node-access review-access-request` that must fail; its stderr.
fn refused_review(home: &Home, profile: &str, id: &str, verdict: &str) -> String {
    let out = home
        .aws(profile, &["jit-node-access", "review-access-request", "--access-request-id", id, "--verdict", verdict]);
    assert!(!out.status.success(), "{profile}'s review ({verdict}) of {id} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The caller ARN of a seeded IAM user of the local stack.
fn iam_user_arn(name: &str) -> String {
    format!("arn:aws:iam::{}:user/{name}", jit_cli::emulator::ACCOUNT_ID)
}

#[test]
fn the_aws_cli_breaks_glass_and_an_administrator_reviews_it_but_never_the_requester() {
    // Arrange: operator is in OnCall, the break-glass group (policies/break-glass.yaml). No manual
    // policy targets the development node, so its break-glass grant names no approvers: only
    // administrators review it, and the seed makes `security` one (local/seed.yaml).
    let home = home();
    let target = format!("Key=InstanceIds,Values={DEV_NODE}");
    let reason = "aws cli: the web tier is down";

    // Act: break-glass through the model.
    let started =
        home.jit("operator", &["start-access-request", "--reason", reason, "--targets", &target, "--break-glass"]);
    let id = started["AccessRequestId"].as_str().unwrap_or_else(|| panic!("no AccessRequestId: {started}")).to_owned();
    let approved = home.wait_for("operator", &id, "Approved");

    // Assert: approved at once by the break-glass rule, for its maximum, the review open.
    assert_eq!(approved["BreakGlass"], true, "{approved}");
    assert_eq!(approved["Decision"]["Rule"], "BreakGlass", "{approved}");
    assert_eq!(approved["Decision"]["DecidingPolicyIds"], serde_json::json!([]), "no plan: {approved}");
    assert_eq!(approved["AccessDurationMinutes"], 60, "{approved}");
    let due = approved["Review"]["Due"].as_i64().unwrap_or_else(|| panic!("no Review.Due: {approved}"));
    let now = chrono::Utc::now().timestamp();
    assert!((now..=now + 1440 * 60 + 60).contains(&due), "due at {due}, now {now}");
    assert_eq!(approved["Review"].as_object().map(|r| r.len()), Some(1), "open, only Due: {approved}");

    // Act + Assert: the requester never reviews; an approver of other nodes sees nothing here; a
    // verdict other than acknowledge or flag names the member.
    let own = refused_review(home, "operator", &id, "acknowledge");
    assert!(own.contains("(AccessDeniedException)") && own.contains("ReviewAccessRequest"), "{own}");
    let outsider = refused_review(home, "approver-a", &id, "acknowledge");
    assert!(outsider.contains("(ResourceNotFoundException)"), "{outsider}");
    let bad = refused_review(home, "security", &id, "fine");
    assert!(bad.contains("(ValidationException)") && bad.contains("Verdict"), "{bad}");
    let reviewed = home.jit(
        "security",
        &["review-access-request", "--access-request-id", &id, "--verdict", "acknowledge", "--comment", "real outage"],
    );
    assert_eq!(reviewed["AccessRequestStatus"], "Approved", "{reviewed}");
    let review = &reviewed["Review"];
    assert_eq!(
        (review["Verdict"].as_str(), review["ReviewedBy"].as_str(), review["Comment"].as_str()),
        (Some("acknowledge"), Some(iam_user_arn("security").as_str()), Some("real outage")),
        "{reviewed}"
    );
    assert_eq!(review["Due"].as_i64(), Some(due), "{reviewed}");
    assert!(review["ReviewedTime"].as_i64().is_some_and(|t| t >= now), "{reviewed}");
    let read = home.jit("operator", &["get-access-request", "--access-request-id", &id]);
    assert_eq!(read["Review"], *review, "the requester reads the review: {read}");
    let twice = refused_review(home, "security", &id, "flag");
    assert!(twice.contains("(ConflictException)") && twice.contains("already reviewed"), "{twice}");
    // A request that is not break-glass has nothing to review.
    let plain = home.start("carol", DEV_NODE, "aws cli: nothing broken");
    home.wait_for("carol", &plain, "Approved");
    let none = refused_review(home, "security", &plain, "acknowledge");
    assert!(none.contains("(ResourceNotFoundException)"), "{none}");
}

/// boto3's break-glass: operator breaks glass on the sensitive node, approver-b flags it, the
/// requester's own review is refused. Prints what it saw as one JSON object.
const BOTO3_BREAK_GLASS: &str = r#"
import datetime, json, os, sys, time
import boto3, botocore.exceptions

def client(profile):
    session = boto3.Session(profile_name=profile, region_name="us-east-1")
    return session.client("jit-node-access", endpoint_url=os.environ["JIT_API_URL"])

operator, approver = client("operator"), client("approver-b")
targets = [{"Key": "InstanceIds", "Values": [os.environ["NODE"]]}]
rid = operator.start_access_request(Reason="boto3: break glass", Targets=targets, BreakGlass=True)["AccessRequestId"]
deadline = time.monotonic() + 30
while True:
    got = operator.get_access_request(AccessRequestId=rid)
    if got["AccessRequestStatus"] != "Pending" or "Decision" in got:
        break
    if time.monotonic() > deadline:
        sys.exit(f"{rid} was never decided")
    time.sleep(0.3)
try:
    operator.review_access_request(AccessRequestId=rid, Verdict="acknowledge")
    own = "accepted"
except botocore.exceptions.ClientError as e:
    own = e.response["Error"]["Code"]
flagged = approver.review_access_request(AccessRequestId=rid, Verdict="flag", Comment="boto3: not an emergency")
review = flagged["Review"]
print(json.dumps({
    "status": got["AccessRequestStatus"],
    "breakGlass": got.get("BreakGlass"),
    "dueIsDatetime": isinstance(got["Review"]["Due"], datetime.datetime),
    "own": own,
    "verdict": review.get("Verdict"),
    "by": review.get("ReviewedBy"),
    "comment": review.get("Comment"),
}))
"#;

#[test]
fn boto3_breaks_glass_and_an_approver_flags_it() {
    // Arrange: a bare home; the model from AWS_DATA_PATH, the stack's profiles.
    let home = home();
    let bare = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("jit-boto3-glass-home"));
    std::fs::create_dir_all(&bare).unwrap();

    // Act
    let mut cmd = Command::new(venv_bin().join("python"));
    isolate(&mut cmd, &bare)
        .env("AWS_SHARED_CREDENTIALS_FILE", home.credentials())
        .env("AWS_DATA_PATH", model_dir())
        .env("JIT_API_URL", &home.api_url)
        .env("NODE", SENSITIVE_NODE)
        .args(["-c", BOTO3_BREAK_GLASS]);
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(&bare);

    // Assert
    assert!(out.status.success(), "boto3 break-glass: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "status": "Approved",
            "breakGlass": true,
            "dueIsDatetime": true,
            "own": "AccessDeniedException",
            "verdict": "flag",
            "by": iam_user_arn("approver-b"),
            "comment": "boto3: not an emergency",
        })
    );
}
