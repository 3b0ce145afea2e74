//! `jit console`: a web UI on 127.0.0.1 that calls the API with the user's own credentials.
//!
//! The browser never sees AWS credentials: pages are rendered here from the API's JSON, and forms
//! post back here (POST-redirect-GET), where each call to the API is signed with the user's
//! credentials (`crate::api`, found as for the other commands). Only this user's browser may drive
//! it (docs/console.md, "Security"):
//!
//! * it listens on 127.0.0.1 only, and answers only requests whose `Host` is
//!   `127.0.0.1:<port>` or `localhost:<port>` (DNS rebinding);
//! * a random key made per run is in the URL it prints; opening that URL sets it as an
//!   `HttpOnly`, `SameSite=Strict` cookie, and every page and action needs the cookie;
//! * every POST must come from the console's own origin (`Origin`, `Sec-Fetch-Site`) and carry the
//!   per-run form token;
//! * pages have no script, a strict CSP, `no-store`, no framing, no referrer to other origins.

pub mod pages;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use jit_shared::http::decide_page::parse_form;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::api::{Api, ApiError};
use crate::ops::settings::{self, ApiArgs};
use crate::sigv4::ProfileCredentials;
use pages::{DetailContext, Frame, Notice, RequestForm};

/// The default port of `jit console`.
pub const DEFAULT_PORT: u16 = 8765;
/// The largest form the console accepts (a reason is at most 256 characters, a comment 1,000).
const MAX_FORM_BYTES: usize = 32 * 1024;
/// How long the console waits after a submission for the policies to decide, before showing the
/// request anyway (still `Submitted`).
const DECISION_WAIT: Duration = Duration::from_secs(5);

const CSS: &str = include_str!("static/console.css");

/// No script at all; the console's own stylesheet; forms post only to the console; no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

#[derive(clap::Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// What one console serves: the API client, which signs with the user's credentials.
pub struct ConsoleConfig {
    pub api: Api,
    /// Shown on every page: whose console this is (a profile name, or where credentials came from).
    pub profile: String,
    /// The stack's session document, for attach-mode start-session commands (`None`: the default).
    pub document_name: Option<String>,
    /// 0 picks a free port.
    pub port: u16,
}

/// A client of the API at `api_url` in `region`, signing with fixed credentials (the tests' way).
pub fn api_with(api_url: &str, region: &str, credentials: &ProfileCredentials) -> Result<Api, String> {
    let credentials = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
        credentials.session_token.clone(),
        None,
        "jit-console",
    );
    Api::new(api_url, region, aws_credential_types::provider::SharedCredentialsProvider::new(credentials))
}

