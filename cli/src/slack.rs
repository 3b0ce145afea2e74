//! `jit slack click`: Slack's part in the local stack. The notifier posts its Approve / Reject
//! messages to the stand-in `make dev` serves (recorded at `GET /slack.json`); this finds the
//! message about a request, builds the `block_actions` callback Slack would send when someone
//! presses one of its buttons, signs it with the local stack's signing secret (Slack's v0 scheme,
//! `SlackSigningSecret::sign`) and posts it to `POST /chat/slack`, as Slack would.
//!
//! Local only: it refuses any API URL but a loopback one, since the secret it signs with is the
//! local stack's (`LOCAL_SLACK_SIGNING_SECRET`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use jit_shared::domain::approval::Person;
use jit_shared::domain::ids::RequestId;
use jit_shared::domain::slack::{self as slack_domain, SlackSigningSecret, SlackUserId};
use jit_shared::policy::contacts::{self, Contact};

use crate::client::{form_body, ApiClient};
use crate::local::LOCAL_SLACK_SIGNING_SECRET;
use crate::ops::exit;

/// Where the stand-in lists what was posted.
pub const POSTS_PATH: &str = "/slack.json";
/// The message timestamp the stand-in answers every `chat.postMessage` with.
const STAND_IN_TS: &str = "1.000001";
/// How often `--wait` looks at the recorded posts again.
const POLL: Duration = Duration::from_millis(200);

const CLICK_EXAMPLES: &str = "Examples (against `make dev`, from the checkout):
  jit slack click req-0123456789abcdef0123456789abcdef approve --to approver-a
  jit slack click req-… reject --to U0APPROVERC --comment \"Use staging\" --wait 30s
  jit slack click req-… approve --to approver-c --as operator   # someone else's click: refused

Exit status: 0 the click decided; 1 the stack refused it (printed), no such message was posted,
or the stack could not be reached; 2 usage error.";

#[derive(clap::Subcommand, Debug)]
pub enum SlackCommand {
    /// Press Approve or Reject on a message the notifier posted to the local stack's Slack
    /// stand-in, with the callback Slack would send, signed with the local signing secret.
    #[command(after_help = CLICK_EXAMPLES)]
    Click(ClickArgs),
}

/// One of the two buttons of an approval message.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Button {
    Approve,
    Reject,
}

impl Button {
    /// The `action_id` the notifier gives the button.
    pub fn action_id(self) -> &'static str {
        match self {
            Self::Approve => slack_domain::APPROVE_ACTION,
            Self::Reject => slack_domain::REJECT_ACTION,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Approve => "Approve",
            Self::Reject => "Reject",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ClickArgs {
    /// The request whose message to click (req-…).
    #[arg(value_parser = parse_request_id)]
    pub request_id: RequestId,
    /// The button to press.
    #[arg(value_enum)]
    pub button: Button,
    /// Whose message: the Slack user it was sent to (U…) or their person in contacts.yaml
    /// (approver-a, carol). Name it when the level has several approvers: their messages are
    /// posted one after the other, so without it the first one posted may be the one clicked.
    #[arg(long, value_name = "WHO")]
    pub to: Option<String>,
    /// Who clicks, as a Slack user (U…) or a person in contacts.yaml [default: the one the
    /// message was sent to, as Slack would report]. Anyone else shows what the stack refuses.
    #[arg(long = "as", value_name = "WHO")]
    pub clicker: Option<String>,
    /// The approval level of the message [default: the newest message's]
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub level: Option<u8>,
    /// Text typed into the message's comment box before pressing the button.
    #[arg(long)]
    pub comment: Option<String>,
    /// Wait this long for the message to be posted (30s, 2m) [default: look once]
    #[arg(long, value_name = "T", value_parser = parse_wait)]
    pub wait: Option<Duration>,
    /// The local stack's URL [default: $JIT_API_URL, then .jit/dev.env's]
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// The policy directory `make dev` loaded: its contacts.yaml says whose Slack user is whose.
    #[arg(long, default_value = "policies")]
    pub policies: PathBuf,
}

fn parse_request_id(raw: &str) -> Result<RequestId, String> {
    RequestId::try_from(raw.to_owned()).map_err(|e| e.message)
}

fn parse_wait(raw: &str) -> Result<Duration, String> {
    crate::ops::parse_span(raw).map(Duration::from_secs)
}

/// An Approve / Reject message the notifier posted, as the stand-in recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Posted {
    /// Its place among the recorded posts.
    pub index: usize,
    /// Whom it was sent to (its `channel`: the app's direct message with that user).
    pub recipient: SlackUserId,
    pub request_id: RequestId,
    /// The approval level its buttons are for.
    pub level: u8,
    /// The `chat.postMessage` body.
    pub message: Value,
}

/// Why no message was picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotFound {
    /// Nothing matches yet: waiting may help.
    NotYet(String),
    /// Several people got the level's message and none was named.
    Ambiguous(String),
}

