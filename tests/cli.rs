//! The operator CLI end to end: the real `jit` binary, run as a process per command, against the
//! shared local stack, signing as the seeded people through a shared credentials file, exactly as
//! an operator's shell would (`JIT_API_URL`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_PROFILE`,
//! `AWS_REGION`). Nodes and policies are the repository's: `i-0123456789abcdef0` is a development
//! node (auto-approved, 60-minute window), and so is the member account's `…/i-0bbbbbbbbbbbbbbb1`;
//! `i-0fedcba9876543210` is a production node (level 1: one of approver-a (DevOps) and approver-b;
//! level 2: two of approver-c, approver-d and carol).
//!
//! Cargo builds a dependency's library but not its binaries for another package's tests: the binary
//! is the one `cargo test --workspace` built beside this test when it is newer than its sources,
//! else it is built here once, with `cargo build -p jit --bin jit` (as `make dev` builds it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use integration_tests::{local_stack, SharedStack};
use serde_json::Value;

const DEV: &str = "i-0123456789abcdef0";
const PROD: &str = "i-0fedcba9876543210";
/// A development node of member account 222233334444, named by its ARN.
const PARTNER_DEV: &str = "arn:aws:ec2:us-east-1:222233334444:instance/i-0bbbbbbbbbbbbbbb1";
/// How long any one condition may take to come true.
const PATIENCE: Duration = Duration::from_secs(60);

/// The `jit` binary: the one cargo built beside this test when it is newer than every source it
/// is built from (`cargo test --workspace` builds it), else built now.
fn jit_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().and_then(Path::parent).map(|dir| dir.join("jit")))
            .filter(|bin| bin.exists());
        if let Some(bin) = beside.filter(|bin| built_after_sources(bin, &root)) {
            return bin;
        }
        let out = Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "--quiet", "-p", "jit", "--bin", "jit", "--message-format=json"])
            .current_dir(&root)
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "cargo build -p jit failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "jit")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reports the jit executable")
    })
}

/// Whether `bin` is newer than every file of the packages `jit` is built from.
fn built_after_sources(bin: &Path, root: &Path) -> bool {
    fn newest(path: &Path) -> Option<std::time::SystemTime> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        std::fs::read_dir(path).ok()?.filter_map(Result::ok).filter_map(|e| newest(&e.path())).max()
    }
    let sources = ["cli/src", "cli/Cargo.toml", "shared/src", "shared/Cargo.toml", "Cargo.toml", "Cargo.lock"];
    let latest = sources.iter().filter_map(|s| newest(&root.join(s))).max();
    match (std::fs::metadata(bin).and_then(|m| m.modified()), latest) {
        (Ok(built), Some(latest)) => built >= latest,
        _ => false,
    }
}

/// A scratch directory with the stack's credentials file, as `make dev` writes `.jit/credentials`.
fn workspace(stack: &SharedStack) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("jit-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let mut text = String::new();
        for p in &stack.provisioned.profiles {
            text.push_str(&format!(
                "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                p.name, p.credentials.access_key_id, p.credentials.secret_access_key
            ));
            if let Some(token) = &p.credentials.session_token {
                text.push_str(&format!("aws_session_token = {token}\n"));
            }
        }
        std::fs::write(dir.join("credentials"), text).unwrap();
        dir
    })
}

