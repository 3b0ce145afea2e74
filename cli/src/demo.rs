//! `make demo`: four requests against a running `make dev`, one per decision outcome, then a
//! two-level manual approval taken entirely through the mail links in the local outbox, the
//! credentials walkthroughs, an approval clicked in the message posted to the Slack stand-in, an
//! extension of granted access, and a break-glass grant with its review.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use jit_shared::domain::ids::RequestId;
use serde_json::json;

use crate::client::{read_profile, ApiClient};
use crate::slack::{self, Button, Clicker, SlackPeople};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// The file `make dev` writes once it is ready.
    #[arg(long, default_value = ".jit/dev.env")]
    pub env_file: String,
    /// The policy directory `make dev` loaded (its contacts.yaml names the approvers' Slack users).
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
}

/// (what, profile, node, duration, reason)
const STEPS: [(&str, &str, &str, u32, &str); 4] = [
    ("auto-approved (development node)", "operator", "i-0123456789abcdef0", 30, "Deploy a hotfix to web-dev"),
    (
        "pending manual approval (production node)",
        "operator",
        "i-0fedcba9876543210",
        120,
        "Investigate payment latency, INC-4211",
    ),
    (
        "deny-access policy removes auto-approval, falls to manual",
        "operator",
        "i-00000000000000aa1",
        30,
        "Rotate analytics credentials",
    ),
    ("no applicable policy", "operator", "i-0aaaaaaaaaaaaaaa1", 30, "Poke at the sandbox"),
];

