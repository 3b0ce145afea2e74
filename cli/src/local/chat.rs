//! The local stack's Teams and Amazon Q stand-ins: what the notifier would send, recorded.
//!
//! * Teams: each seeded `teamsWebhooks` user gets a webhook on this server,
//!   `POST /teams-webhook/<person key>`, which records the card (`GET /teams.json`). The notifier
//!   posts to it through the same adapter as in AWS; only the URLs are stand-ins.
//! * Amazon Q Developer in chat applications: the notices are published to a chat SNS topic in the
//!   emulator (the same SNS adapter as in AWS) and, once published, recorded
//!   (`GET /chat-notifications.json`); nothing reads the topic itself.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jit_shared::adapters::amazon_q::SnsChatTopic;
use jit_shared::adapters::teams::TeamsWebhookApi;
use jit_shared::domain::approval::Person;
use jit_shared::domain::teams::{TeamsWebhookUrl, TeamsWebhooks};
use jit_shared::ports::{ChatTopic, PortError};
use serde_json::{json, Value};

/// The path prefix of the Teams webhook stand-ins.
pub const TEAMS_WEBHOOK_PATH: &str = "/teams-webhook/";

/// The Teams adapter with a stand-in webhook on `api_url` for each of `people`.
pub fn teams_stand_in(api_url: &str, people: &[Person]) -> Result<TeamsWebhookApi, String> {
    let mut webhooks = TeamsWebhooks::default();
    for person in people {
        // `#` would start the URL's fragment.
        let path = person.key().replace('#', "%23");
        let url = TeamsWebhookUrl::loopback_stand_in(&format!("{api_url}{TEAMS_WEBHOOK_PATH}{path}"))
            .map_err(|e| format!("the Teams stand-in of {person}: {e}"))?;
        webhooks.insert(person, url).map_err(|e| e.to_string())?;
    }
    TeamsWebhookApi::new(webhooks).map_err(|e| e.to_string())
}

/// What the Teams stand-in records of a post to `path` (`/teams-webhook/<person key>`): the
/// person and the card; `None` for another path.
pub fn teams_post(path: &str, body: &[u8]) -> Option<Value> {
    let person = path.strip_prefix(TEAMS_WEBHOOK_PATH)?.replace("%23", "#");
    let card = serde_json::from_slice::<Value>(body).unwrap_or_default();
    Some(json!({"person": person, "card": card}))
}

/// Publishes to the emulator's chat topic, then records what was published.
pub struct RecordedChatTopic {
    pub inner: SnsChatTopic,
    pub published: Arc<Mutex<Vec<Value>>>,
}

#[async_trait]
impl ChatTopic for RecordedChatTopic {
    async fn publish(&self, notification: &Value) -> Result<(), PortError> {
        self.inner.publish(notification).await?;
        if let Ok(mut published) = self.published.lock() {
            published.push(notification.clone());
        }
        Ok(())
    }
}

/// Creates the chat topic Amazon Q would be subscribed to (`<prefix>-chat`); its ARN.
pub async fn create_chat_topic(sns: &aws_sdk_sns::Client, prefix: &str) -> Result<String, String> {
    let created = sns
        .create_topic()
        .name(format!("{prefix}-chat"))
        .send()
        .await
        .map_err(|e| format!("creating the chat topic: {e}"))?;
    created.topic_arn().map(str::to_owned).ok_or_else(|| "the chat topic has no ARN".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stand_in_post_is_recorded_with_its_person_and_card() {
        let recorded = teams_post("/teams-webhook/iam-user%23approver-a", br#"{"type": "message"}"#);
        assert_eq!(recorded, Some(json!({"person": "iam-user#approver-a", "card": {"type": "message"}})));
        assert_eq!(teams_post("/slack-api/chat.postMessage", b"{}"), None);
    }
}
