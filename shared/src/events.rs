//! EventBridge events: one per status change, on the project's own bus.
//!
//! `source` is `jit-node-access`, `detail-type` is `Access Request <Status>` (for example
//! `Access Request Approved`), and `detail` is a `StatusEvent`. Samples live in `events/`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::request::{AccessRequest, Decision};
use crate::domain::status::RequestStatus;

pub const EVENT_SOURCE: &str = "jit-node-access";
pub const SCHEMA_VERSION: u32 = 1;

pub fn detail_type(status: RequestStatus) -> String {
    format!("Access Request {status}")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    pub schema_version: u32,
    pub request_id: String,
    pub status: RequestStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<RequestStatus>,
    pub requester: String,
    pub node_id: String,
    pub reason: String,
    pub duration_minutes: u32,
    /// Who made the change: a principal ARN or `system:<component>`.
    pub actor: String,
    pub at: DateTime<Utc>,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

impl StatusEvent {
    pub fn for_request(request: &AccessRequest, previous: Option<RequestStatus>, actor: &str) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            request_id: request.request_id.to_string(),
            status: request.status,
            previous_status: previous,
            requester: request.requester.to_string(),
            node_id: request.node_id.to_string(),
            reason: request.reason.as_str().to_owned(),
            duration_minutes: request.duration_minutes.get(),
            actor: actor.to_owned(),
            at: request.updated_at,
            version: request.version,
            decision: request.decision.clone(),
        }
    }

    pub fn detail_type(&self) -> String {
        detail_type(self.status)
    }
}

/// The envelope EventBridge delivers to a Lambda target or an SQS queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: StatusEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_event_parses_and_matches_its_detail_type() {
        let samples = [
            (include_str!("../../events/request-submitted.json"), RequestStatus::Submitted),
            (include_str!("../../events/request-approved.json"), RequestStatus::Approved),
            (include_str!("../../events/request-pending.json"), RequestStatus::Pending),
            (include_str!("../../events/request-failed.json"), RequestStatus::Failed),
        ];
        for (text, status) in samples {
            let env: EventEnvelope = serde_json::from_str(text).unwrap();
            assert_eq!(env.source, EVENT_SOURCE);
            assert_eq!(env.detail.status, status);
            assert_eq!(env.detail_type, detail_type(status));
            assert_eq!(env.detail.schema_version, SCHEMA_VERSION);
        }
    }
}
