//! The local stack (moto on 127.0.0.1, the repository's policies and seed), measured:
//! - the AWS API calls of one auto-approved and one two-level manual lifecycle (submit →
//!   decision → grant → expiry), counted on every client the functions use, the Lambda
//!   invocations, and what 1,000 such requests cost at published prices, next to AWS JITNA;
//! - the same for an auto-approved lifecycle in credentials mode with one credentials fetch (an
//!   Identity Center requester, whom the stack always grants by credentials);
//! - the time from `POST /requests` to the policy being attached in IAM, for auto-approved
//!   requests (median of 50), and the time of a credentials fetch (median of 50).
//!
//! Usage: `bench-lifecycle [repository root]`. Needs the emulator `make venv` installs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jit_bench::{quantile, row};
use jit_cli::client::ApiClient;
use jit_cli::local::executions::RULE_TARGET_SERVICE;
use jit_cli::local::{LocalStack, INVOCATION_SERVICE, MAIL_SERVICE};
use serde_json::json;

const AUTO_NODE: &str = "i-0123456789abcdef0";
const MANUAL_NODE: &str = "i-0fedcba9876543210";
const REQUESTER: &str = "operator";
const E2E_RUNS: usize = 50;

// Published us-east-1 prices (USD), 2026.
const LAMBDA_PER_REQUEST: f64 = 0.20 / 1e6;
const LAMBDA_ARM_PER_GB_S: f64 = 0.000_013_333_4;
/// Assumed per invocation: 128 MB for 100 ms (the functions wait on a few API calls).
const LAMBDA_GB_S_PER_INVOCATION: f64 = 0.128 * 0.1;
const HTTP_API_PER_REQUEST: f64 = 1.00 / 1e6;
const DDB_PER_WRU: f64 = 0.625 / 1e6;
const DDB_PER_RRU: f64 = 0.125 / 1e6;
/// Assumed: a write is a transaction of the request (up to 1 KB) and its audit record, which
/// carries the change for the stream (up to 2 KB): 6 WRU; a read one strongly consistent read up
/// to 4 KB (1 RRU). Lambda's reads of the stream are free.
const WRU_PER_WRITE: f64 = 6.0;
const EVENTBRIDGE_PER_EVENT: f64 = 1.00 / 1e6;
const SFN_PER_TRANSITION: f64 = 25.0 / 1e6;
/// Grant → WasGranted → WaitUntilDeadline → Expire, plus the start.
const SFN_TRANSITIONS_PER_EXECUTION: f64 = 5.0;
/// An SNS publish request (a `PublishBatch` of small mails is one 64 KB chunk).
const SNS_PER_PUBLISH: f64 = 0.50 / 1e6;
/// One email delivery ($2.00 per 100,000).
const SNS_PER_EMAIL: f64 = 2.00 / 1e5;

/// A Lambda invocation the local stack recorded, not an API call of a function.
fn is_invocation(key: &str) -> bool {
    key.strip_prefix(INVOCATION_SERVICE).is_some_and(|rest| rest.starts_with(':'))
}

/// An execution the `Approved` rule started (EventBridge delivers to the state machine).
fn is_rule_execution(key: &str) -> bool {
    key.strip_prefix(RULE_TARGET_SERVICE).is_some_and(|rest| rest.starts_with(':'))
}

/// A mail SNS took (one `PublishBatch` call carries the mails of an event).
fn is_mail(key: &str) -> bool {
    key.strip_prefix(MAIL_SERVICE).is_some_and(|rest| rest.starts_with(':'))
}

/// What AWS services deliver (invocations, rule targets, mails), as opposed to the functions'
/// own calls.
fn is_delivery(key: &str) -> bool {
    is_invocation(key) || is_rule_execution(key) || is_mail(key)
}

fn count(map: &BTreeMap<String, u64>, pred: impl Fn(&str) -> bool) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "sizes and counts are far inside the exact range of f64")]
    map.iter().filter(|(k, _)| pred(k)).map(|(_, v)| *v as f64).sum()
}

