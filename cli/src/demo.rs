//! `make demo`: four requests against a running `make dev`, one per decision outcome.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use crate::client::{read_profile, ApiClient};

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// The file `make dev` writes once it is ready.
    #[arg(long, default_value = ".jit/dev.env")]
    pub env_file: String,
}

/// (what, profile, node, duration, reason)
const STEPS: [(&str, &str, &str, u32, &str); 4] = [
    ("auto-approved (development node)", "operator", "i-0123456789abcdef0", 30, "Deploy a hotfix to web-dev"),
    ("pending manual approval (production node)", "operator", "i-0fedcba9876543210", 120, "Investigate payment latency, INC-4211"),
    ("deny-access policy removes auto-approval, falls to manual", "operator", "i-00000000000000aa1", 30, "Rotate analytics credentials"),
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
    let env = std::fs::read_to_string(&args.env_file).map_err(|e| format!("{}: {e}; start `make dev` first", args.env_file))?;
    let url = env_value(&env, "JIT_API_URL").ok_or("JIT_API_URL missing from dev.env")?;
    let creds_file = env_value(&env, "AWS_SHARED_CREDENTIALS_FILE").ok_or("AWS_SHARED_CREDENTIALS_FILE missing from dev.env")?;
    let unsigned = ApiClient::new(&url, None).send("GET", "/requests", None, &[]).await?;
    println!("unsigned GET /requests -> {} {}\n", unsigned.status, unsigned.body["error"]["code"]);
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
        let d = &decided["decision"];
        println!("{}. {what}\n   {profile} -> {node} for {minutes} min: {}", i + 1, decided["status"].as_str().unwrap_or("?"));
        println!(
            "   rule {}  policies {}  {}",
            d["rule"],
            d["decidingPolicyIds"],
            d["denyPolicyIds"].as_array().map(|a| format!("denied-by {a:?}")).unwrap_or_default()
        );
        println!("   {}\n", d["message"].as_str().unwrap_or_default());
    }
    Ok(())
}
