//! `make dev`: the whole system on this machine. The emulator (moto) plays AWS; this process
//! plays API Gateway (SigV4-authenticated HTTP API on 127.0.0.1) and the Lambda service
//! (EventBridge → SQS → the evaluation function's handler, with the real event envelopes).

pub mod chat;
pub mod executions;
pub mod provision;
pub mod seed;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jit_shared::adapters::accounts::{AccountClients, TEARDOWN_ROLE};
use jit_shared::adapters::api_calls::ApiCallLog;
use jit_shared::adapters::api_calls::SentRequests;
use jit_shared::adapters::dynamodb::DynamoStore;
use jit_shared::adapters::eventbridge::EventBridgePublisher;
use jit_shared::adapters::grants::IamGranter;
use jit_shared::adapters::mail::SnsMailer;
use jit_shared::adapters::principals::AwsPrincipalDirectory;
use jit_shared::adapters::sts::StsIssuer;
use jit_shared::app::approve::ApprovalDeps;
use jit_shared::app::credentials::CredentialsDeps;
use jit_shared::app::error::ServiceError;
use jit_shared::app::evaluate::{self, EvaluationDeps};
use jit_shared::app::lifecycle::{self, LifecycleDeps};
use jit_shared::app::notify::{self, LinkSettings, NotifyDeps};
use jit_shared::app::submit::SubmitDeps;
use jit_shared::app::sweep;
use jit_shared::domain::approval_token::SigningKey;
use jit_shared::domain::events::{EventEnvelope, StatusEvent};
use jit_shared::domain::grant::{GrantMode, GrantSettings};
use jit_shared::domain::ids::NodeId;
use jit_shared::http::{ApiRequest, ApiResponse};
use jit_shared::policy::{NodeInfo, PolicySet};
use jit_shared::ports::{DirectoryError, EventPublisher, NodeDirectory, PortError};
use tokio::net::TcpListener;

use crate::emulator::Emulator;
use crate::sigv4::{self, IssuedKey};
use provision::{Provisioned, LOCAL_IDENTITY_STORE_ID};

#[derive(clap::Args, Debug, Clone)]
pub struct DevArgs {
    /// Policy directory to load.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
    /// Seed file with nodes and principals.
    #[arg(long, default_value = "local/seed.yaml")]
    pub seed: PathBuf,
    /// Port for the local API on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// How long a request may wait for approvals, in minutes.
    #[arg(long, default_value_t = jit_shared::domain::approval::DEFAULT_PENDING_TIMEOUT_MINUTES)]
    pub pending_timeout_minutes: u32,
    /// The time zone policies read `context.local` in (the stack's PolicyTimeZone; an IANA name).
    #[arg(long, default_value = "UTC")]
    pub policy_time_zone: String,
    /// Live requests one requester may hold at once (the stack's MaxActiveRequestsPerRequester).
    #[arg(long, default_value_t = jit_shared::config::DEFAULT_MAX_ACTIVE_REQUESTS,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_active_requests: u32,
    /// Where dev.env and the credentials file go.
    #[arg(long, default_value = ".jit")]
    pub state_dir: PathBuf,
    /// How approved access is given: `credentials` (fetched with `POST /requests/{id}/credentials`)
    /// or `attach` (a policy on the requester's own IAM user or role). Identity Center users
    /// always get credentials.
    #[arg(long, default_value = "credentials")]
    pub grant_mode: GrantMode,
}

/// Stand-in for node tags: moto assigns its own EC2 instance ids and cannot register hybrid
/// (`mi-`) nodes, so the local stack serves the seed file's nodes. The deployed stack uses
/// `AwsNodeDirectory` (Resource Groups Tagging API and SSM).
#[derive(Debug, Clone)]
pub struct SeedNodeDirectory {
    /// Keyed by the id as the seed writes it (`i-…`, or the ARN of a member account's node).
    pub nodes: BTreeMap<String, BTreeMap<String, String>>,
    /// The stack's own account and Region.
    pub home: jit_shared::domain::ids::NodeLocation,
    /// Records the one call the deployed directory makes per lookup (Tagging `GetResources` for
    /// an instance, SSM `ListTagsForResource` for a managed node).
    pub calls: ApiCallLog,
}

#[async_trait::async_trait]
impl NodeDirectory for SeedNodeDirectory {
    async fn describe(&self, node: &NodeId) -> Result<NodeInfo, DirectoryError> {
        match node.kind() {
            jit_shared::domain::ids::NodeKind::Ec2Instance => {
                self.calls.record("Resource Groups Tagging API", "GetResources")
            }
            jit_shared::domain::ids::NodeKind::ManagedInstance => self.calls.record("SSM", "ListTagsForResource"),
        }
        self.nodes
            .get(node.as_str())
            .map(|tags| NodeInfo { node_id: node.clone(), location: node.resolve(&self.home), tags: tags.clone() })
            .ok_or_else(|| DirectoryError::NotFound(format!("node {node}")))
    }
}

