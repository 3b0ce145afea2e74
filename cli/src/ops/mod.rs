//! The operator and approver commands of `jit`: request access, follow it, decide, connect.
//! Each calls the HTTP API (`crate::api`) with the caller's AWS credentials; `settings` says where
//! the API is and whom to sign as, `render` prints, `wait` follows a request, `connect` starts
//! sessions. docs/cli.md documents every command and the exit statuses (`exit`).

pub mod connect;
pub mod render;
pub mod settings;
pub mod wait;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use jit_shared::domain::approval::Comment;
use jit_shared::domain::ids::{NodeId, Reason, RequestId};

use crate::api::{self, Api, ApiError};
use connect::{ConnectOptions, CredentialsFormat, Target};
use render::{str_of, Output};
use settings::ApiArgs;

/// Exit statuses (docs/cli.md).
pub mod exit {
    /// Done; for `jit request --wait`: Approved.
    pub const OK: u8 = 0;
    /// The API refused (the message names the field and the code), could not be reached, no
    /// credentials were found, or the setup is broken (config file, credentials file, root certificates).
    pub const ERROR: u8 = 1;
    /// A bad flag or argument, or nothing says where the API is: no URL or Region (clap's own usage status).
    pub const USAGE: u8 = 2;
    /// `request --wait`: Rejected.
    pub const REJECTED: u8 = 3;
    /// `request --wait`: Failed (no applicable policy, duration over the maximum, unknown node, …).
    pub const FAILED: u8 = 4;
    /// `request --wait`: Expired (nobody decided in time, or the access already ended).
    pub const EXPIRED: u8 = 5;
    /// `request --wait`: Cancelled or Revoked.
    pub const ENDED: u8 = 6;
    /// `request --wait --timeout`: still undecided when the wait timed out.
    pub const TIMED_OUT: u8 = 7;
    /// Interrupted (Ctrl-C) while waiting; the request goes on.
    pub const INTERRUPTED: u8 = 130;
}

/// The exit status a final request status means.
pub fn exit_for_status(status: &str) -> u8 {
    match status {
        "Approved" => exit::OK,
        "Rejected" => exit::REJECTED,
        "Failed" => exit::FAILED,
        "Expired" => exit::EXPIRED,
        "Cancelled" | "Revoked" => exit::ENDED,
        _ => exit::TIMED_OUT,
    }
}

/// A command that did not succeed: its exit status and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }
}

impl From<settings::SetupError> for Failure {
    fn from(e: settings::SetupError) -> Self {
        match e {
            settings::SetupError::Usage(message) => Self::usage(message),
            settings::SetupError::Environment(message) => Self::new(exit::ERROR, message),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::new(exit::ERROR, e.to_string())
    }
}

const REQUEST_EXAMPLES: &str = "Examples:
  jit request i-0123456789abcdef0 --reason \"Deploy hotfix CHG-42\" --wait
  jit request i-0fedcba9876543210 --reason \"DB migration\" --duration 2h --wait --timeout 30m
  id=$(jit request mi-0123456789abcdef0 --reason \"Rotate logs\")   # prints the request id

Exit status with --wait: 0 Approved, 3 Rejected, 4 Failed, 5 Expired, 6 Cancelled or Revoked,
7 still undecided at --timeout, 130 interrupted; 1 API or network error, 2 usage error.";

#[derive(Subcommand, Debug)]
pub enum OperatorCommand {
    /// Ask for access to a node; with --wait, follow it until it is decided.
    #[command(after_help = REQUEST_EXAMPLES)]
    Request(RequestArgs),
    /// Show one request: status, approval level, decisions, grant.
    #[command(
        after_help = "Examples:\n  jit status req-0123456789abcdef0123456789abcdef\n  jit status req-… --output json | jq .approval"
    )]
    Status(IdArgs),
    /// List your own requests, newest first.
    #[command(after_help = "Examples:\n  jit list\n  jit list --status Pending\n  jit list --all --output json")]
    List(ListArgs),
    /// List the requests waiting on you as an approver (or, --decided, those you decided).
    #[command(
        after_help = "Examples:\n  jit approvals\n  jit approvals --decided --output json\n  jit approvals --review          # break-glass access to acknowledge or flag"
    )]
    Approvals(ApprovalsArgs),
    /// Approve a request at its current level.
    #[command(
        after_help = "Examples:\n  jit approve req-0123456789abcdef0123456789abcdef --comment \"CHG-42 checked\""
    )]
    Approve(DecideArgs),
    /// Reject a request: one rejection at any level ends it Rejected.
    #[command(
        after_help = "Examples:\n  jit reject req-0123456789abcdef0123456789abcdef --comment \"Use the staging node\""
    )]
    Reject(DecideArgs),
    /// Ask for more time on your Approved request: decided like a new request for the new total.
    #[command(after_help = "Examples:
  jit extend req-0123456789abcdef0123456789abcdef --duration 30m --reason \"the migration runs longer\"
  jit extend req-… --duration 1h --reason \"…\" --wait

