//! `make dev`: the whole system on this machine. The emulator (moto) plays AWS; this process
//! plays API Gateway (SigV4-authenticated HTTP API on 127.0.0.1) and the Lambda service
//! (EventBridge → SQS → the evaluation function's handler, with the real event envelopes).

pub mod provision;
pub mod seed;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jit_shared::adapters::dynamodb::DynamoStore;
use jit_shared::adapters::eventbridge::EventBridgePublisher;
use jit_shared::adapters::principals::AwsPrincipalDirectory;
use jit_shared::api::{self, ApiRequest, ApiResponse};
use jit_shared::domain::ids::NodeId;
use jit_shared::evaluation::{self, EvaluationDeps};
use jit_shared::events::EventEnvelope;
use jit_shared::intake::IntakeDeps;
use jit_shared::policy::{NodeInfo, PolicySet};
use jit_shared::ports::{DirectoryError, NodeDirectory};
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
    /// Where dev.env and the credentials file go.
    #[arg(long, default_value = ".jit")]
    pub state_dir: PathBuf,
}

/// Stand-in for node tags: moto assigns its own EC2 instance ids and cannot register hybrid
/// (`mi-`) nodes, so the local stack serves the seed file's nodes. The deployed stack uses
/// `AwsNodeDirectory` (Resource Groups Tagging API and SSM).
#[derive(Debug, Clone)]
pub struct SeedNodeDirectory(pub BTreeMap<String, BTreeMap<String, String>>);

#[async_trait::async_trait]
impl NodeDirectory for SeedNodeDirectory {
    async fn describe(&self, node: &NodeId) -> Result<NodeInfo, DirectoryError> {
        self.0
            .get(node.as_str())
            .map(|tags| NodeInfo { node_id: node.clone(), tags: tags.clone() })
            .ok_or_else(|| DirectoryError::NotFound(format!("node {node}")))
    }
}

struct Adapters {
    store: DynamoStore,
    events: EventBridgePublisher,
    principals: AwsPrincipalDirectory,
    nodes: SeedNodeDirectory,
    policies: PolicySet,
    keys: HashMap<String, IssuedKey>,
}

impl Adapters {
    fn intake(&self) -> IntakeDeps<'_> {
        IntakeDeps { store: &self.store, events: &self.events, directory: &self.principals }
    }
    fn evaluation(&self) -> EvaluationDeps<'_> {
        EvaluationDeps { store: &self.store, events: &self.events, principals: &self.principals, nodes: &self.nodes, policies: &self.policies }
    }
}

/// A running local stack (used by `jit dev` and by the integration tests).
pub struct LocalStack {
    pub api_url: String,
    pub provisioned: Provisioned,
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
    /// Print each status-change event as it happens.
    pub print_events: bool,
}

pub async fn start(opts: StartOptions<'_>) -> Result<LocalStack, String> {
    let provisioned = provision::provision(opts.sdk, &opts.seed, &opts.prefix).await?;
    let sdk = opts.sdk;
    let adapters = Arc::new(Adapters {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &provisioned.table),
        events: EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(sdk), &provisioned.bus),
        principals: AwsPrincipalDirectory::new(aws_sdk_iam::Client::new(sdk))
            .with_identity_store(aws_sdk_identitystore::Client::new(sdk), LOCAL_IDENTITY_STORE_ID),
        nodes: SeedNodeDirectory(opts.seed.nodes.iter().map(|n| (n.id.clone(), n.tags.clone())).collect()),
        policies: opts.policies,
        keys: provisioned.issued_keys(),
    });
    let listener = TcpListener::bind(("127.0.0.1", opts.port)).await.map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", opts.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut tasks = vec![tokio::spawn(serve(listener, adapters.clone()))];
    tasks.push(tokio::spawn(evaluate_loop(sqs.clone(), provisioned.submitted_queue_url.clone(), adapters)));
    if opts.print_events {
        tasks.push(tokio::spawn(event_log_loop(sqs, provisioned.status_queue_url.clone())));
    }
    Ok(LocalStack { api_url: format!("http://{addr}"), provisioned, tasks })
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
    builder.body(Full::new(Bytes::from(resp.body.to_string()))).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Plays API Gateway with `AWS_IAM` authorization: only a valid SigV4 signature by an issued
