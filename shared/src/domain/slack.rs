//! Slack, pure: checking that an interaction callback comes from Slack (its request signature),
//! reading the approver's click out of it, and the Block Kit message an approver is sent.
//!
//! Slack signs each callback with the app's signing secret: `X-Slack-Signature` is `v0=` and the
//! hex HMAC-SHA256 of `v0:<X-Slack-Request-Timestamp>:<raw body>`. A callback whose timestamp is
//! more than five minutes from now (either way) is refused, so a captured one cannot be replayed
//! later; within that window a replay decides nothing new (one person counts once).

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::domain::approval::{Comment, Verdict};
use crate::domain::approval_rules as approval;
use crate::domain::errors::{FieldError, SettingError};
use crate::domain::ids::RequestId;
use crate::domain::request::AccessRequest;

/// How far a callback's timestamp may be from now, either way.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 5 * 60;
/// The `action_id` of the Approve button.
pub const APPROVE_ACTION: &str = "approve";
/// The `action_id` of the Reject button.
pub const REJECT_ACTION: &str = "reject";
/// The `block_id` and `action_id` of the comment input.
pub const COMMENT_BLOCK: &str = "comment";
pub const COMMENT_ACTION: &str = "comment";
/// The `block_id` of the buttons.
pub const DECISION_BLOCK: &str = "decision";

/// The Slack app's signing secret. Never printed.
#[derive(Clone)]
pub struct SlackSigningSecret(Hmac<Sha256>);

impl SlackSigningSecret {
    pub fn new(secret: &str) -> Result<Self, SettingError> {
        const WHAT: &str = "Slack signing secret";
        let secret = secret.trim();
        let too_short = SettingError::TooShort { what: WHAT, min: 16, unit: "characters", len: secret.len() };
        if secret.len() < 16 {
            return Err(too_short);
        }
        // HMAC takes a key of any length; the error is unreachable past the length check.
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map(Self).map_err(|_| too_short)
    }

    fn mac(&self, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(b"v0:");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac
    }

    /// The `X-Slack-Signature` Slack would send for this timestamp and body (the local stack's
    /// and the tests' stand-in for Slack).
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        format!("v0={}", hex::encode(self.mac(timestamp, body).finalize().into_bytes()))
    }
}

impl fmt::Debug for SlackSigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlackSigningSecret(…)")
    }
}

/// Why a callback is not taken as Slack's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("X-Slack-Request-Timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("X-Slack-Request-Timestamp is more than {MAX_CLOCK_SKEW_SECONDS} seconds from now")]
    Stale,
    #[error("X-Slack-Signature does not match the body")]
    BadSignature,
}

/// Checks a callback's signature headers against its raw body, at `now`. The comparison of the
/// MACs is constant-time.
pub fn verify(
    secret: &SlackSigningSecret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("X-Slack-Signature"))?;
    if timestamp.is_empty() || timestamp.len() > 12 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    let at: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now.timestamp() - at).abs() > MAX_CLOCK_SKEW_SECONDS {
        return Err(SignatureError::Stale);
    }
    let given = signature.strip_prefix("v0=").and_then(|h| hex::decode(h).ok()).ok_or(SignatureError::BadSignature)?;
    secret.mac(timestamp, body).verify_slice(&given).map_err(|_| SignatureError::BadSignature)
}

/// A Slack user id (`U…` or, for Enterprise Grid, `W…`): what `contacts.yaml`'s `slackUserId`
/// holds and what a callback's `user.id` is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlackUserId(String);

impl SlackUserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SlackUserId {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let mut bytes = value.bytes();
        let ok = matches!(bytes.next(), Some(b'U' | b'W'))
            && value.len() >= 3
            && value.len() <= 64
            && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(value))
        } else {
            Err(FieldError::new(
                "slackUserId",
                "InvalidSlackUserId",
                format!("'{value}' is not a Slack user id (U or W, then capital letters and digits, like U024BE7LH)"),
            ))
        }
    }
}

impl fmt::Display for SlackUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An approver's click on Approve or Reject, as read from a `block_actions` callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Click {
    pub user: SlackUserId,
    pub request_id: RequestId,
    /// The level the message was sent for.
    pub level: u8,
    pub verdict: Verdict,
    pub comment: Option<Comment>,
}