The extension is a request of its own (extends: the original). Approved, the original's deadline
moves (its policy or its next credentials); refused, nothing changes.")]
    Extend(ExtendArgs),
    /// Withdraw your own Pending request, or a scheduled one before it starts.
    #[command(
        after_help = "Examples:\n  jit cancel req-0123456789abcdef0123456789abcdef --comment \"Not needed any more\""
    )]
    Cancel(DecideArgs),
    /// End Approved access now (an approver of the request, or an administrator).
    #[command(
        after_help = "Examples:\n  jit revoke req-0123456789abcdef0123456789abcdef --comment \"Incident closed\""
    )]
    Revoke(DecideArgs),
    /// Review a break-glass grant (an approver of its node, or an administrator): acknowledge or flag.
    #[command(after_help = "Examples:
  jit review req-0123456789abcdef0123456789abcdef --acknowledge --comment \"INC-7 was real\"
  jit review req-… --flag --comment \"no incident on record\"

A flag raises the BreakGlassFlagged alarm; an open review past its due time raises BreakGlassUnreviewed.")]
    Review(ReviewArgs),
    /// Show a request's audit trail: every change, who made it, when.
    #[command(after_help = "Examples:\n  jit audit req-0123456789abcdef0123456789abcdef")]
    Audit(IdArgs),
    /// Start a Session Manager session on the node of an Approved request (or print how).
    #[command(after_help = "Examples:
  jit connect req-0123456789abcdef0123456789abcdef
  jit connect i-0123456789abcdef0        # your newest Approved request for the node
  jit connect req-… --print              # print the command (and, in credentials mode, the secrets)

Runs `aws ssm start-session` when `aws` and `session-manager-plugin` are on PATH (never for the
local stack); otherwise prints the commands to run.")]
    Connect(ConnectArgs),
    /// Get the session-role credentials of an Approved request (credentials mode).
    #[command(after_help = "Examples:
  eval \"$(jit credentials req-0123456789abcdef0123456789abcdef --format env)\"
  jit credentials req-… --format json

As an AWS profile, for any AWS tool (sign jit itself with another profile):
  [profile jit-web]
  credential_process = jit credentials req-… --format credential-process --profile me

Each call issues new credentials (audited).")]
    Credentials(CredentialsArgs),
    /// Save the API URL, Region, profile and session document for later commands.
    #[command(after_help = "Examples:
  jit configure --api-url https://a1b2c3.execute-api.eu-west-1.amazonaws.com --profile ops
  jit configure --profile \"\"        # forget the profile
  jit configure                     # show the file and what it holds

The file: ~/.config/jit-node-access/config.json ($XDG_CONFIG_HOME, %APPDATA%; $JIT_CONFIG names another).")]
    Configure(settings::ConfigFile),
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  jit completions bash > ~/.local/share/bash-completion/completions/jit
  jit completions zsh > \"${fpath[1]}/_jit\"
  jit completions fish > ~/.config/fish/completions/jit.fish")]
    Completions(CompletionsArgs),
}

/// A value the shared domain type accepts, as typed; its error names what is wrong.
fn valid<T>(raw: &str) -> Result<String, String>
where
    T: TryFrom<String, Error = jit_shared::domain::errors::FieldError>,
    String: From<T>,
{
    T::try_from(raw.to_owned()).map(String::from).map_err(|e| e.message)
}

fn parse_target(raw: &str) -> Result<Target, String> {
    connect::parse_target(raw)
}

/// `90`, `90m`, `2h`, `1d`, `30s` as seconds; a bare number is minutes.
pub fn parse_span(raw: &str) -> Result<u64, String> {
    let text = raw.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "m"),
    };
    let value: u64 = number.parse().map_err(|_| format!("'{raw}' is not a duration: write 90, 90m, 2h or 1d"))?;
    let scale = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{raw}': unknown unit '{unit}' (use s, m, h or d)")),
    };
    value.checked_mul(scale).ok_or_else(|| format!("'{raw}' is too long"))
}