/// Dollars for one lifecycle with these calls and invocations.
fn cost(calls: &BTreeMap<String, u64>) -> f64 {
    let invocations = count(calls, is_invocation);
    let http = count(calls, |k| {
        is_invocation(k)
            && (k.ends_with(" submit-request") || k.ends_with(" approve-request") || k.ends_with(" issue-credentials"))
    });
    let ddb_writes = count(calls, |k| {
        k.starts_with("DynamoDB:")
            && ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"]
                .iter()
                .any(|w| k.ends_with(w))
    });
    let ddb_reads = count(calls, |k| k.starts_with("DynamoDB:")) - ddb_writes;
    let events = count(calls, |k| k == "EventBridge:PutEvents");
    let executions = count(calls, is_rule_execution);
    let publishes = count(calls, |k| k == "SNS:PublishBatch");
    let mails = count(calls, is_mail);
    invocations * (LAMBDA_PER_REQUEST + LAMBDA_GB_S_PER_INVOCATION * LAMBDA_ARM_PER_GB_S)
        + http * HTTP_API_PER_REQUEST
        + ddb_writes * WRU_PER_WRITE * DDB_PER_WRU
        + ddb_reads * DDB_PER_RRU
        + events * EVENTBRIDGE_PER_EVENT
        + executions * SFN_TRANSITIONS_PER_EXECUTION * SFN_PER_TRANSITION
        + publishes * SNS_PER_PUBLISH
        + mails * SNS_PER_EMAIL
}

/// AWS JITNA per month: every managed node, every hour, in graduated tiers.
fn jitna_monthly(nodes: u32) -> f64 {
    let tiers = [(100, 10.0), (1_000, 7.5), (10_000, 2.5), (u32::MAX, 1.0)];
    let (mut total, mut below) = (0.0, 0);
    for (upto, price) in tiers {
        let in_tier = nodes.min(upto).saturating_sub(below);
        total += f64::from(in_tier) * price;
        below = upto;
        if nodes <= upto {
            break;
        }
    }
    total
}

