//! Plays the publish-events function's event source mapping: reads the table's DynamoDB stream
//! from the emulator (moto serves the streams API), keeps what the mapping's filter keeps
//! (inserted audit records), and hands each batch to the same handler the function runs
//! (`app::publish::publish_batch`). A failed batch is retried from its first failed record, as
//! Lambda does with batch item failures.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_dynamodbstreams::Client;
use jit_shared::adapters::stream::outbox_item;
use jit_shared::app::publish::{publish_batch, OutboxContent, OutboxItem};
use jit_shared::ports::EventPublisher;

/// moto's streams have one flaw that matters here: a transaction that fails its condition is
/// rolled back by restoring the table, stream included, after its records were visible; later
/// records then reuse their sequence numbers. So each poll reads every shard from its start and
/// keeps records by event id, and a record counts only once two consecutive reads both show it
/// (a rolled-back record is gone by the next read). Real DynamoDB streams carry committed
/// changes only.
async fn read_all(client: &Client, stream_arn: &str) -> Option<Vec<(String, OutboxItem)>> {
    let out = client.describe_stream().stream_arn(stream_arn).send().await.ok()?;
    let mut records = Vec::new();
    for shard in out.stream_description().map(|d| d.shards()).unwrap_or_default() {
        let Some(id) = shard.shard_id() else { continue };
        let mut iterator = client
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .ok()
            .and_then(|o| o.shard_iterator);
        while let Some(current) = iterator.take() {
            let out = client.get_records().shard_iterator(current).send().await.ok()?;
            if out.records().is_empty() {
                break;
            }
            for record in out.records() {
                let Some(change) = record.dynamodb() else { continue };
                let image = change.new_image();
                let item = outbox_item(
                    change.sequence_number().unwrap_or_default().to_owned(),
                    record.event_name().map(|n| n.as_str()).unwrap_or_default(),
                    |name| image.and_then(|i| i.get(name)).and_then(|v| v.as_s().ok()).cloned(),
                );
                records.push((record.event_id().unwrap_or_default().to_owned(), item));
            }
            iterator = out.next_shard_iterator;
        }
    }
    Some(records)
}

/// Polls the stream until the task is dropped.
/// `invoked` is called once per batch the mapping would deliver (the local stack counts it).
pub async fn stream_loop(client: Client, stream_arn: String, events: impl EventPublisher, invoked: impl Fn()) {
    let mut done: HashSet<String> = HashSet::new();
    let mut seen_once: HashSet<String> = HashSet::new();
    let mut pending: Vec<OutboxItem> = Vec::new();
    loop {
        if let Some(records) = read_all(&client, &stream_arn).await {
            let mut now_seen = HashSet::new();
            for (event_id, item) in records {
                if done.contains(&event_id) {
                    continue;
                }
                if seen_once.contains(&event_id) {
                    done.insert(event_id);
                    // The mapping's filter: only inserted audit records reach the function.
                    if item.content != OutboxContent::Skip {
                        pending.push(item);
                    }
                } else {
                    now_seen.insert(event_id);
                }
            }
            seen_once = now_seen;
        }
        if !pending.is_empty() {
            invoked();
            let report = publish_batch(&events, &pending).await;
            let published = match &report.failed_from {
                Some(sequence) => pending.iter().position(|i| &i.sequence == sequence).unwrap_or(pending.len()),
                None => pending.len(),
            };
            pending.drain(..published);
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