/// A console serving in the background until dropped.
pub struct RunningConsole {
    pub addr: SocketAddr,
    /// The URL to open: it carries the per-run key.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningConsole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every API call of the console goes through here: signed with the user's credentials, the JSON
/// of a 2xx answer, or why not.
async fn call(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<Value, ApiError> {
    api.call(method, path, body, headers).await
}

/// The HTTP status a page shows for a failed call: the API's own 4xx/5xx, else 502.
fn status_of(error: &ApiError) -> u16 {
    match error {
        ApiError::Api { status, .. } if (400..600).contains(status) => *status,
        _ => 502,
    }
}

struct State {
    api: Api,
    profile: String,
    document_name: String,
    /// The per-run key: in the printed URL, then in the session cookie.
    key: String,
    /// The per-run form token, in every form.
    csrf: String,
    cookie_name: String,
    hosts: [String; 2],
    origins: [String; 2],
}

impl State {
    fn frame(&self) -> Frame<'_> {
        Frame {
            profile: &self.profile,
            api_url: self.api.base_url(),
            csrf: &self.csrf,
            document_name: &self.document_name,
        }
    }
}

/// 244 random bits from the operating system's generator (two v4 UUIDs), as hex.
fn random_key() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Starts a console on 127.0.0.1 and serves it in the background.
pub async fn serve(config: ConsoleConfig) -> Result<RunningConsole, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", config.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let port = addr.port();
    let state = Arc::new(State {
        api: config.api,
        profile: config.profile,
        document_name: config.document_name.unwrap_or_else(|| crate::ops::connect::DEFAULT_DOCUMENT.to_owned()),
        key: random_key(),
        csrf: random_key(),
        // Cookies ignore ports: one name per console, so two consoles in one browser do not mix.
        cookie_name: format!("jit_console_{port}"),
        hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
        origins: [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")],
    });
    let url = format!("http://{addr}/?t={}", state.key);
    let task = tokio::spawn(accept(listener, state));
    Ok(RunningConsole { addr, url, task })
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: try again shortly instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, state.clone()));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn with_headers(status: u16, content_type: &str, body: Bytes, extra: &[(&str, &str)]) -> Reply {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("content-security-policy", CSP)
        // Not `no-referrer`: with it browsers send `Origin: null` on form posts, and the origin
        // check needs the real one. No console URL leaves for another origin either way.
        .header("referrer-policy", "same-origin")
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("cross-origin-opener-policy", "same-origin")
        .header("cross-origin-resource-policy", "same-origin");
    for (k, v) in extra {
        builder = builder.header(*k, *v);
    }
    builder.body(Full::new(body)).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn html(status: u16, page: String) -> Reply {
    with_headers(status, "text/html; charset=utf-8", Bytes::from(page), &[])
}

fn plain(status: u16, text: &str) -> Reply {
    with_headers(status, "text/plain; charset=utf-8", Bytes::from(text.to_owned()), &[])
}

/// POST-redirect-GET: `303 See Other` to a page of the console.
fn see_other(location: &str) -> Reply {
    with_headers(303, "text/plain; charset=utf-8", Bytes::from_static(b"See Other"), &[("location", location)])
}

fn header<'a>(req: &'a Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn cookie<'a>(req: &'a Parts, name: &str) -> Option<&'a str> {
    req.headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Why a request may not reach the console at all, if it may not.
