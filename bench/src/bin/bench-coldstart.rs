//! Cold start of each function binary: the time from spawning the process until it first polls
//! the Lambda Runtime API (`GET /2018-06-01/runtime/invocation/next`, answered by a stand-in on
//! 127.0.0.1), and its peak RSS at that moment (`VmHWM`). Absolute times move with the machine,
//! so the goals are ratios measured in the same run: to the floor (`bench-floor`, a bare
//! `lambda_runtime` function of the same profile) and to a minimal Python boto3 handler that
//! builds the same clients (`bench/python/coldstart_handler.py`).
//!
//! Usage: `bench-coldstart <dir of release binaries> <python> [runs]`. The floor and the functions
//! run in rounds, one process of each per round; a function's ratio is the median of its time over
//! the floor's in the same round. The page cache is warm after the first round (as on a Lambda host
//! that keeps the image); medians are reported.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jit_bench::{quantile, row};

/// Each function and the boto3 clients its Python twin builds (the SDK clients it links).
const FUNCTIONS: [(&str, &[&str]); 8] = [
    ("submit-request", &["dynamodb", "iam", "identitystore"]),
    ("evaluate-request", &["dynamodb", "iam", "identitystore", "resourcegroupstaggingapi", "ssm"]),
    ("approve-request", &["dynamodb", "iam", "identitystore", "ssm"]),
    ("notify", &["dynamodb", "iam", "identitystore", "sns", "ssm"]),
    ("sweeper", &["dynamodb", "iam", "ssm", "stepfunctions"]),
    ("lifecycle", &["dynamodb", "iam", "ssm", "stepfunctions"]),
    ("publish-events", &["events"]),
    ("issue-credentials", &["dynamodb", "sts"]),
];

/// The floor binary, in the same directory as the functions.
const FLOOR: &str = "bench-floor";

/// What a deployed function finds in its environment (template.yaml), pointing nowhere but
/// loopback: nothing is called before the first poll, and nothing may leave the machine.
fn lambda_env(cmd: &mut Command, runtime_api: &str, function: &str) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_SESSION_TOKEN", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("JIT_TABLE_NAME", "jit-requests")
        .env("JIT_EVENT_BUS_NAME", "jit-events")
        .env("JIT_ACCOUNT_ID", "123456789012")
        .env("JIT_IDENTITY_STORE_ID", "d-1234567890")
        .env("JIT_PENDING_TIMEOUT_MINUTES", "60")
        .env("JIT_SIGNING_KEY_PARAMETER", "/jit/signing-key")
        .env("JIT_API_URL", "https://api.example.com")
        .env("JIT_APPROVER_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:jit-approvals")
        .env("JIT_REQUESTER_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:jit-requester-notices")
        .env("JIT_STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:jit-lifecycle")
        .env("JIT_APPROVAL_KEY_ID", "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
}

/// The Runtime API stand-in: reports the moment each first `next` poll arrives and leaves the
/// caller waiting (a Lambda environment with no event yet).
fn runtime_api() -> Result<(String, mpsc::Receiver<Instant>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(stream);
            if reader.read_line(&mut line).is_ok() && line.contains("/runtime/invocation/next") {
                let _ = tx.send(Instant::now());
            }
            // Keep the connection open until the process is killed.
            held.push(reader);
            if held.len() > 64 {
                held.remove(0);
            }
        }
    });
    Ok((addr, rx))
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Run {
    millis: f64,
    rss_mib: f64,
}

fn measure_once(mut cmd: Command, polls: &mpsc::Receiver<Instant>) -> Result<Run, String> {
    while polls.try_recv().is_ok() {}
    let started = Instant::now();
    let mut child: Child = cmd.spawn().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let polled = polls.recv_timeout(Duration::from_secs(30));
    let rss = peak_rss_kib(child.id());
    let _ = child.kill();
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let polled = polled.map_err(|_| {
        format!("{cmd:?} never polled the Runtime API; it said: {}", String::from_utf8_lossy(&output.stderr))
    })?;
    let rss = rss.ok_or_else(|| "no /proc status for the process".to_owned())?;
    #[allow(clippy::cast_precision_loss, reason = "sizes and counts are far inside the exact range of f64")]
    Ok(Run { millis: polled.duration_since(started).as_secs_f64() * 1000.0, rss_mib: rss as f64 / 1024.0 })
}

fn measure(runs: usize, make: impl Fn() -> Command, polls: &mpsc::Receiver<Instant>) -> Result<(f64, f64), String> {
    let mut times = Vec::new();
    let mut peak: f64 = 0.0;
    for _ in 0..runs {
        let r = measure_once(make(), polls)?;
        times.push(r.millis);
        peak = peak.max(r.rss_mib);
    }
    times.sort_by(f64::total_cmp);
    Ok((quantile(&times, 0.5).unwrap_or_default(), peak))
}

