//! One harness for every integration test: the moto emulator on a random loopback port,
//! started once per test binary and stopped with it. If it cannot start, tests fail loudly.
#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "the harness stops a test loudly when the emulator or stack cannot start"
)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use jit_cli::emulator::Emulator;

pub mod moto_sfn;

static EMULATOR: OnceLock<Result<Emulator, String>> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn emulator() -> &'static Emulator {
    match EMULATOR.get_or_init(Emulator::start) {
        Ok(e) => e,
        Err(message) => panic!("the AWS emulator could not start, so integration tests cannot run: {message}"),
    }
}

pub async fn sdk() -> aws_config::SdkConfig {
    let e = emulator();
    assert!(e.endpoint.starts_with("http://127.0.0.1:"), "tests only talk to loopback");
    e.sdk_config().await
}

/// A name no other test in this binary uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The local stack (the repository's policies and seed) shared by the tests of one binary: IAM
/// names are account-wide, so one stack per emulator. It runs on its own runtime thread.
pub struct SharedStack {
    pub api_url: String,
    pub provisioned: jit_cli::local::provision::Provisioned,
    pub outbox: std::sync::Arc<std::sync::Mutex<Vec<jit_cli::local::OutboxMessage>>>,
    /// What the stack's STS calls carried (the credentials function's `AssumeRole`s).
    pub sts_requests: jit_shared::adapters::api_calls::SentRequests,
}

static STACK: OnceLock<SharedStack> = OnceLock::new();

pub fn local_stack() -> &'static SharedStack {
    STACK.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Runtime::new() else { return };
            rt.block_on(async move {
                let sdk = sdk().await;
                let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
                let policies =
                    jit_shared::policy::PolicySet::load_dir(&root.join("policies")).map_err(|e| e.to_string());
                let seed_text = std::fs::read_to_string(root.join("local/seed.yaml")).map_err(|e| e.to_string());
                let started = match (policies, seed_text) {
                    (Ok(policies), Ok(text)) => match jit_cli::local::seed::parse("local/seed.yaml", &text) {
                        Ok(seed) => {
                            jit_cli::local::start(jit_cli::local::StartOptions {
                                sdk: &sdk,
                                policies,
                                seed,
                                prefix: unique("stack"),
                                port: 0,
                                print_events: false,
                                pending_timeout_minutes: 60,
                                // One stack serves every test of a binary, mostly as the same
                                // few users: the per-requester limit has its own test.
                                max_active_requests: 100,
                                sweeper: true,
                                grant_mode: jit_shared::domain::grant::GrantMode::Attach,
                            })
                            .await
                        }
                        Err(e) => Err(e),
                    },
                    (Err(e), _) | (_, Err(e)) => Err(e),
                };
                match started {
                    Ok(running) => {
                        let _ = tx.send(Ok(SharedStack {
                            api_url: running.api_url.clone(),
                            provisioned: running.provisioned.clone(),
                            outbox: running.outbox.clone(),
                            sts_requests: running.sts_requests.clone(),
                        }));
                        std::future::pending::<()>().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        });
        match rx.recv() {
            Ok(Ok(stack)) => stack,
            Ok(Err(e)) => panic!("the local stack did not start: {e}"),
            Err(_) => panic!("the local stack thread died while starting"),
        }
    })
}

/// A signed client for one of the seeded principals.
pub fn client(stack: &SharedStack, profile: &str) -> jit_cli::client::ApiClient {
    match stack.provisioned.profile(profile) {
        Some(p) => jit_cli::client::ApiClient::new(&stack.api_url, Some(p.credentials.clone())),
        None => panic!("no seeded principal {profile}"),
    }
}

/// Submits a request and waits until it is decided; returns the decided request.
pub async fn submit_with_reason(
    c: &jit_cli::client::ApiClient,
    node: &str,
    minutes: u32,
    reason: &str,
) -> serde_json::Value {
    let body = serde_json::json!({"nodeId": node, "reason": reason, "durationMinutes": minutes});
    let reply = match c.send("POST", "/requests", Some(&body), &[]).await {
        Ok(r) => r,
        Err(e) => panic!("POST /requests: {e}"),
    };
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["status"], "Submitted");
    let id = reply.body["requestId"].as_str().unwrap_or_default().to_owned();
    match c.wait_decided(&id, std::time::Duration::from_secs(20)).await {
        Ok(v) => v,
        Err(e) => panic!("waiting for {id}: {e}"),
    }
}

/// The EventBridge envelope a rule target receives for this event.
pub fn envelope_of(event: jit_shared::domain::events::StatusEvent) -> jit_shared::domain::events::EventEnvelope {
    jit_shared::domain::events::EventEnvelope {
        version: "0".into(),
        id: "test".into(),
        detail_type: event.detail_type(),
        source: jit_shared::domain::events::EVENT_SOURCE.into(),
        account: "123456789012".into(),
        time: None,
        region: "us-east-1".into(),
        resources: vec![],
        detail: event,
    }
}

/// The emulated stack's own account and Region.
pub fn home() -> jit_shared::domain::ids::NodeLocation {
    jit_shared::domain::ids::NodeLocation {
        partition: "aws".into(),
        account: jit_cli::emulator::ACCOUNT_ID.into(),
        region: jit_cli::emulator::REGION.into(),
    }
}

/// Grant settings of a stack in the emulator's account, granting in `mode` through
/// `session_role`, with no member accounts.
pub fn grant_settings(
    mode: jit_shared::domain::grant::GrantMode,
    session_role: &str,
) -> jit_shared::domain::grant::GrantSettings {
    jit_shared::domain::grant::GrantSettings {
        partition: "aws".into(),
        region: jit_cli::emulator::REGION.into(),
        account: jit_cli::emulator::ACCOUNT_ID.into(),
        session_documents: vec![jit_shared::domain::grant::DEFAULT_SESSION_DOCUMENT.into()],
        mode,
        session_role_name: session_role.into(),
        member_accounts: vec![],
    }
}

/// The IAM granter the deployed functions build, for the emulator's account (member accounts'
/// session roles through their teardown role).
pub fn granter(sdk: &aws_config::SdkConfig) -> jit_shared::adapters::grants::IamGranter {
    use jit_shared::adapters::accounts::{AccountClients, TEARDOWN_ROLE};
    let members = AccountClients::new(sdk, home(), TEARDOWN_ROLE, aws_sdk_iam::Client::new);
    jit_shared::adapters::grants::IamGranter::new(aws_sdk_iam::Client::new(sdk), home(), members)
}

/// The local stack's approval seal (its KMS HMAC key in the emulator), for tests that decide
/// through the use cases directly: the stack's lifecycle then trusts their approvals.
pub fn stack_seal(stack: &SharedStack, sdk: &aws_config::SdkConfig) -> jit_shared::adapters::kms::KmsSeal {
    jit_shared::adapters::kms::KmsSeal::new(aws_sdk_kms::Client::new(sdk), &stack.provisioned.approval_key_id)
}
