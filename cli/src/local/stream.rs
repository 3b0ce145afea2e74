//! Plays the publish-events function's event source mapping: reads the table's DynamoDB stream
//! from the emulator (moto serves the streams API), keeps what the mapping's filter keeps
//! (inserted audit records), and hands each batch to the same handler the function runs
//! (`app::publish::publish_batch`). A failed batch is retried from its first failed record, as
//! Lambda does with batch item failures.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_dynamodbstreams::Client;
use jit_shared::adapters::stream::outbox_item;
use jit_shared::app::publish::{publish_batch, OutboxContent, OutboxItem};
use jit_shared::ports::EventPublisher;

/// One record as read: its event id and what it carries.
struct Read {
    event_id: String,
    item: OutboxItem,
}

/// Where reading a shard stands: after the last confirmed record, and what the previous read
/// showed beyond it (not confirmed yet).
#[derive(Default)]
struct Shard {
    after: Option<String>,
    unconfirmed: Vec<String>,
}

/// The shard's records after its last confirmed one, oldest first.
async fn read_tail(client: &Client, stream_arn: &str, shard_id: &str, shard: &Shard) -> Option<Vec<Read>> {
    let start = client.get_shard_iterator().stream_arn(stream_arn).shard_id(shard_id);
    let start = match &shard.after {
        Some(sequence) => start.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence),
        None => start.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let mut iterator = start.send().await.ok()?.shard_iterator;
    let mut records = Vec::new();
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
            records.push(Read { event_id: record.event_id().unwrap_or_default().to_owned(), item });
        }
        iterator = out.next_shard_iterator;
    }
    Some(records)
}

/// moto's streams have one flaw that matters here: a transaction that fails its condition is
/// rolled back by restoring the table, stream included, after its records were visible; later
/// records then reuse their sequence numbers. So a record counts only once two consecutive reads
/// show it at the same place (a rolled-back record is gone, or replaced, by the next read), and
/// each read starts after the last record confirmed so. Real DynamoDB streams carry committed
/// changes only.
fn confirm(shard: &mut Shard, tail: Vec<Read>) -> Vec<OutboxItem> {
    let confirmed = tail.iter().zip(&shard.unconfirmed).take_while(|(read, seen)| &read.event_id == *seen).count();
    let mut rest = tail;
    let unconfirmed = rest.split_off(confirmed);
    shard.unconfirmed = unconfirmed.iter().map(|r| r.event_id.clone()).collect();
    if let Some(last) = rest.last() {
        shard.after = Some(last.item.sequence.clone());
    }
    rest.into_iter().map(|r| r.item).collect()
}

/// Polls the stream until the task is dropped.
/// `invoked` is called once per batch the mapping would deliver (the local stack counts it).
pub async fn stream_loop(client: Client, stream_arn: String, events: impl EventPublisher, invoked: impl Fn()) {
    let mut shards: BTreeMap<String, Shard> = BTreeMap::new();
    let mut pending: Vec<OutboxItem> = Vec::new();
    for poll in 0u64.. {
        if poll % 100 == 0 {
            if let Ok(out) = client.describe_stream().stream_arn(&stream_arn).send().await {
                for shard in out.stream_description().map(|d| d.shards()).unwrap_or_default() {
                    if let Some(id) = shard.shard_id() {
                        shards.entry(id.to_owned()).or_default();
                    }
                }
            }
        }
        for (id, shard) in &mut shards {
            if let Some(tail) = read_tail(&client, &stream_arn, id, shard).await {
                // The mapping's filter: only inserted audit records reach the function.
                pending.extend(confirm(shard, tail).into_iter().filter(|i| i.content != OutboxContent::Skip));
            }
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(event_id: &str, sequence: &str) -> Read {
        Read { event_id: event_id.into(), item: OutboxItem { sequence: sequence.into(), content: OutboxContent::Skip } }
    }

    fn sequences(items: &[OutboxItem]) -> Vec<&str> {
        items.iter().map(|i| i.sequence.as_str()).collect()
    }

    #[test]
    fn a_record_counts_once_two_reads_show_it_and_a_rolled_back_one_never_does() {
        let mut shard = Shard::default();
        // First sight of two records: nothing is confirmed yet.
        assert!(confirm(&mut shard, vec![read("a", "1"), read("b", "2")]).is_empty());
        // Seen again, with a third one behind them: the two are confirmed, in order.
        let first = confirm(&mut shard, vec![read("a", "1"), read("b", "2"), read("c", "3")]);
        assert_eq!((sequences(&first), shard.after.as_deref()), (vec!["1", "2"], Some("2")));
        // "c" was rolled back and its sequence number reused by "d": neither counts yet.
        assert!(confirm(&mut shard, vec![read("d", "3")]).is_empty());
        let second = confirm(&mut shard, vec![read("d", "3")]);
        assert_eq!((sequences(&second), shard.after.as_deref()), (vec!["3"], Some("3")));
    }
}