struct Adapters {
    store: DynamoStore,
    /// The publish-events function's client (the only one that puts events on the bus).
    publisher: EventBridgePublisher,
    principals: AwsPrincipalDirectory,
    nodes: SeedNodeDirectory,
    policies: PolicySet,
    mailer: CountedMailer,
    key: SigningKey,
    links: LinkSettings,
    pending_timeout_minutes: u32,
    max_active_requests: u32,
    keys: HashMap<String, IssuedKey>,
    outbox: Arc<Mutex<Vec<OutboxMessage>>>,
    granter: IamGranter,
    sessions: executions::NoLiveSessions,
    grant_settings: GrantSettings,
    /// The seed's `administrators` (the demo seed: `security`): they may revoke any request and
    /// review any break-glass grant.
    administrators: jit_shared::domain::administrators::Administrators,
    /// Who is whom, from the policy set's `contacts.yaml`.
    people: jit_shared::policy::contacts::People,
    /// Approval seals with the emulator's KMS HMAC key.
    seal: jit_shared::adapters::kms::KmsSeal,
    executions: executions::LocalExecutions,
    issuer: StsIssuer,
    sts_requests: SentRequests,
    calls: ApiCallLog,
    /// Slack's signing secret here (`LOCAL_SLACK_SIGNING_SECRET`).
    slack_secret: jit_shared::domain::slack::SlackSigningSecret,
    /// Posts to the Slack stand-in this server plays (`/slack-api/…`).
    slack: jit_shared::adapters::slack::SlackWebApi,
    slack_posts: Arc<Mutex<Vec<serde_json::Value>>>,
    /// Posts to the Teams webhook stand-ins this server plays (`/teams-webhook/…`).
    teams: jit_shared::adapters::teams::TeamsWebhookApi,
    teams_posts: Arc<Mutex<Vec<serde_json::Value>>>,
    /// The Amazon Q chat topic in the emulator, recording what was published.
    chat_topic: chat::RecordedChatTopic,
}

/// The Slack app's signing secret of the local stack: sign `POST /chat/slack` callbacks with it.
pub const LOCAL_SLACK_SIGNING_SECRET: &str = "local-slack-signing-secret-0123456789";

/// How the local stack records a function invocation (it plays the Lambda service), next to the
/// functions' own API calls: `"Lambda:Invoke <function>"`.
pub const INVOCATION_SERVICE: &str = "Lambda";

/// How the local stack records a mail SNS takes (a call may carry several): `"SNS mail:sent"`.
pub const MAIL_SERVICE: &str = "SNS mail";

/// The SNS mailer, counting each mail it sends besides the calls its client makes.
struct CountedMailer {
    sns: SnsMailer,
    calls: ApiCallLog,
}

#[async_trait::async_trait]
impl jit_shared::ports::Mailer for CountedMailer {
    async fn send_all(&self, mails: &[jit_shared::ports::Mail]) -> Result<(), jit_shared::ports::PortError> {
        self.sns.send_all(mails).await?;
        for _ in mails {
            self.calls.record(MAIL_SERVICE, "sent");
        }
        Ok(())
    }
}

impl Adapters {
    fn invoked(&self, function: &str) {
        self.calls.record(INVOCATION_SERVICE, &format!("Invoke {function}"));
    }

    fn submit(&self) -> SubmitDeps<'_> {
        SubmitDeps {
            store: &self.store,
            directory: &self.principals,
            settings: &self.grant_settings,
            administrators: &self.administrators,
        }
    }
    fn credentials(&self) -> CredentialsDeps<'_> {
        CredentialsDeps {
            store: &self.store,
            issuer: &self.issuer,
            settings: &self.grant_settings,
            seal: &self.seal,
            directory: &self.principals,
            people: &self.people,
        }
    }
    fn evaluation(&self) -> EvaluationDeps<'_> {
        EvaluationDeps {
            store: &self.store,
            principals: &self.principals,
            nodes: &self.nodes,
            policies: &self.policies,
            pending_timeout_minutes: self.pending_timeout_minutes,
            seal: &self.seal,
            max_active_requests: self.max_active_requests,
        }
    }
    fn approvals(&self) -> ApprovalDeps<'_> {
        ApprovalDeps {
            store: &self.store,
            directory: &self.principals,
            key: &self.key,
            administrators: &self.administrators,
            people: &self.people,
            seal: &self.seal,
        }
    }
    fn lifecycle(&self) -> LifecycleDeps<'_> {
        LifecycleDeps {
            store: &self.store,
            granter: &self.granter,
            sessions: &self.sessions,
            executions: &self.executions,
            settings: &self.grant_settings,
            seal: &self.seal,
        }
    }
    fn notify(&self) -> NotifyDeps<'_> {
        NotifyDeps {
            store: &self.store,
            directory: &self.principals,
            mailer: &self.mailer,
            contacts: self.policies.contacts(),
            key: &self.key,
            links: &self.links,
            chat: Some(&self.slack),
            teams: Some(&self.teams),
            chat_topic: Some(&self.chat_topic),
            security_contacts: self.policies.break_glass().map_or(&[], |b| b.security_contacts.as_slice()),
        }
    }
}

