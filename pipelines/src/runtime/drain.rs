//! Drains: consumers of queues that are not a stage's work queue — the parking lots, which
//! ops tooling copies into the ledger (`ops.parking`).
//!
//! A drain differs from a stage on purpose:
//! - no deduplication, no retry tiers, no parking: the queues it reads have no delivery limit
//!   and no dead-letter target, so nothing may ever be requeued or dropped there;
//! - its handler sees the message **as it came** (exchange, routing key, every AMQP property
//!   including headers the stage view leaves out, such as the broker's `x-death`);
//! - `Ok` acks the message; an error (or a panic) is retried in place, the delivery kept in
//!   hand, with jittered backoff (from `broker.reconnect_min_delay_ms` to
//!   `reconnect_max_delay_ms`) until it succeeds or the runtime stops. On stop the unacked
//!   delivery goes back to its queue when the channel closes, and is drained again at the
//!   next start. A drain must therefore be idempotent.
//!
//! Drains are consumed on the supervisor's connection, so they reconnect, stop and report
//! health with the stages.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::config::RuntimeConfig;
use super::metrics;
use super::topology::StageQueues;
use crate::stage::ErrorClass;

/// A message as it was delivered from a drained queue.
#[derive(Debug, Clone)]
pub struct Drained {
    /// The queue it was consumed from.
    pub queue: String,
    /// Exchange and routing key of the delivery (for a dead-lettered or runtime-parked
    /// message: `""` and the queue's name).
    pub exchange: String,
    pub routing_key: String,
    /// Set by the broker when the message was delivered before without an ack.
    pub redelivered: bool,
    /// Every AMQP property, headers included, untouched.
    pub properties: BasicProperties,
    pub body: Bytes,
}

/// Why a drain could not take a message now. Always retried (see the module doc): a drain
/// never drops nor requeues.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DrainError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl DrainError {
    pub fn new(message: impl Into<String>) -> Self {
        DrainError {
            message: message.into(),
            source: None,
        }
    }

    /// Retry class: always transient (the message stays in hand and is tried again).
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Transient
    }
}

impl From<encaisse_ledger::LedgerError> for DrainError {
    fn from(e: encaisse_ledger::LedgerError) -> Self {
        DrainError {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// A consumer of named queues among the declared topology.
pub trait Drain: Send + Sync + 'static {
    /// `ops.parking`: for logs and metrics.
    fn name(&self) -> &str;
    /// The queues to consume, chosen among the queues of the runtime's stages (every one of
    /// them must be declared by the runtime: a work queue, a delay tier or a parking lot).
    fn queues(&self, stages: &[StageQueues]) -> Vec<String>;
    /// Takes one message; `Ok` acks it.
    fn handle<'a>(&'a self, message: &'a Drained) -> BoxFuture<'a, Result<(), DrainError>>;
    /// Deliveries handled at once per drained queue (its prefetch follows).
    fn concurrency(&self) -> u16 {
        8
    }
}

/// One drained queue, as the supervisor consumes it.
pub struct DrainConsumer {
    pub drain: Arc<dyn Drain>,
    pub queue: String,
    pub prefetch: u16,
    pub permits: Arc<Semaphore>,
    pub config: RuntimeConfig,
    /// Cancelled on shutdown: a failing handler stops retrying and leaves its delivery.
    pub shutdown: CancellationToken,
}

impl DrainConsumer {
    /// One consumer per queue the drain names.
    pub fn for_drain(
        drain: &Arc<dyn Drain>,
        stages: &[StageQueues],
        config: &RuntimeConfig,
        shutdown: &CancellationToken,
    ) -> Vec<Arc<DrainConsumer>> {
        let prefetch = drain.concurrency().max(1);
        drain
            .queues(stages)
            .into_iter()
            .map(|queue| {
                Arc::new(DrainConsumer {
                    drain: drain.clone(),
                    queue,
                    prefetch,
                    permits: Arc::new(Semaphore::new(usize::from(prefetch))),
                    config: config.clone(),
                    shutdown: shutdown.clone(),
                })
            })
            .collect()
    }

    /// Hands one delivery to the drain until it takes it, then acks it.
    pub async fn handle(&self, mut delivery: Delivery) {
        let message = Drained {
            queue: self.queue.clone(),
            exchange: delivery.exchange.as_str().to_string(),
            routing_key: delivery.routing_key.as_str().to_string(),
            redelivered: delivery.redelivered,
            properties: delivery.properties.clone(),
            body: Bytes::from(std::mem::take(&mut delivery.data)),
        };
        let name = self.drain.name().to_string();
        let mut delays = super::supervisor::reconnect_backoff(&self.config);
        loop {
            let outcome = AssertUnwindSafe(self.drain.handle(&message))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(DrainError::new("the drain's handler panicked")));
            match outcome {
                Ok(()) => {
                    metrics::drained(&name);
                    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                        tracing::info!(drain = %name, queue = %self.queue, error = %e, "Ack failed; the message will be drained again.");
                    }
                    return;
                }
                Err(error) => {
                    metrics::drain_failed(&name);
                    let delay = delays.next().unwrap_or(Duration::from_secs(1));
                    tracing::warn!(drain = %name, queue = %self.queue, %error, delay_ms = delay.as_millis() as u64, "Drain could not take the message; trying again (it stays in hand, never requeued).");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                }
            }
        }
    }
}

/// Checks that every drained queue is declared by the runtime (a queue it does not declare
/// would make the consumer fail, and the supervisor reconnect, forever).
pub fn check_queues(
    consumers: &[Arc<DrainConsumer>],
    stages: &[StageQueues],
) -> Result<(), String> {
    for consumer in consumers {
        let declared = stages.iter().any(|s| {
            s.work == consumer.queue
                || s.parked == consumer.queue
                || s.tiers.iter().any(|(_, t)| *t == consumer.queue)
        });
        if !declared {
            return Err(format!(
                "drain {} names queue {}, which no stage declares",
                consumer.drain.name(),
                consumer.queue
            ));
        }
    }
    Ok(())
}
