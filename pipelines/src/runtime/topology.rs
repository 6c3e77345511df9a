//! Broker topology (ARCHITECTURE.md, "Broker topology"): names, arguments, and the idempotent
//! declaration run at start and after every reconnection.
//!
//! With prefix `P`, per stage `S`:
//! - `P`: topic exchange, durable (the work exchange);
//! - `P.S`: quorum work queue bound to `P` with the stage's patterns, `x-delivery-limit`,
//!   dead-lettering (at-least-once) through the default exchange to `P.S.parked`;
//! - `P.S.retry.<N>s`: one quorum queue per delay tier, `x-message-ttl` = N s, dead-lettering
//!   (at-least-once) through the default exchange back to `P.S`;
//! - `P.S.parked`: quorum queue, the stage's parking lot.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use super::config::RuntimeConfig;

/// The queue names of one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageQueues {
    /// `P.S`.
    pub work: String,
    /// `P.S.parked`.
    pub parked: String,
    /// `(tier seconds, P.S.retry.<N>s)`, in the configured order.
    pub tiers: Vec<(u64, String)>,
}

impl StageQueues {
    pub fn new(prefix: &str, stage: &str, tiers_secs: &[u64]) -> Self {
        let work = format!("{prefix}.{stage}");
        StageQueues {
            parked: format!("{work}.parked"),
            tiers: tiers_secs
                .iter()
                .map(|secs| (*secs, format!("{work}.retry.{secs}s")))
                .collect(),
            work,
        }
    }

    /// The delay tier in which attempt `next_attempt` (2 for the first retry) waits:
    /// tier `min(next_attempt - 2, last)`, i.e. after failed attempt n, tier min(n-1, last)
    /// counted from 0. `None` when there are no tiers (refused by config validation).
    pub fn tier_for(&self, failed_attempt: u32) -> Option<&(u64, String)> {
        let last = self.tiers.len().checked_sub(1)?;
        let index = (failed_attempt.saturating_sub(1) as usize).min(last);
        self.tiers.get(index)
    }
}

/// Why the topology could not be declared.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A queue or exchange exists with other arguments (PRECONDITION_FAILED).
    #[error("{name} exists with other arguments: {message}")]
    Conflict { name: String, message: String },
    /// The broker cannot provide what the topology needs (feature flag, version).
    #[error("{0}")]
    Unsupported(String),
    /// The broker went away or refused for a passing reason: retried by the supervisor.
    #[error("broker error while declaring {name}: {source}")]
    Broker {
        name: String,
        #[source]
        source: lapin::Error,
    },
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("quorum"));
    args
}

/// Dead-lettering through the default exchange to `target`, at least once (RabbitMQ ≥ 3.10;
/// needs `x-overflow = reject-publish`, or the broker silently falls back to at-most-once).
fn dead_letter_to(args: &mut FieldTable, target: &str) {
    args.insert("x-dead-letter-exchange".into(), text(""));
    args.insert("x-dead-letter-routing-key".into(), text(target));
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    args.insert("x-overflow".into(), text("reject-publish"));
}

/// Arguments of a stage's work queue.
pub fn work_queue_args(queues: &StageQueues, delivery_limit: u32) -> FieldTable {
    let mut args = quorum_args();
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(delivery_limit)),
    );
    dead_letter_to(&mut args, &queues.parked);
    args
}

/// Arguments of a delay tier: fixed TTL, then back to the work queue.
pub fn tier_queue_args(queues: &StageQueues, secs: u64, delivery_limit: u32) -> FieldTable {
    let mut args = quorum_args();
    let ttl_ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
    // Nobody consumes a tier; the limit is set because every quorum queue must have one.
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(delivery_limit)),
    );
    dead_letter_to(&mut args, &queues.work);
    args
}

/// Arguments of a parking lot. No delivery limit and no dead-lettering on purpose: nothing
/// may ever be dropped from a parking lot, and on 3.10 a quorum queue without
/// `x-delivery-limit` redelivers forever. (On RabbitMQ ≥ 4.0 the default limit of 20 would
/// drop messages requeued 20 times: the parking consumer must ack, never requeue.)
pub fn parked_queue_args() -> FieldTable {
    quorum_args()
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn is_precondition_failed(error: &lapin::Error) -> Option<String> {
    if let lapin::ErrorKind::ProtocolError(amqp) = error.kind()
        && matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
        )
    {
        return Some(amqp.get_message().to_string());
    }
    None
}

fn classify(name: &str, error: lapin::Error) -> TopologyError {
    if let Some(message) = is_precondition_failed(&error) {
        return TopologyError::Conflict {
            name: name.to_string(),
            message,
        };
    }
    if let lapin::ErrorKind::ProtocolError(amqp) = error.kind()
        && matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
                | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED)
        )
    {
        return TopologyError::Unsupported(format!(
            "the broker refused to declare {name}: {} (check the user's configure permissions on the prefix)",
            amqp.get_message()
        ));
    }
    TopologyError::Broker {
        name: name.to_string(),
        source: error,
    }
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    args: FieldTable,
) -> Result<(), TopologyError> {
    channel
        .queue_declare(ShortString::from(name), durable(), args)
        .await
        .map(|_| ())
        .map_err(|e| classify(name, e))
}