/// The button value: `<request id>:<level>`.
pub fn button_value(id: &RequestId, level: u8) -> String {
    format!("{id}:{level}")
}

fn field(name: &str, code: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(name, code, message)
}

/// Reads the `payload` JSON of an interaction callback: a `block_actions` click on one of our
/// buttons, with the comment typed into the message's comment input, if any.
pub fn parse_click(payload: &str) -> Result<Click, FieldError> {
    let value: Value = serde_json::from_str(payload)
        .map_err(|e| field("payload", "InvalidJson", format!("the payload is not valid JSON: {e}")))?;
    match value.get("type").and_then(Value::as_str) {
        Some("block_actions") => {}
        other => {
            return Err(field(
                "payload.type",
                "UnsupportedInteraction",
                format!("only block_actions callbacks are handled, not {}", other.unwrap_or("(none)")),
            ))
        }
    }
    let user = value
        .pointer("/user/id")
        .and_then(Value::as_str)
        .ok_or_else(|| field("payload.user.id", "Missing", "the callback names no Slack user"))?;
    let user = SlackUserId::try_from(user.to_owned()).map_err(|e| field("payload.user.id", &e.code, e.message))?;
    let action = value
        .pointer("/actions/0")
        .ok_or_else(|| field("payload.actions", "Missing", "the callback carries no action"))?;
    let verdict = match action.get("action_id").and_then(Value::as_str) {
        Some(APPROVE_ACTION) => Verdict::Approve,
        Some(REJECT_ACTION) => Verdict::Reject,
        _ => {
            return Err(field(
                "payload.actions.0.action_id",
                "UnknownAction",
                format!("must be {APPROVE_ACTION} or {REJECT_ACTION}"),
            ))
        }
    };
    let raw = action.get("value").and_then(Value::as_str).unwrap_or_default();
    let bad_value = || field("payload.actions.0.value", "InvalidValue", "must be '<request id>:<level>'");
    let (id, level) = raw.rsplit_once(':').ok_or_else(bad_value)?;
    let request_id = RequestId::try_from(id.to_owned()).map_err(|_| bad_value())?;
    let level = level.parse::<u8>().ok().filter(|l| (1..=5).contains(l)).ok_or_else(bad_value)?;
    let comment = match value.pointer(&format!("/state/values/{COMMENT_BLOCK}/{COMMENT_ACTION}/value")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Comment::parse_optional(Some(s))?,
        Some(_) => return Err(field("comment", "InvalidType", "must be a string")),
    };
    Ok(Click { user, request_id, level, verdict, comment })
}

