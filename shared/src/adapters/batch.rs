//! Batch APIs (SNS's batch publish, EventBridge's batch put): calls bounded in entries and bytes,
//! and entries a call did not take sent again alone, so that an event's retry (which sends all
//! of its entries again) is left for what a few tries here cannot fix.

use std::future::Future;
use std::time::Duration;

use crate::ports::PortError;

/// Tries of an entry the service failed on for a reason of its own, with this pause (times the
/// attempt) before each further one.
pub(crate) const ENTRY_ATTEMPTS: u32 = 3;
pub(crate) const ENTRY_BACKOFF: Duration = Duration::from_millis(100);

/// Splits `items` into calls of at most `max_entries` and `max_bytes` (as `size` counts them); an
/// item larger than `max_bytes` goes alone, for the service to judge.
pub(crate) fn batches<T>(
    items: Vec<T>,
    max_entries: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let item_size = size(&item);
        match out.last_mut() {
            Some(batch) if batch.len() < max_entries && bytes + item_size <= max_bytes => {
                batch.push(item);
                bytes += item_size;
            }
            _ => {
                out.push(vec![item]);
                bytes = item_size;
            }
        }
    }
    out
}

/// What to do about an entry a call did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The service's own trouble (throttling, an internal error): send it again at once.
    Now,
    /// Something a retry of the whole event may fix later (permissions, a missing resource).
    Later,
    /// The entry itself is refused (malformed, too large): no retry will take it.
    Never,
}

/// One entry a call did not take, by the id the call gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub id: String,
    pub retry: Retry,
    pub why: String,
}

/// Makes `call` with `entries` (each with its id), then again with those refused for `Retry::Now`,
/// up to `ENTRY_ATTEMPTS` tries. Afterwards: `Transient` when some are still refused for a reason
/// of the service's (or `Retry::Later`), else the entries refused for good (`Retry::Never`: the
/// caller says what that means), none when every entry was taken. A call that fails as a whole
/// returns its error at once.
pub(crate) async fn send_entries<E, F, Fut>(
    api: &str,
    entries: Vec<(String, E)>,
    mut call: F,
) -> Result<Vec<Refused>, PortError>
where
    E: Clone,
    F: FnMut(Vec<(String, E)>) -> Fut,
    Fut: Future<Output = Result<Vec<Refused>, PortError>>,
{
    let total = entries.len();
    let mut pending = entries;
    let mut never: Vec<Refused> = Vec::new();
    for attempt in 1..=ENTRY_ATTEMPTS {
        let refused = call(pending.clone()).await?;
        let (now, rest): (Vec<Refused>, Vec<Refused>) = refused.into_iter().partition(|r| r.retry == Retry::Now);
        let (later, refused_for_good): (Vec<Refused>, Vec<Refused>) =
            rest.into_iter().partition(|r| r.retry == Retry::Later);
        never.extend(refused_for_good);
        if !later.is_empty() || (!now.is_empty() && attempt == ENTRY_ATTEMPTS) {
            let left: Vec<Refused> = later.into_iter().chain(now).collect();
            return Err(PortError::Transient(format!(
                "{api}: {} of {total} entries not taken after {attempt} tries: {}",
                left.len(),
                summary(&left)
            )));
        }
        if now.is_empty() {
            break;
        }
        tracing::warn!(api, failed = %summary(&now), attempt, "entries not taken; sending those again");
        pending.retain(|(id, _)| now.iter().any(|r| &r.id == id));
        tokio::time::sleep(ENTRY_BACKOFF * attempt).await;
    }
    Ok(never)
}

pub(crate) fn summary(refused: &[Refused]) -> String {
    refused.iter().map(|r| format!("{} ({})", r.id, r.why)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_to_the_entry_and_byte_limits_and_an_oversized_item_goes_alone() {
        let sizes = vec![4, 4, 4, 20, 1, 1, 1, 1];

        let got = batches(sizes, 3, 10, |s| *s);

        assert_eq!(got, vec![vec![4, 4], vec![4], vec![20], vec![1, 1, 1], vec![1]]);
    }
}
