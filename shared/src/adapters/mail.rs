//! Mail through SNS: one topic for approvers, one for requesters. Each message carries the
//! `recipient` attribute (`Person::key`); each person's email subscription has the filter policy
//! `{"recipient": ["<their key>"]}`, so a link made for one person reaches only that person.
//!
//! The mails of one event go out in `PublishBatch` calls (ten to a call), and an entry SNS could
//! not take for a reason of its own (throttling, an internal error) is sent again at once, alone:
//! an event's retry, which mails everyone of the event again, is left for what a few tries here
//! cannot fix.

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use aws_sdk_sns::Client;

use crate::adapters::{batch, classify};
use crate::ports::{Audience, Mail, Mailer, PortError};

/// SNS takes at most ten entries, and 256 KiB in all, per `PublishBatch`.
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 200 * 1024;

pub const RECIPIENT_ATTRIBUTE: &str = "recipient";

/// The `alarm` field of the log line for a mail SNS refused for good (`MailNotSentAlarm`).
pub const MAIL_NOT_SENT_ALARM: &str = "MailNotSent";

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

impl SnsMailer {
    fn topic(&self, audience: Audience) -> &str {
        match audience {
            Audience::Approvers => &self.approver_topic_arn,
            Audience::Requesters => &self.requester_topic_arn,
        }
    }