impl NotFound {
    pub fn message(&self) -> &str {
        match self {
            Self::NotYet(m) | Self::Ambiguous(m) => m,
        }
    }
}

/// The elements of a message's Approve / Reject block.
fn decision_buttons(message: &Value) -> Option<&Vec<Value>> {
    message["blocks"]
        .as_array()?
        .iter()
        .find(|b| b["type"] == "actions" && b["block_id"] == slack_domain::DECISION_BLOCK)?
        .get("elements")?
        .as_array()
}

/// The recorded post read as an approval message, if it is one.
fn as_approval_message(index: usize, message: &Value) -> Option<Posted> {
    let buttons = decision_buttons(message)?;
    let value = buttons.iter().find_map(|b| b["value"].as_str())?;
    let (id, level) = value.rsplit_once(':')?;
    Some(Posted {
        index,
        recipient: SlackUserId::try_from(message["channel"].as_str()?.to_owned()).ok()?,
        request_id: RequestId::try_from(id.to_owned()).ok()?,
        level: level.parse().ok()?,
        message: message.clone(),
    })
}

/// Picks the message about `id` (sent to `to`, for `level`, when given): the newest one, of the
/// newest level unless `level` names one. `name` shows a Slack user's person in messages.
pub fn pick(
    posts: &[Value],
    id: &RequestId,
    to: Option<&SlackUserId>,
    level: Option<u8>,
    name: &dyn Fn(&SlackUserId) -> String,
) -> Result<Posted, NotFound> {
    let about: Vec<Posted> = posts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| as_approval_message(i, p))
        .filter(|p| &p.request_id == id)
        .collect();
    if about.is_empty() {
        return Err(NotFound::NotYet(format!(
            "no Slack message about {id} was posted ({} posts recorded): it is posted when a level of a \
             Pending request opens, to its approvers with a slackUserId in contacts.yaml",
            posts.len()
        )));
    }
    let wanted: Vec<&Posted> =
        about.iter().filter(|p| to.is_none_or(|to| &p.recipient == to) && level.is_none_or(|l| p.level == l)).collect();
    let Some(newest) = wanted.last() else {
        let sent: Vec<String> = about.iter().map(|p| format!("{} (level {})", name(&p.recipient), p.level)).collect();
        let which = match (to, level) {
            (Some(to), Some(l)) => format!("a level-{l} message to {}", name(to)),
            (Some(to), None) => format!("a message to {}", name(to)),
            (None, Some(l)) => format!("a level-{l} message"),
            (None, None) => "a message".to_owned(),
        };
        return Err(NotFound::NotYet(format!(
            "no Slack message about {id} matches: {which} was not posted; messages about it went to {}",
            sent.join(", ")
        )));
    };
    let at_level: Vec<&&Posted> = wanted.iter().filter(|p| p.level == newest.level).collect();
    let mut recipients: Vec<String> = at_level.iter().map(|p| name(&p.recipient)).collect();
    recipients.sort();
    recipients.dedup();
    if to.is_none() && recipients.len() > 1 {
        return Err(NotFound::Ambiguous(format!(
            "the level-{} message about {id} went to {}: name one with --to",
            newest.level,
            recipients.join(", ")
        )));
    }
    Ok((*newest).clone())
}

/// Reads the stand-in's recorded posts.
pub async fn recorded_posts(stack: &ApiClient) -> Result<Vec<Value>, String> {
    let reply = stack.send("GET", POSTS_PATH, None, &[]).await?;
    match (reply.status, reply.body) {
        (200, Value::Array(posts)) => Ok(posts),
        (status, body) => Err(format!("GET {POSTS_PATH} answered {status}: {body} (is this the local stack?)")),
    }
}

