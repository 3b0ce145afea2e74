//! `ChatTopic` through SNS: each custom notification is one message, its JSON the body, on the
//! topic Amazon Q Developer in chat applications is subscribed to. The function may publish to
//! that topic only (template.yaml).

use aws_sdk_sns::Client;

use crate::adapters::classify;
use crate::ports::{ChatTopic, PortError};

#[derive(Clone, Debug)]
pub struct SnsChatTopic {
    client: Client,
    topic_arn: String,
}

impl SnsChatTopic {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self { client, topic_arn: topic_arn.into() }
    }
}

#[async_trait::async_trait]
impl ChatTopic for SnsChatTopic {
    async fn publish(&self, notification: &serde_json::Value) -> Result<(), PortError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(notification.to_string())
            .send()
            .await
            .map_err(|e| classify("Publish", &e))?;
        Ok(())
    }
}
