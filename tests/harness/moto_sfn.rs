//! The emulator in Step Functions execution mode, for `tests/state_machine.rs`: a moto server of
//! its own, whose interpreter runs the ASL, and a fake Lambda that answers the state machine's
//! `lambda:invoke` tasks with results a test queued.
//!
//! How moto 5.2.5 runs a state machine (`moto/stepfunctions/parser/`): `POST /moto-api/config`
//! with `{"stepfunctions": {"execute_state_machine": true}}` switches the whole server to its ASL
//! interpreter, which makes each task's service call with boto3 against
//! `http://localhost:$MOTO_PORT` (`parser/asl/utils/boto_client.py`). moto's own Lambda queue
//! (`/moto-api/static/lambda-simple/response`) only queues return values, never a function error,
//! so it cannot produce the `Retryable` and `NonRetryable` errors the ASL's `Retry` and `Catch`
//! match on. Here `MOTO_PORT` names the fake Lambda instead: an invocation gets the next result
//! queued for its function (a return value, or a function error with its `errorType`, as the
//! Lambda runtime reports one) and is recorded with its payload; every other call (the alerts'
//! `sns:publish`) is forwarded to moto unchanged.
//!
//! Both the switch and `MOTO_PORT` belong to the whole moto process, so this is a separate
//! instance from `emulator()`, started once per test binary and stopped with it.
#![allow(clippy::expect_used, clippy::panic, reason = "the harness stops a test loudly when the emulator cannot start")]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// What one invocation of a function returns.
#[derive(Clone, Debug)]
pub enum TaskResult {
    /// The function's return value (the `Payload` of the invocation).
    Returns(Value),
    /// A function error: Lambda answers with `X-Amz-Function-Error: Unhandled` and the body
    /// `{"errorType": ..., "errorMessage": ...}`; Step Functions names the error by `errorType`.
    Fails { error_type: String, message: String },
}

#[derive(Default)]
struct Functions {
    queued: HashMap<String, VecDeque<TaskResult>>,
    received: HashMap<String, Vec<Value>>,
}

type Shared = Arc<Mutex<Functions>>;

pub struct SfnEmulator {
    /// moto itself (the SDK clients of the tests talk to it).
    pub endpoint: String,
    functions: Shared,
    _moto: Child,
}

static SFN: OnceLock<Result<SfnEmulator, String>> = OnceLock::new();

/// This test binary's moto in execution mode (see the module documentation).
pub fn sfn_emulator() -> &'static SfnEmulator {
    match SFN.get_or_init(SfnEmulator::start) {
        Ok(e) => e,
        Err(message) => panic!("the AWS emulator in Step Functions execution mode could not start: {message}"),
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

impl SfnEmulator {
    fn start() -> Result<Self, String> {
        let functions = Shared::default();
        let lambda = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port on 127.0.0.1: {e}"))?;
        let lambda_port = lambda.local_addr().map_err(|e| e.to_string())?.port();
        let moto_port = free_port()?;
        serve_fake_lambda(lambda, functions.clone(), moto_port)?;

        let bin = jit_cli::emulator::moto_server_path();
        let python = bin.with_file_name("python");
        let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../local/moto_server.py");
        if !python.exists() || !launcher.exists() {
            return Err(format!("the emulator needs {} and {}; run `make venv`", python.display(), launcher.display()));
        }
        // As `jit_cli::emulator::Emulator::start`: a watchdog shell stops moto when this process
        // exits. MOTO_PORT sends the interpreter's task calls to the fake Lambda; TZ=UTC because
        // moto's Wait compares the UTC timestamp with the server's local, naive `now()`.
        let script = format!(
            "\"$0\" \"$1\" -H 127.0.0.1 -p {moto_port} >/dev/null 2>&1 & m=$!; while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null",
            parent = std::process::id()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&python)
            .arg(&launcher)
            .env("MOTO_PORT", lambda_port.to_string())
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
        let emulator = Self { endpoint: format!("http://127.0.0.1:{moto_port}"), functions, _moto: child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", moto_port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("moto did not listen on 127.0.0.1:{moto_port} within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // moto answers with its `batch` and `lambda` settings only, so a 2xx is all there is to
        // check; an execution that never enters a state shows a switch that did not take.
        post_json(moto_port, "/moto-api/config", r#"{"stepfunctions": {"execute_state_machine": true}}"#)?;
        Ok(emulator)
    }

    /// SDK configuration pointed at this moto, with the emulator's dummy credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let credentials = aws_credential_types::Credentials::new("testing", "testing", None, None, "moto");
        jit_cli::emulator::sdk_config_for(&self.endpoint, credentials).await
    }

    /// Queues what the next invocations of `function` (its ARN, as the state machine names it)
    /// return, in order. An invocation with nothing queued fails with `errorType`
    /// `NothingQueued`.
    pub fn queue(&self, function: &str, results: impl IntoIterator<Item = TaskResult>) {
        let mut functions = self.functions.lock().unwrap_or_else(PoisonError::into_inner);
        functions.queued.entry(function.to_owned()).or_default().extend(results);
    }

    /// The payloads `function` was invoked with, in order.
    pub fn invocations(&self, function: &str) -> Vec<Value> {
        let functions = self.functions.lock().unwrap_or_else(PoisonError::into_inner);
        functions.received.get(function).cloned().unwrap_or_default()
    }
}

/// A blocking `POST` to moto's own API; returns the response body.
fn post_json(port: u16, path: &str, body: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 2") => Ok(body.to_owned()),
        _ => Err(format!("POST {path}: {response}")),
    }
}

/// The fake Lambda, on a runtime thread of its own (test runtimes end with their tests).
fn serve_fake_lambda(listener: TcpListener, functions: Shared, moto_port: u16) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
            let moto: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (functions, moto) = (functions.clone(), moto.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(req, functions.clone(), moto.clone(), moto_port));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
    });
    Ok(())
}

