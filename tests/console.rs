//! `jit console` end to end: two consoles (the requester `operator`, the approver `approver-a`)
//! serve the shared local stack, and headless Chromium drives them through Selenium
//! (`tests/python/console_test.py`): a request submitted in the form, approved with a comment in the
//! other console, then `Approved` with its timeline on the requester's page. The screenshots in
//! docs/images/console-*.png are this test's. A second test extends a granted request from its
//! page (`tests/python/console_extend_test.py`), and another breaks glass in the requester's
//! console and flags it in the approver's (`tests/python/console_break_glass_test.py`). The last
//! checks the console's own defences with raw HTTP: the per-run key and cookie, Host and Origin
//! checks, the form token, the headers.
//!
//! Chromium and chromedriver come from Debian (`make browser`), Selenium from the venv
//! (`make selenium`); when they are missing the test fails, saying so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test (or bench) stops loudly on a broken expectation"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use integration_tests::{client, local_stack, submit_with_reason, SharedStack};
use jit_cli::console::{self, ConsoleConfig, RunningConsole};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// `analytics-dev`: tagged DataClass=Sensitive, so a deny-access policy sends it to manual
/// approval by one DevOps approver (approver-a).
const SENSITIVE_NODE: &str = "i-00000000000000aa1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn console_for(stack: &SharedStack, profile: &str) -> RunningConsole {
    let credentials = &stack.provisioned.profile(profile).expect("a seeded profile").credentials;
    let api = console::api_with(&stack.api_url, jit_cli::emulator::REGION, credentials).unwrap();
    console::serve(ConsoleConfig { api, profile: profile.into(), document_name: None, port: 0 }).await.unwrap()
}

/// The venv's Python, next to the moto_server the harness runs (JIT_MOTO_SERVER).
fn venv_python() -> PathBuf {
    let moto = jit_cli::emulator::moto_server_path();
    let python = moto.parent().map(|bin| bin.join("python")).unwrap_or_default();
    assert!(python.exists(), "no Python next to {}: run `make venv selenium`", moto.display());
    python
}