/// One mail as the recipient's inbox would get it (read from their filtered SNS subscription).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessage {
    pub recipient: String,
    pub email: String,
    pub topic: String,
    pub subject: String,
    pub body: String,
    /// The approval links in the mail.
    pub links: Vec<String>,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// A running local stack (used by `jit dev` and by the integration tests).
pub struct LocalStack {
    pub api_url: String,
    pub provisioned: Provisioned,
    pub outbox: Arc<Mutex<Vec<OutboxMessage>>>,
    /// Every AWS API call the stack's functions made (the sweeper's excluded: it runs on a
    /// schedule, not per request), with the calls the stand-ins stand in for.
    pub api_calls: ApiCallLog,
    /// The bodies of the STS calls the credentials function sent (what `AssumeRole` carried).
    pub sts_requests: SentRequests,
    /// What the notifier posted to Slack (`chat.postMessage` bodies; also `GET /slack.json`).
    pub slack_posts: Arc<Mutex<Vec<serde_json::Value>>>,
    /// What the notifier posted to Teams webhooks (`{"person", "card"}`; also `GET /teams.json`).
    pub teams_posts: Arc<Mutex<Vec<serde_json::Value>>>,
    /// The Amazon Q notices published to the chat topic (also `GET /chat-notifications.json`).
    pub chat_notifications: Arc<Mutex<Vec<serde_json::Value>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub struct StartOptions<'a> {
    pub sdk: &'a aws_config::SdkConfig,
    pub policies: PolicySet,
    pub seed: seed::Seed,
    pub prefix: String,
    pub port: u16,
    /// Print each status-change event and each mail as it happens.
    pub print_events: bool,
    pub pending_timeout_minutes: u32,
    pub max_active_requests: u32,
    /// Run the scheduled sweeper (pending expiry, grant reconciliation). `make bench` turns it
    /// off so that only per-request API calls are counted.
    pub sweeper: bool,
    pub grant_mode: GrantMode,
}

/// A client of the emulator that counts its calls in `$log`.
macro_rules! counted_client {
    ($krate:ident, $sdk:expr, $log:expr) => {
        $krate::Client::from_conf($krate::config::Builder::from($sdk).interceptor($log.clone()).build())
    };
}