/// Waits at most `wait` for `pick` to find the message (one look when `wait` is zero).
pub async fn find_posted(
    stack: &ApiClient,
    id: &RequestId,
    to: Option<&SlackUserId>,
    level: Option<u8>,
    wait: Duration,
    name: &dyn Fn(&SlackUserId) -> String,
) -> Result<Posted, String> {
    let deadline = Instant::now() + wait;
    loop {
        let posts = recorded_posts(stack).await?;
        match pick(&posts, id, to, level, name) {
            Ok(found) => return Ok(found),
            Err(NotFound::NotYet(m)) if Instant::now() >= deadline => return Err(m),
            Err(NotFound::Ambiguous(m)) => return Err(m),
            Err(NotFound::NotYet(_)) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The comment input of a message: its `block_id` and `action_id`.
fn comment_input(message: &Value) -> Option<(&str, &str)> {
    message["blocks"].as_array()?.iter().find_map(|b| {
        if b["type"] != "input" || b["element"]["type"] != "plain_text_input" {
            return None;
        }
        Some((b["block_id"].as_str()?, b["element"]["action_id"].as_str()?))
    })
}

/// Who presses the button, as Slack reports them.
#[derive(Clone, Debug)]
pub struct Clicker {
    pub user: SlackUserId,
    /// Their Slack user name (the person's name locally).
    pub name: String,
}

/// The interaction payload Slack sends when `clicker` presses `button` on `posted` (with
/// `comment` typed into its comment box): a `block_actions` callback carrying the button's own
/// `action_id`, `block_id` and value, and the message's input state. `response_url` names the
/// local stand-in, never Slack. `unix_now` stamps the action.
pub fn interaction_payload(
    posted: &Posted,
    clicker: &Clicker,
    button: Button,
    comment: Option<&str>,
    api_url: &str,
    unix_now: i64,
) -> Result<Value, String> {
    let message = &posted.message;
    let buttons = decision_buttons(message).ok_or("the message has no Approve / Reject buttons")?;
    let pressed = buttons
        .iter()
        .find(|b| b["action_id"] == button.action_id())
        .ok_or_else(|| format!("the message has no {} button", button.label()))?;
    let mut values = serde_json::Map::new();
    match (comment_input(message), comment) {
        (Some((block, action)), typed) => {
            // Slack reports every input of the message; an untouched one as null.
            values.insert(block.to_owned(), json!({ action: {"type": "plain_text_input", "value": typed} }));
        }
        (None, Some(_)) => return Err("the message has no comment box to type --comment into".into()),
        (None, None) => {}
    }
    let channel = posted.recipient.as_str();
    Ok(json!({
        "type": "block_actions",
        "user": {"id": clicker.user.as_str(), "username": clicker.name, "name": clicker.name, "team_id": "T0LOCAL"},
        "api_app_id": "A0LOCAL",
        "container": {"type": "message", "message_ts": STAND_IN_TS, "channel_id": channel, "is_ephemeral": false},
        "trigger_id": format!("{unix_now}.0.local"),
        "team": {"id": "T0LOCAL", "domain": "local"},
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": channel, "name": "directmessage"},
        "message": {
            "type": "message",
            "bot_id": "B0LOCAL",
            "ts": STAND_IN_TS,
            "text": message["text"],
            "blocks": message["blocks"],
        },
        "state": {"values": values},
        "response_url": format!("{}/slack-api/response-url", api_url.trim_end_matches('/')),
        "actions": [{
            "type": "button",
            "action_id": pressed["action_id"],
            "block_id": slack_domain::DECISION_BLOCK,
            "text": pressed["text"],
            "value": pressed["value"],
            "style": pressed["style"],
            "action_ts": format!("{unix_now}.000001"),
        }],
    }))
}

/// What `POST /chat/slack` answered.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The text Slack would show the clicker, or the error's message.
    pub fn text(&self) -> String {
        match self.body["text"].as_str() {
            Some(text) => text.to_owned(),
            None => {
                let error = &self.body["error"];
                match error["message"].as_str() {
                    Some(m) => format!("{m} ({})", error["code"].as_str().unwrap_or("?")),
                    None => self.body.to_string(),
                }
            }
        }
    }

    /// Whether the click decided something (the stack answers a refusal with 200 "Refused: …",
    /// which Slack shows the clicker).
    pub fn decided(&self) -> bool {
        self.status == 200 && self.body["text"].as_str().is_some_and(|t| !t.starts_with("Refused"))
    }
}

/// Posts `payload` to `POST /chat/slack` as Slack does: form-encoded, signed with `secret` at
/// `unix_now`.
pub async fn send_callback(
    stack: &ApiClient,
    secret: &SlackSigningSecret,
    payload: &Value,
    unix_now: i64,
) -> Result<Answer, String> {
    let body = form_body(&[("payload", &payload.to_string())]);
    let timestamp = unix_now.to_string();
    let signature = secret.sign(&timestamp, body.as_bytes());
    let headers = [("x-slack-request-timestamp", timestamp.as_str()), ("x-slack-signature", signature.as_str())];
    let (status, text) = stack
        .post_raw(jit_shared::http::slack::PATH, body.into_bytes(), "application/x-www-form-urlencoded", &headers)
        .await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer { status, body })
}

/// The local stack's signing secret.
pub fn local_secret() -> Result<SlackSigningSecret, String> {
    SlackSigningSecret::new(LOCAL_SLACK_SIGNING_SECRET).map_err(|e| e.to_string())
}

/// Clicks `button` on `posted` as `clicker`, with the local secret, now.
pub async fn click(
    stack: &ApiClient,
    api_url: &str,
    posted: &Posted,
    clicker: &Clicker,
    button: Button,
    comment: Option<&str>,
) -> Result<Answer, String> {
    let now = jit_shared::now().timestamp();
    let payload = interaction_payload(posted, clicker, button, comment, api_url, now)?;
    send_callback(stack, &local_secret()?, &payload, now).await
}

/// Who is whom in Slack, from a policy directory's contacts.yaml.
pub struct SlackPeople {
    contacts: Result<Vec<Contact>, String>,
}

impl SlackPeople {
    /// Reads `<policies>/contacts.yaml`; a problem is reported only when a name must be looked up.
    pub fn load(policies: &Path) -> Self {
        let path = policies.join(contacts::CONTACTS_FILE);
        let contacts = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display())).and_then(|t| {
            contacts::parse_contacts(&t).map_err(|errors| {
                let lines: Vec<String> =
                    errors.iter().map(|e| format!("{}:{}: {}", path.display(), e.line, e.message)).collect();
                lines.join("\n")
            })
        });
        Self { contacts }
    }

    fn name_of(person: &Person) -> String {
        match person {
            Person::IamUser(n) | Person::IdentityCenterUser(n) => n.clone(),
            Person::IamRoleSession { role, session } => format!("{role}/{session}"),
        }
    }

    /// A Slack user id as given (U…, W…), or the Slack user of the person so named.
    pub fn resolve(&self, who: &str) -> Result<SlackUserId, String> {
        if let Ok(id) = SlackUserId::try_from(who.to_owned()) {
            return Ok(id);
        }
        let contacts = self.contacts.as_ref().map_err(|e| format!("'{who}' is not a Slack user id (U…), and {e}"))?;
        let contact = contacts
            .iter()
            .find(|c| Self::name_of(&c.person) == who)
            .ok_or_else(|| format!("'{who}' is neither a Slack user id (U…) nor a person in contacts.yaml"))?;
        contact.slack_user_id.clone().ok_or_else(|| format!("{who} has no slackUserId in contacts.yaml"))
    }

    /// The person a Slack user is, if contacts.yaml says.
    pub fn person(&self, user: &SlackUserId) -> Option<String> {
        let contacts = self.contacts.as_ref().ok()?;
        contacts.iter().find(|c| c.slack_user_id.as_ref() == Some(user)).map(|c| Self::name_of(&c.person))
    }

    /// `U… (name)`, or the id alone.
    pub fn describe(&self, user: &SlackUserId) -> String {
        match self.person(user) {
            Some(name) => format!("{user} ({name})"),
            None => user.to_string(),
        }
    }
}

