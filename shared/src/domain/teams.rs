//! Microsoft Teams, pure: the webhooks approvers are reached through and the Adaptive Card they
//! are sent.
//!
//! Each approver who decides from Teams has their own webhook (a Workflows "post to a chat when a
//! webhook request is received" flow into a 1:1 chat with them, or a legacy incoming webhook).
//! Their card carries their personal approval link, the same one their mail carries, so it goes
//! only to the webhook listed for that person. The webhooks are secrets (whoever holds one can post
//! as the flow), kept in one SSM SecureString: a JSON object from person key to URL,
//! `{"iam-user#approver-a": "https://…"}`. A URL is never printed: not in errors, not in `Debug`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::domain::approval::Person;
use crate::domain::approval_rules as approval;
use crate::domain::request::AccessRequest;

/// Hosts Teams and Power Automate serve webhooks from, as name suffixes: legacy incoming
/// webhooks (`<tenant>.webhook.office.com`), Workflows on Logic Apps
/// (`prod-NN.<region>.logic.azure.com`) and on Power Platform
/// (`<env>.environment.api.powerplatform.com`).
pub const WEBHOOK_HOST_SUFFIXES: [&str; 3] = [".webhook.office.com", ".logic.azure.com", ".powerplatform.com"];
/// Longer URLs than any webhook Teams issues are refused rather than stored.
const MAX_URL_CHARS: usize = 2048;

/// Why a webhook URL is refused. Never carries the URL itself (its path is the credential).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    #[error("it is not an https:// URL")]
    NotHttps,
    #[error("it is longer than {MAX_URL_CHARS} characters or has spaces or control characters")]
    Malformed,
    #[error("it names no host, or a host with a user name or a port other than 443")]
    BadAuthority,
    #[error("its host '{0}' is not a Teams or Power Automate webhook host (*.webhook.office.com, *.logic.azure.com, *.powerplatform.com)")]
    HostNotAllowed(String),
    #[error("it has no path (a webhook URL names its flow or connector in the path)")]
    NoPath,
    #[error("a local stand-in must be http://127.0.0.1:<port>/…")]
    NotLoopback,
}

/// Why the webhooks parameter is refused: names the person, never a URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TeamsConfigError {
    #[error("the Teams webhooks are not a JSON object of person to URL: {0}")]
    NotAnObject(String),
    #[error("'{0}' is not a person key (iam-user#<name> or ic-user#<user name>)")]
    BadPerson(String),
    #[error("the Teams webhook of {person} is not a string")]
    NotAString { person: String },
    #[error("the Teams webhook of {person} is refused: {problem}")]
    BadUrl { person: String, problem: WebhookUrlError },
    #[error("{0} is listed twice")]
    Duplicate(String),
}

/// One person's webhook URL. Its `Debug` hides it; only the Teams adapter reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct TeamsWebhookUrl(String);

impl TeamsWebhookUrl {
    /// A webhook of Teams or Power Automate: `https://`, a host under `WEBHOOK_HOST_SUFFIXES`
    /// (port 443 at most), no user name, and a path.
    pub fn parse(url: &str) -> Result<Self, WebhookUrlError> {
        let url = url.trim();
        if url.is_empty()
            || url.chars().count() > MAX_URL_CHARS
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(WebhookUrlError::Malformed);
        }
        let rest = strip_prefix_ignore_case(url, "https://").ok_or(WebhookUrlError::NotHttps)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(WebhookUrlError::BadAuthority);
        }
        let host = match authority.rsplit_once(':') {
            Some((host, "443")) => host,
            Some(_) => return Err(WebhookUrlError::BadAuthority),
            None => authority,
        }
        .to_ascii_lowercase();
        let host_ok = !host.is_empty()
            && host.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !host_ok {
            return Err(WebhookUrlError::BadAuthority);
        }
        // A label before the suffix: the bare suffix is not anyone's webhook host.
        if !WEBHOOK_HOST_SUFFIXES.iter().any(|s| host.len() > s.len() && host.ends_with(s)) {
            return Err(WebhookUrlError::HostNotAllowed(host));
        }
        if !path.starts_with('/') || path.len() < 2 {
            return Err(WebhookUrlError::NoPath);
        }
        Ok(Self(url.to_owned()))
    }

    /// A stand-in on this machine (`http://127.0.0.1:<port>/…`): the local stack and tests only.
    pub fn loopback_stand_in(url: &str) -> Result<Self, WebhookUrlError> {
        let rest = url.strip_prefix("http://127.0.0.1:").ok_or(WebhookUrlError::NotLoopback)?;
        let (port, path) = rest.split_at(rest.find('/').ok_or(WebhookUrlError::NotLoopback)?);
        if port.is_empty() || port.parse::<u16>().is_err() || path.len() < 2 {
            return Err(WebhookUrlError::NotLoopback);
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(WebhookUrlError::Malformed);
        }
        Ok(Self(url.to_owned()))
    }

    /// Whether it points at a local stand-in (plain HTTP on 127.0.0.1).
    pub fn is_loopback(&self) -> bool {
        self.0.starts_with("http://127.0.0.1:")
    }

    /// The URL, for the adapter that posts to it. Not for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

