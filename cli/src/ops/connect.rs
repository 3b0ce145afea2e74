//! `jit connect` and `jit credentials`: from an `Approved` request to a Session Manager session.
//!
//! Credentials mode (the request's `grantMode`): `POST /requests/{id}/credentials` gives
//! short-lived credentials of the session role and the `target`, `documentName` and `region` to
//! start the session with. Attach mode: the grant is a policy on the caller's own principal, so the
//! session starts with the caller's own credentials and the stack's session document.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::render::{self, str_of};
use super::settings::{ApiArgs, Settings};
use super::{exit, Failure};
use crate::api::{self, Api};

/// The stack's session document unless deployed with another `SessionDocumentName`.
pub const DEFAULT_DOCUMENT: &str = "jit-node-access-session";

/// `jit credentials --format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialsFormat {
    /// `export` lines for a POSIX shell: eval "$(jit credentials <id> --format env)".
    Env,
    /// The API's answer as it came.
    Json,
    /// What an AWS profile's `credential_process` must print (Version 1).
    CredentialProcess,
}

/// Quotes a value for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b)) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// An RFC 3339 instant in the form AWS tools read (`2026-05-01T10:30:00Z`).
fn rfc3339(raw: &str) -> Result<String, Failure> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true))
        .map_err(|e| Failure::new(exit::ERROR, format!("the API's expiration '{raw}' is not RFC 3339: {e}")))
}

/// What `aws ssm start-session --target` takes: the bare node id, also for a member account's node,
/// which the API's `target` names by its ARN.
pub fn session_target(target: &str) -> String {
    jit_shared::domain::ids::NodeId::try_from(target.to_owned())
        .map(|node| node.instance_id().to_owned())
        .unwrap_or_else(|_| target.to_owned())
}

/// A field of the credentials answer; a missing one is an error, never an empty credential.
fn issued_field<'a>(issued: &'a Value, name: &str) -> Result<&'a str, Failure> {
    issued[name]
        .as_str()
        .ok_or_else(|| Failure::new(exit::ERROR, format!("the API's credentials answer has no '{name}'")))
}

/// The credentials answer in the requested format.
pub fn format_credentials(issued: &Value, format: CredentialsFormat) -> Result<String, Failure> {
    let field = |name: &str| issued_field(issued, name);
    match format {
        CredentialsFormat::Json => serde_json::to_string_pretty(issued)
            .map(|t| format!("{t}\n"))
            .map_err(|e| Failure::new(exit::ERROR, e.to_string())),
        CredentialsFormat::CredentialProcess => {
            let process = json!({
                "Version": 1,
                "AccessKeyId": field("accessKeyId")?,
                "SecretAccessKey": field("secretAccessKey")?,
                "SessionToken": field("sessionToken")?,
                "Expiration": rfc3339(field("expiration")?)?,
            });
            Ok(format!("{process}\n"))
        }
        CredentialsFormat::Env => {
            let mut text = String::new();
            for (var, name) in [
                ("AWS_ACCESS_KEY_ID", "accessKeyId"),
                ("AWS_SECRET_ACCESS_KEY", "secretAccessKey"),
                ("AWS_SESSION_TOKEN", "sessionToken"),
                ("AWS_REGION", "region"),
                ("JIT_TARGET", "target"),
                ("JIT_DOCUMENT_NAME", "documentName"),
            ] {
                let value = if name == "target" { session_target(field(name)?) } else { field(name)?.to_owned() };
                text.push_str(&format!("export {var}={}\n", shell_quote(&value)));
            }
            text.push_str(&format!(
                "# request {}: these credentials are secrets; they expire {}\n",
                field("requestId")?,
                render::when(field("expiration")?)
            ));
            Ok(text)
        }
    }
}

/// `POST /requests/{id}/credentials`.
pub async fn issue(api: &Api, id: &str) -> Result<Value, Failure> {
    api.post(&format!("/requests/{id}/credentials"), None)
        .await
        .map_err(|e| Failure::new(exit::ERROR, format!("{e}{}", issue_hint(e.code(), id))))
}

/// What to do after the API refused credentials with `code`, as an indented line (or nothing).
fn issue_hint(code: Option<&str>, id: &str) -> String {
    match code {
        Some("AttachModeGrant") => {
            format!("\n  {id} is granted in attach mode: `jit connect {id}` uses your own credentials")
        }
        Some("RequestNotApproved") => format!("\n  `jit status {id}` shows where it stands"),
        Some("RevokeInProgress") => {
            format!("\n  {id} is being revoked: `jit status {id}` shows who revoked it once it is recorded")
        }
        Some("ExtensionRequest") => format!(
            "\n  {id} is an extension: it grants nothing of its own; connect with the original request it extends \
             (`jit status {id}` names it)"
        ),
        Some("AccessNotStarted") => {
            format!("\n  {id} is scheduled: `jit status {id}` shows when its access starts; connect from then on")
        }
        _ => String::new(),
    }
}

