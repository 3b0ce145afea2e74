//! `TeamsNotifier` through each approver's own webhook: a JSON POST of the card to the URL listed
//! for that person (`domain::teams::TeamsWebhooks`), and to no other. HTTPS to Teams and Power
//! Automate hosts only; plain HTTP only to a 127.0.0.1 stand-in (the local stack and tests).
//! No error or log line carries a URL: its path is the credential.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use crate::domain::approval::Person;
use crate::domain::teams::TeamsWebhooks;
use crate::ports::{PortError, TeamsDelivery, TeamsNotifier};

/// How long one post may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TeamsWebhookApi {
    webhooks: TeamsWebhooks,
    http: crate::adapters::https::HttpsClient,
}

impl TeamsWebhookApi {
    pub fn new(webhooks: TeamsWebhooks) -> Result<Self, crate::adapters::https::HttpsSetupError> {
        // Stand-ins only: no trust store is needed (and a machine may have none).
        let base = if webhooks.all_loopback() { "http://127.0.0.1" } else { "https://" };
        Ok(Self { http: crate::adapters::https::client(base)?, webhooks })
    }
}

#[async_trait]
impl TeamsNotifier for TeamsWebhookApi {
    async fn post(&self, to: &Person, card: &serde_json::Value) -> Result<TeamsDelivery, PortError> {
        let Some(url) = self.webhooks.of(to) else { return Ok(TeamsDelivery::NoWebhook) };
        let request = http::Request::post(url.expose())
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(card.to_string())))
            .map_err(|_| PortError::Permanent(format!("Teams webhook of {to}: the URL does not make a request")))?;
        let response = tokio::time::timeout(CALL_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| PortError::Transient(format!("Teams webhook of {to}: no answer within {CALL_TIMEOUT:?}")))?
            .map_err(|e| PortError::Transient(format!("Teams webhook of {to}: {e}")))?;
        let status = response.status();
        // Drained so the connection can be reused; what the flow answers is not needed.
        let _ = Limited::new(response.into_body(), 64 * 1024).collect().await;
        if status.is_success() {
            Ok(TeamsDelivery::Posted)
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(PortError::Transient(format!("Teams webhook of {to}: HTTP {status}")))
        } else {
            Err(PortError::Permanent(format!("Teams webhook of {to}: HTTP {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::teams::TeamsWebhookUrl;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A webhook stand-in on 127.0.0.1 that answers one post with `status` and hands back the
    /// request line and body it received.
    async fn stand_in(status: &'static str) -> (String, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/teams-webhook/SECRET-PATH", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body) = loop {
                let n = socket.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .to_ascii_lowercase()
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length {
                        break (text[..end].to_owned(), seen[end + 4..end + 4 + length].to_vec());
                    }
                }
            };
            let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 1\r\nconnection: close\r\n\r\n1");
            socket.write_all(reply.as_bytes()).await.unwrap();
            (head, body)
        });
        (url, task)
    }

    fn api_for(person: &Person, url: &str) -> TeamsWebhookApi {
        let mut webhooks = TeamsWebhooks::default();
        webhooks.insert(person, TeamsWebhookUrl::loopback_stand_in(url).unwrap()).unwrap();
        TeamsWebhookApi::new(webhooks).unwrap()
    }

    #[tokio::test]
    async fn a_card_is_posted_as_json_to_the_persons_own_webhook_and_nobody_elses() {
        // Arrange
        let (url, stand_in) = stand_in("202 Accepted").await;
        let lead = Person::IamUser("lead".into());
        let api = api_for(&lead, &url);
        let card = serde_json::json!({"type": "message", "attachments": []});

        // Act
        let other = api.post(&Person::IamUser("bob".into()), &card).await.unwrap();
        let posted = api.post(&lead, &card).await.unwrap();

        // Assert
        assert_eq!((other, posted), (TeamsDelivery::NoWebhook, TeamsDelivery::Posted));
        let (head, body) = stand_in.await.unwrap();
        assert!(head.starts_with("POST /teams-webhook/SECRET-PATH "), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap(), card);
    }

    #[tokio::test]
    async fn refusals_are_permanent_throttling_transient_and_neither_names_the_url() {
        for (status, transient) in
            [("404 Not Found", false), ("429 Too Many Requests", true), ("502 Bad Gateway", true)]
        {
            let (url, _stand_in) = stand_in(status).await;
            let lead = Person::IamUser("lead".into());

            let err = api_for(&lead, &url).post(&lead, &serde_json::json!({})).await.unwrap_err();

            assert_eq!(matches!(err, PortError::Transient(_)), transient, "{status}: {err}");
            assert!(err.to_string().contains("IAM user lead"), "{err}");
            assert!(!err.to_string().contains("SECRET-PATH"), "{err}");
        }
    }
}