impl fmt::Debug for TeamsWebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TeamsWebhookUrl(…)")
    }
}

/// Each person's own webhook, by person key (`Person::key`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TeamsWebhooks(BTreeMap<String, TeamsWebhookUrl>);

impl TeamsWebhooks {
    /// Reads the SecureString's JSON object of person key to webhook URL, checking every URL
    /// (`TeamsWebhookUrl::parse`). One bad entry refuses the whole set, naming the person.
    pub fn parse(text: &str) -> Result<Self, TeamsConfigError> {
        // Parsed to a `Value` first: serde's typed errors may quote the offending value.
        let value: Value =
            serde_json::from_str(text).map_err(|e| TeamsConfigError::NotAnObject(format!("not JSON ({e})")))?;
        let Value::Object(entries) = value else {
            return Err(TeamsConfigError::NotAnObject("not an object".into()));
        };
        let mut webhooks = Self::default();
        for (key, url) in entries {
            let person = Person::parse_key(key.trim()).ok_or_else(|| {
                // Keys and values swapped would put a URL here: it is not echoed.
                let shown =
                    if key.contains("://") { "(a URL where a person key belongs)".to_owned() } else { key.clone() };
                TeamsConfigError::BadPerson(shown)
            })?;
            let Value::String(url) = url else { return Err(TeamsConfigError::NotAString { person: person.key() }) };
            let url = TeamsWebhookUrl::parse(&url)
                .map_err(|problem| TeamsConfigError::BadUrl { person: person.key(), problem })?;
            webhooks.insert(&person, url)?;
        }
        Ok(webhooks)
    }

    /// Adds one person's webhook (the local stack's stand-ins).
    pub fn insert(&mut self, person: &Person, url: TeamsWebhookUrl) -> Result<(), TeamsConfigError> {
        match self.0.entry(person.key()) {
            std::collections::btree_map::Entry::Occupied(e) => Err(TeamsConfigError::Duplicate(e.key().clone())),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(url);
                Ok(())
            }
        }
    }

    /// The webhook listed for exactly this person, if any.
    pub fn of(&self, person: &Person) -> Option<&TeamsWebhookUrl> {
        self.0.get(&person.key())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every webhook is a local stand-in (then no TLS trust store is needed).
    pub fn all_loopback(&self) -> bool {
        self.0.values().all(TeamsWebhookUrl::is_loopback)
    }
}

/// User text as an Adaptive Card shows it literally: the card's markdown makes links of
/// `[text](url)`, so `](` is broken up and a reason cannot dress a link up as ours.
pub fn plain(text: &str) -> String {
    text.replace("](", "]\u{200b}(")
}