/// Why an `Approved` request has no access to connect with at `now`, if so: an extension (it only
/// moves its original's deadline) or a scheduled request whose access has not started.
fn not_connectable(request: &Value, now: DateTime<Utc>) -> Option<String> {
    let id = str_of(request, "requestId");
    if let Some(original) = request["extends"].as_str() {
        return Some(format!(
            "{id} extends {original} and grants nothing of its own: connect with the original {original} \
             (`jit connect {original}`)"
        ));
    }
    let starts = request["startsAt"].as_str()?;
    let later = DateTime::parse_from_rfc3339(starts).is_ok_and(|t| now < t);
    later.then(|| format!("{id}'s access starts at {}: `jit connect {id}` from then on", render::when(starts)))
}

/// Whether `r` is for `node`; a bare instance id matches the same instance id in any account.
fn same_node(node: &str, r: &Value) -> bool {
    let wanted = jit_shared::domain::ids::NodeId::try_from(node.to_owned()).ok();
    let theirs = jit_shared::domain::ids::NodeId::try_from(str_of(r, "nodeId").to_owned()).ok();
    match (wanted, theirs) {
        (Some(w), Some(t)) if w.location().is_none() || t.location().is_none() => w.instance_id() == t.instance_id(),
        (Some(w), Some(t)) => w.as_str() == t.as_str(),
        _ => false,
    }
}

/// The first of `items` (newest first) for `node` that grants access at `now`. A scheduled one
/// passed over is remembered in `later`, to say why nothing was found.
fn choose_for_node<'a>(
    items: &'a [Value],
    node: &str,
    now: DateTime<Utc>,
    later: &mut Option<String>,
) -> Option<&'a Value> {
    for r in items.iter().filter(|r| same_node(node, r)) {
        match not_connectable(r, now) {
            None => return Some(r),
            Some(why) if r["extends"].is_null() => {
                later.get_or_insert(why);
            }
            Some(_) => {}
        }
    }
    None
}

/// What `jit connect` was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Request(String),
    Node(String),
}

/// A request id or a node id / ARN.
pub fn parse_target(raw: &str) -> Result<Target, String> {
    if raw.starts_with("req-") {
        return jit_shared::domain::ids::RequestId::try_from(raw.to_owned())
            .map(|id| Target::Request(id.as_str().to_owned()))
            .map_err(|e| format!("request id: {}", e.message));
    }
    jit_shared::domain::ids::NodeId::try_from(raw.to_owned())
        .map(|n| Target::Node(n.as_str().to_owned()))
        .map_err(|e| format!("neither a request id (req-…) nor a node: {}", e.message))
}

/// The request `jit connect` should use: the one named, or the caller's newest `Approved` request
/// for the node that grants access now (not an extension, not a schedule still ahead).
pub async fn find_request(api: &Api, target: &Target) -> Result<Value, Failure> {
    let node = match target {
        Target::Request(id) => return api.get(&format!("/requests/{id}")).await.map_err(Failure::from),
        Target::Node(node) => node,
    };
    let now = Utc::now();
    let mut later = None;
    let mut next: Option<String> = None;
    loop {
        let mut path = "/requests?status=Approved&limit=100".to_owned();
        if let Some(token) = &next {
            path.push_str(&format!("&nextToken={}", api::encode_query_value(token)));
        }
        let page = api.get(&path).await?;
        let items = page["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        if let Some(found) = choose_for_node(items, node, now, &mut later) {
            return Ok(found.clone());
        }
        match page["nextToken"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => {
                let message = match later {
                    Some(why) => format!("you have no Approved request for {node} whose access has started: {why}"),
                    None => format!(
                        "you have no Approved request for {node}: ask with `jit request {node} --reason \"…\" --wait`"
                    ),
                };
                return Err(Failure::new(exit::ERROR, message));
            }
        }
    }
}

/// The program on PATH, if any.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        [program.to_owned(), format!("{program}.exe")].into_iter().map(|name| dir.join(name)).find(|p| is_executable(p))
    })
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// The session command, as arguments of `aws`.
pub fn session_args(target: &str, document: &str, region: &str, profile: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> =
        ["ssm", "start-session", "--target", target, "--document-name", document, "--region", region]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    if let Some(profile) = profile {
        args.extend(["--profile".to_owned(), profile.to_owned()]);
    }
    args
}