/// A request's duration in whole minutes, within the API's limits.
fn parse_duration(raw: &str) -> Result<u32, String> {
    let seconds = parse_span(raw)?;
    if seconds % 60 != 0 {
        return Err(format!("'{raw}': give whole minutes"));
    }
    let minutes = u32::try_from(seconds / 60).map_err(|_| format!("'{raw}' is too long"))?;
    jit_shared::domain::ids::DurationMinutes::try_from(minutes).map(|d| d.get()).map_err(|e| e.message)
}

fn parse_starts_at(raw: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .map_err(|_| "must be an RFC 3339 time with an offset, such as 2026-12-24T08:00:00Z".to_owned())
}

/// `jit review`: a break-glass grant's review.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("verdict").required(true).args(["acknowledge", "flag"])))]
pub struct ReviewArgs {
    /// The break-glass request (req-…).
    #[arg(value_parser = valid::<RequestId>)]
    pub id: String,
    /// The emergency was real and the access proportionate.
    #[arg(long)]
    pub acknowledge: bool,
    /// Something was wrong: raises an alarm for the security team.
    #[arg(long)]
    pub flag: bool,
    /// Why (kept in the audit trail).
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// `jit extend`: more time on an Approved request.
#[derive(Args, Debug)]
pub struct ExtendArgs {
    /// The Approved request to extend (req-…).
    #[arg(value_parser = valid::<RequestId>)]
    pub id: String,
    /// How much longer: minutes (30) or with a unit (30m, 2h).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: u32,
    /// Why you need longer; approvers read it.
    #[arg(long, value_parser = valid::<Reason>)]
    pub reason: String,
    /// Follow the extension until it is decided.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub api: ApiArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

fn parse_timeout(raw: &str) -> Result<Duration, String> {
    match parse_span(raw)? {
        0 => Err("the timeout must be more than 0".into()),
        s => Ok(Duration::from_secs(s)),
    }
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The node: an EC2 instance id (i-…), a managed node id (mi-…), or a member account node's ARN.
    #[arg(value_parser = valid::<NodeId>)]
    pub node: String,
    /// Why you need access (1–256 characters); approvers read it.
    #[arg(long, value_parser = valid::<Reason>)]
    pub reason: String,
    /// How long: minutes (90) or with a unit (90m, 2h, 1d), at most 14 days. Without it, the deciding
    /// policy's window applies.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<u32>,
    /// Scheduled access: an RFC 3339 time with an offset (2026-12-24T08:00:00Z), at most 14 days
    /// ahead. Decided now, granted from then on.
    #[arg(long, value_parser = parse_starts_at, value_name = "TIME")]
    pub starts_at: Option<String>,
    /// An emergency: granted at once if you are in the break-glass group (break-glass.yaml), for
    /// at most its maximum; the node's approvers and security are told at once and review it.
    #[arg(long, conflicts_with = "starts_at")]
    pub break_glass: bool,
    /// Follow the request until it is Approved or over, showing its status, level, approvers and
    /// elapsed time; the exit status says the outcome.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this long (30s, 10m, 1h; a bare number is minutes); exit status 7.
    #[arg(long, requires = "wait", value_parser = parse_timeout, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub api: ApiArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The request id (req-…).
    #[arg(value_parser = valid::<RequestId>)]
    pub id: String,
    #[command(flatten)]
    pub api: ApiArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

const STATUSES: [&str; 8] =
    ["Submitted", "Pending", "Approved", "Rejected", "Cancelled", "Expired", "Revoked", "Failed"];

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only requests in this status.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(STATUSES))]
    pub status: Option<String>,
    /// At most this many per page (1–100).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub limit: u8,
    /// Every page, not only the first.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub api: ApiArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ApprovalsArgs {
    /// The requests you decided (approved or rejected, at any level), newest decision first, at most 50.
    #[arg(long, conflicts_with = "review")]
    pub decided: bool,
    /// The break-glass access waiting for your review (acknowledge or flag it with `jit review`).
    #[arg(long)]
    pub review: bool,
    #[command(flatten)]
    pub api: ApiArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct DecideArgs {
    /// The request id (req-…).
    #[arg(value_parser = valid::<RequestId>)]
    pub id: String,
    /// A comment for the record (at most 1,000 characters); the requester is mailed it.
    #[arg(long, value_parser = valid::<Comment>)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// A request id (req-…), or a node (i-…, mi-…, ARN): your newest Approved request for it.
    #[arg(value_parser = parse_target, value_name = "ID|NODE")]
    pub target: Target,
    /// Print the command and its environment instead of running it; in credentials mode this
    /// prints the credentials, which are secrets.
    #[arg(long)]
    pub print: bool,
    /// Attach mode: the stack's session document [default: `jit configure`'s, then jit-node-access-session].
    #[arg(long, value_name = "NAME")]
    pub document_name: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Args, Debug)]