    /// Sends `mails` (one topic's, at most one batch) in one call, then again those SNS failed
    /// on its own side (`batch::send_entries`). A mail SNS refuses as the sender's fault can never
    /// go: it is logged and alarmed (`MAIL_NOT_SENT_ALARM`) rather than failing the event, whose
    /// retries would mail everyone else again and still not send it.
    async fn publish_batch(&self, topic: &str, mails: &[&Mail]) -> Result<(), PortError> {
        let entries = mails
            .iter()
            .enumerate()
            .map(|(i, m)| entry(i, m).map(|e| (e.id().to_owned(), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let refused = batch::send_entries("PublishBatch", entries, |entries| async move {
            let out = self
                .client
                .publish_batch()
                .topic_arn(topic)
                .set_publish_batch_request_entries(Some(entries.into_iter().map(|(_, e)| e).collect()))
                .send()
                .await
                .map_err(|e| classify("PublishBatch", &e))?;
            Ok(out
                .failed()
                .iter()
                .map(|f| batch::Refused {
                    id: f.id().to_owned(),
                    retry: if f.sender_fault() { batch::Retry::Never } else { batch::Retry::Now },
                    why: format!("{}{}", f.code(), f.message().map(|m| format!(": {m}")).unwrap_or_default()),
                })
                .collect())
        })
        .await?;
        for entry in refused {
            let recipient = mails
                .iter()
                .enumerate()
                .find(|(i, _)| format!("mail-{i}") == entry.id)
                .map(|(_, m)| m.recipient.as_str());
            tracing::error!(alarm = MAIL_NOT_SENT_ALARM, topic, recipient, error = %entry.why, "SNS refused a mail for good; the others of the event went");
        }
        Ok(())
    }
}

/// One mail as a batch entry; `index` names it within its batch.
fn entry(index: usize, mail: &Mail) -> Result<PublishBatchRequestEntry, PortError> {
    let attribute = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(&mail.recipient)
        .build()
        .map_err(|e| PortError::Permanent(format!("building an SNS attribute: {e}")))?;
    PublishBatchRequestEntry::builder()
        .id(format!("mail-{index}"))
        .subject(subject(&mail.subject))
        .message(&mail.body)
        .message_attributes(RECIPIENT_ATTRIBUTE, attribute)
        .build()
        .map_err(|e| PortError::Permanent(format!("building an SNS batch entry: {e}")))
}

/// One topic's mails in the calls SNS takes.
fn batches(mails: Vec<&Mail>) -> Vec<Vec<&Mail>> {
    batch::batches(mails, BATCH_ENTRIES, BATCH_BYTES, |m| m.body.len() + m.subject.len() + m.recipient.len())
}

#[async_trait::async_trait]
impl Mailer for SnsMailer {
    async fn send_all(&self, mails: &[Mail]) -> Result<(), PortError> {
        for audience in [Audience::Approvers, Audience::Requesters] {
            let topic_mails: Vec<&Mail> = mails.iter().filter(|m| m.audience == audience).collect();
            for mails in batches(topic_mails) {
                self.publish_batch(self.topic(audience), &mails).await?;
            }
        }
        Ok(())
    }
}

// SNS answers in its awsQuery XML; the mocked responses are its documented `PublishBatch`
// shapes, so the SDK's own deserialization runs. moto serves `PublishBatch` too: the local
// stack's tests deliver every mail through it.
#[cfg(test)]
mod tests {
    use aws_sdk_sns::operation::publish_batch::PublishBatchInput;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::retry::RetryConfig;

    use super::*;

    const APPROVERS: &str = "arn:aws:sns:eu-west-1:123456789012:jit-approver-mail";
    const REQUESTERS: &str = "arn:aws:sns:eu-west-1:123456789012:jit-requester-mail";

    fn mail(audience: Audience, recipient: &str) -> Mail {
        Mail {
            audience,
            recipient: recipient.to_owned(),
            subject: format!("Approve access for {recipient}"),
            body: "a body".to_owned(),
        }
    }

    fn mailer(rules: &[&Rule]) -> SnsMailer {
        let client = mock_client!(aws_sdk_sns, RuleMode::MatchAny, rules.iter().copied(), |c| c
            .retry_config(RetryConfig::disabled()));
        SnsMailer::new(client, APPROVERS, REQUESTERS)
    }

    /// A `PublishBatch` answer: `ok` entries taken, `failed` as (id, code, sender fault).
    fn answer(ok: &[&str], failed: &[(&str, &str, bool)]) -> HttpResponse {
        let ok: String = ok
            .iter()
            .map(|id| format!("<member><Id>{id}</Id><MessageId>5a2f1c3e-0000-4000-8000-{id:0>12}</MessageId></member>"))
            .collect();
        let failed: String = failed
            .iter()
            .map(|(id, code, sender)| {
                format!("<member><Id>{id}</Id><Code>{code}</Code><Message>{code} happened</Message><SenderFault>{sender}</SenderFault></member>")
            })
            .collect();
        let body = format!(
            "<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishBatchResult>\
             <Successful>{ok}</Successful><Failed>{failed}</Failed></PublishBatchResult>\
             <ResponseMetadata><RequestId>0b1c2d3e-0000-4000-8000-000000000000</RequestId></ResponseMetadata>\
             </PublishBatchResponse>"
        );
        crate::adapters::aws_answer(200, "text/xml", body)
    }

    /// The recipients a call carries, in order.
    fn recipients(req: &PublishBatchInput) -> Vec<String> {
        req.publish_batch_request_entries()
            .iter()
            .map(|e| {
                let attributes = e.message_attributes().unwrap();
                attributes[RECIPIENT_ATTRIBUTE].string_value().unwrap().to_owned()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_mails_of_an_event_go_in_one_call_per_topic_each_with_its_recipient() {
        let approvers = mock!(aws_sdk_sns::Client::publish_batch)
            .match_requests(|req| req.topic_arn() == Some(APPROVERS) && recipients(req) == ["user/alice", "user/bob"])
            .then_http_response(|| answer(&["mail-0", "mail-1"], &[]));
        let requesters = mock!(aws_sdk_sns::Client::publish_batch)
            .match_requests(|req| req.topic_arn() == Some(REQUESTERS) && recipients(req) == ["user/carol"])
            .then_http_response(|| answer(&["mail-0"], &[]));
        let mails = [
            mail(Audience::Approvers, "user/alice"),
            mail(Audience::Requesters, "user/carol"),
            mail(Audience::Approvers, "user/bob"),
        ];

        mailer(&[&approvers, &requesters]).send_all(&mails).await.unwrap();

        assert_eq!((approvers.num_calls(), requesters.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn no_mails_make_no_call() {
        // No rule: any call would fail.
        mailer(&[]).send_all(&[]).await.unwrap();
    }

    #[tokio::test]
    async fn an_entry_sns_failed_on_its_side_is_sent_again_alone() {
        let first = mock!(aws_sdk_sns::Client::publish_batch)
            .match_requests(|req| recipients(req).len() == 3)
            .then_http_response(|| answer(&["mail-0", "mail-2"], &[("mail-1", "Throttled", false)]));
        let again = mock!(aws_sdk_sns::Client::publish_batch)
            .match_requests(|req| recipients(req) == ["user/bob"])
            .then_http_response(|| answer(&["mail-1"], &[]));
        let mails = ["user/alice", "user/bob", "user/dan"].map(|r| mail(Audience::Approvers, r));

        mailer(&[&first, &again]).send_all(&mails).await.unwrap();

        assert_eq!((first.num_calls(), again.num_calls()), (1, 1), "bob's mail again, nobody else's");
    }

    #[tokio::test]
    async fn an_entry_that_keeps_failing_is_a_transient_error_after_three_tries() {
        let first = mock!(aws_sdk_sns::Client::publish_batch)
            .match_requests(|req| recipients(req).len() == 2)
            .then_http_response(|| answer(&["mail-0"], &[("mail-1", "InternalError", false)]));
        let again = mock!(aws_sdk_sns::Client::publish_batch)
            .match_requests(|req| recipients(req) == ["user/bob"])
            .then_http_response(|| answer(&[], &[("mail-1", "InternalError", false)]));
        let mails = ["user/alice", "user/bob"].map(|r| mail(Audience::Approvers, r));

        let err = mailer(&[&first, &again]).send_all(&mails).await.unwrap_err();

        assert!(
            matches!(&err, PortError::Transient(m) if m.contains("1 of 2") && m.contains("InternalError")),
            "{err:?}"
        );
        assert_eq!((first.num_calls(), again.num_calls()), (1, 2));
    }

    #[tokio::test]
    async fn a_mail_sns_refuses_for_good_is_not_sent_again_and_does_not_fail_the_others() {
        let refused = mock!(aws_sdk_sns::Client::publish_batch)
            .match_requests(|req| recipients(req) == ["user/alice", "user/bob"])
            .then_http_response(|| answer(&["mail-1"], &[("mail-0", "InvalidParameter", true)]));
        let mails = [mail(Audience::Approvers, "user/alice"), mail(Audience::Approvers, "user/bob")];

        // Act: the event's notifier would be retried (mailing bob again) on an error.
        let sent = mailer(&[&refused]).send_all(&mails).await;

        assert!(sent.is_ok(), "logged and alarmed (MailNotSent), not an error: {sent:?}");
        assert_eq!(refused.num_calls(), 1);
    }

    #[test]
    fn mails_are_batched_ten_to_a_call_and_within_the_size_sns_takes() {
        let small: Vec<Mail> = (0..23).map(|i| mail(Audience::Approvers, &format!("user/u{i}"))).collect();
        let sizes: Vec<usize> = batches(small.iter().collect()).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);

        let mut large = mail(Audience::Approvers, "user/big");
        large.body = "x".repeat(90 * 1024);
        let three_large = [large.clone(), large.clone(), large];
        let sizes: Vec<usize> = batches(three_large.iter().collect()).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1], "no batch over {BATCH_BYTES} bytes");
    }

    #[test]
    fn subjects_are_made_safe_for_sns() {
        assert_eq!(subject("a\nb"), "a?b");
        assert_eq!(subject(&"x".repeat(150)).len(), 100);
    }
}