fn command_line(args: &[String]) -> String {
    std::iter::once("aws".to_owned()).chain(args.iter().map(|a| shell_quote(a))).collect::<Vec<_>>().join(" ")
}

/// Why `jit connect` prints instead of starting the session, or `None` when it can start it.
fn cannot_run(api_url: &str) -> Option<String> {
    if api::is_local(api_url) {
        return Some("the local stack has no Session Manager".into());
    }
    let missing: Vec<&str> = ["aws", "session-manager-plugin"].into_iter().filter(|p| on_path(p).is_none()).collect();
    (!missing.is_empty()).then(|| format!("{} not found on PATH", missing.join(" and ")))
}

/// The API flags this call was given, repeated in printed follow-up commands.
fn api_flags(args: &ApiArgs) -> String {
    [("--api-url", &args.api_url), ("--region", &args.region), ("--profile", &args.profile)]
        .into_iter()
        .filter_map(|(flag, value)| value.as_ref().map(|v| format!(" {flag} {}", shell_quote(v))))
        .collect()
}

pub struct ConnectOptions<'a> {
    pub print: bool,
    pub document_name: Option<&'a str>,
    /// The flags given, for the printed commands.
    pub api: &'a ApiArgs,
}

/// `jit connect`: start (or print) the session for an `Approved` request.
pub async fn connect(
    api: &Api,
    settings: &Settings,
    target: &Target,
    options: &ConnectOptions<'_>,
) -> Result<u8, Failure> {
    let request = find_request(api, target).await?;
    let id = str_of(&request, "requestId").to_owned();
    match str_of(&request, "status") {
        "Approved" => {}
        other => {
            return Err(Failure::new(
                exit::ERROR,
                format!("{id} is {other}, not Approved: there is no access to connect with (`jit status {id}`)"),
            ))
        }
    }
    // Both modes: the API would refuse credentials, and attach mode's policy is not attached yet.
    if let Some(why) = not_connectable(&request, Utc::now()) {
        return Err(Failure::new(exit::ERROR, why));
    }
    let blocked = if options.print { None } else { cannot_run(&settings.api_url) };
    if let Some(why) = &blocked {
        eprintln!("jit connect: not starting the session: {why}; here is how to start it:");
    }
    let node = jit_shared::domain::ids::NodeId::try_from(str_of(&request, "nodeId").to_owned())
        .map_err(|e| Failure::new(exit::ERROR, format!("the request's node: {}", e.message)))?;
    if str_of(&request, "grantMode") == "credentials" {
        if blocked.is_some() {
            // Not issuing credentials nobody would use: the printed command fetches them.
            let flags = api_flags(options.api);
            println!("eval \"$(jit credentials {id} --format env{flags})\"");
            println!(
                "aws ssm start-session --target \"$JIT_TARGET\" --document-name \"$JIT_DOCUMENT_NAME\" --region \"$AWS_REGION\""
            );
            eprintln!("(`jit connect {id} --print` prints the credentials themselves: they are secrets)");
            return Ok(exit::OK);
        }
        let issued = issue(api, &id).await?;
        let (args, env) = issued_session(&issued)?;
        if options.print {
            println!(
                "# credentials of {id}: secrets, printed because of --print; they expire {}",
                render::when(issued_field(&issued, "expiration")?)
            );
            for (var, value) in &env {
                println!("export {var}={}", shell_quote(value));
            }
            println!("{}", command_line(&args));
            return Ok(exit::OK);
        }
        run_aws(&args, &env)
    } else {
        let document = options.document_name.or(settings.document_name.as_deref()).unwrap_or(DEFAULT_DOCUMENT);
        let region = request["decision"]["nodeLocation"]["region"].as_str().unwrap_or(api.region()).to_owned();
        let args = session_args(node.instance_id(), document, &region, settings.profile.as_deref());
        if options.print || blocked.is_some() {
            println!("# {id} is granted in attach mode: the session starts with your own credentials");
            println!("{}", command_line(&args));
            return Ok(exit::OK);
        }
        run_aws(&args, &[])
    }
}

