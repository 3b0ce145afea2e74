//! Mail through SNS: one topic for approvers, one for requesters. Each message carries the
//! `recipient` attribute (`Person::key`); each person's email subscription has the filter policy
//! `{"recipient": ["<their key>"]}`, so a link made for one person reaches only that person.

use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use crate::adapters::classify;
use crate::ports::{Audience, Mail, Mailer, PortError};

pub const RECIPIENT_ATTRIBUTE: &str = "recipient";

/// The filter policy of a person's subscription.
pub fn filter_policy(recipient: &str) -> String {
    serde_json::json!({ RECIPIENT_ATTRIBUTE: [recipient] }).to_string()
}

#[derive(Clone, Debug)]
pub struct SnsMailer {
    client: Client,
    approver_topic_arn: String,
    requester_topic_arn: String,
}

impl SnsMailer {
    pub fn new(client: Client, approver_topic_arn: impl Into<String>, requester_topic_arn: impl Into<String>) -> Self {
        Self { client, approver_topic_arn: approver_topic_arn.into(), requester_topic_arn: requester_topic_arn.into() }
    }
}

/// SNS subjects are at most 100 printable ASCII characters with no line breaks.
fn subject(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).take(100).collect()
}

#[async_trait::async_trait]
impl Mailer for SnsMailer {
    async fn send(&self, mail: &Mail) -> Result<(), PortError> {
        let topic = match mail.audience {
            Audience::Approvers => &self.approver_topic_arn,
            Audience::Requesters => &self.requester_topic_arn,
        };
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&mail.recipient)
            .build()
            .map_err(|e| PortError::Permanent(format!("building an SNS attribute: {e}")))?;
        self.client
            .publish()
            .topic_arn(topic)
            .subject(subject(&mail.subject))
            .message(&mail.body)
            .message_attributes(RECIPIENT_ATTRIBUTE, attribute)
            .send()
            .await
            .map_err(|e| classify("Publish", &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_made_safe_for_sns() {
        assert_eq!(subject("a\nb"), "a?b");
        assert_eq!(subject(&"x".repeat(150)).len(), 100);
    }
}
