//! DynamoDB stream records (the Lambda event of the table's stream, and what the local stack reads
//! from the emulator's stream API) → `OutboxItem`s. Only inserted audit records carry a change.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::app::publish::{OutboxContent, OutboxItem};
use crate::domain::events::ChangeRecord;

/// The attribute of an audit item that holds its `ChangeRecord` as JSON.
pub const CHANGE_ATTRIBUTE: &str = "change";
/// Set (to `OUTBOX_EVENTS`) on audit items whose change produces events, so that the stream
/// mapping's filter does not invoke the publisher for a change with nothing to publish (a grant
/// recorded in place).
pub const OUTBOX_ATTRIBUTE: &str = "outbox";
pub const OUTBOX_EVENTS: &str = "events";

/// The event source mapping's filter (`template.yaml` must say exactly this): inserted audit
/// items that carry events.
pub fn filter_pattern() -> serde_json::Value {
    serde_json::json!({
        "eventName": ["INSERT"],
        "dynamodb": { "NewImage": { "type": { "S": ["audit"] }, OUTBOX_ATTRIBUTE: { "S": [OUTBOX_EVENTS] } } }
    })
}

/// The event Lambda's DynamoDB event source mapping sends.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    pub dynamodb: StreamPayload,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamPayload {
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
    /// DynamoDB JSON (`{"attr": {"S": "…"}}`); only string attributes are read.
    #[serde(rename = "NewImage", default)]
    pub new_image: HashMap<String, serde_json::Value>,
}

/// The partial-batch response: Lambda retries from the first item named here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    pub fn failed_from(sequence: Option<String>) -> Self {
        Self {
            batch_item_failures: sequence
                .into_iter()
                .map(|item_identifier| BatchItemFailure { item_identifier })
                .collect(),
        }
    }
}

/// Reads one record from its event name and the string attributes of its new image.
pub fn outbox_item(
    sequence: String,
    event_name: &str,
    string_attribute: impl Fn(&str) -> Option<String>,
) -> OutboxItem {
    let passes_filter = event_name == "INSERT"
        && string_attribute("type").as_deref() == Some("audit")
        && string_attribute(OUTBOX_ATTRIBUTE).as_deref() == Some(OUTBOX_EVENTS);
    let content = if !passes_filter {
        OutboxContent::Skip
    } else {
        match string_attribute(CHANGE_ATTRIBUTE) {
            None => OutboxContent::Malformed(format!("the audit record has no {CHANGE_ATTRIBUTE} attribute")),
            Some(text) => match serde_json::from_str::<ChangeRecord>(&text) {
                Ok(change) => OutboxContent::Change(Box::new(change)),
                Err(e) => OutboxContent::Malformed(format!("{CHANGE_ATTRIBUTE}: {e}")),
            },
        }
    };
    OutboxItem { sequence, content }
}

impl StreamEvent {
    pub fn outbox_items(&self) -> Vec<OutboxItem> {
        self.records
            .iter()
            .map(|r| {
                let image = &r.dynamodb.new_image;
                outbox_item(r.dynamodb.sequence_number.clone(), &r.event_name, |name| {
                    image.get(name)?.get("S")?.as_str().map(str::to_owned)
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_stream_filter_is_the_publishers() {
        let docs = yaml_rust2::YamlLoader::load_from_str(include_str!("../../../template.yaml")).unwrap();
        let pattern = docs[0]["Resources"]["PublishEventsStreamMapping"]["Properties"]["FilterCriteria"]["Filters"][0]
            ["Pattern"]
            .as_str()
            .expect("the mapping has one filter pattern");
        assert_eq!(serde_json::from_str::<serde_json::Value>(pattern).unwrap(), filter_pattern());
    }

    #[test]
    fn the_sample_stream_event_yields_its_change_and_skips_other_items() {
        let event: StreamEvent =
            serde_json::from_str(include_str!("../../../events/stream-audit-records.json")).unwrap();
        let items = event.outbox_items();
        let kinds: Vec<&str> = items
            .iter()
            .map(|i| match &i.content {
                OutboxContent::Change(_) => "change",
                OutboxContent::Skip => "skip",
                OutboxContent::Malformed(_) => "malformed",
            })
            .collect();
        assert_eq!(kinds, ["change", "skip", "skip", "malformed"]);
        let OutboxContent::Change(change) = &items[0].content else { unreachable!() };
        let types: Vec<String> = change.events().iter().map(|e| e.detail_type()).collect();
        assert_eq!(types, ["Access Request Approval Recorded", "Access Request Level Completed"]);
        assert_eq!(BatchResponse::failed_from(Some(items[0].sequence.clone())).batch_item_failures.len(), 1);
        assert_eq!(
            serde_json::to_value(BatchResponse::failed_from(None)).unwrap(),
            serde_json::json!({"batchItemFailures": []})
        );
    }
}
