//! The event publisher (publish-events): the table's stream delivers each new audit record once
//! its transaction committed, and this turns the change it carries into its events. Use cases
//! never publish: whatever happens to them after their write, the events still go out.

use crate::domain::events::ChangeRecord;
use crate::ports::{EventPublisher, PortError};

/// The `alarm` field of the log line for events that can never go out (the template's
/// `EventsNotPublishedAlarm` counts it).
pub const NOT_PUBLISHED_ALARM: &str = "EventsNotPublished";

/// One stream record, as the stream adapter read it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// The stream record's sequence number: what a batch item failure names.
    pub sequence: String,
    pub content: OutboxContent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutboxContent {
    /// A new audit record with its change.
    Change(Box<ChangeRecord>),
    /// Nothing to publish: another item of the table, a modification or a removal.
    Skip,
    /// An audit record whose change cannot be read; retrying cannot fix it.
    Malformed(String),
}

/// What one batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub published_events: usize,
    /// Events EventBridge refused for good (or records no publisher can read): logged and alarmed,
    /// not retried, since a retry would hold the shard behind them for a day and then drop the
    /// records after them too.
    pub unpublishable: usize,
    /// The first record that could not be published: Lambda retries the batch from it, so the
    /// records after it are not attempted now (a request's events keep their order).
    pub failed_from: Option<String>,
}

/// Publishes the events of each change in `items`, in order, stopping at the first failure.
pub async fn publish_batch(events: &dyn EventPublisher, items: &[OutboxItem]) -> PublishReport {
    let mut report = PublishReport::default();
    for item in items {
        match &item.content {
            OutboxContent::Skip => {}
            OutboxContent::Malformed(why) => {
                // Retrying would block the shard behind a record no retry can read; it stays in
                // the table as the audit record it is.
                tracing::error!(alarm = NOT_PUBLISHED_ALARM, sequence = %item.sequence, error = %why, "an audit record's change cannot be read; no event for it");
                report.unpublishable += 1;
            }
            OutboxContent::Change(change) => {
                let list = change.events();
                if list.is_empty() {
                    continue;
                }
                match events.publish(&list).await {
                    Ok(()) => report.published_events += list.len(),
                    Err(PortError::Permanent(e)) => {
                        tracing::error!(alarm = NOT_PUBLISHED_ALARM, sequence = %item.sequence, request_id = %change.request.request_id, error = %e, "events refused for good; the audit record keeps the change");
                        report.unpublishable += list.len();
                    }
                    Err(e @ PortError::Transient(_)) => {
                        tracing::warn!(sequence = %item.sequence, request_id = %change.request.request_id, error = %e, "publishing failed; the stream retries");
                        report.failed_from = Some(item.sequence.clone());
                        return report;
                    }
                }
            }
        }
    }
    report
}