/// What a finished `jit` printed and its exit status.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// `jit` as one person in a shell with nothing configured but the environment.
fn jit_as(profile: &str, args: &[&str]) -> Command {
    let stack = local_stack();
    let dir = workspace(stack);
    let mut cmd = Command::new(jit_binary());
    cmd.args(args)
        .current_dir(dir)
        .env("JIT_API_URL", &stack.api_url)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials"))
        .env("AWS_PROFILE", profile)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir.join("home"))
        .env("JIT_CONFIG", dir.join("home/config.json"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_PROFILE")
        .env_remove("AWS_DEFAULT_REGION");
    cmd
}

fn finish(mut cmd: Command) -> Run {
    let out = cmd.output().expect("jit runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn jit(profile: &str, args: &[&str]) -> Run {
    finish(jit_as(profile, args))
}

/// A `jit request --wait` running in the background; its progress lines arrive as it prints them.
struct Waiting {
    child: Child,
    progress: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Waiting {
    fn start(profile: &str, args: &[&str]) -> Self {
        let mut child = jit_as(profile, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("jit runs");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, progress) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, progress, seen: Vec::new() }
    }

    /// The first progress line containing `text`, waiting for it at most `PATIENCE`.
    fn line_with(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.progress.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no progress line with '{text}' within {PATIENCE:?}; saw {:#?}", self.seen);
    }

    /// The request id, from the first progress line (`req-…  Submitted  (0s)`).
    fn request_id(&mut self) -> String {
        let line = self.line_with("req-");
        line.split_whitespace().next().unwrap().to_owned()
    }

    /// Waits (at most `PATIENCE`) for the process to end.
    fn outcome(mut self) -> Run {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("jit request --wait did not end within {PATIENCE:?}; progress {:#?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        self.child.stdout.take().expect("stdout is piped").read_to_string(&mut stdout).unwrap();
        let mut rest: Vec<String> = self.progress.try_iter().collect();
        let mut stderr = std::mem::take(&mut self.seen);
        stderr.append(&mut rest);
        // The reader thread may still hold the last lines: take them until it hangs up.
        while let Ok(line) = self.progress.recv_timeout(Duration::from_secs(5)) {
            stderr.push(line);
        }
        Run { code: status.code().unwrap_or(-1), stdout, stderr: stderr.join("\n") }
    }
}

/// Reads a request as its requester until `done` holds (at most `PATIENCE`).
fn read_until(profile: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let run = jit(profile, &["status", id, "--output", "json"]);
        assert_eq!(run.code, 0, "{run:#?}");
        let request = run.json();
        if done(&request) {
            return request;
        }
        assert!(Instant::now() < deadline, "{id} never reached the expected state: {request:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Submits without waiting; returns the id `jit request` prints.
fn submit(profile: &str, node: &str, reason: &str) -> String {
    let run = jit(profile, &["request", node, "--reason", reason, "--duration", "30"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let id = run.stdout.trim().to_owned();
    assert!(id.starts_with("req-"), "{run:#?}");
    id
}

#[test]
fn an_auto_approved_request_waited_for_ends_approved_with_exit_status_0() {
    let run =
        jit("operator", &["request", DEV, "--reason", "cli: auto", "--duration", "30", "--wait", "--timeout", "1m"]);

    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("Approved"), "{run:#?}");
    assert!(run.stdout.contains("i-0123456789abcdef0 (web-dev)"), "the view names the node: {run:#?}");
    assert!(run.stderr.contains("`jit connect req-"), "the next step is named: {run:#?}");
}

#[test]
fn a_request_without_a_duration_gets_the_deciding_policys_window() {
    let run = jit("operator", &["request", DEV, "--reason", "cli: policy window", "--wait", "--output", "json"]);

    assert_eq!(run.code, 0, "{run:#?}");
    let request = run.json();
    assert_eq!(request["status"], "Approved");
    assert_eq!(request["durationMinutes"], 60, "development-auto-approval's accessWindowMinutes: {request:#}");
}

#[test]
fn a_two_level_request_ends_approved_while_it_waits_for_approvers_using_jit_approve() {
    let mut waiting = Waiting::start(
        "operator",
        &["request", PROD, "--reason", "cli: two levels", "--duration", "60", "--wait", "--timeout", "2m"],
    );
    let id = waiting.request_id();
    waiting.line_with("Pending · level 1 of 2");

    let first = jit("approver-a", &["approve", &id, "--comment", "first line ok"]);
    assert_eq!(
        (first.code, first.stdout.trim()),
        (0, format!("approved {id}: now Pending, level 2 of 2").as_str()),
        "{first:#?}"
    );
    waiting.line_with("level 2 of 2 · approved by approver-a (level 1)");
    let second = jit("approver-c", &["approve", &id]);
    assert_eq!(second.code, 0, "{second:#?}");
    let third = jit("approver-d", &["approve", &id, "--output", "json"]);
    assert_eq!(third.json()["status"], "Approved", "{third:#?}");
    let run = waiting.outcome();

    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("Approved"), "{run:#?}");
    for approver in ["approver-a", "approver-c", "approver-d"] {
        assert!(run.stdout.contains(approver), "the view lists {approver}: {run:#?}");
    }
    assert!(run.stderr.contains("Approved · approved by approver-a (level 1), approver-c (level 2)"), "{run:#?}");

    // An approver of the request ends the access.
    let revoked = jit("approver-b", &["revoke", &id, "--comment", "change window over"]);
    assert_eq!(
        (revoked.code, revoked.stdout.trim()),
        (0, format!("revoked {id}: now Revoked").as_str()),
        "{revoked:#?}"
    );
    let trail = jit("operator", &["audit", &id]);
    assert_eq!(trail.code, 0, "{trail:#?}");
    assert!(trail.stdout.contains("Approved → Revoked") && trail.stdout.contains("approver-b"), "{trail:#?}");
}

#[test]
fn a_rejected_request_ends_the_wait_with_exit_status_3_and_the_comment() {
    let mut waiting = Waiting::start(
        "operator",
        &["request", PROD, "--reason", "cli: reject me", "--duration", "60", "--wait", "--timeout", "2m"],
    );
    let id = waiting.request_id();
    waiting.line_with("Pending");

    let rejected = jit("approver-b", &["reject", &id, "--comment", "use the staging node"]);
    let run = waiting.outcome();

    assert_eq!(rejected.code, 0, "{rejected:#?}");
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(run.stderr.contains("Rejected by approver-b: use the staging node"), "{run:#?}");
}

#[test]
fn the_requester_cancels_a_pending_request() {
    let id = submit("operator", PROD, "cli: cancel me");
    read_until("operator", &id, |r| r["status"] == "Pending");

    let run = jit("operator", &["cancel", &id, "--comment", "not needed"]);

    assert_eq!((run.code, run.stdout.trim()), (0, format!("cancelled {id}: now Cancelled").as_str()), "{run:#?}");
    let again = jit("operator", &["cancel", &id]);
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(again.stderr.contains("(RequestNotPending"), "the API's code is named: {again:#?}");
}

#[test]
fn connect_print_in_attach_mode_prints_the_session_command_without_credentials() {
    let id = submit("operator", DEV, "cli: connect attach");
    read_until("operator", &id, |r| r["status"] == "Approved");

    let run = jit("operator", &["connect", &id, "--print"]);

    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.contains(
            "aws ssm start-session --target i-0123456789abcdef0 --document-name jit-node-access-session --region us-east-1"
        ),
        "{run:#?}"
    );
    assert!(run.stdout.contains("attach mode") && !run.stdout.contains("AWS_ACCESS_KEY_ID"), "{run:#?}");
}

#[test]
fn connect_print_in_credentials_mode_prints_the_command_and_the_credentials_to_export() {
    // carol is an Identity Center user, and the node is in a member account: credentials mode
    // either way. No other test asks for this node as carol, so this request is her newest for it.
    let id = submit("carol", PARTNER_DEV, "cli: connect credentials");
    read_until("carol", &id, |r| r["status"] == "Approved" && r["grantMode"] == "credentials");

    let by_node = jit("carol", &["connect", PARTNER_DEV, "--print"]);
    let without_print = jit("carol", &["connect", &id]);

    assert_eq!(by_node.code, 0, "{by_node:#?}");
    for expected in
        ["export AWS_ACCESS_KEY_ID=", "export AWS_SECRET_ACCESS_KEY=", "export AWS_SESSION_TOKEN=", "secrets"]
    {
        assert!(by_node.stdout.contains(expected), "{expected}: {by_node:#?}");
    }
    assert!(
        by_node.stdout.contains("aws ssm start-session --target i-0bbbbbbbbbbbbbbb1 --document-name "),
        "{by_node:#?}"
    );
    assert!(
        by_node.stdout.contains(&format!("credentials of {id}")),
        "the node's newest Approved request: {by_node:#?}"
    );
    assert_eq!(without_print.code, 0, "{without_print:#?}");
    assert!(without_print.stderr.contains("the local stack has no Session Manager"), "{without_print:#?}");
    assert!(without_print.stdout.contains(&format!("jit credentials {id} --format env")), "{without_print:#?}");
    assert!(!without_print.stdout.contains("AWS_SECRET_ACCESS_KEY="), "no secret without --print: {without_print:#?}");
}

#[test]
fn credentials_print_what_an_aws_credential_process_reads() {
    let id = submit("carol", DEV, "cli: credential process");
    read_until("carol", &id, |r| r["status"] == "Approved");

    let run = jit("carol", &["credentials", &id, "--format", "credential-process"]);

    assert_eq!(run.code, 0, "{run:#?}");
    let process = run.json();
    assert_eq!(process["Version"], 1);
    for key in ["AccessKeyId", "SecretAccessKey", "SessionToken"] {
        assert!(process[key].as_str().is_some_and(|v| !v.is_empty()), "{key}: {process:#}");
    }
    let expiration = process["Expiration"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(expiration).is_ok() && expiration.ends_with('Z'), "{expiration}");
}

#[test]
fn bad_flags_and_malformed_ids_are_usage_errors_naming_them() {
    let bad_node = jit("operator", &["request", "web-1", "--reason", "x"]);
    let bad_flag = jit("operator", &["list", "--bogus"]);
    let bad_id = jit("operator", &["status", "req-123"]);
    let bad_duration = jit("operator", &["request", DEV, "--reason", "x", "--duration", "15d"]);

    for (run, named) in
        [(&bad_node, "web-1"), (&bad_flag, "--bogus"), (&bad_id, "req-123"), (&bad_duration, "--duration")]
    {
        assert_eq!(run.code, 2, "{run:#?}");
        assert!(run.stderr.contains(named), "names {named}: {run:#?}");
    }
    assert!(bad_node.stderr.contains("<NODE>") && bad_node.stderr.contains("EC2 instance id"), "{bad_node:#?}");
}

#[test]
fn an_api_refusal_names_the_field_and_the_code_and_exits_1() {
    let run = jit(
        "operator",
        &["request", "arn:aws:ec2:us-east-1:999999999999:instance/i-0123456789abcdef0", "--reason", "x"],
    );

    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("error: nodeId: ") && run.stderr.contains("(NodeAccountNotMember)"), "{run:#?}");
}

#[test]
fn every_read_prints_valid_json_with_output_json() {
    let id = submit("operator", PROD, "cli: json reads");
    read_until("operator", &id, |r| r["status"] == "Pending");

    let status = jit("operator", &["status", &id, "--output", "json"]);
    let list = jit("operator", &["list", "--status", "Pending", "--output", "json"]);
    let approvals = jit("approver-a", &["approvals", "--output", "json"]);
    let audit = jit("operator", &["audit", &id, "--output", "json"]);
    let decided = jit("approver-b", &["approvals", "--decided", "--output", "json"]);

    assert_eq!(status.json()["requestId"], id.as_str());
    let listed = list.json();
    assert!(listed["items"].as_array().unwrap().iter().any(|r| r["requestId"] == id.as_str()), "{listed:#}");
    let waiting = approvals.json();
    assert!(waiting["items"].as_array().unwrap().iter().any(|r| r["requestId"] == id.as_str()), "{waiting:#}");
    assert_eq!(audit.json()["items"][0]["to"], "Submitted");
    assert!(decided.json()["items"].is_array());
    let table = jit("approver-a", &["approvals"]);
    assert!(table.stdout.starts_with("ID ") && table.stdout.contains(&id), "{table:#?}");
}

#[test]
fn from_a_make_dev_checkout_jit_needs_no_flags() {
    // Arrange: what `make dev` writes, and nothing else in the environment.
    let stack = local_stack();
    let checkout = workspace(stack).join("checkout");
    std::fs::create_dir_all(checkout.join(".jit")).unwrap();
    std::fs::write(
        checkout.join(".jit/dev.env"),
        format!(
            "JIT_API_URL={}\nAWS_SHARED_CREDENTIALS_FILE={}\nAWS_REGION=us-east-1\n",
            stack.api_url,
            workspace(stack).join("credentials").display()
        ),
    )
    .unwrap();
    let mut cmd = jit_as("unused", &["list", "--output", "json"]);
    for var in ["JIT_API_URL", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_REGION"] {
        cmd.env_remove(var);
    }
    cmd.current_dir(&checkout);

    let run = finish(cmd);

    assert_eq!(run.code, 0, "signed as the credentials file's first profile: {run:#?}");
    assert!(run.json()["items"].is_array());
}

#[test]
fn with_nothing_configured_jit_says_how_to_find_the_api() {
    let mut cmd = jit_as("operator", &["list"]);
    cmd.env_remove("JIT_API_URL");

    let run = finish(cmd);

    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("--api-url") && run.stderr.contains("jit configure"), "{run:#?}");
}

#[test]
fn jit_configure_saves_the_api_and_the_profile_for_later_commands() {
    let stack = local_stack();
    let config = workspace(stack).join("configured.json");
    let mut configure = jit_as("unused", &["configure", "--api-url", &stack.api_url, "--region", "us-east-1"]);
    configure.args(["--profile", "approver-a"]).env("JIT_CONFIG", &config);
    let saved = finish(configure);
    let mut later = jit_as("unused", &["approvals", "--output", "json"]);
    for var in ["JIT_API_URL", "AWS_PROFILE", "AWS_REGION"] {
        later.env_remove(var);
    }
    later.env("JIT_CONFIG", &config);

    let run = finish(later);

    assert_eq!(saved.code, 0, "{saved:#?}");
    assert!(saved.stdout.contains("approver-a"), "configure shows what it saved: {saved:#?}");
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.json()["items"].is_array(), "{run:#?}");
}

#[test]
fn completions_are_printed_for_the_whole_command() {
    let run = jit("operator", &["completions", "bash"]);

    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.contains("_jit") && run.stdout.contains("approvals"),
        "{}",
        run.stdout.chars().take(200).collect::<String>()
    );
}

/// `jit slack click …` from the checkout: the repository's policies, whose contacts.yaml gives
/// each seeded person a Slack user (`U0OPERATOR`, `U0APPROVERA`, …, `U0CAROL`).
fn slack_click(args: &[&str]) -> Run {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut cmd = jit_as("unused", &["slack", "click"]);
    cmd.args(args).arg("--policies").arg(policies);
    finish(cmd)
}

#[test]
fn a_slack_click_decides_as_the_person_the_message_went_to_once_and_never_as_the_requester() {
    let id = submit("operator", PROD, "cli: slack");
    read_until("operator", &id, |r| r["status"] == "Pending");

    // Level 2's messages are posted only once level 1 is complete.
    let too_early = slack_click(&[&id, "approve", "--to", "approver-c"]);
    let level_1 = slack_click(&[&id, "approve", "--to", "approver-a", "--comment", "CAB ok", "--wait", "60s"]);
    let by_requester = slack_click(&[&id, "approve", "--to", "approver-c", "--as", "operator", "--wait", "60s"]);
    let level_2 = slack_click(&[&id, "approve", "--to", "U0APPROVERC", "--wait", "60s"]);
    let again = slack_click(&[&id, "approve", "--to", "approver-c"]);
    let request = jit("operator", &["status", &id, "--output", "json"]).json();
    let cancelled = jit("operator", &["cancel", &id]);

    assert_eq!(too_early.code, 1, "{too_early:#?}");
    assert!(too_early.stderr.contains(&format!("no Slack message about {id}")), "{too_early:#?}");
    assert_eq!(level_1.code, 0, "{level_1:#?}");
    assert!(level_1.stdout.contains(&format!("Approved {id} at level 1: the level is complete")), "{level_1:#?}");
    assert_eq!(by_requester.code, 1, "{by_requester:#?}");
    assert!(
        by_requester.stdout.contains("Refused: the requester cannot approve or reject their own request"),
        "{by_requester:#?}"
    );
    assert_eq!(level_2.code, 0, "{level_2:#?}");
    assert!(level_2.stdout.contains(&format!("Approved {id} at level 2: 1 of 2 approvals so far")), "{level_2:#?}");
    assert_eq!(again.code, 1, "{again:#?}");
    assert!(again.stdout.contains("Refused: you already decided"), "{again:#?}");
    assert_eq!(request["status"], "Pending", "{request:#}");
    let entries = request["approval"]["entries"].as_array().unwrap();
    let summary: Vec<(u64, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default();
            (e["level"].as_u64().unwrap_or_default(), field("verdict"), field("channel"), field("actor"))
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "Approve", "Slack", "arn:aws:iam::123456789012:user/approver-a (Slack U0APPROVERA)"),
            (2, "Approve", "Slack", "arn:aws:iam::123456789012:user/approver-c (Slack U0APPROVERC)"),
        ],
        "one entry per click that counted: {request:#}"
    );
    assert_eq!(entries[0]["comment"], "CAB ok");
    assert_eq!(cancelled.code, 0, "{cancelled:#?}");
}