pub struct CredentialsArgs {
    /// The request id (req-…).
    #[arg(value_parser = valid::<RequestId>)]
    pub id: String,
    /// env: shell exports; json: the API's answer; credential-process: for an AWS profile.
    #[arg(long, value_enum, default_value = "env")]
    pub format: CredentialsFormat,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Runs an operator command; `root` builds the whole `jit` command (for completions).
pub fn run(command: OperatorCommand, root: fn() -> clap::Command) -> ExitCode {
    let outcome = match command {
        OperatorCommand::Configure(args) => configure(&args, &settings::process_env),
        OperatorCommand::Completions(args) => {
            let mut cmd = root();
            let name = cmd.get_name().to_owned();
            clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
            Ok(exit::OK)
        }
        other => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(dispatch(other)),
            Err(e) => Err(Failure::new(exit::ERROR, format!("cannot start the async runtime: {e}"))),
        },
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn open(args: &ApiArgs) -> Result<(Api, settings::Settings), Failure> {
    open_in(args, &settings::process_env, std::env::current_dir().ok().as_deref()).await
}

/// `open` with the environment `env`, called from `dir`.
async fn open_in(
    args: &ApiArgs,
    env: settings::Env<'_>,
    dir: Option<&std::path::Path>,
) -> Result<(Api, settings::Settings), Failure> {
    let resolved = settings::resolve_in(args, env, dir)?;
    let api = settings::connect(&resolved).await?;
    Ok((api, resolved))
}

fn print_json(value: &Value) -> Result<u8, Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    println!("{text}");
    Ok(exit::OK)
}

async fn dispatch(command: OperatorCommand) -> Result<u8, Failure> {
    match command {
        OperatorCommand::Request(args) => request(args).await,
        OperatorCommand::Extend(args) => extend(args).await,
        OperatorCommand::Review(args) => {
            let (api, _) = open(&args.api).await?;
            let verdict = if args.flag { "flag" } else { "acknowledge" };
            let mut body = json!({ "verdict": verdict });
            if let Some(comment) = &args.comment {
                body["comment"] = json!(comment);
            }
            let request = api.post(&format!("/requests/{}/review", args.id), Some(&body)).await?;
            match args.output {
                Output::Json => print_json(&request),
                Output::Table => {
                    let done = if args.flag { "flagged" } else { "acknowledged" };
                    println!("break-glass {} {done} (the request is {})", args.id, str_of(&request, "status"));
                    Ok(exit::OK)
                }
            }
        }
        OperatorCommand::Status(args) => {
            let (api, _) = open(&args.api).await?;
            let request = api.get(&format!("/requests/{}", args.id)).await?;
            show(&request, args.output, render::request_view)
        }
        OperatorCommand::List(args) => list(args).await,
        OperatorCommand::Approvals(args) => {
            let (api, _) = open(&args.api).await?;
            let path = match (args.decided, args.review) {
                (true, _) => "/approvals?decided=true",
                (_, true) => "/approvals?review=open",
                _ => "/approvals",
            };
            let page = api.get(path).await?;
            show(&page, args.output, |p| render::approvals_table(&items(p), args.decided))
        }
        OperatorCommand::Approve(args) => decide(args, "approve", "approved").await,
        OperatorCommand::Reject(args) => decide(args, "reject", "rejected").await,
        OperatorCommand::Cancel(args) => decide(args, "cancel", "cancelled").await,
        OperatorCommand::Revoke(args) => decide(args, "revoke", "revoked").await,
        OperatorCommand::Audit(args) => {
            let (api, _) = open(&args.api).await?;
            let trail = api.get(&format!("/requests/{}/audit", args.id)).await?;
            show(&trail, args.output, |t| render::audit_table(&items(t)))
        }
        OperatorCommand::Connect(args) => {
            let (api, resolved) = open(&args.api).await?;
            let options =
                ConnectOptions { print: args.print, document_name: args.document_name.as_deref(), api: &args.api };
            connect::connect(&api, &resolved, &args.target, &options).await
        }
        OperatorCommand::Credentials(args) => {
            let (api, _) = open(&args.api).await?;
            let issued = connect::issue(&api, &args.id).await?;
            print!("{}", connect::format_credentials(&issued, args.format)?);
            Ok(exit::OK)
        }
        OperatorCommand::Configure(args) => configure(&args, &settings::process_env),
        OperatorCommand::Completions(_) => Err(Failure::usage("completions need the whole command")),
    }
}

/// A page's `items`.
fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_default()
}