pub async fn start(opts: StartOptions<'_>) -> Result<LocalStack, String> {
    let provisioned = provision::provision(opts.sdk, &opts.seed, opts.policies.contacts(), &opts.prefix).await?;
    let admin_arns = opts.seed.administrator_arns(crate::emulator::ACCOUNT_ID);
    let administrators =
        jit_shared::domain::administrators::Administrators::parse(admin_arns.iter().map(String::as_str))
            .map_err(|e| format!("seed administrators: {e}"))?;
    let sdk = opts.sdk;
    let listener = TcpListener::bind(("127.0.0.1", opts.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", opts.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let api_url = format!("http://{addr}");
    let key = jit_shared::adapters::secrets::read_signing_key(
        &aws_sdk_ssm::Client::new(sdk),
        &provisioned.signing_key_parameter,
    )
    .await
    .map_err(|e| format!("reading the signing key: {e}"))?;
    let outbox = Arc::new(Mutex::new(Vec::new()));
    let slack_posts = Arc::new(Mutex::new(Vec::new()));
    let slack_token = jit_shared::adapters::slack::BotToken::new("xoxb-local-stand-in").map_err(|e| e.to_string())?;
    let slack = jit_shared::adapters::slack::SlackWebApi::new(&format!("{api_url}/slack-api"), slack_token)
        .map_err(|e| e.to_string())?;
    let slack_secret = crate::slack::local_secret()?;
    let calls = ApiCallLog::default();
    let sts_requests = SentRequests::default();
    let (teams_posts, chat_notifications) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let teams = chat::teams_stand_in(&api_url, &opts.seed.teams_people())?;
    let chat_topic = chat::RecordedChatTopic {
        inner: jit_shared::adapters::amazon_q::SnsChatTopic::new(
            counted_client!(aws_sdk_sns, sdk, calls),
            chat::create_chat_topic(&aws_sdk_sns::Client::new(sdk), &opts.prefix).await?,
        ),
        published: chat_notifications.clone(),
    };
    let home = jit_shared::domain::ids::NodeLocation {
        partition: "aws".into(),
        account: crate::emulator::ACCOUNT_ID.into(),
        region: crate::emulator::REGION.into(),
    };
    let people = jit_shared::policy::contacts::People::from_contacts(opts.policies.contacts());
    let (local_executions, commands) = executions::LocalExecutions::new(&provisioned.state_machine_name, calls.clone());
    let adapters = Arc::new(Adapters {
        store: DynamoStore::new(counted_client!(aws_sdk_dynamodb, sdk, calls), &provisioned.table),
        publisher: EventBridgePublisher::new(counted_client!(aws_sdk_eventbridge, sdk, calls), &provisioned.bus),
        principals: AwsPrincipalDirectory::new(counted_client!(aws_sdk_iam, sdk, calls))
            .with_identity_store(counted_client!(aws_sdk_identitystore, sdk, calls), LOCAL_IDENTITY_STORE_ID),
        nodes: SeedNodeDirectory {
            nodes: opts.seed.nodes.iter().map(|n| (n.id.clone(), n.tags.clone())).collect(),
            home: home.clone(),
            calls: calls.clone(),
        },
        policies: opts.policies,
        mailer: CountedMailer {
            sns: SnsMailer::new(
                counted_client!(aws_sdk_sns, sdk, calls),
                &provisioned.approvals_topic_arn,
                &provisioned.requester_topic_arn,
            ),
            calls: calls.clone(),
        },
        key,
        links: LinkSettings {
            api_base_url: api_url.clone(),
            account: crate::emulator::ACCOUNT_ID.to_owned(),
            region: crate::emulator::REGION.to_owned(),
        },
        pending_timeout_minutes: opts.pending_timeout_minutes,
        max_active_requests: opts.max_active_requests,
        keys: provisioned.issued_keys(),
        outbox: outbox.clone(),
        granter: IamGranter::new(counted_client!(aws_sdk_iam, sdk, calls), home.clone(), {
            let calls = calls.clone();
            AccountClients::new(sdk, home.clone(), TEARDOWN_ROLE, move |c| counted_client!(aws_sdk_iam, c, calls))
        }),
        sessions: executions::NoLiveSessions { calls: calls.clone() },
        grant_settings: GrantSettings {
            partition: "aws".into(),
            region: crate::emulator::REGION.into(),
            account: crate::emulator::ACCOUNT_ID.into(),
            // The document provisioning created, as the template does: the one grants allow.
            session_documents: vec![crate::ops::connect::DEFAULT_DOCUMENT.into()],
            mode: opts.grant_mode,
            session_role_name: provisioned.session_role_name.clone(),
            member_accounts: provisioned.member_accounts.clone(),
        },
        administrators,
        people,
        seal: jit_shared::adapters::kms::KmsSeal::new(
            counted_client!(aws_sdk_kms, sdk, calls),
            &provisioned.approval_key_id,
        ),
        executions: local_executions,
        issuer: StsIssuer::new(aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(sdk)
                .interceptor(calls.clone())
                .interceptor(sts_requests.clone())
                .build(),
        )),
        sts_requests: sts_requests.clone(),
        calls: calls.clone(),
        slack_secret,
        slack,
        slack_posts: slack_posts.clone(),
        teams,
        teams_posts: teams_posts.clone(),
        chat_topic,
    });
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut tasks = vec![tokio::spawn(serve(listener, adapters.clone()))];
    let a = adapters.clone();
    tasks.push(tokio::spawn(consume(sqs.clone(), provisioned.submitted_queue_url.clone(), "evaluation", move |env| {
        let a = a.clone();
        a.invoked("evaluate-request");
        async move { evaluate::handle_submitted_event(&a.evaluation(), &env, jit_shared::now()).await.map(|_| ()) }
    })));
    let a = adapters.clone();
    tasks.push(tokio::spawn(consume(sqs.clone(), provisioned.notify_queue_url.clone(), "notification", move |env| {
        let a = a.clone();
        a.invoked("notify");
        async move { notify::handle_event(&a.notify(), &env, jit_shared::now()).await.map(|_| ()) }
    })));
    let a = adapters.clone();
    tasks.push(tokio::spawn(consume(
        sqs.clone(),
        provisioned.executions_queue_url.clone(),
        "lifecycle execution start",
        move |env| {
            let a = a.clone();
            async move {
                let id = env.detail.request_id.clone();
                let revoke = env.detail.status == jit_shared::domain::status::RequestStatus::Revoked;
                let execution = a.executions.start_from_rule(&id, revoke)?;
                tracing::debug!(request_id = %id, execution, revoke, "lifecycle execution started by the rule");
                Ok(())
            }
        },
    )));
    tasks.push(tokio::spawn(execution_runner(adapters.clone(), commands, opts.print_events)));
    if opts.sweeper {
        tasks.push(tokio::spawn(expiry_loop(adapters.clone())));
    }
    tasks.push(tokio::spawn(outbox_loop(sqs.clone(), provisioned.outboxes.clone(), outbox.clone(), opts.print_events)));
    let publisher = LocalPublisher { inner: adapters.publisher.clone(), print: opts.print_events };
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let a = adapters.clone();
    tasks.push(tokio::spawn(stream::stream_loop(
        streams,
        provisioned.table_stream_arn.clone(),
        publisher,
        move || a.invoked("publish-events"),
    )));
    Ok(LocalStack {
        api_url,
        provisioned,
        outbox,
        api_calls: calls,
        sts_requests,
        slack_posts,
        teams_posts,
        chat_notifications,
        tasks,
    })
}

async fn serve(listener: TcpListener, adapters: Arc<Adapters>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let adapters = adapters.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle_http(req, adapters.clone()));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn http_response(resp: &ApiResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        builder = builder.header(k, v);
    }
    builder.body(Full::new(Bytes::from(resp.body_text()))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// What the stand-ins recorded (mail with live decide links, chat posts, STS calls) and where
/// they record it: only for a loopback name in `Host`, so that a web page which points its own
/// name at 127.0.0.1 (DNS rebinding) can neither read nor add to them.
const LOCAL_RECORDS: [&str; 7] = [
    "/outbox",
    "/outbox.json",
    "/slack.json",
    "/teams.json",
    "/chat-notifications.json",
    "/sts-calls.json",
    "/slack-api/chat.postMessage",
];

fn loopback_host(host: Option<&hyper::header::HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else { return false };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && !port.contains(']') => name,
        _ => host,
    };
    ["127.0.0.1", "localhost", "[::1]"].iter().any(|l| l.eq_ignore_ascii_case(name))
}

/// Plays API Gateway: `AWS_IAM` routes need a valid SigV4 signature by an issued key and reach
/// the API as that key's principal; `/decide/*` carries its own token; `/outbox` is local only.
async fn handle_http(req: Request<Incoming>, adapters: Arc<Adapters>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let err =
                jit_shared::domain::errors::FieldError::new("body", "BodyTooLarge", "the body must be at most 64 KiB");
            return Ok(http_response(&ApiResponse::error(&err.into())));
        }
    };
    let path = parts.uri.path().to_owned();
    if LOCAL_RECORDS.contains(&path.as_str()) && !loopback_host(parts.headers.get(hyper::header::HOST)) {
        return Ok(http_response(&ApiResponse::error(&ServiceError::Forbidden(
            "the local stack's records answer only to 127.0.0.1, localhost or [::1]".into(),
        ))));
    }
    if parts.method == hyper::Method::GET && (path == "/outbox" || path == "/outbox.json") {
        return Ok(http_response(&outbox_response(&adapters.outbox, path.ends_with(".json"))));
    }
    // The Slack Web API stand-in: records what would be posted, answers as Slack does.
    if parts.method == hyper::Method::POST && path == "/slack-api/chat.postMessage" {
        let posted = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
        if let Ok(mut posts) = adapters.slack_posts.lock() {
            posts.push(posted);
        }
        return Ok(http_response(&ApiResponse::json(200, serde_json::json!({"ok": true, "ts": "1.000001"}))));
    }
    if parts.method == hyper::Method::GET && path == "/slack.json" {
        let posts = adapters.slack_posts.lock().map(|p| p.clone()).unwrap_or_default();
        return Ok(http_response(&ApiResponse::json(200, serde_json::Value::Array(posts))));
    }
    // The Teams webhook stand-ins and the Amazon Q chat topic's record (chat.rs).
    if parts.method == hyper::Method::POST {
        if let Some(posted) = chat::teams_post(&path, &body) {
            if let Ok(mut posts) = adapters.teams_posts.lock() {
                posts.push(posted);
            }
            return Ok(http_response(&ApiResponse::json(202, serde_json::json!({}))));
        }
    }
    if parts.method == hyper::Method::GET && (path == "/teams.json" || path == "/chat-notifications.json") {
        let list = if path == "/teams.json" { &adapters.teams_posts } else { &adapters.chat_topic.published };
        let items = list.lock().map(|p| p.clone()).unwrap_or_default();
        return Ok(http_response(&ApiResponse::json(200, serde_json::Value::Array(items))));
    }
    if parts.method == hyper::Method::GET && path == "/sts-calls.json" {
        let calls = serde_json::to_value(assume_role_calls(&adapters.sts_requests)).unwrap_or_default();
        return Ok(http_response(&ApiResponse::json(200, calls)));
    }
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
        .collect();
    let now = jit_shared::now();
    // Mail links carry their token, Slack's callbacks Slack's signature: neither is SigV4.
    let caller = if jit_shared::http::approve::is_link_path(&path) || jit_shared::http::slack::serves(&path) {
        None
    } else {
        match sigv4::verify(&adapters.keys, parts.method.as_str(), &path, parts.uri.query(), &headers, &body, now) {
            Ok(arn) => Some(arn),
            Err(e) if jit_shared::http::jitna::is_jitna_path(&path) => {
                let err = ServiceError::Unauthenticated(format!("request not authenticated: {e}"));
                return Ok(http_response(&jit_shared::http::jitna::error_response(&err)));
            }
            Err(e) => {
                let body = serde_json::json!({ "error": { "code": "Forbidden", "message": format!("request not authenticated: {e}"), "field": null } });
                return Ok(http_response(&ApiResponse::json(403, body)));
            }
        }
    };
    let query = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let api_request = ApiRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        query,
        headers,
        body: body.to_vec(),
        caller,
        api_account: Some(crate::emulator::ACCOUNT_ID.to_owned()),
    };
    let response = if jit_shared::http::credentials::serves(&path) {
        adapters.invoked("issue-credentials");
        jit_shared::http::credentials::handle(&adapters.credentials(), &api_request, now).await
    } else if jit_shared::http::approve::serves(&path) {
        adapters.invoked("approve-request");
        let slack = Some(&adapters.slack_secret);
        jit_shared::http::approve::handle_with_slack(&adapters.approvals(), slack, &api_request, now).await
    } else {
        adapters.invoked("submit-request");
        jit_shared::http::submit::handle(&adapters.submit(), &api_request, now).await
    };
    Ok(http_response(&response))
}