fn describe(calls: &BTreeMap<String, u64>) -> String {
    calls.iter().filter(|(k, _)| !is_delivery(k)).map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

struct Bench {
    stack: LocalStack,
    iam: aws_sdk_iam::Client,
    /// Reads the table without being counted (the bench's own polling is not the lifecycle's).
    table: jit_shared::adapters::dynamodb::DynamoStore,
}

/// The Identity Center user of the seed: granted by credentials whatever the stack's mode.
const CREDENTIALS_REQUESTER: &str = "carol";

impl Bench {
    fn client(&self, who: &str) -> Result<ApiClient, String> {
        let p = self.stack.provisioned.profile(who).ok_or_else(|| format!("no seeded principal {who}"))?;
        Ok(ApiClient::new(&self.stack.api_url, Some(p.credentials.clone())))
    }

    async fn submit(&self, node: &str) -> Result<String, String> {
        self.submit_as(REQUESTER, node, 1).await
    }

    async fn submit_as(&self, who: &str, node: &str, minutes: u32) -> Result<String, String> {
        let body = json!({"nodeId": node, "reason": "make bench", "durationMinutes": minutes});
        let reply = self.client(who)?.send("POST", "/requests", Some(&body), &[]).await?;
        if reply.status != 202 {
            return Err(format!("POST /requests answered {}: {}", reply.status, reply.body));
        }
        reply.body["requestId"].as_str().map(str::to_owned).ok_or_else(|| format!("no requestId in {}", reply.body))
    }

    async fn approve(&self, who: &str, id: &str) -> Result<(), String> {
        let reply = self
            .client(who)?
            .send("POST", &format!("/requests/{id}/approve"), Some(&json!({"comment": "make bench"})), &[])
            .await?;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(format!("{who} could not approve {id}: {} {}", reply.status, reply.body))
        }
    }

    async fn policy_attached(&self, id: &str) -> Result<bool, String> {
        match self.iam.get_user_policy().user_name(REQUESTER).policy_name(format!("jit-{id}")).send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().is_some_and(
                    aws_sdk_iam::operation::get_user_policy::GetUserPolicyError::is_no_such_entity_exception,
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(format!("GetUserPolicy: {e}")),
        }
    }

    async fn wait_policy(&self, id: &str, attached: bool, timeout: Duration, every: Duration) -> Result<(), String> {
        let start = Instant::now();
        while self.policy_attached(id).await? != attached {
            if start.elapsed() > timeout {
                return Err(format!(
                    "the grant of {id} was not {} within {timeout:?}",
                    if attached { "attached" } else { "removed" }
                ));
            }
            tokio::time::sleep(every).await;
        }
        Ok(())
    }

    /// Waits for a mail to `email` about `id` whose subject contains `about`.
    async fn wait_mail(&self, email: &str, id: &str, about: &str) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let found =
                self.stack.outbox.lock().map(|list| {
                    list.iter().any(|m| m.email == email && m.body.contains(id) && m.subject.contains(about))
                });
            if found.unwrap_or(false) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("no mail about {id} ({about}) reached {email}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The calls since the last reset, once nothing has been called for 3 s (the last
    /// notification mails and events are asynchronous).
    async fn settled_calls(&self) -> BTreeMap<String, u64> {
        let mut last = self.stack.api_calls.snapshot();
        let mut quiet = 0;
        while quiet < 3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.stack.api_calls.snapshot();
            quiet = if now == last { quiet + 1 } else { 0 };
            last = now;
        }
        self.stack.api_calls.take()
    }

    async fn auto_lifecycle(&self) -> Result<BTreeMap<String, u64>, String> {
        self.stack.api_calls.take();
        let id = self.submit(AUTO_NODE).await?;
        self.wait_policy(&id, true, Duration::from_secs(30), Duration::from_millis(100)).await?;
        self.wait_policy(&id, false, Duration::from_secs(120), Duration::from_millis(500)).await?;
        Ok(self.settled_calls().await)
    }

    /// Waits (reading the table directly) until the request reaches `status`.
    async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Result<(), String> {
        self.wait_for(id, status, timeout, |r| r.status.as_str() == status).await
    }

    /// Waits until the stored request passes `done` (`what` names it in the error).
    async fn wait_for(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&jit_shared::domain::request::AccessRequest) -> bool,
    ) -> Result<(), String> {
        let id = jit_shared::domain::ids::RequestId::try_from(id.to_owned()).map_err(|e| e.to_string())?;
        let start = Instant::now();
        loop {
            let stored = jit_shared::ports::RequestStore::get(&self.table, &id).await.map_err(|e| e.to_string())?;
            if stored.as_ref().is_some_and(&done) {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!("{id} did not become {what} within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One fetch of credentials; its time in milliseconds.
    async fn fetch_credentials(&self, id: &str) -> Result<f64, String> {
        let client = self.client(CREDENTIALS_REQUESTER)?;
        let start = Instant::now();
        let reply = client.send("POST", &format!("/requests/{id}/credentials"), None, &[]).await?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if reply.status != 200 {
            return Err(format!("POST /requests/{id}/credentials answered {}: {}", reply.status, reply.body));
        }
        Ok(ms)
    }

    async fn credentials_lifecycle(&self) -> Result<BTreeMap<String, u64>, String> {
        self.stack.api_calls.take();
        let id = self.submit_as(CREDENTIALS_REQUESTER, AUTO_NODE, 1).await?;
        // The fetch after the Grant task recorded the grant: one racing the other writes the
        // request item second and costs a read and a write more, which would make the count vary.
        self.wait_for(&id, "granted", Duration::from_secs(30), |r| r.grant.is_some()).await?;
        self.fetch_credentials(&id).await?;
        self.wait_status(&id, "Expired", Duration::from_secs(120)).await?;
        Ok(self.settled_calls().await)
    }

    async fn credentials_fetch_times(&self) -> Result<Vec<f64>, String> {
        let id = self.submit_as(CREDENTIALS_REQUESTER, AUTO_NODE, 30).await?;
        self.wait_status(&id, "Approved", Duration::from_secs(30)).await?;
        let mut samples = Vec::new();
        for _ in 0..E2E_RUNS {
            samples.push(self.fetch_credentials(&id).await?);
        }
        samples.sort_by(f64::total_cmp);
        Ok(samples)
    }

    async fn manual_lifecycle(&self) -> Result<BTreeMap<String, u64>, String> {
        self.stack.api_calls.take();
        let id = self.submit(MANUAL_NODE).await?;
        self.wait_mail("approver-a@example.com", &id, "level 1 of 2").await?;
        self.approve("approver-a", &id).await?;
        self.wait_mail("approver-c@example.com", &id, "level 2 of 2").await?;
        self.approve("approver-c", &id).await?;
        self.approve("approver-d", &id).await?;
        self.wait_policy(&id, true, Duration::from_secs(30), Duration::from_millis(100)).await?;
        self.wait_policy(&id, false, Duration::from_secs(120), Duration::from_millis(500)).await?;
        Ok(self.settled_calls().await)
    }

    async fn end_to_end(&self) -> Result<Vec<f64>, String> {
        let mut samples = Vec::new();
        for _ in 0..E2E_RUNS {
            let start = Instant::now();
            let id = self.submit(AUTO_NODE).await?;
            self.wait_policy(&id, true, Duration::from_secs(30), Duration::from_millis(5)).await?;
            samples.push(start.elapsed().as_secs_f64() * 1000.0);
            // Off the clock: keep the requester's 2,048-character inline-policy budget free.
            self.iam
                .delete_user_policy()
                .user_name(REQUESTER)
                .policy_name(format!("jit-{id}"))
                .send()
                .await
                .map_err(|e| format!("DeleteUserPolicy: {e}"))?;
        }
        samples.sort_by(f64::total_cmp);
        Ok(samples)
    }
}

async fn run(root: PathBuf) -> Result<(), String> {
    let policies = jit_shared::policy::PolicySet::load_dir(&root.join("policies")).map_err(|e| e.to_string())?;
    let seed_text =
        std::fs::read_to_string(root.join("local/seed.yaml")).map_err(|e| format!("reading local/seed.yaml: {e}"))?;
    let seed = jit_cli::local::seed::parse("local/seed.yaml", &seed_text)?;
    let emulator = jit_cli::emulator::Emulator::start()?;
    let sdk = emulator.sdk_config().await;
    let stack = jit_cli::local::start(jit_cli::local::StartOptions {
        sdk: &sdk,
        policies,
        seed,
        prefix: "jit-bench".into(),
        port: 0,
        print_events: false,
        pending_timeout_minutes: 60,
        // The bench asks as one user many times over.
        max_active_requests: 100,
        sweeper: false,
        grant_mode: jit_shared::domain::grant::GrantMode::Attach,
    })
    .await?;
    let table =
        jit_shared::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &stack.provisioned.table);
    let bench = Bench { iam: aws_sdk_iam::Client::new(&sdk), stack, table };
    let command = "target/release/bench-lifecycle";

    let auto = bench.auto_lifecycle().await?;
    let manual = bench.manual_lifecycle().await?;
    let credentials = bench.credentials_lifecycle().await?;
    for (what, calls, goal) in [
        ("auto-approved", &auto, "≤ 12"),
        ("two-level manual", &manual, ""),
        ("credentials-mode auto-approved, one credentials fetch,", &credentials, "≤ 12"),
    ] {
        let api = count(calls, |k| !is_delivery(k));
        let invocations = count(calls, is_invocation);
        let executions = count(calls, is_rule_execution);
        let publisher = count(calls, |k| is_invocation(k) && k.ends_with(" publish-events"));
        row(
            &format!("AWS API calls, {what} lifecycle (submit → grant → expiry)"),
            &format!("{api} ({})", describe(calls)),
            goal,
            command,
        );
        row(
            &format!("Lambda invocations, {what} lifecycle"),
            &format!("{invocations} ({publisher} of them publish-events, which the table's stream invokes)"),
            "",
            command,
        );
        row(
            &format!("Cost per 1,000 {what} requests"),
            &format!(
                "${:.3} ({invocations} Lambda invocations and {executions} Step Functions execution each; prices and assumptions in docs/performance.md)",
                cost(calls) * 1000.0
            ),
            "",
            command,
        );
    }
    for nodes in [100, 1_000, 10_000] {
        row(
            &format!("AWS JITNA, {nodes} nodes"),
            &format!("${:.0} per month, requests or not", jitna_monthly(nodes)),
            "",
            command,
        );
    }

    let samples = bench.end_to_end().await?;
    row(
        &format!("End to end, POST /requests → Approved with the policy in IAM, auto-approved (median of {E2E_RUNS})"),
        &format!(
            "median {:.0} ms, p90 {:.0} ms",
            quantile(&samples, 0.5).unwrap_or_default(),
            quantile(&samples, 0.9).unwrap_or_default()
        ),
        "",
        command,
    );
    let fetches = bench.credentials_fetch_times().await?;
    row(
        &format!("Credentials fetch, POST /requests/{{id}}/credentials through the local stack (median of {E2E_RUNS})"),
        &format!(
            "median {:.0} ms, p90 {:.0} ms",
            quantile(&fetches, 0.5).unwrap_or_default(),
            quantile(&fetches, 0.9).unwrap_or_default()
        ),
        "",
        command,
    );
    drop(bench);
    drop(emulator);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let root =
        std::env::args().nth(1).map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."), PathBuf::from);
    run(root).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitna_bills_nodes_in_graduated_tiers() {
        assert!((jitna_monthly(100) - 1_000.0).abs() < 1e-9);
        assert!((jitna_monthly(1_000) - 7_750.0).abs() < 1e-9);
        assert!((jitna_monthly(10_000) - 30_250.0).abs() < 1e-9);
        assert!((jitna_monthly(10_001) - 30_251.0).abs() < 1e-9);
    }

    #[test]
    fn a_lifecycle_costs_its_invocations_writes_events_executions_and_mails() {
        let calls = BTreeMap::from([
            ("Lambda:Invoke submit-request".to_owned(), 1),
            ("DynamoDB:TransactWriteItems".to_owned(), 1),
            ("DynamoDB:GetItem".to_owned(), 1),
            ("EventBridge target:StartExecution".to_owned(), 1),
            ("SNS:PublishBatch".to_owned(), 1),
            (format!("{MAIL_SERVICE}:sent"), 2),
            ("IAM:PutUserPolicy".to_owned(), 1),
        ]);
        let expected = LAMBDA_PER_REQUEST
            + LAMBDA_GB_S_PER_INVOCATION * LAMBDA_ARM_PER_GB_S
            + HTTP_API_PER_REQUEST
            + 6.0 * DDB_PER_WRU
            + DDB_PER_RRU
            + 5.0 * SFN_PER_TRANSITION
            + SNS_PER_PUBLISH
            + 2.0 * SNS_PER_EMAIL;
        assert!((cost(&calls) - expected).abs() < 1e-12, "{} vs {expected}", cost(&calls));
        assert!(!describe(&calls).contains("StartExecution"), "the rule's execution start is a delivery, not a call");
        assert!(!describe(&calls).contains(MAIL_SERVICE), "a mail is what a call carries, not a call");
    }
}