/// At most `max` characters.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The message posted to `to`'s webhook asking them to decide `level` of `request`: an Adaptive
/// Card with the request, node, tags, reason, level and requester, and one button that opens
/// `link`, the personal confirmation link their mail carries (opening it changes nothing; the
/// page asks them to confirm).
pub fn approval_card(request: &AccessRequest, to: &Person, level: u8, link: &str, now: DateTime<Utc>) -> Value {
    let plan = approval::plan_of(request);
    let levels = plan.map_or(0, |p| p.levels.len());
    let needed = plan.and_then(|p| p.levels.get(usize::from(level).saturating_sub(1))).map_or(1, |l| l.min_approvals);
    let progress = request.progress.as_ref();
    let so_far = progress.map_or(0, |p| p.approvals_at(level));
    let deadline = progress.map_or(now, |p| p.pending_until).to_rfc3339_opts(SecondsFormat::Secs, true);
    let tags = request
        .decision
        .as_ref()
        .map(|d| d.node_tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "(none)".into());
    let fact = |title: &str, value: &str| json!({"title": title, "value": clip(&plain(value), 1000)});
    let mut facts = vec![fact("Request", request.request_id.as_str()), fact("Node", request.node_id.as_str())];
    facts.extend(crate::domain::approval_rules::terms(request).iter().map(|(title, value)| fact(title, value)));
    facts.extend([
        fact("Node tags", &tags),
        fact("Reason", request.reason.as_str()),
        fact("Level", &format!("{level} of {levels} ({so_far} of {needed} approvals so far)")),
        fact("Requester", request.requester.as_str()),
        fact("Decide before", &deadline),
    ]);
    let card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "size": "Medium",
                "weight": "Bolder",
                "wrap": true,
                "text": format!("Approval needed: level {level} of {levels}"),
            },
            {
                "type": "TextBlock",
                "wrap": true,
                "text": clip(&plain(&crate::domain::approval_rules::summary(request)), 1000),
            },
            {
                "type": "FactSet",
                "facts": facts,
            },
            {
                "type": "TextBlock",
                "wrap": true,
                "isSubtle": true,
                "text": format!("This link is for {to} only: it works once. Opening it changes nothing; the page asks you to confirm."),
            },
        ],
        "actions": [
            {"type": "Action.OpenUrl", "title": "Review and decide", "url": link},
        ],
    });
    // The envelope both legacy incoming webhooks and Workflows' "post a card" flows take.
    json!({
        "type": "message",
        "summary": clip(&format!("Approval needed: access to {} (level {level} of {levels})", request.node_id), 150),
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card},
        ],
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test stops loudly on a broken expectation")]
    use super::*;

    #[test]
    fn only_https_urls_of_teams_and_power_automate_webhook_hosts_are_taken() {
        use WebhookUrlError::*;
        let host = |h: &str| Err(HostNotAllowed(h.to_owned()));
        let cases: [(&str, Result<(), WebhookUrlError>); 18] = [
            ("https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456", Ok(())),
            ("https://prod-12.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x", Ok(())),
            (
                "https://default1234.56.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/abc",
                Ok(()),
            ),
            ("HTTPS://Contoso.Webhook.Office.com/webhookb2/x", Ok(())),
            ("  https://contoso.webhook.office.com/webhookb2/x  ", Ok(())),
            ("http://contoso.webhook.office.com/webhookb2/x", Err(NotHttps)),
            ("ftp://contoso.webhook.office.com/x", Err(NotHttps)),
            ("https://webhook.office.com/webhookb2/x", host("webhook.office.com")),
            ("https://contoso.webhook.office.com.evil.example/x", host("contoso.webhook.office.com.evil.example")),
            ("https://evil-webhook.office.com/x", host("evil-webhook.office.com")),
            ("https://hooks.slack.com/services/x", host("hooks.slack.com")),
            ("https://user@contoso.webhook.office.com/x", Err(BadAuthority)),
            ("https://contoso.webhook.office.com:8443/x", Err(BadAuthority)),
            ("https://contoso..webhook.office.com/x", Err(BadAuthority)),
            ("https://contoso.webhook.office.com", Err(NoPath)),
            ("https://contoso.webhook.office.com/", Err(NoPath)),
            ("https://contoso.webhook.office.com/a b", Err(Malformed)),
            ("", Err(Malformed)),
        ];
        for (url, expected) in cases {
            assert_eq!(TeamsWebhookUrl::parse(url).map(|_| ()), expected, "{url}");
        }
    }

    #[test]
    fn a_stand_in_must_be_plain_http_on_127_0_0_1_with_a_port_and_path() {
        let cases = [
            ("http://127.0.0.1:8080/teams-webhook/iam-user%23a", true),
            ("http://127.0.0.1/teams-webhook/a", false),
            ("http://127.0.0.1:8080/", false),
            ("http://127.0.0.1.evil.example:80/x", false),
            ("https://127.0.0.1:8080/x", false),
        ];
        for (url, ok) in cases {
            assert_eq!(TeamsWebhookUrl::loopback_stand_in(url).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn the_webhooks_parameter_maps_each_person_to_their_own_url_and_errors_name_the_person_not_the_url() {
        let secret_path = "webhookb2/SECRET-PATH";
        let good = format!(
            r#"{{"iam-user#approver-a": "https://contoso.webhook.office.com/{secret_path}", "ic-user#carol": "https://prod-1.westus.logic.azure.com/workflows/x"}}"#
        );
        let webhooks = TeamsWebhooks::parse(&good).unwrap();
        assert_eq!(webhooks.len(), 2);
        assert!(webhooks.of(&Person::IamUser("approver-a".into())).unwrap().expose().ends_with(secret_path));
        assert!(webhooks.of(&Person::IamUser("carol".into())).is_none(), "an IAM user carol is not ic-user#carol");
        assert!(!format!("{webhooks:?}").contains(secret_path), "Debug hides the URLs");

        let bad_url = format!(r#"{{"iam-user#approver-b": "http://contoso.webhook.office.com/{secret_path}"}}"#);
        let cases = [
            (bad_url, "iam-user#approver-b"),
            (r#"{"approver-b": "https://contoso.webhook.office.com/x"}"#.to_owned(), "approver-b"),
            (r#"{"iam-user#approver-b": 3}"#.to_owned(), "iam-user#approver-b"),
            (format!(r#"{{"https://contoso.webhook.office.com/{secret_path}": "iam-user#approver-b"}}"#), "URL where"),
            (format!(r#"["https://contoso.webhook.office.com/{secret_path}"]"#), "object"),
            (format!("https://contoso.webhook.office.com/{secret_path}"), "JSON"),
        ];
        for (text, named) in cases {
            let message = TeamsWebhooks::parse(&text).unwrap_err().to_string();
            assert!(message.contains(named), "{message}");
            assert!(!message.contains(secret_path), "the URL is not in the error: {message}");
        }
    }
}
