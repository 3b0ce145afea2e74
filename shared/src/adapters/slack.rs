//! `ChatNotifier` through the Slack Web API: `chat.postMessage` with the app's bot token, to the
//! approver's Slack user id (a direct message from the app). HTTPS to the configured base URL
//! (`https://slack.com/api` by default); plain HTTP only to 127.0.0.1, where the local stack and
//! the tests run a stand-in that records what would be posted.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use crate::domain::slack::SlackUserId;
use crate::ports::{ChatNotifier, PortError};

/// Slack's Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";
/// How long one call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the Slack client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SlackSetupError {
    #[error("the Slack bot token is empty or has spaces")]
    BotToken,
    #[error("the Slack API URL must be https:// (or http://127.0.0.1 locally), not '{0}'")]
    ApiUrl(String),
    #[error(transparent)]
    Https(#[from] crate::adapters::https::HttpsSetupError),
}

/// The app's bot token (`xoxb-…`). Never printed.
#[derive(Clone)]
pub struct BotToken(String);

impl BotToken {
    pub fn new(token: &str) -> Result<Self, SlackSetupError> {
        let token = token.trim();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SlackSetupError::BotToken);
        }
        Ok(Self(token.to_owned()))
    }
}

impl std::fmt::Debug for BotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotToken(…)")
    }
}

/// Checks a Web API base URL: `https://…`, or `http://127.0.0.1…` (a stand-in on this machine).
pub fn check_api_url(url: &str) -> Result<String, SlackSetupError> {
    let url = url.trim().trim_end_matches('/');
    let loopback =
        url.strip_prefix("http://127.0.0.1").is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']));
    if url.starts_with("https://") || loopback {
        Ok(url.to_owned())
    } else {
        Err(SlackSetupError::ApiUrl(url.to_owned()))
    }
}

pub struct SlackWebApi {
    base_url: String,
    token: BotToken,
    http: crate::adapters::https::HttpsClient,
}

impl SlackWebApi {
    pub fn new(base_url: &str, token: BotToken) -> Result<Self, SlackSetupError> {
        // Plain HTTP only to 127.0.0.1 (`check_api_url`).
        let base_url = check_api_url(base_url)?;
        Ok(Self { http: crate::adapters::https::client(&base_url)?, base_url, token })
    }

    async fn call(&self, method: &str, body: &serde_json::Value) -> Result<serde_json::Value, PortError> {
        let request = http::Request::post(format!("{}/{method}", self.base_url))
            .header("content-type", "application/json; charset=utf-8")
            .header("authorization", format!("Bearer {}", self.token.0))
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| PortError::Permanent(format!("Slack {method}: building the request: {e}")))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| PortError::Transient(format!("Slack {method}: no answer within {CALL_TIMEOUT:?}")))?
            .map_err(|e| PortError::Transient(format!("Slack {method}: {e}")))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), 1024 * 1024)
            .collect()
            .await
            .map_err(|e| PortError::Transient(format!("Slack {method}: reading the answer: {e}")))?
            .to_bytes();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(PortError::Transient(format!("Slack {method}: HTTP {status}")));
        }
        let answer: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| PortError::Permanent(format!("Slack {method}: HTTP {status}, not JSON: {e}")))?;
        match answer.get("ok").and_then(serde_json::Value::as_bool) {
            Some(true) => Ok(answer),
            _ => {
                let error = answer.get("error").and_then(serde_json::Value::as_str).unwrap_or("unknown_error");
                let message = format!("Slack {method}: {error}");
                Err(if matches!(error, "ratelimited" | "service_unavailable" | "fatal_error" | "internal_error") {
                    PortError::Transient(message)
                } else {
                    PortError::Permanent(message)
                })
            }
        }
    }
}

#[async_trait]
impl ChatNotifier for SlackWebApi {
    async fn post(&self, to: &SlackUserId, message: &serde_json::Value) -> Result<(), PortError> {
        let mut body = message.clone();
        if let Some(map) = body.as_object_mut() {
            // A user id as the channel: the app's direct message with that user.
            map.insert("channel".into(), serde_json::Value::String(to.as_str().to_owned()));
        }
        self.call("chat.postMessage", &body).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test stops loudly on a broken expectation")]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A Slack stand-in on 127.0.0.1 that answers one call with `answer` and hands back the
    /// request it received (head and body).
    async fn stand_in(answer: &'static str) -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = socket.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let head = text[..end].to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if seen.len() >= end + 4 + length {
                        break (text[..end].to_owned(), seen[end + 4..end + 4 + length].to_vec());
                    }
                }
            };
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            socket.write_all(reply.as_bytes()).await.unwrap();
            (head, body)
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_message_is_posted_to_chat_post_message_as_the_bot_to_the_approvers_user() {
        // Arrange
        let (url, stand_in) = stand_in(r#"{"ok": true, "ts": "1.2"}"#).await;
        let api = SlackWebApi::new(&url, BotToken::new("xoxb-test").unwrap()).unwrap();
        let to = SlackUserId::try_from("U0LEAD".to_owned()).unwrap();

        // Act
        api.post(&to, &serde_json::json!({"text": "hello", "blocks": []})).await.unwrap();

        // Assert
        let (head, body) = stand_in.await.unwrap();
        assert!(head.starts_with("POST /api/chat.postMessage "), "{head}");
        assert!(head.to_ascii_lowercase().contains("authorization: bearer xoxb-test"), "{head}");
        let posted: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(posted, serde_json::json!({"channel": "U0LEAD", "text": "hello", "blocks": []}));
    }

    #[tokio::test]
    async fn slacks_refusals_are_permanent_and_its_rate_limit_transient() {
        let cases = [
            (r#"{"ok": false, "error": "channel_not_found"}"#, false),
            (r#"{"ok": false, "error": "ratelimited"}"#, true),
        ];
        for (answer, transient) in cases {
            let (url, _stand_in) = stand_in(answer).await;
            let api = SlackWebApi::new(&url, BotToken::new("xoxb-test").unwrap()).unwrap();
            let to = SlackUserId::try_from("U0LEAD".to_owned()).unwrap();

            let err = api.post(&to, &serde_json::json!({"text": "x"})).await.unwrap_err();

            assert_eq!(matches!(err, PortError::Transient(_)), transient, "{answer}: {err}");
        }
    }

    #[test]
    fn only_https_or_a_loopback_stand_in_is_called() {
        let cases = [
            ("https://slack.com/api", Some("https://slack.com/api")),
            ("https://slack.com/api/", Some("https://slack.com/api")),
            ("http://127.0.0.1:4000/api", Some("http://127.0.0.1:4000/api")),
            ("http://127.0.0.1.example.com/api", None),
            ("http://slack.com/api", None),
            ("ftp://127.0.0.1", None),
        ];
        for (url, expected) in cases {
            assert_eq!(check_api_url(url).ok().as_deref(), expected, "{url}");
        }
    }
}