#[test]
fn a_slack_click_is_refused_when_no_message_was_posted_or_the_stack_is_not_local() {
    let unknown = "req-0000000000000000000000000000beef";

    let none = slack_click(&[unknown, "approve"]);
    let mut remote = jit_as("unused", &["slack", "click", unknown, "reject"]);
    remote.env("JIT_API_URL", "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com");
    let remote = finish(remote);

    assert_eq!(none.code, 1, "{none:#?}");
    assert!(none.stderr.contains(&format!("no Slack message about {unknown} was posted")), "{none:#?}");
    assert!(none.stdout.is_empty(), "nothing was clicked: {none:#?}");
    assert_eq!(remote.code, 1, "{remote:#?}");
    assert!(remote.stderr.contains("is not the local stack"), "{remote:#?}");
}

#[test]
fn jit_extend_moves_the_deadline_of_a_granted_request_and_a_scheduled_request_waits_can_be_withdrawn_and_is_granted_at_its_start(
) {
    // Arrange: 30 minutes on the development node, granted (its lifecycle recorded the grant).
    let id = submit("operator", DEV, "cli: extend");
    let granted = read_until("operator", &id, |r| r["grant"]["deadline"].is_string());
    let deadline = chrono::DateTime::parse_from_rfc3339(granted["grant"]["deadline"].as_str().unwrap()).unwrap();

    // Act: 20 minutes more (50 in all, within the 60-minute auto-approval window).
    let run = jit("operator", &["extend", &id, "--duration", "20m", "--reason", "cli: longer", "--wait"]);

    // Assert: the extension is its own request, and the original's deadline moved by 20 minutes.
    assert_eq!(run.code, 0, "{run:#?}");
    let extension = run.stdout.trim().to_owned();
    assert!(extension.starts_with("req-") && extension != id, "{run:#?}");
    let moved = read_until("operator", &id, |r| r["grant"]["extensions"].as_array().is_some_and(|e| !e.is_empty()));
    let new_deadline = chrono::DateTime::parse_from_rfc3339(moved["grant"]["deadline"].as_str().unwrap()).unwrap();
    assert_eq!(new_deadline - deadline, chrono::Duration::minutes(20), "{moved:#}");
    assert_eq!(moved["grant"]["extensions"][0]["requestId"], extension.as_str());
    assert_eq!(moved["status"], "Approved");
    let applied = read_until("operator", &extension, |r| r["status"] != "Approved");
    assert_eq!((applied["status"].as_str(), applied["extends"].as_str()), (Some("Expired"), Some(id.as_str())));

    // Arrange 2: an hour ahead.
    let starts = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let run =
        jit("operator", &["request", DEV, "--reason", "cli: scheduled", "--duration", "30", "--starts-at", &starts]);
    assert_eq!(run.code, 0, "{run:#?}");
    let scheduled = run.stdout.trim().to_owned();

    // Act 2: decided at once, nothing granted before the start; then withdrawn.
    let approved = read_until("operator", &scheduled, |r| r["status"] != "Submitted");
    let cancel = jit("operator", &["cancel", &scheduled, "--comment", "plans changed"]);

    // Assert 2
    assert_eq!(
        (approved["status"].as_str(), approved["startsAt"].is_string()),
        (Some("Approved"), true),
        "{approved:#}"
    );
    assert!(approved["grant"].is_null(), "nothing granted before the start: {approved:#}");
    assert_eq!(cancel.code, 0, "{cancel:#?}");
    assert_eq!(read_until("operator", &scheduled, |_| true)["status"], "Cancelled");
    let early = jit("operator", &["request", DEV, "--reason", "x", "--starts-at", "2020-01-01T00:00:00Z"]);
    assert_ne!(early.code, 0);
    assert!(early.stderr.contains("startsAt"), "the refusal names the field: {early:#?}");

    // Arrange 3: a few seconds ahead (enough for a slow machine to submit before the start).
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(8)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let run = jit("operator", &["request", DEV, "--reason", "cli: soon", "--duration", "30", "--starts-at", &soon]);
    assert_eq!(run.code, 0, "{run:#?}");
    let soon_id = run.stdout.trim().to_owned();

    // Act 3: the local stack's state machine waits for the start, decides it again there
    // (RecheckAtStart: still a development node) and grants it.
    let granted = read_until("operator", &soon_id, |r| {
        !r["grant"].is_null() || !matches!(r["status"].as_str(), Some("Submitted" | "Approved"))
    });

    // Assert 3
    assert_eq!(granted["status"], "Approved", "still permitted at its start: {granted:#}");
    let granted_at = chrono::DateTime::parse_from_rfc3339(granted["grant"]["attachedAt"].as_str().unwrap()).unwrap();
    assert!(granted_at >= chrono::DateTime::parse_from_rfc3339(&soon).unwrap(), "granted at its start: {granted:#}");
}

