//! Status-change events onto the project's own EventBridge bus.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::adapters::classify;
use crate::domain::events::{StatusEvent, EVENT_SOURCE};
use crate::ports::{EventPublisher, PortError};

#[derive(Clone, Debug)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }
}

/// PutEvents takes at most ten entries a call.
const MAX_ENTRIES: usize = 10;

#[async_trait::async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[StatusEvent]) -> Result<(), PortError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let mut entries = Vec::with_capacity(chunk.len());
            for event in chunk {
                let detail = serde_json::to_string(event)
                    .map_err(|e| PortError::Permanent(format!("serializing an event: {e}")))?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(EVENT_SOURCE)
                        .detail_type(event.detail_type())
                        .detail(detail)
                        .build(),
                );
            }
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify("PutEvents", &e))?;
            if out.failed_entry_count() > 0 {
                let why = out.entries().iter().filter_map(|e| e.error_message()).collect::<Vec<_>>().join("; ");
                // PutEvents reports per-entry failures (throttling, internal errors) with a 200;
                // the whole batch is retried, and subscribers deduplicate on (requestId, version,
                // detail-type).
                return Err(PortError::Transient(format!(
                    "PutEvents rejected {} event(s): {why}",
                    out.failed_entry_count()
                )));
            }
        }
        Ok(())
    }
}