/// One binary's runs, taken in rounds with the others.
#[derive(Default)]
struct Series {
    millis: Vec<f64>,
    peak_rss_mib: f64,
}

impl Series {
    fn median(&self) -> f64 {
        let mut sorted = self.millis.clone();
        sorted.sort_by(f64::total_cmp);
        quantile(&sorted, 0.5).unwrap_or_default()
    }

    /// The median of this binary's time over the floor's in the same round: a machine that
    /// slows down for a while slows both sides of each pair.
    fn paired_ratio(&self, floor: &Series) -> f64 {
        let mut ratios: Vec<f64> = self.millis.iter().zip(&floor.millis).map(|(m, f)| m / f).collect();
        ratios.sort_by(f64::total_cmp);
        quantile(&ratios, 0.5).unwrap_or_default()
    }
}

/// Runs every binary once per round, the floor included, starting each round one binary later,
/// so that the floor and the functions see the same machine (a noisy neighbour, a frequency
/// change) rather than the floor a quiet minute and a function a busy one.
fn measure_rounds(
    runs: usize,
    makers: &[Box<dyn Fn() -> Command + '_>],
    polls: &mpsc::Receiver<Instant>,
) -> Result<Vec<Series>, String> {
    let mut series: Vec<Series> = makers.iter().map(|_| Series::default()).collect();
    for round in 0..runs {
        for k in 0..makers.len() {
            let i = (round + k) % makers.len();
            let r = measure_once(makers[i](), polls)?;
            series[i].millis.push(r.millis);
            series[i].peak_rss_mib = series[i].peak_rss_mib.max(r.rss_mib);
        }
    }
    Ok(series)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(bin_dir), Some(python)) = (args.get(1), args.get(2)) else {
        return Err("usage: bench-coldstart <dir of release function binaries> <python with boto3> [runs]".into());
    };
    let runs: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(20);
    let handler = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/coldstart_handler.py");
    let (api, polls) = runtime_api()?;
    let command = format!("target/release/bench-coldstart {bin_dir} {python} {runs}");
    let spawn = |binary: PathBuf, function: &'static str| {
        let api = api.clone();
        move || {
            let mut c = Command::new(&binary);
            lambda_env(&mut c, &api, function);
            c
        }
    };
    let mut makers: Vec<Box<dyn Fn() -> Command + '_>> =
        vec![Box::new(spawn(PathBuf::from(bin_dir).join(FLOOR), FLOOR))];
    for (function, _) in FUNCTIONS {
        makers.push(Box::new(spawn(PathBuf::from(bin_dir).join(function), function)));
    }
    let series = measure_rounds(runs, &makers, &polls)?;
    let (floor, functions) = series.split_first().ok_or("no floor series")?;
    let floor_ms = floor.median();
    row(
        "Cold start to first Runtime API poll, bare lambda_runtime function (the floor)",
        &format!("{floor_ms:.1} ms, {:.1} MiB", floor.peak_rss_mib),
        "",
        &command,
    );
    for ((function, clients), measured) in FUNCTIONS.iter().zip(functions) {
        let rust_ms = measured.median();
        // Python is ~100× slower per run; fewer runs keep the bench short. It runs after the
        // Rust rounds, so its processes do not disturb them.
        let (py_ms, py_rss) = measure(
            runs.div_ceil(4).max(3),
            || {
                let mut c = Command::new(python);
                c.arg(&handler).args(*clients);
                lambda_env(&mut c, &api, function);
                c
            },
            &polls,
        )?;
        let (to_floor, to_python) = (measured.paired_ratio(floor), py_ms / rust_ms);
        let met = |ok: bool| if ok { "" } else { " (goal missed)" };
        row(
            &format!("Cold start to first Runtime API poll, {function}"),
            &format!(
                "{to_floor:.2}× the floor{}, {to_python:.0}× faster than Python boto3{} ({rust_ms:.1} ms; floor {floor_ms:.1} ms; Python {py_ms:.0} ms)",
                met(to_floor <= 1.5),
                met(to_python >= 30.0)
            ),
            "≤ 1.5× the floor, ≥ 30× Python",
            &command,
        );
        row(
            &format!("Peak RSS at first poll, {function}"),
            &format!(
                "{:.1} MiB (floor {:.1} MiB; Python boto3: {py_rss:.1} MiB)",
                measured.peak_rss_mib, floor.peak_rss_mib
            ),
            "< 40 MB",
            &command,
        );
    }
    Ok(())
}