/// Runs one of the Selenium scripts in tests/python with the venv's Python against headless
/// Chromium (at most 100 s); fails the test, with its output, unless it passes. Its stdout.
async fn browser_script(python: &Path, script: &str, args: &[&str], more: &[&str]) -> String {
    let run = tokio::process::Command::new(python)
        .arg(repo().join("tests/python").join(script))
        .args(args)
        .args(more)
        .args(["--chromium", CHROMIUM, "--chromedriver", CHROMEDRIVER])
        .env("SE_AVOID_STATS", "true")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(100), run)
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 100 s"))
        .expect("the venv's python could not run");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "{script} failed ({}); `make selenium` installs Selenium in the venv\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_made_in_the_console_is_approved_in_another_console() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: `make browser` installs Debian's chromium and chromium-driver (the console test needs them)"
        );
    }
    let python = venv_python();
    let stack = tokio::task::spawn_blocking(local_stack).await.unwrap();
    // Some history for the list page: an auto-approved request and one that no policy covers.
    let operator = client(stack, "operator");
    let web_dev = submit_with_reason(&operator, "i-0123456789abcdef0", 30, "Read the web-dev deploy logs").await;
    assert_eq!(web_dev["status"], "Approved", "{web_dev}");
    let sandbox = submit_with_reason(&operator, "i-0aaaaaaaaaaaaaaa1", 30, "Try the new sandbox image").await;
    assert_eq!(sandbox["status"], "Failed", "{sandbox}");
    let requester = console_for(stack, "operator").await;
    let approver = console_for(stack, "approver-a").await;
    let screenshots = repo().join("docs/images");
    let started = Instant::now();
    let shots = screenshots.to_string_lossy().into_owned();
    let stdout = browser_script(
        &python,
        "console_test.py",
        &["--requester-url", &requester.url, "--approver-url", &approver.url, "--node", SENSITIVE_NODE],
        &["--screenshots", &shots],
    )
    .await;
    println!("browser test took {:?}", started.elapsed());

    // What the browser showed is what the API holds.
    let id = stdout.lines().find_map(|l| l.strip_prefix("request: ")).expect("the script names its request").trim();
    let api = operator;
    let request = api.send("GET", &format!("/requests/{id}"), None, &[]).await.unwrap().body;
    assert_eq!(request["status"], "Approved", "{request}");
    assert_eq!(request["nodeId"], SENSITIVE_NODE);
    let entries = request["approval"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{request}");
    assert_eq!(entries[0]["approver"], "iam-user#approver-a");
    assert_eq!(entries[0]["comment"], "OK for the change window");
    assert_eq!(entries[0]["channel"], "Api", "decided through the approver's console, signed as approver-a");
    let audit = api.send("GET", &format!("/requests/{id}/audit"), None, &[]).await.unwrap().body;
    let statuses: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|i| i["to"].as_str()).collect();
    assert_eq!(&statuses[..3], ["Submitted", "Pending", "Approved"], "{audit}");
    for name in ["new-request", "pending", "approvals", "request", "requests"] {
        let png = screenshots.join(format!("console-{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_default();
        assert!(bytes.starts_with(b"\x89PNG"), "{} was not written", png.display());
    }
}

/// Reads the request until `done` holds (the lifecycle runs in the background).
async fn read_until(
    api: &jit_cli::client::ApiClient,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = api.send("GET", &format!("/requests/{id}"), None, &[]).await.unwrap().body;
        if done(&request) {
            return request;
        }
        assert!(Instant::now() < deadline, "{id} never reached the expected state: {request:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn time_of(value: &serde_json::Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap_or_default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_request_is_extended_from_its_page_in_the_browser() {
    // Arrange: 30 minutes on the development node (60-minute auto-approval window), granted.
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(Path::new(tool).exists(), "{tool} is missing: `make browser` installs it");
    }
    let python = venv_python();
    let stack = tokio::task::spawn_blocking(local_stack).await.unwrap();
    let operator = client(stack, "operator");
    let original = submit_with_reason(&operator, "i-0123456789abcdef0", 30, "Roll out the web-dev hotfix").await;
    assert_eq!(original["status"], "Approved", "{original}");
    let id = original["requestId"].as_str().unwrap().to_owned();
    let granted = read_until(&operator, &id, |r| r["grant"]["deadline"].is_string()).await;
    let deadline = time_of(&granted["grant"]["deadline"]);
    let requester = console_for(stack, "operator").await;

    // Act: the Extend form, 20 minutes more (50 in all, within the window), in headless Chromium.
    let stdout = browser_script(
        &python,
        "console_extend_test.py",
        &["--requester-url", &requester.url, "--request", &id, "--minutes", "20"],
        &[],
    )
    .await;

    // Assert: what the browser showed is what the API holds: the deadline moved by 20 minutes,
    // the extension applied and ended.
    let named = |prefix: &str| stdout.lines().find_map(|l| l.strip_prefix(prefix)).map(|v| v.trim().to_owned());
    let extension = named("extension: ").expect("the script names the extension");
    let shown_deadline = named("deadline: ").expect("the script names the new deadline");
    let extended = operator.send("GET", &format!("/requests/{id}"), None, &[]).await.unwrap().body;
    assert_eq!(extended["status"], "Approved", "{extended:#}");
    let moved = time_of(&extended["grant"]["deadline"]);
    assert_eq!(moved - deadline, chrono::Duration::minutes(20), "{extended:#}");
    // The page shows times to the second.
    assert_eq!(time_of(&serde_json::json!(shown_deadline)).timestamp(), moved.timestamp(), "the page's deadline");
    let applied = &extended["grant"]["extensions"][0];
    assert_eq!((applied["requestId"].as_str(), applied["minutes"].as_u64()), (Some(extension.as_str()), Some(20)));
    let ended = operator.send("GET", &format!("/requests/{extension}"), None, &[]).await.unwrap().body;
    assert_eq!(
        (ended["status"].as_str(), ended["extends"].as_str()),
        (Some("Expired"), Some(id.as_str())),
        "{ended:#}"
    );
    assert_eq!(ended["reason"], "The hotfix rollout needs longer (CHG-1043)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_glass_made_in_the_console_is_flagged_by_an_approver_in_the_browser() {
    // Arrange: operator is in OnCall (break-glass.yaml); analytics-dev's plan (sensitive-data)
    // names the DevOps group, so approver-a reviews.
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(Path::new(tool).exists(), "{tool} is missing: `make browser` installs it");
    }
    let python = venv_python();
    let stack = tokio::task::spawn_blocking(local_stack).await.unwrap();
    let requester = console_for(stack, "operator").await;
    let approver = console_for(stack, "approver-a").await;

    // Act: break glass in one browser, review it in another.
    let images = repo().join("docs/images").to_string_lossy().into_owned();
    let stdout = browser_script(
        &python,
        "console_break_glass_test.py",
        &["--requester-url", &requester.url, "--approver-url", &approver.url, "--node", SENSITIVE_NODE],
        &["--screenshots", &images],
    )
    .await;

    // Assert: what the browsers showed is what the API holds: granted at once as break-glass,
    // flagged once by approver-a with the comment typed, the acknowledgement after it refused.
    let id = stdout.lines().find_map(|l| l.strip_prefix("request: ")).expect("the script names its request").trim();
    let request = client(stack, "operator").send("GET", &format!("/requests/{id}"), None, &[]).await.unwrap().body;
    assert_eq!(
        (request["status"].as_str(), request["breakGlass"].as_bool(), request["decision"]["rule"].as_str()),
        (Some("Approved"), Some(true), Some("BreakGlass")),
        "{request:#}"
    );
    assert_eq!(request["nodeId"], SENSITIVE_NODE);
    let review = &request["review"];
    assert_eq!(review["verdict"], "flag", "{request:#}");
    assert_eq!(review["by"], "arn:aws:iam::123456789012:user/approver-a");
    assert_eq!(review["comment"], "No incident was open at that time");
    let png = repo().join("docs/images/console-break-glass.png");
    assert!(std::fs::read(&png).unwrap_or_default().starts_with(b"\x89PNG"), "{} was not written", png.display());
}

struct Raw {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

async fn raw(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = http.request(request.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Raw { status, headers, body }
}

#[tokio::test]
async fn the_console_answers_only_the_browser_that_opened_its_link() {
    // No API behind it: nothing here may reach one.
    let credentials = jit_cli::sigv4::ProfileCredentials {
        access_key_id: "AKIAEXAMPLE".into(),
        secret_access_key: "secret".into(),
        session_token: None,
    };
    let api = console::api_with("http://127.0.0.1:9", "us-east-1", &credentials).unwrap();
    let running =
        console::serve(ConsoleConfig { api, profile: "operator".into(), document_name: None, port: 0 }).await.unwrap();
    assert!(running.addr.ip().is_loopback(), "bound to 127.0.0.1 only");
    let base = format!("http://{}", running.addr);
    let key = running.url.split_once("?t=").map(|(_, k)| k.to_owned()).unwrap();
    assert_eq!(key.len(), 64);

    // Opening the printed link sets the key as an HttpOnly, SameSite=Strict cookie.
    let opened = raw("GET", &running.url, &[], "").await;
    assert_eq!(opened.status, 200);
    let cookie = opened.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"), "{cookie}");
    let cookie_pair = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(cookie_pair, format!("jit_console_{}={key}", running.addr.port()));
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(opened.headers[name], value, "{name}");
    }
    let csp = opened.headers["content-security-policy"].to_str().unwrap();
    for directive in ["default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"] {
        assert!(csp.contains(directive), "{csp}");
    }

    // Without the cookie, or with another key, nothing is shown.
    assert_eq!(raw("GET", &format!("{base}/"), &[], "").await.status, 403);
    assert_eq!(raw("GET", &format!("{base}/approvals"), &[("cookie", "jit_console_1=x")], "").await.status, 403);
    assert_eq!(raw("GET", &format!("{base}/?t={}", "0".repeat(64)), &[], "").await.status, 403);
    let other_port = format!("jit_console_{}={key}", running.addr.port() + 1);
    assert_eq!(raw("GET", &format!("{base}/approvals"), &[("cookie", &other_port)], "").await.status, 403);

    // DNS rebinding: another name for 127.0.0.1 is refused, even with the key.
    let rebound = raw("GET", &running.url, &[("host", &format!("attacker.example:{}", running.addr.port()))], "").await;
    assert_eq!(rebound.status, 421);
    assert!(!rebound.headers.contains_key("set-cookie"));

    // Forms: only from the console's own origin, and only with the form token.
    let form = "nodeId=i-0123456789abcdef0&reason=x&csrf=wrong";
    let cookie_header = ("cookie", cookie_pair.as_str());
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    for origin in [None, Some("http://127.0.0.1:1"), Some("http://attacker.example"), Some("null")] {
        let mut headers = vec![cookie_header, form_type];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let refused = raw("POST", &format!("{base}/requests"), &headers, form).await;
        assert_eq!(refused.status, 403, "origin {origin:?}: {}", refused.body);
    }
    let own_origin = format!("http://127.0.0.1:{}", running.addr.port());
    let own_origin = own_origin.as_str();
    let same_site = [cookie_header, form_type, ("origin", own_origin), ("sec-fetch-site", "same-site")];
    assert_eq!(raw("POST", &format!("{base}/requests"), &same_site, form).await.status, 403);
    let no_token =
        raw("POST", &format!("{base}/requests"), &[cookie_header, form_type, ("origin", own_origin)], form).await;
    assert_eq!(no_token.status, 403);
    assert!(no_token.body.contains("token"), "{}", no_token.body);
    // The extend form is held to the same checks.
    let extend = format!("{base}/requests/req-0123456789abcdef0123456789abcdef/extend");
    let extend_form = "durationMinutes=10&reason=x&csrf=wrong";
    let foreign = [cookie_header, form_type, ("origin", "http://127.0.0.1:1")];
    assert_eq!(raw("POST", &extend, &foreign, extend_form).await.status, 403);
    let refused = raw("POST", &extend, &[cookie_header, form_type, ("origin", own_origin)], extend_form).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("token"), "{}", refused.body);

    // And the review form (acknowledge or flag a break-glass grant).
    let review = format!("{base}/requests/req-0123456789abcdef0123456789abcdef/review");
    let review_form = "verdict=flag&comment=x&csrf=wrong";
    for origin in ["http://127.0.0.1:1", "http://attacker.example", "null"] {
        let headers = [cookie_header, form_type, ("origin", origin)];
        assert_eq!(raw("POST", &review, &headers, review_form).await.status, 403, "origin {origin}");
    }
    assert_eq!(raw("POST", &review, &[cookie_header, form_type], review_form).await.status, 403, "no Origin");
    let refused = raw("POST", &review, &[cookie_header, form_type, ("origin", own_origin)], review_form).await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("token"), "{}", refused.body);
    let no_token = raw("POST", &review, &[cookie_header, form_type, ("origin", own_origin)], "verdict=flag").await;
    assert_eq!(no_token.status, 403);
    assert!(no_token.body.contains("token"), "{}", no_token.body);

    // The stylesheet is the only asset, served from the binary.
    let css = raw("GET", &format!("{base}/static/console.css"), &[], "").await;
    assert_eq!((css.status, css.headers["content-type"].to_str().unwrap()), (200, "text/css; charset=utf-8"));
    assert!(css.body.contains(":focus-visible"), "focus stays visible");
}