/// key reaches the API, as that key's principal.
async fn handle_http(req: Request<Incoming>, adapters: Arc<Adapters>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let err = jit_shared::domain::errors::FieldError::new("body", "BodyTooLarge", "the body must be at most 64 KiB");
            return Ok(http_response(&ApiResponse::error(&err.into())));
        }
    };
    let headers: Vec<(String, String)> = parts.headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned()))).collect();
    let now = jit_shared::now();
    let caller = match sigv4::verify(&adapters.keys, parts.method.as_str(), parts.uri.path(), parts.uri.query(), &headers, &body, now) {
        Ok(arn) => arn,
        Err(e) => {
            let body = serde_json::json!({ "error": { "code": "Forbidden", "message": format!("request not authenticated: {e}"), "field": null } });
            return Ok(http_response(&ApiResponse { status: 403, headers: vec![("content-type".into(), "application/json".into())], body }));
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
    let api_request =
        ApiRequest { method: parts.method.to_string(), path: parts.uri.path().to_owned(), query, headers, body: body.to_vec(), caller: Some(caller) };
    let response = api::handle(&adapters.intake(), &api_request, now).await;
    Ok(http_response(&response))
}

/// Plays the Lambda service for the evaluation function: the rule's SQS target receives the
/// EventBridge envelope exactly as a Lambda target would, and a failed evaluation is retried
/// when the message becomes visible again.
async fn evaluate_loop(sqs: aws_sdk_sqs::Client, queue_url: String, adapters: Arc<Adapters>) {
    loop {
        let received = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).wait_time_seconds(1).visibility_timeout(5).send().await;
        let Ok(out) = received else {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        };
        for m in out.messages() {
            let Some(body) = m.body() else { continue };
            let done = match serde_json::from_str::<EventEnvelope>(body) {
                Ok(envelope) => match evaluation::handle_submitted_event(&adapters.evaluation(), &envelope, jit_shared::now()).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, kind = e.lambda_error_type(), "evaluation failed; the event will be redelivered");
                        e.lambda_error_type() != jit_shared::domain::errors::RETRYABLE
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

async fn event_log_loop(sqs: aws_sdk_sqs::Client, queue_url: String) {
    loop {
        let Ok(out) = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).wait_time_seconds(1).send().await else {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            continue;
        };
        for m in out.messages() {
            if let Some(Ok(env)) = m.body().map(serde_json::from_str::<EventEnvelope>) {
                let policies = env.detail.decision.as_ref().map(|d| d.deciding_policy_ids.join(", ")).unwrap_or_default();
                println!("event  {:<26} {}  node {}  by {}  {}", env.detail_type, env.detail.request_id, env.detail.node_id, env.detail.actor, policies);
            }
            if let Some(handle) = m.receipt_handle() {
                let _ = sqs.delete_message().queue_url(&queue_url).receipt_handle(handle).send().await;
            }
        }
    }
}

/// Writes the AWS credentials file (one profile per principal) and `dev.env`.
pub fn write_state(dir: &Path, stack: &LocalStack, emulator_endpoint: &str) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
    let mut creds = String::from("# Written by `make dev`: credentials issued by the local emulator, valid only there.\n");
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
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")))
        .init();
    let policies = PolicySet::load_dir(&args.policies).map_err(|e| e.to_string())?;
    let seed_text = std::fs::read_to_string(&args.seed).map_err(|e| format!("reading {}: {e}", args.seed.display()))?;
    let seed = seed::parse(&args.seed.display().to_string(), &seed_text)?;
    println!("starting the AWS emulator (moto) on 127.0.0.1 ...");
    let emulator = Emulator::start()?;
    let sdk = emulator.sdk_config().await;
    let stack = start(StartOptions { sdk: &sdk, policies, seed, prefix: "jit-local".into(), port: args.port, print_events: true }).await?;
    let (env_path, creds_path) = write_state(&args.state_dir, &stack, &emulator.endpoint)?;
    let p = &stack.provisioned;
    println!("\njit-node-access is running locally (no AWS account involved)\n");
    println!("  API (SigV4, like API Gateway AWS_IAM)  {}", stack.api_url);
    println!("  AWS emulator (moto)                    {}", emulator.endpoint);
    println!("  DynamoDB table                         {}", p.table);
    println!("  EventBridge bus                        {}", p.bus);
    println!("  approvals SNS topic                    {}", p.approvals_topic_arn);
    println!("  policies                               {}", args.policies.display());
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
