//! Back-pressure for sources: before publishing more, a source (the Polyfac ingest) waits
//! while a work queue its messages are routed to holds more than a bound.
//!
//! Without it a large export is published faster than the stages consume it, and hundreds of
//! thousands of messages wait in each quorum queue (broker memory and disk). The depth is read
//! with a passive `queue.declare` (its `message_count`: ready messages), which is cheap and
//! needs no management plugin. Only the stages' work queues (and queues registered with
//! [`crate::runtime::Runtime::watch_downstream`]) are watched: never the instance claim, the
//! delay tiers nor the parking lots, which drain at their own pace.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use super::PublishError;
use super::publisher::ConnectionSlot;

/// Time between two reads of the queues' depths while waiting.
const POLL: Duration = Duration::from_millis(200);
/// How often a wait that goes on is logged again.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// The work queues the runtime knows, with the patterns that bind them to the work exchange.
#[derive(Default)]
pub struct Downstream {
    queues: Mutex<Vec<(String, Vec<String>)>>,
}

/// Whether an AMQP topic `pattern` (`*` one word, `#` zero or more) matches `key`.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|skip| go(rest, &k[skip..])),
            Some((word, rest)) => match k.split_first() {
                Some((kw, krest)) => (*word == "*" || word == kw) && go(rest, krest),
                None => false,
            },
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

impl Downstream {
    /// Adds a queue and its binding patterns.
    pub fn add(&self, queue: String, patterns: Vec<String>) {
        if let Ok(mut queues) = self.queues.lock() {
            queues.push((queue, patterns));
        }
    }

    /// The queues a message with one of `routing_keys` is routed to, sorted, once each.
    pub fn queues_for(&self, routing_keys: &[&str]) -> Vec<String> {
        let Ok(queues) = self.queues.lock() else {
            return Vec::new();
        };
        let mut found: Vec<String> = queues
            .iter()
            .filter(|(_, patterns)| {
                patterns
                    .iter()
                    .any(|p| routing_keys.iter().any(|k| topic_matches(p, k)))
            })
            .map(|(queue, _)| queue.clone())
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

/// Ready messages of `queue`, read with a passive `queue.declare` (which creates nothing; a
/// missing queue is an error that closes `channel`).
pub async fn ready_messages(channel: &lapin::Channel, queue: &str) -> Result<u32, lapin::Error> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(declared.message_count())
}

/// The ready messages of each queue (passive declare, one channel for the round; a queue
/// that does not exist ends the round: its depth is unknown, so nobody waits on it).
async fn depths(
    slot: &ConnectionSlot,
    queues: &[String],
) -> Result<Vec<(String, u64)>, PublishError> {
    let connection = slot.borrow().clone().ok_or(PublishError::NotConnected)?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| PublishError::Channel(e.to_string()))?;
    let mut out = Vec::with_capacity(queues.len());
    for queue in queues {
        let count = ready_messages(&channel, queue)
            .await
            .map_err(|e| PublishError::Channel(e.to_string()))?;
        out.push((queue.clone(), u64::from(count)));
    }
    if channel.status().connected() {
        let _ = channel.close(200, "backlog read".into()).await;
    }
    Ok(out)
}

/// Waits until every queue in `queues` holds at most `bound` ready messages. Returns at once
/// when the depths cannot be read (broker away: the publish that follows reports it) and
/// when `shutdown` is cancelled.
pub async fn wait_below(
    slot: &ConnectionSlot,
    queues: &[String],
    bound: u64,
    source: &str,
    shutdown: &CancellationToken,
) {
    if queues.is_empty() {
        return;
    }
    let started = Instant::now();
    let mut last_log: Option<Instant> = None;
    loop {
        let over = match depths(slot, queues).await {
            Ok(depths) => {
                for (queue, depth) in &depths {
                    metrics::gauge!("encaisse_downstream_backlog_messages", "queue" => queue.clone())
                        .set(*depth as f64);
                }
                depths
                    .into_iter()
                    .filter(|(_, d)| *d > bound)
                    .collect::<Vec<_>>()
            }
            Err(e) => {
                tracing::debug!(source, error = %e, "Downstream queue depths unreadable; not waiting.");
                Vec::new()
            }
        };
        if over.is_empty() {
            if last_log.is_some() {
                tracing::info!(
                    source,
                    waited_ms = started.elapsed().as_millis() as u64,
                    "Downstream queues under the backlog bound again; publishing resumes."
                );
            }
            metrics::gauge!("encaisse_downstream_backlog_waiting", "source" => source.to_string())
                .set(0.0);
            return;
        }
        if last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            let detail: Vec<String> = over.iter().map(|(q, d)| format!("{q}={d}")).collect();
            tracing::info!(
                source,
                bound,
                queues = %detail.join(", "),
                "Downstream queues hold more than max_downstream_backlog; waiting before publishing more."
            );
            last_log = Some(Instant::now());
        }
        metrics::gauge!("encaisse_downstream_backlog_waiting", "source" => source.to_string())
            .set(1.0);
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.cancelled() => {
                metrics::gauge!("encaisse_downstream_backlog_waiting", "source" => source.to_string())
                    .set(0.0);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_like_the_broker() {
        assert!(topic_matches("invoice.issued.#", "invoice.issued.titres"));
        assert!(topic_matches("invoice.issued.#", "invoice.issued"));
        assert!(topic_matches(
            "invoice.issued.titres",
            "invoice.issued.titres"
        ));
        assert!(!topic_matches(
            "invoice.issued.titres",
            "invoice.issued.regie"
        ));
        assert!(topic_matches("payment.*", "payment.received"));
        assert!(!topic_matches("payment.*", "payment.received.x"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("titre.#", "titre.accepted"));
        assert!(!topic_matches("titre.#", "invoice.issued.titres"));
        assert!(topic_matches("a.#.z", "a.b.c.z"));
    }

    #[test]
    fn only_the_queues_bound_to_the_keys_are_watched() {
        let d = Downstream::default();
        d.add(
            "p.helios.titres".into(),
            vec!["invoice.issued.titres".into(), "billing_run.closed".into()],
        );
        d.add("p.payfip.register".into(), vec!["invoice.issued.#".into()]);
        d.add("p.payfip.confirm".into(), vec!["payfip.confirm".into()]);
        d.add("p.sepa.batch".into(), vec!["invoice.issued.regie".into()]);
        assert_eq!(
            d.queues_for(&["invoice.issued.titres"]),
            ["p.helios.titres", "p.payfip.register"]
        );
        assert_eq!(
            d.queues_for(&["invoice.issued.titres", "invoice.issued.regie"]),
            ["p.helios.titres", "p.payfip.register", "p.sepa.batch"]
        );
        assert!(d.queues_for(&["payment.received"]).is_empty());
    }
}
