//! Function logging: structured JSON (CloudWatch and Logs Insights parse it), no timestamps (the
//! Lambda service adds them), level from `RUST_LOG` / the template's log level settings.
//! A record is `{"level": …, "fields": {"message": …, <field>: …}, "target": …}`: the template's
//! metric filters address fields as `$.fields.<name>`.

use tracing_subscriber::fmt::MakeWriter;

fn builder<W>(writer: W, filter: tracing_subscriber::EnvFilter) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .without_time()
        .with_writer(writer)
        .finish()
}

pub fn init() {
    tracing::subscriber::set_global_default(builder(
        std::io::stdout,
        tracing_subscriber::EnvFilter::from_default_env(),
    ))
    .ok();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// Every break-glass alarm's line has the field its template metric filter reads.
    #[test]
    fn break_glass_lines_have_the_fields_the_templates_metric_filters_read() {
        let buffer = Buffer::default();
        let request: crate::domain::request::AccessRequest = serde_json::from_value(
            serde_json::from_str::<serde_json::Value>(include_str!("../../../events/lifecycle-expire-task.json"))
                .unwrap()["grant"]["request"]
                .clone(),
        )
        .unwrap();
        tracing::subscriber::with_default(builder(buffer.clone(), tracing_subscriber::EnvFilter::new("info")), || {
            crate::app::evaluate::alarm_break_glass_granted(&request);
            crate::app::sweep::SweepOutcome { unreviewed_break_glass: vec!["req-x".into()], ..Default::default() }
                .log();
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(records[0]["fields"]["alarm"], "BreakGlassGranted", "{text}");
        assert_eq!(records[0]["fields"]["request_id"], request.request_id.as_str());
        assert_eq!(records[1]["fields"]["unreviewed_break_glass"], 1, "{text}");
        let template = include_str!("../../../template.yaml");
        for pattern in [
            r#"FilterPattern: '{ $.fields.alarm = "BreakGlassGranted" }'"#,
            r#"FilterPattern: '{ $.fields.alarm = "BreakGlassFlagged" }'"#,
            r#"FilterPattern: '{ $.fields.message = "sweep done" && $.fields.unreviewed_break_glass >= 0 }'"#,
        ] {
            assert!(template.contains(pattern), "the template has {pattern}");
        }
        let approve = include_str!("../app/approve.rs");
        assert!(approve.contains(r#"alarm = "BreakGlassFlagged""#), "the approve function logs the flag alarm");
    }

    /// A bus that takes everything (a record that cannot be read never reaches it).
    struct Nowhere;

    #[async_trait::async_trait]
    impl crate::ports::EventPublisher for Nowhere {
        async fn publish(&self, _: &[crate::domain::events::StatusEvent]) -> Result<(), crate::ports::PortError> {
            Ok(())
        }
    }

    /// What can never go out (events, mails) is skipped with a line its alarm's filter reads.
    #[test]
    fn lines_of_what_can_never_go_out_have_the_field_their_alarms_read() {
        let buffer = Buffer::default();
        let unreadable = crate::app::publish::OutboxItem {
            sequence: "0001".into(),
            content: crate::app::publish::OutboxContent::Malformed("change: unknown variant".into()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        tracing::subscriber::with_default(builder(buffer.clone(), tracing_subscriber::EnvFilter::new("info")), || {
            let report = runtime.block_on(crate::app::publish::publish_batch(&Nowhere, &[unreadable]));
            assert_eq!(report.unpublishable, 1);
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(record["fields"]["alarm"], crate::app::publish::NOT_PUBLISHED_ALARM, "{text}");
        let template = include_str!("../../../template.yaml");
        for alarm in [
            crate::app::publish::NOT_PUBLISHED_ALARM,
            "MailNotSent",
            crate::domain::credentials::EARLIER_CREDENTIALS_DENIED_ALARM,
        ] {
            let pattern = format!(r#"FilterPattern: '{{ $.fields.alarm = "{alarm}" }}'"#);
            assert!(template.contains(&pattern), "the template has {pattern}");
        }
        assert!(include_str!("mail.rs").contains(r#"MAIL_NOT_SENT_ALARM: &str = "MailNotSent""#));
    }

    /// The sweeper's own record (`SweepOutcome::log`) as the SweeperFixes metric filter reads it.
    #[test]
    fn a_sweep_record_has_the_fields_the_templates_metric_filter_reads() {
        let buffer = Buffer::default();
        tracing::subscriber::with_default(builder(buffer.clone(), tracing_subscriber::EnvFilter::new("info")), || {
            let grants = crate::app::sweep::SweepReport {
                expired: vec!["req-a".into(), "req-b".into()],
                restarted: vec!["req-c".into()],
                item_failures: vec![crate::app::sweep::ItemFailure {
                    step: "expire-grant".into(),
                    item: "req-e".into(),
                    error: "AccessDenied".into(),
                }],
                ..Default::default()
            };
            crate::app::sweep::SweepOutcome {
                pending_expired: vec!["req-d".into()],
                nudged: vec![],
                unreviewed_break_glass: vec![],
                grants,
            }
            .log();
        });
        let line = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let record: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(record["fields"]["message"], "sweep done", "{line}");
        assert_eq!(record["fields"]["fixed"], 3, "{line}");

        let template = include_str!("../../../template.yaml");
        assert!(
            template.contains(r#"FilterPattern: '{ $.fields.message = "sweep done" && $.fields.fixed > 0 }'"#)
                && template.contains("MetricValue: $.fields.fixed"),
            "the template's SweeperFixes filter reads $.fields.message and $.fields.fixed"
        );
        assert_eq!(record["fields"]["item_failures"], 1, "{line}");
        assert!(
            template.contains(r#"FilterPattern: '{ $.fields.message = "sweep done" && $.fields.item_failures > 0 }'"#)
                && template.contains("MetricValue: $.fields.item_failures"),
            "the template's SweepItemFailures filter reads $.fields.item_failures"
        );
    }
}