/// The function a Lambda `Invoke` names: `POST /2015-03-31/functions/<name>/invocations`, the
/// name (here an ARN) percent-encoded.
fn invoked_function(path: &str) -> Option<String> {
    let name = path.strip_prefix("/2015-03-31/functions/")?.strip_suffix("/invocations")?;
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn answer(
    req: Request<Incoming>,
    functions: Shared,
    moto: Client<HttpConnector, Full<Bytes>>,
    moto_port: u16,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if let Some(function) = invoked_function(parts.uri.path()) {
        let payload =
            serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
        let result = {
            let mut functions = functions.lock().unwrap_or_else(PoisonError::into_inner);
            functions.received.entry(function.clone()).or_default().push(payload);
            functions.queued.get_mut(&function).and_then(VecDeque::pop_front)
        };
        let result = result.unwrap_or_else(|| TaskResult::Fails {
            error_type: "NothingQueued".into(),
            message: format!("the test queued no result for this invocation of {function}"),
        });
        let response = Response::builder().status(200).header("content-type", "application/json");
        let response = match result {
            TaskResult::Returns(value) => response.body(Full::new(Bytes::from(value.to_string()))),
            TaskResult::Fails { error_type, message } => response
                .header("x-amz-function-error", "Unhandled")
                .body(Full::new(Bytes::from(error_body(&error_type, &message)))),
        };
        return Ok(response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))));
    }
    Ok(forward(parts, body, &moto, moto_port).await.unwrap_or_else(|e| {
        let mut response = Response::new(Full::new(Bytes::from(format!("forwarding to moto failed: {e}"))));
        *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        response
    }))
}

/// The body of a function error, `errorType` first like the Lambda runtime's (and
/// `events/lifecycle-record-failure-task.json`).
fn error_body(error_type: &str, message: &str) -> String {
    format!(r#"{{"errorType":{},"errorMessage":{}}}"#, Value::from(error_type), Value::from(message))
}

/// Any other call, to moto as it came.
async fn forward(
    parts: hyper::http::request::Parts,
    body: Bytes,
    moto: &Client<HttpConnector, Full<Bytes>>,
    moto_port: u16,
) -> Result<Response<Full<Bytes>>, String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::builder().method(parts.method).uri(format!("http://127.0.0.1:{moto_port}{path}"));
    for (name, value) in &parts.headers {
        request = request.header(name, value);
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = moto.request(request).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    let mut response = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
            response = response.header(name, value);
        }
    }
    response.body(Full::new(body)).map_err(|e| e.to_string())
}