fn refusal(state: &State, req: &Parts) -> Option<Reply> {
    // DNS rebinding: a page of another site that made its name resolve to 127.0.0.1 still sends
    // its own name as Host.
    let host_ok = header(req, "host").is_some_and(|h| state.hosts.iter().any(|a| a.eq_ignore_ascii_case(h)));
    if !host_ok {
        return Some(plain(421, "this console answers only to http://127.0.0.1:<port> and http://localhost:<port>"));
    }
    if req.method == Method::POST {
        // Forms come from the console's own pages: browsers send Origin with every POST, and
        // Sec-Fetch-Site tells same-origin from another port of 127.0.0.1 (which is same-site).
        let origin_ok = header(req, "origin").is_some_and(|o| state.origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
        let fetch_site_ok = header(req, "sec-fetch-site").is_none_or(|s| s == "same-origin");
        if !origin_ok || !fetch_site_ok {
            return Some(plain(403, "forms are accepted only from the console's own pages"));
        }
    }
    None
}

async fn handle(req: Request<Incoming>, state: Arc<State>) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    if let Some(refused) = refusal(&state, &parts) {
        return Ok(refused);
    }
    let path = parts.uri.path().to_owned();
    let query = parse_form(parts.uri.query().unwrap_or("").as_bytes()).unwrap_or_default();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());

    if parts.method == Method::GET && path == "/static/console.css" {
        return Ok(with_headers(200, "text/css; charset=utf-8", Bytes::from_static(CSS.as_bytes()), &[]));
    }
    if parts.method == Method::GET && path == "/favicon.ico" {
        return Ok(plain(404, "no icon"));
    }
    // Opening the printed URL: the key becomes the session cookie, and the page moves on to `/`.
    if parts.method == Method::GET && path == "/" {
        if let Some(key) = param("t") {
            if !same_secret(key, &state.key) {
                return Ok(html(403, pages::locked("This link's key is not this console's: it changes on every run.")));
            }
            let cookie = format!("{}={}; Path=/; HttpOnly; SameSite=Strict", state.cookie_name, state.key);
            let page = Bytes::from(pages::opening());
            return Ok(with_headers(200, "text/html; charset=utf-8", page, &[("set-cookie", cookie.as_str())]));
        }
    }
    if !cookie(&parts, &state.cookie_name).is_some_and(|c| same_secret(c, &state.key)) {
        return Ok(html(403, pages::locked("This browser has not opened the console with its link yet.")));
    }

    let form = if parts.method == Method::POST {
        let bytes = match Limited::new(body, MAX_FORM_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Ok(plain(413, "the form is too large")),
        };
        let form = match parse_form(&bytes) {
            Ok(f) => f,
            Err(e) => return Ok(plain(400, &e)),
        };
        let token = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
        if !same_secret(token, &state.csrf) {
            return Ok(plain(403, "the form's token is missing or not this console's: reload the page"));
        }
        form
    } else {
        Vec::new()
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).unwrap_or_default();

    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let reply = match (&parts.method, segments.as_slice()) {
        (&Method::GET, []) => my_requests(&state, param("status"), param("next")).await,
        (&Method::GET, ["requests", "new"]) => new_request_page(&state).await,
        (&Method::POST, ["requests"]) => {
            let form = RequestForm {
                node_id: field("nodeId"),
                reason: field("reason"),
                duration: field("durationMinutes"),
                starts_at: field("startsAt"),
                idempotency_key: field("idempotencyKey"),
                break_glass: field("breakGlass") == "true",
            };
            submit(&state, form).await
        }
        // The Approvals page's "open by id" form (break-glass reviews are found through their mail).
        (&Method::GET, ["requests", "open"]) => match param("id").map(str::trim).and_then(checked_id) {
            Some(id) => see_other(&format!("/requests/{id}")),
            None => {
                let message = "That is not a request id: req- and 32 hexadecimal digits, as the mail names it.";
                approvals_page(&state, Some(Notice::Error(message.to_owned()))).await
            }
        },
        (&Method::GET, ["requests", id]) => match checked_id(id) {
            Some(id) => request_page(&state, &id, done_notice(param("done")), 200).await,
            None => not_found(&state),
        },
        (&Method::POST, ["requests", id, action]) => match (checked_id(id), *action) {
            (Some(id), "credentials") => credentials(&state, &id).await,
            (Some(id), "decide") => match field("decision").as_str() {
                verdict @ ("approve" | "reject") => {
                    act(&state, &id, verdict, &field("comment"), field("from") == "approvals").await
                }
                _ => plain(400, "decision: choose Approve or Reject"),
            },
            (Some(id), action @ ("cancel" | "revoke")) => act(&state, &id, action, &field("comment"), false).await,
            (Some(id), "review") => match field("verdict").as_str() {
                verdict @ ("acknowledge" | "flag") => review(&state, &id, verdict, &field("comment")).await,
                _ => plain(400, "verdict: choose Acknowledge or Flag"),
            },
            (Some(id), "extend") => {
                let form = ExtendForm {
                    minutes: field("durationMinutes"),
                    reason: field("reason"),
                    idempotency_key: field("idempotencyKey"),
                };
                extend(&state, &id, &form).await
            }
            _ => not_found(&state),
        },
        (&Method::GET, ["approvals"]) => approvals_page(&state, done_notice(param("done"))).await,
        (&Method::GET | &Method::POST, _) => not_found(&state),
        _ => plain(405, "method not allowed"),
    };
    Ok(reply)
}

/// A request id as the API makes them; anything else never reaches an API path.
fn checked_id(raw: &str) -> Option<String> {
    jit_shared::domain::ids::RequestId::try_from(raw.to_owned()).ok().map(|id| id.as_str().to_owned())
}

fn not_found(state: &State) -> Reply {
    html(404, pages::problem(&state.frame(), "Not found", "The console has no such page."))
}

/// Shows why a call failed, with the API's status (4xx stays 4xx).
fn failed_page(state: &State, title: &str, error: &ApiError) -> Reply {
    html(status_of(error), pages::problem(&state.frame(), title, &error.to_string()))
}