pub fn run_demo(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

async fn demo(args: &DemoArgs) -> Result<(), String> {
    let env = std::fs::read_to_string(&args.env_file)
        .map_err(|e| format!("{}: {e}; start `make dev` first", args.env_file))?;
    let url = env_value(&env, "JIT_API_URL").ok_or("JIT_API_URL missing from dev.env")?;
    let creds_file =
        env_value(&env, "AWS_SHARED_CREDENTIALS_FILE").ok_or("AWS_SHARED_CREDENTIALS_FILE missing from dev.env")?;
    let unsigned = ApiClient::new(&url, None).send("GET", "/requests", None, &[]).await?;
    println!("unsigned GET /requests -> {} {}\n", unsigned.status, unsigned.body["error"]["code"]);
    // The demo's requests still waiting for approvers, withdrawn at the end so that a second run
    // starts clean (each requester may hold only a few live requests).
    let mut waiting: Vec<(String, &str)> = Vec::new();
    for (i, (what, profile, node, minutes, reason)) in STEPS.iter().enumerate() {
        let client = ApiClient::new(&url, Some(read_profile(&creds_file, profile)?));
        let body = json!({ "nodeId": node, "reason": reason, "durationMinutes": minutes });
        let key = format!("demo-{}-{}", i + 1, std::process::id());
        let reply = client.send("POST", "/requests", Some(&body), &[("idempotency-key", key.as_str())]).await?;
        if reply.status != 202 {
            return Err(format!("POST /requests answered {}: {}", reply.status, reply.body));
        }
        let id = reply.body["requestId"].as_str().unwrap_or_default().to_owned();
        let decided = client.wait_decided(&id, Duration::from_secs(20)).await?;
        if decided["status"] == "Pending" {
            waiting.push((id.clone(), profile));
        }
        let d = &decided["decision"];
        println!(
            "{}. {what}\n   {profile} -> {node} for {minutes} min: {}",
            i + 1,
            decided["status"].as_str().unwrap_or("?")
        );
        println!(
            "   rule {}  policies {}  {}",
            d["rule"],
            d["decidingPolicyIds"],
            d["denyPolicyIds"].as_array().map(|a| format!("denied-by {a:?}")).unwrap_or_default()
        );
        println!("   {}\n", d["message"].as_str().unwrap_or_default());
    }
    manual_walkthrough(&url, &creds_file).await?;
    let emulator = env_value(&env, "JIT_EMULATOR_URL").ok_or("JIT_EMULATOR_URL missing from dev.env")?;
    println!("\n6. credentials mode: an IAM Identity Center user (carol) on a development node");
    let web_dev =
        Walk { who: "carol", node: "i-0123456789abcdef0", node_name: "web-dev", reason: "Check the web logs" };
    credentials_walkthrough(&url, &creds_file, &emulator, &web_dev).await?;
    println!("\n7. member account: operator on a development node of account 222233334444, by its ARN");
    let partner = Walk {
        who: "operator",
        node: "arn:aws:ec2:us-east-1:222233334444:instance/i-0bbbbbbbbbbbbbbb1",
        node_name: "partner-dev",
        reason: "Deploy the partner release",
    };
    credentials_walkthrough(&url, &creds_file, &emulator, &partner).await?;
    println!("\n8. Slack: approver-a approves from the message the notifier posted to the local Slack stand-in");
    // Its request is withdrawn with the others below if the clicks did not decide it.
    let slack = slack_walkthrough(&url, &creds_file, &args.policies, &mut waiting).await;
    println!("\n9. extend: operator asks for more time on granted access to the development node");
    // Like the Slack step, it does not keep the clean-up below from running.
    let extended = extend_walkthrough(&url, &creds_file).await;
    if let Err(e) = &extended {
        println!("   the extension step failed: {e}");
    }
    println!("\n10. break-glass: operator (OnCall) takes access at once in an emergency; it is reviewed afterwards");
    // Like the Slack step, it does not keep the clean-up below from running.
    let glass = break_glass_walkthrough(&url, &creds_file).await;
    if let Err(e) = &glass {
        println!("   the break-glass step failed: {e}");
    }
    println!("\n11. the demo withdraws its requests still waiting for approvers");
    for (id, profile) in waiting {
        let client = ApiClient::new(&url, Some(read_profile(&creds_file, profile)?));
        let reply = client.send("POST", &format!("/requests/{id}/cancel"), None, &[]).await?;
        println!("   POST /requests/{id}/cancel -> {} {}", reply.status, reply.body["status"].as_str().unwrap_or("?"));
    }
    slack.and(extended).and(glass)
}

/// Reads a request until `done` holds, at most `patience` (the lifecycle works in the background).
async fn read_until(
    client: &ApiClient,
    id: &str,
    patience: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value, String> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let request = client.send("GET", &format!("/requests/{id}"), None, &[]).await?.body;
        if done(&request) {
            return Ok(request);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{id} did not get there within {patience:?}: {request}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An auto-approved request, granted, then extended within the auto-approval window: the
/// extension is a request of its own, decided for the new total, and once applied by its
/// lifecycle the original's deadline has moved and the extension ended `Expired`.
async fn extend_walkthrough(url: &str, creds_file: &str) -> Result<(), String> {
    println!("   policy development-auto-approval: anyone, up to 60 minutes in all (an extension counts the total)");
    let operator = ApiClient::new(url, Some(read_profile(creds_file, "operator")?));
    let body =
        json!({ "nodeId": "i-0123456789abcdef0", "reason": "Roll out the web-dev hotfix", "durationMinutes": 30 });
    let reply = operator.send("POST", "/requests", Some(&body), &[]).await?;
    let id = reply.body["requestId"]
        .as_str()
        .ok_or_else(|| format!("POST /requests answered {}: {}", reply.status, reply.body))?
        .to_owned();
    let granted = read_until(&operator, &id, Duration::from_secs(20), |r| r["grant"]["deadline"].is_string()).await?;
    let before = granted["grant"]["deadline"].as_str().unwrap_or("?").to_owned();
    println!(
        "   operator -> web-dev for 30 min: {}, granted (grant mode {}), access until {before}",
        granted["status"].as_str().unwrap_or("?"),
        granted["grantMode"].as_str().unwrap_or("?")
    );
    let ask = json!({ "durationMinutes": 20, "reason": "The rollout needs longer" });
    let reply = operator.send("POST", &format!("/requests/{id}/extend"), Some(&ask), &[]).await?;
    let extension = reply.body["requestId"]
        .as_str()
        .ok_or_else(|| format!("POST /requests/{id}/extend answered {}: {}", reply.status, reply.body))?
        .to_owned();
    println!("   POST /requests/{id}/extend {{\"durationMinutes\": 20}} -> {} {extension}", reply.status);
    let decided = operator.wait_decided(&extension, Duration::from_secs(20)).await?;
    println!(
        "   the extension (extends {}): {}, rule {} (50 minutes in all)",
        decided["extends"].as_str().unwrap_or("?"),
        decided["status"].as_str().unwrap_or("?"),
        decided["decision"]["rule"].as_str().unwrap_or("?")
    );
    let ended = read_until(&operator, &extension, Duration::from_secs(20), |r| r["status"] != "Approved").await?;
    let trail = operator.send("GET", &format!("/requests/{extension}/audit"), None, &[]).await?.body;
    let last = trail["items"].as_array().and_then(|items| items.last()).cloned().unwrap_or_default();
    println!(
        "   the extension ended {}: \"{}\"",
        ended["status"].as_str().unwrap_or("?"),
        last["reason"].as_str().unwrap_or("?")
    );
    let moved = operator.send("GET", &format!("/requests/{id}"), None, &[]).await?.body;
    let applied = &moved["grant"]["extensions"][0];
    if applied["requestId"] != extension.as_str() {
        return Err(format!("{id} records no extension {extension}: {moved}"));
    }
    println!(
        "   {id}: still {}, access until {} (was {before}); grant.extensions[0]: {} minutes by {}",
        moved["status"].as_str().unwrap_or("?"),
        moved["grant"]["deadline"].as_str().unwrap_or("?"),
        applied["minutes"],
        applied["requestId"].as_str().unwrap_or("?")
    );
    println!("   (from a shell: jit extend {id} --duration 20m --reason \"…\" --wait)");
    Ok(())
}

/// Asks for break-glass access; returns the request as decided (it is decided at once).
async fn break_glass(client: &ApiClient, node: &str, reason: &str) -> Result<serde_json::Value, String> {
    let body = json!({ "nodeId": node, "reason": reason, "durationMinutes": 30, "breakGlass": true });
    let reply = client.send("POST", "/requests", Some(&body), &[]).await?;
    let id = reply.body["requestId"]
        .as_str()
        .ok_or_else(|| format!("POST /requests answered {}: {}", reply.status, reply.body))?
        .to_owned();
    client.wait_decided(&id, Duration::from_secs(20)).await
}

/// One line for a decided break-glass request: status, rule and why.
fn print_glass(who: &str, node: &str, decided: &serde_json::Value) {
    let d = &decided["decision"];
    println!(
        "   {who} -> {node}, breakGlass: {} {}{}",
        decided["status"].as_str().unwrap_or("?"),
        d["failureCode"].as_str().map(|c| format!("{c}: ")).unwrap_or_default(),
        d["message"].as_str().unwrap_or_default()
    );
}

/// Break-glass on the development node: granted at once (rule BreakGlass, an open review), the
/// mail the security contact got (no manual policy targets development nodes, so there are no
/// approvers to tell), an outsider and the forbidden Partner node refused, the requester's own
/// review refused, and the review taken by an administrator (`security`, the seed's).
async fn break_glass_walkthrough(url: &str, creds_file: &str) -> Result<(), String> {
    println!(
        "   break-glass.yaml: members [IAM group OnCall (operator)], at most 60 minutes, reviewed within 1440 minutes,"
    );
    println!("   security contact security; no manual policy targets development nodes, so an administrator reviews");
    let operator = ApiClient::new(url, Some(read_profile(creds_file, "operator")?));
    let granted = break_glass(&operator, "i-0123456789abcdef0", "web-dev is down and paging, INC-5151").await?;
    print_glass("operator", "web-dev", &granted);
    let id = granted["requestId"].as_str().unwrap_or_default().to_owned();
    if granted["status"] != "Approved" || granted["breakGlass"] != true {
        return Err(format!("the break-glass request was not granted at once: {granted}"));
    }
    println!(
        "   rule {}, breakGlass {}, review {} (open)",
        granted["decision"]["rule"].as_str().unwrap_or("?"),
        granted["breakGlass"],
        granted["review"]
    );
    let mails = glass_mails(url, &id).await?;
    for m in &mails {
        println!(
            "   mail to {}: \"{}\"",
            m["email"].as_str().unwrap_or("?"),
            m["subject"].as_str().unwrap_or_default()
        );
    }
    if let Some(body) = mails.first().and_then(|m| m["body"].as_str()) {
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            println!("     | {line}");
        }
    }

    let outsider = ApiClient::new(url, Some(read_profile(creds_file, "approver-b")?));
    let refused = break_glass(&outsider, "i-0123456789abcdef0", "I just want in").await?;
    print_glass("approver-b (not in OnCall)", "web-dev", &refused);
    let partner = "arn:aws:ec2:us-east-1:222233334444:instance/i-0bbbbbbbbbbbbbbb2";
    let forbidden = break_glass(&operator, partner, "Ledger reconciliation is stuck").await?;
    print_glass("operator", "partner-ledger (Environment=Partner)", &forbidden);
    let codes = (refused["decision"]["failureCode"].as_str(), forbidden["decision"]["failureCode"].as_str());
    if codes != (Some("NotInBreakGlassGroup"), Some("BreakGlassForbidden")) {
        return Err(format!("expected NotInBreakGlassGroup and BreakGlassForbidden, got {codes:?}"));
    }

    let review = json!({ "verdict": "acknowledge", "comment": "Outage INC-5151 confirmed; access was proportionate" });
    let own = operator.send("POST", &format!("/requests/{id}/review"), Some(&review), &[]).await?;
    println!("   operator reviews their own: {} {}", own.status, own.body["error"]["code"].as_str().unwrap_or("?"));
    let security = ApiClient::new(url, Some(read_profile(creds_file, "security")?));
    let reply = security.send("POST", &format!("/requests/{id}/review"), Some(&review), &[]).await?;
    println!("   security (an administrator) acknowledges: POST /requests/{id}/review -> {}", reply.status);
    if reply.status != 200 {
        return Err(format!("the review was refused: {}", reply.body));
    }
    let again = security.send("POST", &format!("/requests/{id}/review"), Some(&review), &[]).await?;
    println!("   and again: {} {}", again.status, again.body["error"]["code"].as_str().unwrap_or("?"));
    let end = operator.send("GET", &format!("/requests/{id}"), None, &[]).await?.body;
    let r = &end["review"];
    println!(
        "   {id}: {}, review {} by {} at {}: \"{}\"",
        end["status"].as_str().unwrap_or("?"),
        r["verdict"].as_str().unwrap_or("?"),
        r["by"].as_str().unwrap_or("?"),
        r["at"].as_str().unwrap_or("?"),
        r["comment"].as_str().unwrap_or_default()
    );
    println!("   (from a shell: jit request i-0123456789abcdef0 --reason \"…\" --break-glass; jit review {id} --acknowledge --comment \"…\")");
    Ok(())
}

/// The BREAK-GLASS mails about `request_id` in the outbox, once the notifier sent at least one.
async fn glass_mails(url: &str, request_id: &str) -> Result<Vec<serde_json::Value>, String> {
    let outbox = ApiClient::new(url, None);
    for _ in 0..100 {
        let mails = outbox.send("GET", "/outbox.json", None, &[]).await?.body;
        let found: Vec<serde_json::Value> = mails
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                m["subject"].as_str().is_some_and(|s| s.starts_with("BREAK-GLASS"))
                    && m["body"].as_str().is_some_and(|b| b.contains(request_id))
            })
            .cloned()
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("no BREAK-GLASS mail about {request_id} reached the outbox"))
}

