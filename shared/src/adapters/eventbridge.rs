//! Status-change events onto the project's own EventBridge bus.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use aws_smithy_types::error::display::DisplayErrorContext;

use crate::adapters::{batch, classify};
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

/// PutEvents takes at most ten entries, and 256 KiB of them, a call.
const MAX_ENTRIES: usize = 10;
const MAX_BYTES: usize = 240 * 1024;

/// An entry's size as PutEvents counts it (source, detail type and detail; no time or resources).
fn entry_size(entry: &PutEventsRequestEntry) -> usize {
    [entry.source(), entry.detail_type(), entry.detail()].iter().map(|s| s.map_or(0, str::len)).sum()
}

/// What to do about an entry PutEvents failed: its own trouble is retried at once; a missing
/// permission or bus with the whole record later (the stream retries it); anything else is about
/// the event itself (malformed, too large), which no retry fixes.
fn retry_of(code: &str) -> batch::Retry {
    match code {
        "ThrottlingException" | "InternalFailure" | "InternalException" | "ServiceUnavailable" => batch::Retry::Now,
        c if c.contains("AccessDenied") || c.contains("NotAuthorized") || c.contains("NotFound") => batch::Retry::Later,
        _ => batch::Retry::Never,
    }
}

#[async_trait::async_trait]
impl EventPublisher for EventBridgePublisher {
    /// `Permanent` only when events themselves are refused; any other failure is `Transient`, so
    /// that the stream retries the record rather than skipping its events.
    async fn publish(&self, events: &[StatusEvent]) -> Result<(), PortError> {
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let detail =
                serde_json::to_string(event).map_err(|e| PortError::Permanent(format!("serializing an event: {e}")))?;
            entries.push(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(EVENT_SOURCE)
                    .detail_type(event.detail_type())
                    .detail(detail)
                    .build(),
            );
        }
        for chunk in batch::batches(entries, MAX_ENTRIES, MAX_BYTES, entry_size) {
            let named = chunk.into_iter().enumerate().map(|(i, e)| (format!("event-{i}"), e)).collect();
            let refused = batch::send_entries("PutEvents", named, |entries| self.put(entries)).await?;
            if !refused.is_empty() {
                return Err(PortError::Permanent(format!("PutEvents refused: {}", batch::summary(&refused))));
            }
        }
        Ok(())
    }
}

impl EventBridgePublisher {
    /// One PutEvents call; its result entries answer the request's in order.
    async fn put(&self, entries: Vec<(String, PutEventsRequestEntry)>) -> Result<Vec<batch::Refused>, PortError> {
        let (ids, entries): (Vec<String>, Vec<PutEventsRequestEntry>) = entries.into_iter().unzip();
        let out = match self.client.put_events().set_entries(Some(entries)).send().await {
            Ok(out) => out,
            // The request itself refused (say, over PutEvents' size): the events are the trouble.
            Err(e) if e.as_service_error().and_then(|se| se.meta().code()) == Some("ValidationException") => {
                return Err(PortError::Permanent(format!("PutEvents: {}", DisplayErrorContext(&e))))
            }
            Err(e) => {
                return Err(match classify("PutEvents", &e) {
                    PortError::Permanent(m) | PortError::Transient(m) => PortError::Transient(m),
                })
            }
        };
        let failed = usize::try_from(out.failed_entry_count()).unwrap_or(usize::MAX);
        let refused: Vec<batch::Refused> = ids
            .into_iter()
            .zip(out.entries())
            .filter_map(|(id, result)| {
                let code = result.error_code()?;
                Some(batch::Refused {
                    id,
                    retry: retry_of(code),
                    why: format!("{code}{}", result.error_message().map(|m| format!(": {m}")).unwrap_or_default()),
                })
            })
            .collect();
        if failed > refused.len() {
            return Err(PortError::Transient(format!("PutEvents failed {failed} entries without naming them all")));
        }
        Ok(refused)
    }
}