/// The local stack's URL: `--api-url`, `$JIT_API_URL`, then `.jit/dev.env`'s; loopback only.
fn local_api_url(given: Option<&str>) -> Result<String, String> {
    let env = crate::ops::settings::process_env("JIT_API_URL");
    let dev_env = || std::env::current_dir().ok().and_then(|d| crate::ops::settings::read_dev_env(&d)?.api_url);
    let url = given.map(str::to_owned).or(env).or_else(dev_env).ok_or(
        "no local stack found: start `make dev` and run from the checkout (it writes .jit/dev.env), or pass --api-url",
    )?;
    let url = crate::api::check_api_url(&url)?;
    if !crate::api::is_local(&url) {
        return Err(format!(
            "{url} is not the local stack: `jit slack` plays Slack for `make dev` only (a loopback address)"
        ));
    }
    Ok(url)
}

pub fn run(command: SlackCommand) -> ExitCode {
    let SlackCommand::Click(args) = command;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(run_click(&args)) {
        Ok(answer) => {
            println!("{}", answer.text());
            if answer.decided() {
                return ExitCode::from(exit::OK);
            }
            match answer.status {
                200 => eprintln!("error: the stack refused the click"),
                status => eprintln!("error: POST {} answered {status}", jit_shared::http::slack::PATH),
            }
            ExitCode::from(exit::ERROR)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::ERROR)
        }
    }
}