/// A sensitive-data request, approved by approver-a pressing Approve in the Slack message the
/// notifier sent them: the post recorded by the stand-in, the requester's own Slack user refused,
/// the click (a signed `block_actions` callback, as `jit slack click` sends), a second click
/// refused, and the approval the request records.
async fn slack_walkthrough(
    url: &str,
    creds_file: &str,
    policies: &Path,
    waiting: &mut Vec<(String, &str)>,
) -> Result<(), String> {
    println!("   policy manual/sensitive-data: 1 of [DevOps group (approver-a), approver-b]; contacts.yaml gives them slackUserIds");
    let operator = ApiClient::new(url, Some(read_profile(creds_file, "operator")?));
    let body = json!({ "nodeId": "i-00000000000000aa1", "reason": "Export the quarterly analytics report", "durationMinutes": 30 });
    let reply = operator.send("POST", "/requests", Some(&body), &[]).await?;
    let id = reply.body["requestId"]
        .as_str()
        .ok_or_else(|| format!("POST /requests answered {}: {}", reply.status, reply.body))?
        .to_owned();
    let decided = operator.wait_decided(&id, Duration::from_secs(20)).await?;
    println!("   operator -> analytics-dev: {}", decided["status"].as_str().unwrap_or("?"));
    if decided["status"] == "Pending" {
        waiting.push((id.clone(), "operator"));
    }
    let request_id = RequestId::try_from(id.clone()).map_err(|e| e.message)?;
    let people = SlackPeople::load(policies);
    let approver = people.resolve("approver-a")?;
    let stand_in = ApiClient::new(url, None);
    let name = |u: &jit_shared::domain::slack::SlackUserId| people.describe(u);
    let posted =
        slack::find_posted(&stand_in, &request_id, Some(&approver), None, Duration::from_secs(20), &name).await?;
    println!(
        "   Slack post {} at {url}{}: to {}, \"{}\", with a comment box and Approve / Reject buttons",
        posted.index + 1,
        slack::POSTS_PATH,
        people.describe(&posted.recipient),
        posted.message["text"].as_str().unwrap_or("?")
    );
    // The requester's own Slack user, while the request still waits: their own request.
    if let Ok(own) = people.resolve("operator") {
        let requester = Clicker { user: own.clone(), name: "operator".into() };
        let answer = slack::click(&stand_in, url, &posted, &requester, Button::Approve, None).await?;
        println!("   the requester's own Slack user ({own}) presses Approve: {} \"{}\"", answer.status, answer.text());
    }
    let clicker = Clicker { user: posted.recipient.clone(), name: "approver-a".into() };
    let comment = Some("Report export checked");
    let answer = slack::click(&stand_in, url, &posted, &clicker, Button::Approve, comment).await?;
    println!(
        "   approver-a types a comment and presses Approve (a block_actions callback signed with the local signing secret): {} \"{}\"",
        answer.status,
        answer.text()
    );
    if !answer.decided() {
        return Err(format!("approver-a's click on {id} was not taken: {}", answer.text()));
    }
    waiting.retain(|(w, _)| w != &id);
    let again = slack::click(&stand_in, url, &posted, &clicker, Button::Approve, comment).await?;
    println!("   approver-a presses it again: {} \"{}\"", again.status, again.text());
    let end = operator.send("GET", &format!("/requests/{id}"), None, &[]).await?.body;
    println!("   final status: {}", end["status"].as_str().unwrap_or("?"));
    print_entries(&end);
    println!("   (from a shell: jit slack click {id} approve --to approver-a)");
    Ok(())
}