/// Text as Slack's `mrkdwn` shows it literally: `&`, `<` and `>` escaped, so user text cannot
/// make links or mentions.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max` characters (Slack refuses longer texts in a block).
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The `chat.postMessage` body asking `to` to decide `level` of `request`: who asks for which
/// node, why and for how long, the node's tags, the approval level, a comment input and the
/// Approve and Reject buttons (whose value is `button_value`).
pub fn approval_message(request: &AccessRequest, to: &SlackUserId, level: u8, now: DateTime<Utc>) -> Value {
    let plan = approval::plan_of(request);
    let levels = plan.map_or(0, |p| p.levels.len());
    let needed = plan.and_then(|p| p.levels.get(usize::from(level).saturating_sub(1))).map_or(1, |l| l.min_approvals);
    let progress = request.progress.as_ref();
    let so_far = progress.map_or(0, |p| p.approvals_at(level));
    let deadline = progress.map_or_else(
        || now.to_rfc3339_opts(SecondsFormat::Secs, true),
        |p| p.pending_until.to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    let tags = request
        .decision
        .as_ref()
        .map(|d| d.node_tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "(none)".into());
    let mrkdwn = |label: &str, value: &str| json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", clip(&escape(value), 1900))});
    // The requester's own text, verbatim: no bold lines that pass for fields, no links.
    let verbatim = |label: &str, value: &str| json!({"type": "mrkdwn", "text": format!("*{label}*\n```{}```", clip(&escape(&value.replace('`', "'")), 1900))});
    let value = button_value(&request.request_id, level);
    let summary = approval::summary(request);
    let mut fields = vec![mrkdwn("Request", request.request_id.as_str()), mrkdwn("Node", request.node_id.as_str())];
    fields.extend(approval::terms(request).iter().map(|(label, value)| mrkdwn(label, value)));
    fields.extend([
        mrkdwn("Level", &format!("{level} of {levels} ({so_far} of {needed} approvals so far)")),
        verbatim("Node tags", &tags),
        mrkdwn("Decide before", &deadline),
    ]);
    json!({
        "channel": to.as_str(),
        "text": escape(&format!("Approval needed (level {level} of {levels}): {summary}")),
        "unfurl_links": false,
        "unfurl_media": false,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": clip(&format!("Approval needed: level {level} of {levels}"), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(&escape(&summary), 2900)}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": verbatim("Reason", request.reason.as_str())},
            {
                "type": "input",
                "block_id": COMMENT_BLOCK,
                "optional": true,
                "label": {"type": "plain_text", "text": "Comment (optional)"},
                "element": {"type": "plain_text_input", "action_id": COMMENT_ACTION, "multiline": true, "max_length": crate::domain::approval::MAX_COMMENT_CHARS},
            },
            {"type": "actions", "block_id": DECISION_BLOCK, "elements": [
                {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": value, "text": {"type": "plain_text", "text": "Approve"}},
                {"type": "button", "action_id": REJECT_ACTION, "style": "danger", "value": value, "text": {"type": "plain_text", "text": "Reject"}},
            ]},
        ],
    })
}