fn show(value: &Value, output: Output, table: impl Fn(&Value) -> String) -> Result<u8, Failure> {
    match output {
        Output::Json => print_json(value),
        Output::Table => {
            print!("{}", table(value));
            Ok(exit::OK)
        }
    }
}

/// Submits with an idempotency key, so a retry after a lost answer never makes a second request.
async fn submit(api: &Api, path: &str, body: &Value) -> Result<Value, ApiError> {
    let key = uuid::Uuid::new_v4().to_string();
    let mut attempt = 0;
    loop {
        match api.call("POST", path, Some(body), &[("idempotency-key", &key)]).await {
            Err(e) if e.is_transient() && attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
            other => return other,
        }
    }
}

async fn request(args: RequestArgs) -> Result<u8, Failure> {
    let (api, _) = open(&args.api).await?;
    let mut body = json!({ "nodeId": args.node, "reason": args.reason });
    if let Some(minutes) = args.duration {
        body["durationMinutes"] = json!(minutes);
    }
    if let Some(at) = &args.starts_at {
        body["startsAt"] = json!(at);
    }
    if args.break_glass {
        body["breakGlass"] = json!(true);
    }
    let submitted = submit(&api, "/requests", &body).await?;
    let id = str_of(&submitted, "requestId").to_owned();
    if !args.wait {
        match args.output {
            Output::Json => return print_json(&submitted),
            Output::Table => {
                println!("{id}");
                eprintln!("submitted: `jit status {id}` shows where it stands");
                return Ok(exit::OK);
            }
        }
    }
    let mut progress = wait::Progress::new(&id);
    let waited = wait::until_final(&api, &id, submitted, &mut progress, args.timeout).await;
    report_request(args.output, &id, waited)
}

/// Why a `--wait` stopped before a final status, as `jit request` and `jit extend` both report it:
/// 7 timed out, 130 interrupted (Ctrl-C), 1 an API or network error.
fn stopped_waiting(id: &str, stopped: wait::Stopped) -> Failure {
    match stopped {
        wait::Stopped::TimedOut(last) => Failure::new(
            exit::TIMED_OUT,
            format!("{id} is still {} after the --timeout: `jit status {id}` follows it", str_of(&last, "status")),
        ),
        wait::Stopped::Interrupted(last) => Failure::new(
            exit::INTERRUPTED,
            format!("stopped waiting; {id} is still {}: `jit status {id}` follows it", str_of(&last, "status")),
        ),
        wait::Stopped::Error(e) => Failure::new(exit::ERROR, format!("while waiting for {id}: {e}")),
    }
}

/// Prints how `jit request --wait` ended; the exit status is the final status's, whatever the output.
fn report_request(output: Output, id: &str, waited: Result<Value, wait::Stopped>) -> Result<u8, Failure> {
    let done = waited.map_err(|stopped| stopped_waiting(id, stopped))?;
    match output {
        Output::Json => {
            print_json(&done)?;
        }
        Output::Table => print!("{}", render::request_view(&done)),
    }
    eprintln!("{}", outcome_note(&done, chrono::Utc::now()));
    Ok(exit_for_status(str_of(&done, "status")))
}

async fn extend(args: ExtendArgs) -> Result<u8, Failure> {
    let (api, _) = open(&args.api).await?;
    let body = json!({ "durationMinutes": args.duration, "reason": args.reason });
    let submitted = submit(&api, &format!("/requests/{}/extend", args.id), &body).await?;
    let id = str_of(&submitted, "requestId").to_owned();
    let waited = if args.wait {
        let mut progress = wait::Progress::new(&id);
        wait::until_final(&api, &id, submitted, &mut progress, None).await
    } else {
        Ok(submitted)
    };
    report_extension(&args, &id, waited)
}

/// Prints the extension `id` (`waited`: as submitted without --wait). With --wait the exit status
/// is `jit request --wait`'s, whatever the output, except that applied (ended `Expired` after its
/// approval: it granted nothing of its own) is success.
fn report_extension(args: &ExtendArgs, id: &str, waited: Result<Value, wait::Stopped>) -> Result<u8, Failure> {
    let shown = waited.map_err(|stopped| stopped_waiting(id, stopped))?;
    let status = str_of(&shown, "status");
    let applied = status == "Expired" && !shown["approvedAt"].is_null();
    let code = if !args.wait || applied { exit::OK } else { exit_for_status(status) };
    match args.output {
        Output::Json => {
            print_json(&shown)?;
        }
        Output::Table => {
            println!("{id}");
            eprintln!(
                "extension of {} by {} minutes: {status} (`jit status {}` shows the new deadline once applied)",
                args.id, args.duration, args.id
            );
        }
    }
    Ok(code)
}