async fn my_requests(state: &State, status: Option<&str>, next: Option<&str>) -> Reply {
    let status = status.filter(|s| !s.is_empty());
    let mut query = Vec::new();
    if let Some(s) = status {
        query.push(format!("status={}", pages::url_encode(s)));
    }
    if let Some(n) = next.filter(|n| !n.is_empty()) {
        query.push(format!("nextToken={}", pages::url_encode(n)));
    }
    let path = if query.is_empty() { "/requests".to_owned() } else { format!("/requests?{}", query.join("&")) };
    match call(&state.api, "GET", &path, None, &[]).await {
        Ok(list) => html(200, pages::requests(&state.frame(), &list, status, None, jit_shared::now())),
        Err(e) => failed_page(state, "Your requests could not be listed", &e),
    }
}

/// Nodes of the caller's recent requests, offered as suggestions in the form.
async fn recent_nodes(state: &State) -> Vec<String> {
    let list = call(&state.api, "GET", "/requests?limit=50", None, &[]).await.unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r["nodeId"].as_str().map(str::to_owned))
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

async fn new_request_page(state: &State) -> Reply {
    let form = RequestForm { idempotency_key: random_key(), ..RequestForm::default() };
    html(200, pages::new_request(&state.frame(), &form, None, &recent_nodes(state).await))
}

async fn submit(state: &State, form: RequestForm) -> Reply {
    let refuse = |status: u16, field: &str, message: &str| {
        html(status, pages::new_request(&state.frame(), &form, Some((field, message)), &[]))
    };
    let mut body = json!({ "nodeId": form.node_id, "reason": form.reason });
    if form.break_glass {
        body["breakGlass"] = json!(true);
    }
    if !form.duration.is_empty() {
        match form.duration.parse::<u32>() {
            Ok(minutes) => body["durationMinutes"] = json!(minutes),
            Err(_) => return refuse(400, "durationMinutes", "a whole number of minutes, 1 to 20,160"),
        }
    }
    if !form.starts_at.is_empty() {
        match starts_at(&form.starts_at) {
            Some(at) => body["startsAt"] = json!(at),
            None => {
                let message = "a time such as 2026-12-24T08:00:00Z (with an offset) or 2026-12-24 08:00 (local)";
                return refuse(400, "startsAt", message);
            }
        }
    }
    let mut headers = Vec::new();
    if !form.idempotency_key.is_empty() {
        headers.push(("idempotency-key", form.idempotency_key.as_str()));
    }
    match call(&state.api, "POST", "/requests", Some(&body), &headers).await {
        Ok(created) => {
            let Some(id) = created["requestId"].as_str().and_then(checked_id) else {
                return html(
                    502,
                    pages::problem(&state.frame(), "Unexpected answer", "the API returned no request id"),
                );
            };
            wait_decided(state, &id).await;
            see_other(&format!("/requests/{id}?done=submitted"))
        }
        Err(e) => {
            let field = match &e {
                ApiError::Api { field: Some(f), .. } => f.clone(),
                _ => String::new(),
            };
            refuse(status_of(&e), &field, &e.to_string())
        }
    }
}