fn print_entries(request: &serde_json::Value) {
    for e in request["approval"]["entries"].as_array().into_iter().flatten() {
        println!(
            "     level {} {} by {} via {} ({})",
            e["level"],
            e["verdict"].as_str().unwrap_or("?"),
            e["actor"].as_str().unwrap_or("?"),
            e["matched"].as_str().unwrap_or("?"),
            e["channel"].as_str().unwrap_or("?")
        );
    }
}

/// Who asks for which node in a credentials walkthrough.
struct Walk {
    who: &'static str,
    node: &'static str,
    node_name: &'static str,
    reason: &'static str,
}

/// Someone is approved and gets session-role credentials of the node's account: an Identity
/// Center user, whom no policy could be attached to, or anyone on a member account's node.
async fn credentials_walkthrough(url: &str, creds_file: &str, emulator: &str, walk: &Walk) -> Result<(), String> {
    let requester = ApiClient::new(url, Some(read_profile(creds_file, walk.who)?));
    let body = json!({ "nodeId": walk.node, "reason": walk.reason, "durationMinutes": 30 });
    let reply = requester.send("POST", "/requests", Some(&body), &[]).await?;
    let id = reply.body["requestId"]
        .as_str()
        .ok_or_else(|| format!("POST /requests answered {}: {}", reply.status, reply.body))?
        .to_owned();
    let decided = requester.wait_decided(&id, Duration::from_secs(20)).await?;
    println!(
        "   {} -> {}: {} (grant mode {}; decided in account {}, {})",
        walk.who,
        walk.node_name,
        decided["status"].as_str().unwrap_or("?"),
        decided["grantMode"].as_str().unwrap_or("?"),
        decided["decision"]["nodeLocation"]["account"].as_str().unwrap_or("?"),
        decided["decision"]["nodeLocation"]["region"].as_str().unwrap_or("?")
    );
    let creds = requester.send("POST", &format!("/requests/{id}/credentials"), None, &[]).await?;
    if creds.status != 200 {
        return Err(format!("POST /requests/{id}/credentials answered {}: {}", creds.status, creds.body));
    }
    let c = &creds.body;
    println!(
        "   POST /requests/{id}/credentials: {} until {} (access until {})",
        c["accessKeyId"].as_str().unwrap_or("?"),
        c["expiration"].as_str().unwrap_or("?"),
        c["accessDeadline"].as_str().unwrap_or("?")
    );
    let provider = aws_credential_types::Credentials::new(
        c["accessKeyId"].as_str().unwrap_or_default(),
        c["secretAccessKey"].as_str().unwrap_or_default(),
        c["sessionToken"].as_str().map(str::to_owned),
        None,
        "jit-demo",
    );
    let conf = aws_sdk_sts::config::Builder::new()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new(crate::emulator::REGION))
        .endpoint_url(emulator)
        .credentials_provider(provider)
        .build();
    let me = aws_sdk_sts::Client::from_conf(conf)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| format!("sts get-caller-identity with the credentials: {e}"))?;
    println!("   sts get-caller-identity with them: {}", me.arn().unwrap_or("?"));
    let calls = ApiClient::new(url, None).send("GET", "/sts-calls.json", None, &[]).await?.body;
    let sent = calls
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["RoleSessionName"] == id.as_str())
        .ok_or("the AssumeRole call is missing from /sts-calls.json")?;
    println!(
        "   the AssumeRole carried SourceIdentity={} DurationSeconds={} and the session policy:",
        sent["SourceIdentity"].as_str().unwrap_or("?"),
        sent["DurationSeconds"].as_str().unwrap_or("?")
    );
    let policy: serde_json::Value = serde_json::from_str(sent["Policy"].as_str().unwrap_or("{}")).unwrap_or_default();
    for line in serde_json::to_string_pretty(&policy).unwrap_or_default().lines() {
        println!("     {line}");
    }
    Ok(())
}