/// What a final status means for the requester at `now`, and what to do next.
fn outcome_note(request: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    let id = str_of(request, "requestId");
    let decision = &request["decision"];
    let rejection = request["approval"]["entries"]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["verdict"] == "Reject"))
        .map(|e| {
            let comment = str_of(e, "comment");
            let by = render::who(str_of(e, "approver"));
            if comment.is_empty() {
                format!(" by {by}")
            } else {
                format!(" by {by}: {}", render::one_line(comment))
            }
        });
    match str_of(request, "status") {
        "Approved" => match request["startsAt"].as_str() {
            // Scheduled: decided now, but nothing is granted to connect with before the start.
            Some(starts) if chrono::DateTime::parse_from_rfc3339(starts).is_ok_and(|t| now < t) => format!(
                "Approved: the access starts at {}; from then on `jit connect {id}` starts the session",
                render::when(starts)
            ),
            _ => format!("Approved: `jit connect {id}` starts the session"),
        },
        "Rejected" => format!("Rejected{}", rejection.unwrap_or_default()),
        "Failed" => format!("Failed: {} ({})", str_of(decision, "message"), str_of(decision, "rule")),
        other => format!("{other}: `jit audit {id}` shows who and when"),
    }
}

async fn list(args: ListArgs) -> Result<u8, Failure> {
    let (api, _) = open(&args.api).await?;
    let mut requests = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = format!("/requests?limit={}", args.limit);
        if let Some(status) = &args.status {
            path.push_str(&format!("&status={}", api::encode_query_value(status)));
        }
        if let Some(token) = &next {
            path.push_str(&format!("&nextToken={}", api::encode_query_value(token)));
        }
        let page = api.get(&path).await?;
        requests.extend(items(&page));
        next = page["nextToken"].as_str().map(str::to_owned);
        if !args.all || next.is_none() {
            break;
        }
    }
    match args.output {
        Output::Json => print_json(&json!({ "items": requests, "nextToken": next })),
        Output::Table => {
            print!("{}", render::request_table(&requests));
            if next.is_some() {
                eprintln!("(more: jit list --all, or a larger --limit)");
            }
            Ok(exit::OK)
        }
    }
}

async fn decide(args: DecideArgs, action: &str, done: &str) -> Result<u8, Failure> {
    let (api, _) = open(&args.api).await?;
    let body = args.comment.as_ref().map(|c| json!({ "comment": c }));
    let request = api.post(&format!("/requests/{}/{action}", args.id), body.as_ref()).await?;
    match args.output {
        Output::Json => print_json(&request),
        Output::Table => {
            let mut now = str_of(&request, "status").to_owned();
            if let (true, Some(level)) = (now == "Pending", render::level_text(&request)) {
                now.push_str(&format!(", {level}"));
            }
            println!("{done} {}: now {now}", args.id);
            Ok(exit::OK)
        }
    }
}