async fn run_click(args: &ClickArgs) -> Result<Answer, String> {
    let url = local_api_url(args.api_url.as_deref())?;
    let people = SlackPeople::load(&args.policies);
    let to = args.to.as_deref().map(|w| people.resolve(w)).transpose()?;
    let clicker = args.clicker.as_deref().map(|w| people.resolve(w)).transpose()?;
    let stack = ApiClient::new(&url, None);
    let name = |u: &SlackUserId| people.describe(u);
    let wait = args.wait.unwrap_or_default();
    let posted = find_posted(&stack, &args.request_id, to.as_ref(), args.level, wait, &name).await?;
    let user = clicker.unwrap_or_else(|| posted.recipient.clone());
    let clicker = Clicker { name: people.person(&user).unwrap_or_else(|| user.as_str().to_lowercase()), user };
    eprintln!(
        "{} presses {} on the level-{} message about {} sent to {} (post {} of {url}{POSTS_PATH})",
        people.describe(&clicker.user),
        args.button.label(),
        posted.level,
        posted.request_id,
        people.describe(&posted.recipient),
        posted.index + 1
    );
    click(&stack, &url, &posted, &clicker, args.button, args.comment.as_deref()).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test stops loudly on a broken expectation")]
    use super::*;

    const ID: &str = "req-0123456789abcdef0123456789abcdef";
    const OTHER: &str = "req-fedcba9876543210fedcba9876543210";

    fn user(id: &str) -> SlackUserId {
        SlackUserId::try_from(id.to_owned()).unwrap()
    }

    /// A message as the notifier builds it (`approval_message`'s blocks, trimmed to what is read).
    fn post(to: &str, id: &str, level: u8) -> Value {
        let value = format!("{id}:{level}");
        json!({
            "channel": to,
            "text": format!("Approval needed (level {level} of 2)"),
            "blocks": [
                {"type": "input", "block_id": "comment", "optional": true,
                 "element": {"type": "plain_text_input", "action_id": "comment"}},
                {"type": "actions", "block_id": "decision", "elements": [
                    {"type": "button", "action_id": "approve", "style": "primary", "value": value, "text": {"type": "plain_text", "text": "Approve"}},
                    {"type": "button", "action_id": "reject", "style": "danger", "value": value, "text": {"type": "plain_text", "text": "Reject"}},
                ]},
            ],
        })
    }

    fn id(raw: &str) -> RequestId {
        RequestId::try_from(raw.to_owned()).unwrap()
    }

    fn plain(u: &SlackUserId) -> String {
        u.to_string()
    }

    #[test]
    fn the_newest_message_about_the_request_is_picked_and_several_recipients_need_to() {
        let posts = [post("U0A", ID, 1), post("U0B", ID, 1), post("U0A", OTHER, 1), post("U0C", ID, 2)];

        let newest = pick(&posts, &id(ID), None, None, &plain).unwrap();
        let level_1 = pick(&posts, &id(ID), None, Some(1), &plain);
        let to_b = pick(&posts, &id(ID), Some(&user("U0B")), None, &plain).unwrap();

        assert_eq!((newest.index, newest.level, newest.recipient.as_str()), (3, 2, "U0C"));
        assert!(matches!(&level_1, Err(NotFound::Ambiguous(m)) if m.contains("U0A, U0B")), "{level_1:?}");
        assert_eq!((to_b.index, to_b.level), (1, 1));
    }

    #[test]
    fn no_matching_message_is_reported_with_what_was_posted() {
        let posts = [post("U0A", ID, 1), json!({"channel": "U0A", "text": "no buttons"})];

        let other = pick(&posts, &id(OTHER), None, None, &plain).unwrap_err();
        let to_c = pick(&posts, &id(ID), Some(&user("U0C")), None, &plain).unwrap_err();

        assert!(matches!(&other, NotFound::NotYet(m) if m.contains("no Slack message about") && m.contains("2 posts")));
        assert!(
            matches!(&to_c, NotFound::NotYet(m) if m.contains("to U0C") && m.contains("U0A (level 1)")),
            "{to_c:?}"
        );
    }

    #[test]
    fn the_payload_is_a_block_actions_click_the_stack_reads_back() {
        let posted = pick(&[post("U0A", ID, 2)], &id(ID), None, None, &plain).unwrap();
        let clicker = Clicker { user: user("U0A"), name: "approver-a".into() };

        let with_comment =
            interaction_payload(&posted, &clicker, Button::Reject, Some("use staging"), "http://127.0.0.1:1", 7)
                .unwrap();
        let without = interaction_payload(&posted, &clicker, Button::Approve, None, "http://127.0.0.1:1", 7).unwrap();

        let read = slack_domain::parse_click(&with_comment.to_string()).unwrap();
        assert_eq!((read.user.as_str(), read.request_id.as_str(), read.level), ("U0A", ID, 2));
        assert_eq!(read.verdict, jit_shared::domain::approval::Verdict::Reject);
        assert_eq!(read.comment.map(|c| c.as_str().to_owned()).as_deref(), Some("use staging"));
        assert_eq!(without["state"]["values"]["comment"]["comment"]["value"], Value::Null);
        assert_eq!(without["actions"][0]["action_id"], "approve");
        assert_eq!(slack_domain::parse_click(&without.to_string()).unwrap().comment, None);
    }

    #[test]
    fn a_comment_needs_a_comment_box() {
        let mut message = post("U0A", ID, 1);
        message["blocks"].as_array_mut().unwrap().remove(0);
        let posted = as_approval_message(0, &message).unwrap();
        let clicker = Clicker { user: user("U0A"), name: "a".into() };

        let refused = interaction_payload(&posted, &clicker, Button::Approve, Some("x"), "http://127.0.0.1:1", 1);
        let fine = interaction_payload(&posted, &clicker, Button::Approve, None, "http://127.0.0.1:1", 1);

        assert!(refused.unwrap_err().contains("no comment box"));
        assert_eq!(fine.unwrap()["state"]["values"], json!({}));
    }

    #[test]
    fn the_callback_is_signed_as_slack_signs_and_verifies_with_the_local_secret() {
        let secret = local_secret().unwrap();
        let body = form_body(&[("payload", "{\"type\":\"block_actions\"}")]);
        let signature = secret.sign("1700000000", body.as_bytes());
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();

        let verified = slack_domain::verify(&secret, Some("1700000000"), Some(&signature), body.as_bytes(), at);

        assert_eq!(verified, Ok(()));
        assert_eq!(body, "payload=%7B%22type%22%3A%22block_actions%22%7D");
    }

    #[test]
    fn only_a_loopback_stack_is_played() {
        assert!(local_api_url(Some("https://a1b2c3.execute-api.eu-west-1.amazonaws.com")).is_err());
        assert!(local_api_url(Some("http://example.com")).is_err());
        assert_eq!(local_api_url(Some("http://127.0.0.1:8080/")).unwrap(), "http://127.0.0.1:8080");
    }
}