/// Waits for the outbox to hold a mail to `email` about `request_id`, and returns its link.
async fn mail_link(outbox: &ApiClient, email: &str, request_id: &str, level: u8) -> Result<String, String> {
    let needle = format!("level {level} of");
    for _ in 0..100 {
        let mails = outbox.send("GET", "/outbox.json", None, &[]).await?.body;
        let found = mails.as_array().into_iter().flatten().find(|m| {
            m["email"] == email
                && m["body"].as_str().is_some_and(|b| b.contains(request_id) && b.contains(&needle))
                && m["links"][0].is_string()
        });
        if let Some(m) = found {
            println!("   mail to {email}: \"{}\"", m["subject"].as_str().unwrap_or_default());
            return Ok(m["links"][0].as_str().unwrap_or_default().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("no level-{level} mail reached {email} for {request_id}"))
}

async fn decide_by_link(link: &str, who: &str, comment: &str) -> Result<(), String> {
    let (base, path) = jit_shared::domain::approval_token::split_link(link).ok_or("not a decision link")?;
    let browser = ApiClient::new(base, None);
    let (status, page) = browser.get_text(path).await?;
    println!("   {who} opens the link: {status}, a confirmation page ({} bytes); nothing decided yet", page.len());
    let (status, _) = browser.post_form(path, &[("decision", "approve"), ("comment", comment)]).await?;
    println!("   {who} presses Approve: {status}");
    let (again, _) = browser.post_form(path, &[("decision", "approve")]).await?;
    println!("   {who} presses it again: {again} (a link works once)");
    Ok(())
}

async fn manual_walkthrough(url: &str, creds_file: &str) -> Result<(), String> {
    println!("5. two-level manual approval through the mail links (production node)");
    println!("   policy manual/production: level 1 needs 1 of [DevOps group, approver-b]; level 2 needs 2 of [approver-c, approver-d, carol]");
    let operator = ApiClient::new(url, Some(read_profile(creds_file, "operator")?));
    let body = json!({ "nodeId": "i-0fedcba9876543210", "reason": "Apply the <b>payments</b> DB migration, CHG-88", "durationMinutes": 60 });
    let reply = operator.send("POST", "/requests", Some(&body), &[]).await?;
    let id = reply.body["requestId"]
        .as_str()
        .ok_or_else(|| format!("POST /requests answered {}: {}", reply.status, reply.body))?
        .to_owned();
    let decided = operator.wait_decided(&id, Duration::from_secs(20)).await?;
    println!("   operator -> payments-prod: {}", decided["status"].as_str().unwrap_or("?"));
    let outbox = ApiClient::new(url, None);
    let link = mail_link(&outbox, "approver-a@example.com", &id, 1).await?;
    decide_by_link(&link, "approver-a", "Change approved in CAB").await?;
    for (who, email) in [("approver-c", "approver-c@example.com"), ("carol", "carol@example.com")] {
        let link = mail_link(&outbox, email, &id, 2).await?;
        decide_by_link(&link, who, "ok").await?;
    }
    let end = operator.send("GET", &format!("/requests/{id}"), None, &[]).await?.body;
    println!("   final status: {}", end["status"].as_str().unwrap_or("?"));
    print_entries(&end);
    println!("\n   every mail is on the local outbox page: {url}/outbox");
    Ok(())
}