#[test]
fn jit_breaks_glass_at_once_and_the_administrator_finds_and_acknowledges_it_but_never_the_requester() {
    // Arrange: operator is in OnCall (policies/break-glass.yaml); the development node has no
    // manual policy, so the seed's administrator (security) reviews.
    let run = jit("operator", &["request", DEV, "--reason", "cli: outage INC-9", "--duration", "20", "--break-glass"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let id = run.stdout.trim().to_owned();
    let granted = read_until("operator", &id, |r| r["status"] != "Submitted");

    // Act
    let listed = jit("security", &["approvals", "--review", "--output", "json"]);
    let own = jit("operator", &["review", &id, "--acknowledge"]);
    let done = jit("security", &["review", &id, "--acknowledge", "--comment", "INC-9 was real"]);
    let again = jit("security", &["review", &id, "--flag"]);
    let shown = jit("operator", &["status", &id]);
    let after = jit("security", &["approvals", "--review", "--output", "json"]);

    // Assert
    assert_eq!((granted["status"].as_str(), granted["breakGlass"].as_bool()), (Some("Approved"), Some(true)));
    assert!(granted["review"]["due"].is_string(), "{granted:#}");
    assert_eq!(listed.code, 0, "{listed:#?}");
    let ids = |run: &Run| -> Vec<String> {
        run.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["requestId"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(ids(&listed).contains(&id), "{listed:#?}");
    assert_ne!(own.code, 0, "the requester cannot review: {own:#?}");
    assert_eq!(done.code, 0, "{done:#?}");
    assert!(done.stdout.contains("acknowledged"), "{done:#?}");
    assert_ne!(again.code, 0, "one review: {again:#?}");
    assert!(again.stderr.contains("AlreadyReviewed"), "{again:#?}");
    assert!(shown.stdout.contains("review: acknowledge by"), "{shown:#?}");
    assert!(!ids(&after).contains(&id), "{after:#?}");
}