/// The form's start time as RFC 3339 for the API: a time with an offset as typed, or a local
/// time (`2026-12-24 08:00`, `2026-12-24T08:00`, what a `datetime-local` field sends) in this
/// computer's time zone, which is the browser's: the console serves only 127.0.0.1. The API
/// checks that it is in the future and within 14 days.
fn starts_at(raw: &str) -> Option<String> {
    use chrono::{DateTime, Local, NaiveDateTime, SecondsFormat, TimeZone, Utc};
    let utc = match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => {
            let naive = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())?;
            // A time skipped by a daylight-saving change has no meaning; an ambiguous one takes
            // the earlier instant.
            Local.from_local_datetime(&naive).earliest()?.with_timezone(&Utc)
        }
    };
    Some(utc.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The extend form of a request's page.
struct ExtendForm {
    minutes: String,
    reason: String,
    idempotency_key: String,
}

/// `POST /requests/{id}/extend` for the request's page; the extension (a request of its own,
/// `extends` naming this one) is shown once the policies decided it. A refusal shows the
/// request's page again with the API's answer.
async fn extend(state: &State, id: &str, form: &ExtendForm) -> Reply {
    let refused = |status: u16, message: String| async move {
        request_page(state, id, Some(Notice::Error(format!("The extension was not requested: {message}"))), status)
            .await
    };
    let Ok(minutes) = form.minutes.parse::<u32>() else {
        return refused(400, "durationMinutes: a whole number of minutes, 1 to 20,160".to_owned()).await;
    };
    let body = json!({ "durationMinutes": minutes, "reason": form.reason });
    let mut headers = Vec::new();
    if !form.idempotency_key.is_empty() {
        headers.push(("idempotency-key", form.idempotency_key.as_str()));
    }
    match call(&state.api, "POST", &format!("/requests/{id}/extend"), Some(&body), &headers).await {
        Ok(created) => match created["requestId"].as_str().and_then(checked_id) {
            Some(extension) => {
                wait_decided(state, &extension).await;
                see_other(&format!("/requests/{extension}?done=extend"))
            }
            None => html(502, pages::problem(&state.frame(), "Unexpected answer", "the API returned no request id")),
        },
        Err(e) => refused(status_of(&e), e.to_string()).await,
    }
}

/// Whether the caller made `request`: the newest of their own requests (`GET /requests` lists
/// only the caller's) names them as its requester. `false` when they have none or the list
/// cannot be read; the API refuses anyone else anyway.
async fn made_by_caller(state: &State, request: &Value) -> bool {
    match call(&state.api, "GET", "/requests?limit=1", None, &[]).await {
        Ok(list) => list["items"][0]["requester"].as_str().is_some_and(|me| request["requester"] == me),
        Err(_) => false,
    }
}

/// Waits (briefly) until the policies decided the request, so its page shows the decision.
async fn wait_decided(state: &State, id: &str) {
    let deadline = tokio::time::Instant::now() + DECISION_WAIT;
    while tokio::time::Instant::now() < deadline {
        match call(&state.api, "GET", &format!("/requests/{id}"), None, &[]).await {
            Ok(request) if request["status"] == "Submitted" => tokio::time::sleep(Duration::from_millis(150)).await,
            _ => return,
        }
    }
}

fn done_notice(done: Option<&str>) -> Option<Notice> {
    let text = match done? {
        "submitted" => "Your request was submitted.",
        "approve" => "Your approval was recorded.",
        "reject" => "You rejected the request.",
        "cancel" => "You withdrew the request.",
        "revoke" => "Access was revoked.",
        "extend" => "You asked for more time: this extension is decided like a request for the new total.",
        "acknowledge" => "You acknowledged this break-glass access.",
        "flag" => "You flagged this break-glass access: the flagged break-glass alarm was raised.",
        _ => return None,
    };
    Some(Notice::Done(text.to_owned()))
}

async fn request_page(state: &State, id: &str, notice: Option<Notice>, status: u16) -> Reply {
    let request_path = format!("/requests/{id}");
    let audit_path = format!("/requests/{id}/audit");
    let (request, audit, waiting) = tokio::join!(
        call(&state.api, "GET", &request_path, None, &[]),
        call(&state.api, "GET", &audit_path, None, &[]),
        call(&state.api, "GET", "/approvals", None, &[]),
    );
    let request = match request {
        Ok(request) => request,
        Err(ApiError::Api { status: 404, .. }) => {
            let message = "There is no such request, or you may not see it.";
            return html(404, pages::problem(&state.frame(), "No such request", message));
        }
        Err(e) => return failed_page(state, "The request could not be read", &e),
    };
    let audit = audit.ok();
    let waiting_on_me = waiting.ok().is_some_and(|w| {
        w["items"].as_array().is_some_and(|items| items.iter().any(|i| i["requestId"].as_str() == Some(id)))
    });
    let now = jit_shared::now();
    // Only for what the requester alone may do (extend, withdraw a scheduled approval), and what
    // they alone may not (review their own break-glass).
    let mine = (pages::extendable(&request, now)
        || pages::scheduled_not_started(&request, now)
        || pages::review_open(&request, now))
        && made_by_caller(state, &request).await;
    let form_key = random_key();
    let ctx = DetailContext { request: &request, audit: audit.as_ref(), waiting_on_me, mine, now, form_key: &form_key };
    html(status, pages::detail(&state.frame(), &ctx, notice.as_ref()))
}

async fn approvals_page(state: &State, notice: Option<Notice>) -> Reply {
    let (waiting, decided, reviews) = tokio::join!(
        call(&state.api, "GET", "/approvals", None, &[]),
        call(&state.api, "GET", "/approvals?decided=true", None, &[]),
        call(&state.api, "GET", "/approvals?review=open", None, &[]),
    );
    let waiting = match waiting {
        Ok(waiting) => waiting,
        Err(e) => return failed_page(state, "Your approvals could not be listed", &e),
    };
    let decided = decided.unwrap_or_else(|_| json!({ "items": [] }));
    let reviews = reviews.unwrap_or_else(|_| json!({ "items": [] }));
    let status = if matches!(notice, Some(Notice::Error(_))) { 400 } else { 200 };
    html(status, pages::approvals(&state.frame(), &waiting, &decided, &reviews, notice.as_ref()))
}

/// Approve, reject, cancel or revoke, with an optional comment; then back to the page it came from.
async fn act(state: &State, id: &str, action: &str, comment: &str, back_to_approvals: bool) -> Reply {
    let body = (!comment.is_empty()).then(|| json!({ "comment": comment }));
    match call(&state.api, "POST", &format!("/requests/{id}/{action}"), body.as_ref(), &[]).await {
        Ok(_) if back_to_approvals => see_other(&format!("/approvals?done={action}")),
        Ok(_) => see_other(&format!("/requests/{id}?done={action}")),
        Err(e) => {
            let title = match action {
                "approve" => "The approval was not recorded",
                "reject" => "The rejection was not recorded",
                "cancel" => "The request was not withdrawn",
                _ => "Access was not revoked",
            };
            failed_page(state, title, &e)
        }
    }
}

/// `POST /requests/{id}/review`: acknowledge or flag a break-glass grant. The API decides who may
/// (the node's approvers and administrators, once, never the requester); its refusal is shown on
/// the request's page.
async fn review(state: &State, id: &str, verdict: &str, comment: &str) -> Reply {
    let mut body = json!({ "verdict": verdict });
    if !comment.is_empty() {
        body["comment"] = json!(comment);
    }
    match call(&state.api, "POST", &format!("/requests/{id}/review"), Some(&body), &[]).await {
        Ok(_) => see_other(&format!("/requests/{id}?done={verdict}")),
        Err(e) => {
            let notice = Notice::Error(format!("The review was not recorded: {e}"));
            request_page(state, id, Some(notice), status_of(&e)).await
        }
    }
}

async fn credentials(state: &State, id: &str) -> Reply {
    match call(&state.api, "POST", &format!("/requests/{id}/credentials"), None, &[]).await {
        Ok(issued) => html(200, pages::credentials(&state.frame(), &issued)),
        Err(e) => failed_page(state, "No credentials were issued", &e),
    }
}

/// `jit console`: serves until Ctrl-C.
pub fn run_console(args: ConsoleArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let started = async {
            let resolved = settings::resolve_here(&args.api)?;
            let api = settings::connect(&resolved).await?;
            let profile = resolved
                .profile
                .clone()
                .or_else(|| std::env::var("AWS_PROFILE").ok())
                .unwrap_or_else(|| "(AWS credential chain)".to_owned());
            let config = ConsoleConfig { api, profile, document_name: resolved.document_name.clone(), port: args.port };
            let profile = config.profile.clone();
            let console = serve(config).await?;
            Ok::<_, String>((console, resolved, profile))
        };
        let (console, resolved, profile) = match started.await {
            Ok(started) => started,
            Err(e) => {
                eprintln!("jit console: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("jit console: profile {profile}, API {} (from {})", resolved.api_url, resolved.url_source);
        println!("\n  open {}\n", console.url);
        println!("The link carries this run's key: do not share it. Ctrl-C stops the console.");
        let _ = tokio::signal::ctrl_c().await;
        drop(console);
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let credentials =
            ProfileCredentials { access_key_id: "AKIA".into(), secret_access_key: "s".into(), session_token: None };
        State {
            api: api_with("http://127.0.0.1:1", "us-east-1", &credentials).unwrap(),
            profile: "operator".into(),
            document_name: "doc".into(),
            key: "k".into(),
            csrf: "c".into(),
            cookie_name: "jit_console_8765".into(),
            hosts: ["127.0.0.1:8765".into(), "localhost:8765".into()],
            origins: ["http://127.0.0.1:8765".into(), "http://localhost:8765".into()],
        }
    }

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().method(method).uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_the_consoles_own_host_is_served() {
        let s = state();
        assert!(refusal(&s, &parts("GET", &[("host", "127.0.0.1:8765")])).is_none());
        assert!(refusal(&s, &parts("GET", &[("host", "localhost:8765")])).is_none());
        for host in ["evil.example:8765", "127.0.0.1:8766", "127.0.0.1", ""] {
            let status = refusal(&s, &parts("GET", &[("host", host)])).map(|r| r.status().as_u16());
            assert_eq!(status, Some(421), "{host}");
        }
    }

    #[test]
    fn forms_are_taken_only_from_the_consoles_origin() {
        let s = state();
        let host = ("host", "127.0.0.1:8765");
        let ok = [host, ("origin", "http://127.0.0.1:8765"), ("sec-fetch-site", "same-origin")];
        assert!(refusal(&s, &parts("POST", &ok)).is_none());
        assert!(refusal(&s, &parts("POST", &[host, ("origin", "http://127.0.0.1:8765")])).is_none());
        for bad in [
            vec![host],
            vec![host, ("origin", "http://127.0.0.1:3000")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://127.0.0.1:8765"), ("sec-fetch-site", "same-site")],
            vec![host, ("origin", "http://127.0.0.1:8765"), ("sec-fetch-site", "cross-site")],
        ] {
            assert_eq!(refusal(&s, &parts("POST", &bad)).map(|r| r.status().as_u16()), Some(403), "{bad:?}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let p = parts("GET", &[("cookie", "a=b; jit_console_8765=k; c=d"), ("cookie", "x=y")]);
        assert_eq!(cookie(&p, "jit_console_8765"), Some("k"));
        assert_eq!(cookie(&p, "jit_console_8766"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert_eq!(random_key().len(), 64);
        assert_ne!(random_key(), random_key());
    }

    #[test]
    fn only_request_ids_reach_api_paths() {
        assert!(checked_id("req-0123456789abcdef0123456789abcdef").is_some());
        for bad in ["..", "req-x", "req-0123456789abcdef0123456789abcdef/../x", "%2e%2e"] {
            assert!(checked_id(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_start_time_is_sent_in_utc_with_its_offset() {
        assert_eq!(starts_at("2026-12-24T08:00:00+01:00").as_deref(), Some("2026-12-24T07:00:00Z"));
        assert_eq!(starts_at("2026-12-24T08:00:00Z").as_deref(), Some("2026-12-24T08:00:00Z"));
        let local = chrono::NaiveDate::from_ymd_opt(2026, 12, 24).and_then(|d| d.and_hms_opt(8, 0, 0)).unwrap();
        let expected = chrono::TimeZone::from_local_datetime(&chrono::Local, &local)
            .earliest()
            .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        assert_eq!(starts_at("2026-12-24 08:00"), expected);
        assert_eq!(starts_at("2026-12-24T08:00"), expected);
        for bad in ["tomorrow", "2026-12-24", "24/12/2026 08:00", ""] {
            assert_eq!(starts_at(bad), None, "{bad}");
        }
    }

    #[test]
    fn failed_calls_keep_the_apis_status() {
        let refused =
            ApiError::Api { status: 409, code: "RequestNotPending".into(), message: "not pending".into(), field: None };
        assert_eq!(status_of(&refused), 409);
        assert_eq!(status_of(&ApiError::Network("down".into())), 502);
    }
}