fn configure(args: &settings::ConfigFile, env: settings::Env<'_>) -> Result<u8, Failure> {
    // Where the file goes, and what it holds, is the setup's, not a usage mistake.
    let path = settings::config_path(env)
        .ok_or_else(|| Failure::new(exit::ERROR, "no home directory: set HOME (or JIT_CONFIG to the file to write)"))?;
    let mut config = settings::load_config(&path).map_err(|e| Failure::new(exit::ERROR, e))?;
    let set = |slot: &mut Option<String>, value: &Option<String>| {
        if let Some(v) = value {
            *slot = Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        }
    };
    let url = match args.api_url.as_deref().map(str::trim) {
        Some("") | None => args.api_url.clone(),
        Some(raw) => Some(api::check_api_url(raw).map_err(|e| Failure::usage(format!("--api-url: {e}")))?),
    };
    set(&mut config.api_url, &url);
    set(&mut config.region, &args.region);
    set(&mut config.profile, &args.profile);
    set(&mut config.document_name, &args.document_name);
    let changed = [&args.api_url, &args.region, &args.profile, &args.document_name].iter().any(|a| a.is_some());
    if changed {
        settings::save_config(&path, &config).map_err(|e| Failure::new(exit::ERROR, e))?;
        eprintln!("wrote {}", path.display());
    } else {
        eprintln!("{}", path.display());
    }
    let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".into());
    print!(
        "{}",
        render::pairs(&[
            ("api_url", value(&config.api_url)),
            ("region", value(&config.region)),
            ("profile", value(&config.profile)),
            ("document_name", value(&config.document_name)),
        ])
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_minutes_or_a_unit_within_the_apis_limits() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90m"), Ok(90));
        assert_eq!(parse_duration("2h"), Ok(120));
        assert_eq!(parse_duration("1d"), Ok(1440));
        assert!(parse_duration("15d").unwrap_err().contains("20160"));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("90s").unwrap_err().contains("whole minutes"));
        assert!(parse_duration("2 weeks").is_err());
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn each_final_status_has_its_exit_status() {
        let codes: Vec<u8> = ["Approved", "Rejected", "Failed", "Expired", "Cancelled", "Revoked"]
            .iter()
            .map(|s| exit_for_status(s))
            .collect();
        assert_eq!(codes, [0, 3, 4, 5, 6, 6]);
    }

    const EXTENSION: &str = "req-0123456789abcdef0123456789abcdef";

    fn extend_args(output: Output, wait: bool) -> ExtendArgs {
        ExtendArgs {
            id: "req-fedcba9876543210fedcba9876543210".into(),
            duration: 30,
            reason: "longer".into(),
            wait,
            api: ApiArgs::default(),
            output,
        }
    }

    /// The extension as the API shows it: `status`, approved or not.
    fn extension(status: &str, approved: bool) -> Value {
        let mut request =
            json!({ "requestId": EXTENSION, "status": status, "extends": "req-fedcba9876543210fedcba9876543210" });
        if approved {
            request["approvedAt"] = json!("2026-01-01T00:00:00Z");
        }
        request
    }

    #[test]
    fn extend_wait_ends_with_request_waits_exit_status_for_text_and_json() {
        // (final status, approved before, `jit extend --wait`'s exit status)
        let cases = [
            ("Approved", true, exit::OK),
            ("Expired", true, exit::OK), // applied
            ("Rejected", false, exit::REJECTED),
            ("Failed", false, exit::FAILED),
            ("Expired", false, exit::EXPIRED),
            ("Cancelled", false, exit::ENDED),
            ("Revoked", true, exit::ENDED),
        ];
        for output in [Output::Table, Output::Json] {
            for (status, approved, expected) in cases {
                let done = extension(status, approved);
                let extended = report_extension(&extend_args(output, true), EXTENSION, Ok(done.clone()));
                assert_eq!(extended, Ok(expected), "{status} (approved: {approved}), {output:?}");
                if !(status == "Expired" && approved) {
                    let requested = report_request(output, EXTENSION, Ok(done));
                    assert_eq!(requested, extended, "{status} (approved: {approved}), {output:?}");
                }
            }
        }
    }

    #[test]
    fn extend_wait_stopped_early_exits_like_request_wait() {
        // (why waiting stopped, the exit status of both commands)
        type Stop = fn(Value) -> wait::Stopped;
        let cases: [(Stop, u8); 3] = [
            (wait::Stopped::Interrupted, exit::INTERRUPTED),
            (wait::Stopped::TimedOut, exit::TIMED_OUT),
            (|_| wait::Stopped::Error(ApiError::Network("connection reset".into())), exit::ERROR),
        ];
        for output in [Output::Table, Output::Json] {
            for (stopped, expected) in cases {
                let extended =
                    report_extension(&extend_args(output, true), EXTENSION, Err(stopped(extension("Pending", false))));
                let requested = report_request(output, EXTENSION, Err(stopped(extension("Pending", false))));
                assert_eq!(extended.as_ref().map_err(|f| f.code), Err(expected), "{output:?}: {extended:?}");
                assert_eq!(extended, requested, "{output:?}");
            }
        }
        let interrupted = report_extension(
            &extend_args(Output::Json, true),
            EXTENSION,
            Err(wait::Stopped::Interrupted(extension("Pending", false))),
        );
        assert!(interrupted.unwrap_err().message.contains(&format!("{EXTENSION} is still Pending")));
    }

    #[test]
    fn extend_without_wait_succeeds_once_submitted() {
        for output in [Output::Table, Output::Json] {
            assert_eq!(
                report_extension(&extend_args(output, false), EXTENSION, Ok(extension("Submitted", false))),
                Ok(exit::OK)
            );
        }
    }

    #[test]
    fn the_approved_note_says_when_a_scheduled_request_can_be_used() {
        // (startsAt, what the note says)
        let cases = [
            (None, "Approved: `jit connect req-0123456789abcdef0123456789abcdef` starts the session"),
            (
                Some("2026-05-01T09:00:00Z"),
                "Approved: `jit connect req-0123456789abcdef0123456789abcdef` starts the session",
            ),
            (
                Some("2026-05-01T13:00:00+02:00"),
                "Approved: the access starts at 2026-05-01 11:00:00Z; \
                 from then on `jit connect req-0123456789abcdef0123456789abcdef` starts the session",
            ),
        ];
        let now = "2026-05-01T10:00:00Z".parse().unwrap();
        for (starts_at, expected) in cases {
            let approved = json!({ "requestId": EXTENSION, "status": "Approved", "startsAt": starts_at });

            let note = outcome_note(&approved, now);

            assert_eq!(note, expected, "startsAt {starts_at:?}");
        }
    }

    #[test]
    fn ids_and_nodes_are_checked_before_any_call() {
        assert!(valid::<RequestId>("req-123").unwrap_err().contains("32 lowercase hex"));
        assert!(valid::<NodeId>("web-1").unwrap_err().contains("EC2 instance id"));
        assert!(valid::<Reason>("   ").is_err());
        assert_eq!(valid::<Reason>("  ok  "), Ok("ok".to_owned()));
    }

    /// A fresh directory for one case.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("jit-ops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Looks names up in `pairs` instead of the process's environment.
    fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    }

    /// Writes the config file, or a directory in its place, and names it in `JIT_CONFIG`.
    fn config_file(dir: &std::path::Path, text: Option<&str>) -> Vec<(&'static str, String)> {
        let path = dir.join("config.json");
        match text {
            Some(text) => std::fs::write(&path, text).unwrap(),
            None => std::fs::create_dir_all(&path).unwrap(),
        }
        vec![("JIT_CONFIG", path.display().to_string())]
    }

    #[tokio::test]
    async fn usage_mistakes_exit_2_and_a_broken_setup_exits_1() {
        // (case, what it sets up in its directory: flags and environment, exit status, message part)
        type Arrange = fn(&std::path::Path) -> (ApiArgs, Vec<(&'static str, String)>);
        let cases: [(&str, Arrange, u8, &str); 5] = [
            ("no-url", |_| (ApiArgs::default(), vec![]), exit::USAGE, "no API URL"),
            (
                "plain-http-url",
                |_| (ApiArgs { api_url: Some("http://api.example.com".into()), ..Default::default() }, vec![]),
                exit::USAGE,
                "https://",
            ),
            ("broken-config", |dir| (ApiArgs::default(), config_file(dir, Some("{"))), exit::ERROR, "jit configure"),
            ("unreadable-config", |dir| (ApiArgs::default(), config_file(dir, None)), exit::ERROR, "reading"),
            (
                "missing-dev-credentials",
                |dir| {
                    std::fs::create_dir_all(dir.join(".jit")).unwrap();
                    let text = format!(
                        "JIT_API_URL=http://127.0.0.1:9\nAWS_REGION=us-east-1\nAWS_SHARED_CREDENTIALS_FILE={}\n",
                        dir.join("missing").display()
                    );
                    std::fs::write(dir.join(settings::DEV_ENV), text).unwrap();
                    (ApiArgs::default(), vec![])
                },
                exit::ERROR,
                "named by .jit/dev.env",
            ),
        ];
        for (case, arrange, code, part) in cases {
            // Arrange
            let dir = scratch(case);
            let (args, env) = arrange(&dir);

            // Act
            let opened = open_in(&args, &env_of(env), Some(&dir)).await;

            // Assert
            let failure = opened.err().unwrap_or_else(|| panic!("{case}: opened"));
            assert_eq!(failure.code, code, "{case}: {}", failure.message);
            assert!(failure.message.contains(part), "{case}: {}", failure.message);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn configure_reports_a_broken_setup_as_exit_1() {
        // (case, its environment, message part)
        type Arrange = fn(&std::path::Path) -> Vec<(&'static str, String)>;
        let cases: [(&str, Arrange, &str); 2] = [
            ("configure-no-home", |_| vec![], "no home directory"),
            ("configure-broken-config", |dir| config_file(dir, Some("{")), "jit configure"),
        ];
        for (case, arrange, part) in cases {
            // Arrange
            let dir = scratch(case);
            let env = arrange(&dir);
            let region = settings::ConfigFile { region: Some("eu-west-1".into()), ..Default::default() };

            // Act
            let configured = configure(&region, &env_of(env));

            // Assert
            let failure = configured.err().unwrap_or_else(|| panic!("{case}: configured"));
            assert_eq!(failure.code, exit::ERROR, "{case}: {}", failure.message);
            assert!(failure.message.contains(part), "{case}: {}", failure.message);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