// EventBridge answers in awsJson1.1; the mocked responses are `PutEvents`' documented shapes, so
// the SDK's own deserialization runs. The local stack's tests publish through moto's PutEvents.
#[cfg(test)]
mod tests {
    use aws_sdk_eventbridge::operation::put_events::PutEventsInput;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_types::retry::RetryConfig;

    use super::*;
    use crate::domain::events::EventEnvelope;

    fn publisher(rules: &[&Rule]) -> EventBridgePublisher {
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, rules.iter().copied(), |c| c
            .retry_config(RetryConfig::disabled()));
        EventBridgePublisher::new(client, "jit-bus")
    }

    fn events(n: usize) -> Vec<StatusEvent> {
        let envelope: EventEnvelope =
            serde_json::from_str(include_str!("../../../events/request-submitted.json")).unwrap();
        vec![envelope.detail; n]
    }

    /// A `PutEvents` answer, one result per entry: `None` taken, `Some(code)` failed.
    fn answer(results: &[Option<&str>]) -> HttpResponse {
        let entries: Vec<serde_json::Value> = results
            .iter()
            .enumerate()
            .map(|(i, r)| match r {
                None => serde_json::json!({"EventId": format!("11111111-2222-3333-4444-{i:012}")}),
                Some(code) => serde_json::json!({"ErrorCode": code, "ErrorMessage": format!("{code} happened")}),
            })
            .collect();
        let failed = results.iter().filter(|r| r.is_some()).count();
        let body = serde_json::json!({"FailedEntryCount": failed, "Entries": entries}).to_string();
        crate::adapters::aws_answer(200, "application/x-amz-json-1.1", body)
    }

    fn entries(req: &PutEventsInput) -> usize {
        req.entries().len()
    }

    #[tokio::test]
    async fn an_entry_eventbridge_failed_on_its_side_is_sent_again_alone() {
        let first = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|req| entries(req) == 3)
            .then_http_response(|| answer(&[None, Some("ThrottlingException"), None]));
        let again = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|req| entries(req) == 1)
            .then_http_response(|| answer(&[None]));

        publisher(&[&first, &again]).publish(&events(3)).await.unwrap();

        assert_eq!((first.num_calls(), again.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_refused_event_is_permanent_and_a_missing_permission_transient_neither_sent_again() {
        let cases = [("MalformedDetail", true), ("AccessDeniedException", false)];
        for (code, permanent) in cases {
            let call = mock!(aws_sdk_eventbridge::Client::put_events).then_http_response(move || answer(&[Some(code)]));

            let err = publisher(&[&call]).publish(&events(1)).await.unwrap_err();

            assert_eq!(matches!(err, PortError::Permanent(_)), permanent, "{code}: {err:?}");
            assert_eq!(call.num_calls(), 1, "{code}");
        }
    }

    #[tokio::test]
    async fn a_request_eventbridge_finds_invalid_is_permanent_and_a_server_error_transient() {
        let cases = [
            (400, "ValidationException", true),
            (400, "AccessDeniedException", false),
            (500, "InternalException", false),
        ];
        for (status, code, permanent) in cases {
            let call = mock!(aws_sdk_eventbridge::Client::put_events).then_http_response(move || {
                let body = serde_json::json!({"__type": code, "message": "no"}).to_string();
                crate::adapters::aws_answer(status, "application/x-amz-json-1.1", body)
            });

            let err = publisher(&[&call]).publish(&events(1)).await.unwrap_err();

            assert_eq!(matches!(err, PortError::Permanent(_)), permanent, "{code}: {err:?}");
        }
    }

    #[tokio::test]
    async fn more_than_ten_events_go_in_calls_of_ten() {
        let call = mock!(aws_sdk_eventbridge::Client::put_events).then_http_response(|| answer(&[None; 10]));
        let rest = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|req| entries(req) == 2)
            .then_http_response(|| answer(&[None; 2]));

        publisher(&[&rest, &call]).publish(&events(12)).await.unwrap();

        assert_eq!((call.num_calls(), rest.num_calls()), (1, 1));
    }
}