/// Environment variables to set, by name.
type Vars = Vec<(&'static str, String)>;

/// The session command and the environment it runs in, from the credentials answer.
fn issued_session(issued: &Value) -> Result<(Vec<String>, Vars), Failure> {
    let field = |name: &str| issued_field(issued, name);
    let args = session_args(&session_target(field("target")?), field("documentName")?, field("region")?, None);
    let env = vec![
        ("AWS_ACCESS_KEY_ID", field("accessKeyId")?.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", field("secretAccessKey")?.to_owned()),
        ("AWS_SESSION_TOKEN", field("sessionToken")?.to_owned()),
        // The AWS CLI reads it with the keys: an expiration inherited from the shell would make it
        // take these fresh credentials for expired ones.
        ("AWS_CREDENTIAL_EXPIRATION", rfc3339(field("expiration")?)?),
    ];
    Ok((args, env))
}

/// `aws …` with `env` (the request's credentials, if any) in place of the inherited AWS identity.
fn aws_command(args: &[String], env: &[(&str, String)]) -> std::process::Command {
    let mut command = std::process::Command::new("aws");
    command.args(args);
    if !env.is_empty() {
        // The request's credentials, not a profile's or another session's, start this session.
        for var in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CREDENTIAL_EXPIRATION", "AWS_SESSION_EXPIRATION"] {
            command.env_remove(var);
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    }
    command
}

/// Replaces this process with `aws …` (on Unix), so the terminal and signals are the session's.
fn run_aws(args: &[String], env: &[(&str, String)]) -> Result<u8, Failure> {
    let mut command = aws_command(args, env);
    eprintln!("jit connect: {}", command_line(args));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let error = command.exec();
        Err(Failure::new(exit::ERROR, format!("cannot run aws: {error}")))
    }
    #[cfg(not(unix))]
    {
        let status = command.status().map_err(|e| Failure::new(exit::ERROR, format!("cannot run aws: {e}")))?;
        Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(exit::ERROR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued() -> Value {
        json!({
            "requestId": "req-0123456789abcdef0123456789abcdef", "accessKeyId": "ASIAEXAMPLE",
            "secretAccessKey": "s3cr/t+key", "sessionToken": "tok'en", "expiration": "2026-05-01T10:30:00.250Z",
            "accessDeadline": "2026-05-01T11:00:00Z", "roleArn": "arn:aws:iam::123456789012:role/jit-session",
            "region": "eu-west-1", "target": "i-0123456789abcdef0", "documentName": "jit-node-access-session"
        })
    }

    #[test]
    fn credential_process_output_is_what_aws_tools_read() {
        let text = format_credentials(&issued(), CredentialsFormat::CredentialProcess).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["Version"], 1);
        assert_eq!(v["AccessKeyId"], "ASIAEXAMPLE");
        assert_eq!(v["SecretAccessKey"], "s3cr/t+key");
        assert_eq!(v["SessionToken"], "tok'en");
        assert_eq!(v["Expiration"], "2026-05-01T10:30:00Z");
    }

    #[test]
    fn env_output_is_safe_to_eval() {
        let text = format_credentials(&issued(), CredentialsFormat::Env).unwrap();
        assert!(text.contains("export AWS_SESSION_TOKEN='tok'\\''en'\n"), "{text}");
        assert!(text.contains("export JIT_TARGET=i-0123456789abcdef0\n"), "{text}");
        assert!(text.contains("export AWS_SECRET_ACCESS_KEY=s3cr/t+key\n"), "{text}");
    }

    #[test]
    fn a_member_account_nodes_session_target_is_its_bare_id() {
        let mut member = issued();
        member["target"] = json!("arn:aws:ec2:eu-west-1:222233334444:instance/i-0bbbbbbbbbbbbbbb1");
        let text = format_credentials(&member, CredentialsFormat::Env).unwrap();
        assert!(text.contains("export JIT_TARGET=i-0bbbbbbbbbbbbbbb1\n"), "{text}");
    }

    #[test]
    fn a_missing_field_is_an_error_not_an_empty_credential() {
        let mut broken = issued();
        broken["sessionToken"] = Value::Null;
        assert!(format_credentials(&broken, CredentialsFormat::CredentialProcess).is_err());
    }

    #[test]
    fn the_session_refuses_an_answer_missing_any_field_it_uses() {
        for missing in ["accessKeyId", "secretAccessKey", "sessionToken", "expiration", "target", "region"] {
            let mut broken = issued();
            broken[missing] = Value::Null;

            let session = issued_session(&broken);

            let message = session.err().map(|f| f.message).unwrap_or_default();
            assert!(message.contains(&format!("no '{missing}'")), "{missing}: {message}");
        }
    }

    #[test]
    fn aws_runs_with_the_issued_expiration_in_place_of_an_inherited_one() {
        let (args, env) = issued_session(&issued()).unwrap();

        let command = aws_command(&args, &env);

        let envs: std::collections::HashMap<_, _> = command.get_envs().collect();
        let var = |name: &str| envs.get(std::ffi::OsStr::new(name)).copied();
        assert_eq!(var("AWS_CREDENTIAL_EXPIRATION"), Some(Some(std::ffi::OsStr::new("2026-05-01T10:30:00Z"))));
        assert_eq!(var("AWS_SESSION_TOKEN"), Some(Some(std::ffi::OsStr::new("tok'en"))));
        for removed in ["AWS_SESSION_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
            assert_eq!(var(removed), Some(None), "{removed} is removed");
        }
    }

    const ORIGINAL: &str = "req-00000000000000000000000000000001";
    const NOW: &str = "2026-05-01T10:00:00Z";

    /// An `Approved` request for `node`, with `extra` fields.
    fn approved(id: &str, node: &str, extra: Value) -> Value {
        let mut r = json!({ "requestId": id, "status": "Approved", "nodeId": node });
        if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(extra.clone());
        }
        r
    }

    #[test]
    fn an_extension_or_a_schedule_still_ahead_has_nothing_to_connect_with() {
        // (the request's extra fields, what the refusal says; None: it can be connected with)
        let cases = [
            (json!({}), None),
            (json!({ "startsAt": "2026-05-01T09:59:00Z" }), None),
            (json!({ "extends": ORIGINAL }), Some(format!("connect with the original {ORIGINAL}"))),
            (json!({ "startsAt": "2026-05-01T12:30:00+02:00" }), Some("access starts at 2026-05-01 10:30:00Z".into())),
        ];
        for (extra, expected) in cases {
            let request = approved("req-00000000000000000000000000000002", "i-0123456789abcdef0", extra.clone());

            let refusal = not_connectable(&request, NOW.parse().unwrap());

            match (&refusal, &expected) {
                (Some(said), Some(wanted)) => assert!(said.contains(wanted.as_str()), "{extra}: {said}"),
                _ => assert_eq!(refusal, expected, "{extra}"),
            }
        }
    }

    #[test]
    fn connect_by_node_takes_the_newest_request_that_grants_access_now() {
        // Newest first, as the API lists them.
        let node = "i-0123456789abcdef0";
        let items = [
            approved("req-00000000000000000000000000000005", "i-0fedcba9876543210", json!({})),
            approved("req-00000000000000000000000000000004", node, json!({ "extends": ORIGINAL })),
            approved("req-00000000000000000000000000000003", node, json!({ "startsAt": "2026-05-02T08:00:00Z" })),
            approved(ORIGINAL, node, json!({ "startsAt": "2026-05-01T09:00:00Z" })),
        ];
        let mut later = None;

        let chosen = choose_for_node(&items, node, NOW.parse().unwrap(), &mut later);
        let none_live = choose_for_node(&items[..3], node, NOW.parse().unwrap(), &mut None);

        assert_eq!(chosen.map(|r| str_of(r, "requestId")), Some(ORIGINAL));
        assert_eq!(none_live, None);
        assert!(later.is_some_and(|why| why.contains("starts at 2026-05-02 08:00:00Z")));
    }

    #[test]
    fn each_refusal_of_credentials_says_what_to_do() {
        // (the API's code, what the hint says)
        let id = "req-00000000000000000000000000000002";
        let cases = [
            ("AttachModeGrant", "uses your own credentials"),
            ("RequestNotApproved", "shows where it stands"),
            ("RevokeInProgress", "is being revoked"),
            ("ExtensionRequest", "connect with the original request it extends"),
            ("AccessNotStarted", "shows when its access starts"),
        ];
        for (code, expected) in cases {
            let hint = issue_hint(Some(code), id);

            assert!(hint.contains(expected) && hint.contains(id), "{code}: {hint}");
        }
        assert_eq!(issue_hint(Some("AccessEnded"), id), "", "the API's own message suffices");
    }

    #[test]
    fn connect_takes_a_request_id_or_a_node() {
        assert_eq!(
            parse_target("req-0123456789abcdef0123456789abcdef"),
            Ok(Target::Request("req-0123456789abcdef0123456789abcdef".into()))
        );
        assert_eq!(parse_target("i-0123456789abcdef0"), Ok(Target::Node("i-0123456789abcdef0".into())));
        assert!(parse_target("req-1").unwrap_err().contains("request id"));
        assert!(parse_target("web-1").unwrap_err().contains("neither"));
    }

    #[test]
    fn the_session_command_quotes_what_needs_it() {
        let args = session_args("i-0123456789abcdef0", "my doc", "eu-west-1", Some("ops"));
        assert_eq!(
            command_line(&args),
            "aws ssm start-session --target i-0123456789abcdef0 --document-name 'my doc' --region eu-west-1 --profile ops"
        );
    }
}