/// Declares everything the stages need. Idempotent: a second run with the same config is a
/// no-op; a queue that exists with other arguments is a [`TopologyError::Conflict`].
///
/// Each declaration uses a fresh channel when the previous one was closed by an error, so
/// that a conflict reports the queue it concerns.
pub async fn declare(
    connection: &Connection,
    config: &RuntimeConfig,
    stages: &[(StageQueues, Vec<String>)],
) -> Result<(), TopologyError> {
    let prefix = &config.broker.prefix;
    let limit = config.broker.delivery_limit;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| classify(prefix, e))?;
    channel
        .exchange_declare(
            ShortString::from(prefix.as_str()),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| classify(prefix, e))?;
    for (queues, bindings) in stages {
        declare_queue(&channel, &queues.parked, parked_queue_args()).await?;
        declare_queue(&channel, &queues.work, work_queue_args(queues, limit)).await?;
        for (secs, tier) in &queues.tiers {
            declare_queue(&channel, tier, tier_queue_args(queues, *secs, limit)).await?;
        }
        for pattern in bindings {
            channel
                .queue_bind(
                    ShortString::from(queues.work.as_str()),
                    ShortString::from(prefix.as_str()),
                    ShortString::from(pattern.as_str()),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| classify(&queues.work, e))?;
        }
    }
    let _ = channel.close(200, "OK".into()).await;
    Ok(())
}

/// Checks, once per process, that the broker can do at-least-once dead-lettering.
///
/// RabbitMQ 3.10–3.13 need the `stream_queue` feature flag for it (on by default on a fresh
/// 3.10 node, off on a node upgraded from 3.8 until `rabbitmqctl enable_feature_flag
/// stream_queue` or `rabbitmqctl enable_feature_flag all`). AMQP cannot read feature flags,
/// so the probe declares a throw-away stream queue `P.feature-probe` (refused when the flag
/// is off) and deletes it. The name is fixed so that a probe interrupted by a crash leaves at
/// most one small queue, reused and deleted by the next start.
pub async fn probe_at_least_once(
    connection: &Connection,
    prefix: &str,
) -> Result<(), TopologyError> {
    let name = format!("{prefix}.feature-probe");
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| classify(&name, e))?;
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), text("stream"));
    args.insert(
        "x-max-length-bytes".into(),
        AMQPValue::LongLongInt(1_000_000),
    );
    match channel
        .queue_declare(ShortString::from(name.as_str()), durable(), args)
        .await
    {
        Ok(_) => {
            let _ = channel
                .queue_delete(ShortString::from(name.as_str()), Default::default())
                .await;
            let _ = channel.close(200, "OK".into()).await;
            Ok(())
        }
        Err(e) if e.is_amqp_error() => Err(TopologyError::Unsupported(format!(
            "RabbitMQ refused a stream queue ({e}): at-least-once dead-lettering of quorum queues needs RabbitMQ >= 3.10 with the feature flag stream_queue enabled; run `rabbitmqctl enable_feature_flag stream_queue` (or `rabbitmqctl enable_feature_flag all`) and restart encaisse"
        ))),
        Err(e) => Err(TopologyError::Broker { name, source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_architecture() {
        let q = StageQueues::new("encaisse", "helios.titres", &[5, 30]);
        assert_eq!(q.work, "encaisse.helios.titres");
        assert_eq!(q.parked, "encaisse.helios.titres.parked");
        assert_eq!(
            q.tiers,
            vec![
                (5, "encaisse.helios.titres.retry.5s".to_string()),
                (30, "encaisse.helios.titres.retry.30s".to_string())
            ]
        );
    }

    #[test]
    fn attempts_climb_the_tiers_then_stay_on_the_last() {
        let q = StageQueues::new("p", "s", &[5, 30, 120]);
        let tier = |n| q.tier_for(n).map(|t| t.0);
        assert_eq!(tier(1), Some(5));
        assert_eq!(tier(2), Some(30));
        assert_eq!(tier(3), Some(120));
        assert_eq!(tier(7), Some(120));
        assert_eq!(StageQueues::new("p", "s", &[]).tier_for(1), None);
    }

    #[test]
    fn work_queue_dead_letters_at_least_once_to_its_parking_lot() {
        let q = StageQueues::new("p", "s", &[5]);
        let args = work_queue_args(&q, 20);
        let get = |k: &str| args.inner().get(k).cloned();
        assert_eq!(get("x-queue-type"), Some(text("quorum")));
        assert_eq!(get("x-delivery-limit"), Some(AMQPValue::LongLongInt(20)));
        assert_eq!(get("x-dead-letter-exchange"), Some(text("")));
        assert_eq!(get("x-dead-letter-routing-key"), Some(text("p.s.parked")));
        assert_eq!(get("x-dead-letter-strategy"), Some(text("at-least-once")));
        assert_eq!(get("x-overflow"), Some(text("reject-publish")));
        let tier = tier_queue_args(&q, 5, 20);
        assert_eq!(
            tier.inner().get("x-message-ttl"),
            Some(&AMQPValue::LongLongInt(5000))
        );
        assert_eq!(
            tier.inner().get("x-dead-letter-routing-key"),
            Some(&text("p.s"))
        );
    }
}