/// Plays the Lambda service for an EventBridge-triggered function: the rule's SQS target
/// receives the envelope exactly as a Lambda target would, and a retryable failure is retried
/// when the message becomes visible again.
async fn consume<F, Fut>(sqs: aws_sdk_sqs::Client, queue_url: String, what: &'static str, handler: F)
where
    F: Fn(EventEnvelope) -> Fut,
    Fut: std::future::Future<Output = Result<(), ServiceError>>,
{
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .visibility_timeout(5)
            .send()
            .await;
        let Ok(out) = received else {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        };
        for m in out.messages() {
            let Some(body) = m.body() else { continue };
            let done = match serde_json::from_str::<EventEnvelope>(body) {
                Ok(envelope) => match handler(envelope).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, kind = e.lambda_error_type(), "{what} failed");
                        !e.is_retryable()
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "dropping an event that is not an EventBridge envelope");
                    true
                }
            };
            if done {
                if let Some(handle) = m.receipt_handle() {
                    let _ = sqs.delete_message().queue_url(&queue_url).receipt_handle(handle).send().await;
                }
            }
        }
    }
}

/// Plays the scheduled sweeper (every 2 s here): `sweep::sweep`, the deployed function's one call.
async fn expiry_loop(adapters: Arc<Adapters>) {
    loop {
        match sweep::sweep(&adapters.lifecycle(), jit_shared::now()).await {
            Ok(outcome) => {
                let report = &outcome.grants;
                if report.fixed() > 0 {
                    println!(
                        "sweep  fixed: expired {:?}, removed orphan policies {:?}, restarted lifecycles {:?}, failed never-granted {:?}, cleaned ended {:?}, failed never-evaluated {:?}",
                        report.expired, report.orphans_removed, report.restarted, report.failed, report.ended_cleaned, report.stuck_failed
                    );
                }
                for f in &report.item_failures {
                    println!("sweep  could not {} {}: {}", f.step, f.item, f.error);
                }
            }
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Plays Step Functions: runs each started execution, aborts it on Stop.
async fn execution_runner(
    adapters: Arc<Adapters>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<executions::Command>,
    print_grants: bool,
) {
    let running: executions::Running = Arc::default();
    while let Some(command) = commands.recv().await {
        match command {
            executions::Command::Start { execution_arn, request_id, revoke } => {
                let a = adapters.clone();
                let handle = tokio::spawn(executions::execute(
                    execution_arn.clone(),
                    request_id,
                    revoke,
                    move |task| {
                        let a = a.clone();
                        a.invoked("lifecycle");
                        async move {
                            let out = lifecycle::run_task(&a.lifecycle(), &task, jit_shared::now()).await;
                            // The grant has no event of its own; `make dev` shows it here.
                            if let (true, lifecycle::Task::Grant { request_id, .. }, Ok(o)) =
                                (print_grants, &task, &out)
                            {
                                if o["granted"] == true {
                                    let target = &o["request"]["grant"]["target"];
                                    let what = match target["roleArn"].as_str() {
                                        Some(role) => format!("credentials of {role} may be fetched"),
                                        None => format!(
                                            "IAM inline policy {} attached",
                                            o["policyName"].as_str().unwrap_or("?")
                                        ),
                                    };
                                    println!(
                                        "grant  {request_id}  {what}, until {}",
                                        o["deadline"].as_str().unwrap_or("?")
                                    );
                                }
                            }
                            out
                        }
                    },
                    {
                        let a = adapters.clone();
                        move |request_id| {
                            let a = a.clone();
                            a.invoked("evaluate-request");
                            async move {
                                let out =
                                    evaluate::recheck_at_start(&a.evaluation(), &request_id, jit_shared::now()).await?;
                                if out.permitted {
                                    println!("recheck  {request_id}  still permitted at its start");
                                } else {
                                    println!(
                                        "recheck  {request_id}  {}",
                                        out.reason.as_deref().unwrap_or("not permitted")
                                    );
                                }
                                serde_json::to_value(out)
                                    .map_err(|e| jit_shared::app::error::ServiceError::Internal(e.to_string()))
                            }
                        }
                    },
                ));
                if let Ok(mut map) = running.lock() {
                    map.retain(|_, h| !h.is_finished());
                    map.insert(execution_arn, handle);
                }
            }
            executions::Command::Stop(execution_arn) => {
                if let Some(handle) = running.lock().ok().and_then(|mut m| m.remove(&execution_arn)) {
                    handle.abort();
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Subject", default)]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "TopicArn", default)]
    topic_arn: String,
}

/// Reads each contact's filtered subscription queue: exactly what their inbox would receive.
async fn outbox_loop(
    sqs: aws_sdk_sqs::Client,
    outboxes: Vec<provision::Outbox>,
    store: Arc<Mutex<Vec<OutboxMessage>>>,
    print: bool,
) {
    loop {
        for ob in &outboxes {
            let Ok(out) = sqs.receive_message().queue_url(&ob.queue_url).max_number_of_messages(10).send().await else {
                continue;
            };
            for m in out.messages() {
                let parsed = m.body().map(serde_json::from_str::<SnsEnvelope>);
                if let Some(Err(e)) = &parsed {
                    tracing::warn!(error = %e, "an outbox message is not an SNS notification");
                }
                if let Some(Ok(env)) = parsed {
                    let links = env
                        .message
                        .split_whitespace()
                        .filter(|w| jit_shared::domain::approval_token::split_link(w).is_some())
                        .map(str::to_owned)
                        .collect::<Vec<_>>();
                    let topic = env.topic_arn.rsplit(':').next().unwrap_or_default().to_owned();
                    let msg = OutboxMessage {
                        recipient: ob.recipient.clone(),
                        email: ob.email.clone(),
                        topic,
                        subject: env.subject.unwrap_or_default(),
                        body: env.message,
                        links,
                        received_at: jit_shared::now(),
                    };
                    if print {
                        println!("mail   to {:<24} {}", msg.email, msg.subject);
                        for l in &msg.links {
                            println!("       {l}");
                        }
                    }
                    if let Ok(mut list) = store.lock() {
                        list.push(msg);
                    }
                }
                if let Some(handle) = m.receipt_handle() {
                    let _ = sqs.delete_message().queue_url(&ob.queue_url).receipt_handle(handle).send().await;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// `application/x-www-form-urlencoded` → pairs: STS's Query protocol sends its parameters so.
pub fn form_pairs(body: &str) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b'+', _) => {
                    out.push(b' ');
                    i += 1;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

/// The `AssumeRole` calls the credentials function sent, parameter by parameter (the local
/// `/sts-calls.json` page and the tests read them: the emulator does not echo what it got).
pub fn assume_role_calls(sent: &SentRequests) -> Vec<BTreeMap<String, String>> {
    sent.bodies()
        .iter()
        .map(|b| form_pairs(b))
        .filter(|f| f.get("Action").map(String::as_str) == Some("AssumeRole"))
        .collect()
}

fn outbox_response(outbox: &Mutex<Vec<OutboxMessage>>, json: bool) -> ApiResponse {
    let list = outbox.lock().map(|l| l.clone()).unwrap_or_default();
    if json {
        return ApiResponse::json(200, serde_json::to_value(&list).unwrap_or_default());
    }
    let esc = jit_shared::http::decide_page::escape;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\"><title>jit-node-access local outbox</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto}pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem}</style></head><body>\
         <h1>Local outbox</h1><p>Mail each person's inbox would receive (read from their filtered SNS subscription). Newest first; refreshes every 5 s.</p>",
    );
    if list.is_empty() {
        html.push_str("<p>No mail yet. Submit a request for a node that needs approval.</p>");
    }
    for m in list.iter().rev() {
        html.push_str(&format!(
            "<h2>{} &rarr; {}</h2><p>{} &middot; {}</p><pre>{}</pre>",
            esc(&m.subject),
            esc(&m.email),
            esc(&m.topic),
            m.received_at.to_rfc3339(),
            esc(&m.body)
        ));
        for l in &m.links {
            html.push_str(&format!("<p><a href=\"{}\">Open the approval page</a></p>", esc(l)));
        }
    }
    html.push_str("</body></html>");
    let mut resp = ApiResponse::html(200, html);
    // The local page is the one place links are shown next to each other; keep it local.
    resp.headers.retain(|(k, _)| k != "content-security-policy");
    resp
}

/// The publish-events function's publisher; in `make dev` it also prints each event it put on
/// the bus, as it left the table's stream.
struct LocalPublisher {
    inner: EventBridgePublisher,
    print: bool,
}

#[async_trait::async_trait]
impl EventPublisher for LocalPublisher {
    async fn publish(&self, events: &[StatusEvent]) -> Result<(), PortError> {
        self.inner.publish(events).await?;
        for e in events.iter().filter(|_| self.print) {
            let policies = e.decision.as_ref().map(|d| d.deciding_policy_ids.join(", ")).unwrap_or_default();
            let by = e.approval.as_ref().map_or(e.actor.as_str(), |a| a.actor.as_str());
            println!(
                "event  {:<34} {}  node {}  by {}  {}  (from the table's stream)",
                e.detail_type(),
                e.request_id,
                e.node_id,
                by,
                policies
            );
            if let Some(g) = e.grant.as_ref().filter(|g| g.detached_at.is_some()) {
                match g.target {
                    jit_shared::domain::grant::GrantTarget::SessionRole { .. } => {
                        println!("       access ended: its credentials' policy refuses after the deadline")
                    }
                    _ => println!("       IAM inline policy {} removed", g.policy_name),
                }
            }
        }
        Ok(())
    }
}

/// Writes the AWS credentials file (one profile per principal) and `dev.env`.
pub fn write_state(dir: &Path, stack: &LocalStack, emulator_endpoint: &str) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    let mut creds =
        String::from("# Written by `make dev`: credentials issued by the local emulator, valid only there.\n");
    for p in &stack.provisioned.profiles {
        creds.push_str(&format!(
            "\n[{}]\n# {}\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            p.name, p.caller_arn, p.credentials.access_key_id, p.credentials.secret_access_key
        ));
        if let Some(t) = &p.credentials.session_token {
            creds.push_str(&format!("aws_session_token = {t}\n"));
        }
    }
    let creds_path = dir.join("credentials");
    std::fs::write(&creds_path, creds).map_err(|e| format!("writing {}: {e}", creds_path.display()))?;
    let env_path = dir.join("dev.env");
    let env = format!(
        "JIT_API_URL={}\nAWS_SHARED_CREDENTIALS_FILE={}\nAWS_REGION={}\nJIT_EMULATOR_URL={emulator_endpoint}\n",
        stack.api_url,
        creds_path.display(),
        crate::emulator::REGION
    );
    std::fs::write(&env_path, env).map_err(|e| format!("writing {}: {e}", env_path.display()))?;
    Ok((env_path, creds_path))
}

pub fn run_dev(args: DevArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dev(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make dev: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dev(args: DevArgs) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let zone = jit_shared::policy::local_time::PolicyTimeZone::named(&args.policy_time_zone)
        .map_err(|e| format!("--policy-time-zone: {e}"))?;
    let policies = PolicySet::load_dir(&args.policies).map_err(|e| e.to_string())?.with_time_zone(zone);
    let seed_text = std::fs::read_to_string(&args.seed).map_err(|e| format!("reading {}: {e}", args.seed.display()))?;
    let seed = seed::parse(&args.seed.display().to_string(), &seed_text)?;
    println!("starting the AWS emulator (moto) on 127.0.0.1 ...");
    let emulator = Emulator::start()?;
    let sdk = emulator.sdk_config().await;
    let stack = start(StartOptions {
        sdk: &sdk,
        policies,
        seed,
        prefix: "jit-local".into(),
        port: args.port,
        print_events: true,
        pending_timeout_minutes: args.pending_timeout_minutes,
        max_active_requests: args.max_active_requests,
        sweeper: true,
        grant_mode: args.grant_mode,
    })
    .await?;
    let (env_path, creds_path) = write_state(&args.state_dir, &stack, &emulator.endpoint)?;
    let p = &stack.provisioned;
    println!("\njit-node-access is running locally (no AWS account involved)\n");
    println!("  API (SigV4, like API Gateway AWS_IAM)  {}", stack.api_url);
    println!("  AWS emulator (moto)                    {}", emulator.endpoint);
    println!("  DynamoDB table                         {}", p.table);
    println!("  EventBridge bus                        {}", p.bus);
    println!("  approver mail SNS topic                {}", p.approvals_topic_arn);
    println!("  requester mail SNS topic               {}", p.requester_topic_arn);
    println!("  outbox (each person's mail)            {}/outbox", stack.api_url);
    println!("  Teams cards (each person's webhook)    {}/teams.json", stack.api_url);
    println!("  Amazon Q chat-topic notices            {}/chat-notifications.json", stack.api_url);
    println!("  policies                               {}", args.policies.display());
    println!(
        "  grant mode                             {} (session role {})",
        args.grant_mode.as_str(),
        p.session_role_name
    );
    if !p.member_accounts.is_empty() {
        println!(
            "  member accounts (seed nodes by ARN)    {} (session, reader and teardown roles each)",
            p.member_accounts.join(", ")
        );
    }
    println!("  environment                            {}", env_path.display());
    println!("  credentials (one profile each)         {}", creds_path.display());
    for prof in &p.profiles {
        println!("    profile {:<12} {}", prof.name, prof.caller_arn);
    }
    println!("\nTry `make demo` in another terminal. Ctrl-C stops everything.\n");
    let _ = tokio::signal::ctrl_c().await;
    println!("\nstopping: the emulator and its data go away");
    drop(stack);
    drop(emulator);
    Ok(())
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn only_a_loopback_name_reads_the_local_records() {
        let cases = [
            (Some("127.0.0.1:8080"), true),
            (Some("localhost:8080"), true),
            (Some("LOCALHOST"), true),
            (Some("[::1]:8080"), true),
            (Some("[::1]"), true),
            (Some("evil.example:8080"), false),
            (Some("127.0.0.1.evil.example:8080"), false),
            (Some(""), false),
            (None, false),
        ];
        for (host, expected) in cases {
            let value = host.map(|h| hyper::header::HeaderValue::from_str(h).unwrap());
            assert_eq!(loopback_host(value.as_ref()), expected, "{host:?}");
        }
    }
}