/// The answer to a callback, shown only to the approver who clicked.
pub fn reply(text: &str) -> Value {
    json!({"response_type": "ephemeral", "replace_original": false, "text": text})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test stops loudly on a broken expectation")]
    use super::*;

    /// Slack's own example ("Verifying requests from Slack").
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TIMESTAMP: &str = "1531420618";
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn slacks_documented_example_signs_and_verifies() {
        let secret = SlackSigningSecret::new(SLACK_SECRET).unwrap();

        let signed = secret.sign(SLACK_TIMESTAMP, SLACK_BODY.as_bytes());
        let verified =
            verify(&secret, Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), SLACK_BODY.as_bytes(), at(1_531_420_618));

        assert_eq!(signed, SLACK_SIGNATURE);
        assert_eq!(verified, Ok(()));
    }

    #[test]
    fn a_callback_is_refused_unless_signed_over_this_body_within_five_minutes() {
        let secret = SlackSigningSecret::new(SLACK_SECRET).unwrap();
        let other = SlackSigningSecret::new("another-secret-of-enough-length").unwrap();
        let t = 1_531_420_618;
        let body = SLACK_BODY.as_bytes();
        let flipped = format!("{}0", &SLACK_SIGNATURE[..SLACK_SIGNATURE.len() - 1]);
        let by_other = other.sign(SLACK_TIMESTAMP, body);
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8], i64, Result<(), SignatureError>);
        let cases: [Case<'_>; 12] = [
            ("signed", Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), body, t, Ok(())),
            ("five minutes late", Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), body, t + 300, Ok(())),
            ("five minutes early", Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), body, t - 300, Ok(())),
            ("too old", Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), body, t + 301, Err(SignatureError::Stale)),
            (
                "from the future",
                Some(SLACK_TIMESTAMP),
                Some(SLACK_SIGNATURE),
                body,
                t - 301,
                Err(SignatureError::Stale),
            ),
            (
                "another body",
                Some(SLACK_TIMESTAMP),
                Some(SLACK_SIGNATURE),
                b"token=x",
                t,
                Err(SignatureError::BadSignature),
            ),
            ("a changed signature", Some(SLACK_TIMESTAMP), Some(&flipped), body, t, Err(SignatureError::BadSignature)),
            ("another secret", Some(SLACK_TIMESTAMP), Some(&by_other), body, t, Err(SignatureError::BadSignature)),
            ("no v0=", Some(SLACK_TIMESTAMP), Some(&SLACK_SIGNATURE[3..]), body, t, Err(SignatureError::BadSignature)),
            ("no signature", Some(SLACK_TIMESTAMP), None, body, t, Err(SignatureError::Missing("X-Slack-Signature"))),
            (
                "no timestamp",
                None,
                Some(SLACK_SIGNATURE),
                body,
                t,
                Err(SignatureError::Missing("X-Slack-Request-Timestamp")),
            ),
            (
                "a signed timestamp",
                Some("-1531420618"),
                Some(SLACK_SIGNATURE),
                body,
                t,
                Err(SignatureError::BadTimestamp),
            ),
        ];
        for (case, timestamp, signature, body, now, expected) in cases {
            assert_eq!(verify(&secret, timestamp, signature, body, at(now)), expected, "{case}");
        }
    }

    #[test]
    fn slack_user_ids_are_u_or_w_then_capitals_and_digits() {
        let cases = [
            ("U024BE7LH", true),
            ("W012A3CDE", true),
            ("U12", true),
            ("U1", false),
            ("u024BE7LH", false),
            ("T024BE7LH", false),
            ("U024be7lh", false),
            ("U024 BE7", false),
            ("", false),
        ];
        for (id, ok) in cases {
            assert_eq!(SlackUserId::try_from(id.to_owned()).is_ok(), ok, "{id}");
        }
    }

    fn payload(action: &str, value: &str, comment: Value) -> String {
        json!({
            "type": "block_actions",
            "user": {"id": "U024BE7LH", "username": "lead"},
            "actions": [{"action_id": action, "block_id": DECISION_BLOCK, "value": value, "type": "button"}],
            "state": {"values": {COMMENT_BLOCK: {COMMENT_ACTION: {"type": "plain_text_input", "value": comment}}}},
        })
        .to_string()
    }

    const ID: &str = "req-0123456789abcdef0123456789abcdef";

    #[test]
    fn a_click_is_read_with_its_request_level_verdict_and_comment() {
        let click = parse_click(&payload(REJECT_ACTION, &format!("{ID}:2"), json!("  not now "))).unwrap();

        assert_eq!(click.user.as_str(), "U024BE7LH");
        assert_eq!((click.request_id.as_str(), click.level, click.verdict), (ID, 2, Verdict::Reject));
        assert_eq!(click.comment.as_ref().map(Comment::as_str), Some("not now"));
        let blank = parse_click(&payload(APPROVE_ACTION, &format!("{ID}:1"), Value::Null)).unwrap();
        assert_eq!((blank.verdict, blank.comment), (Verdict::Approve, None));
    }

    #[test]
    fn a_malformed_click_is_refused_naming_the_field() {
        let long = "x".repeat(1001);
        let cases = [
            ("not json".to_owned(), "payload"),
            (json!({"type": "view_submission"}).to_string(), "payload.type"),
            (json!({"type": "block_actions", "actions": []}).to_string(), "payload.user.id"),
            (json!({"type": "block_actions", "user": {"id": "T1"}}).to_string(), "payload.user.id"),
            (json!({"type": "block_actions", "user": {"id": "U024BE7LH"}}).to_string(), "payload.actions"),
            (payload("maybe", &format!("{ID}:1"), Value::Null), "payload.actions.0.action_id"),
            (payload(APPROVE_ACTION, ID, Value::Null), "payload.actions.0.value"),
            (payload(APPROVE_ACTION, &format!("{ID}:9"), Value::Null), "payload.actions.0.value"),
            (payload(APPROVE_ACTION, "req-x:1", Value::Null), "payload.actions.0.value"),
            (payload(APPROVE_ACTION, &format!("{ID}:1"), json!(long)), "comment"),
            (payload(APPROVE_ACTION, &format!("{ID}:1"), json!(3)), "comment"),
        ];
        for (body, expected) in cases {
            let err = parse_click(&body).unwrap_err();
            assert_eq!(err.field, expected, "{body}: {err}");
        }
    }

    #[test]
    fn markup_in_user_text_cannot_make_links_or_mentions() {
        assert_eq!(escape("<!channel> & <https://x|y>"), "&lt;!channel&gt; &amp; &lt;https://x|y&gt;");
    }
}
