//! What happens to one delivery: deduplication, the handler (with in-process retries and
//! panic isolation), the durable record and its outputs (outbox), then the ack — or, on
//! failure, a confirmed republish to a delay tier or to the parking lot, then the ack.
//!
//! Messages without a `message_id` are deduplicated on `sha256:<hex of the body>`: canonical
//! events carry their business key, so equal bodies are the same fact. Retries and parking
//! keep the message as it came (no id is added).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use encaisse_ledger::clock::now as now_rfc3339;
use encaisse_ledger::{Ledger, ProcessedMessage};
use futures::FutureExt;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::PublishError;
use super::burst::{BurstCommitter, Unit};
use super::config::RetryConfig;
use super::headers::{self, Failure};
use super::metrics;
use super::outbox;
use super::publisher::{PublisherCore, Wire};
use super::topology::StageQueues;
use crate::bundle;
use crate::stage::{ErrorClass, Handled, Incoming, Outgoing, Stage, StageError};

/// Everything a delivery of one stage needs.
pub struct StageRunner {
    pub stage: Arc<dyn Stage>,
    pub name: String,
    pub queues: StageQueues,
    pub publisher: Arc<PublisherCore>,
    pub ledger: Ledger,
    /// Commits the stage's deliveries in bursts (one transaction for those ready together).
    pub committer: BurstCommitter,
    pub retry: RetryConfig,
    /// Cancelled on shutdown: in-process retries stop waiting (the delay tiers take over).
    pub shutdown: CancellationToken,
}

/// The id the ledger deduplicates on.
pub fn dedupe_id(message_id: Option<&str>, body: &[u8]) -> String {
    match message_id {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

/// The stage's view of a delivery. On a retried or replayed message the exchange and routing
/// key are restored from the origin headers, so the stage sees how it was first routed.
pub fn incoming(delivery: &Delivery, body: Bytes) -> Incoming {
    let props = &delivery.properties;
    let table = props.headers().as_ref();
    Incoming {
        message_id: props.message_id().as_ref().map(|s| s.as_str().to_string()),
        message_type: props.kind().as_ref().map(|s| s.as_str().to_string()),
        exchange: headers::text(table, headers::ORIGIN_EXCHANGE)
            .unwrap_or_else(|| delivery.exchange.as_str().to_string()),
        routing_key: headers::text(table, headers::ORIGIN_ROUTING_KEY)
            .unwrap_or_else(|| delivery.routing_key.as_str().to_string()),
        headers: headers::to_header_map(table),
        body,
        redelivered: delivery.redelivered,
        attempt: headers::attempt(table),
    }
}

/// A delivery that is most likely the first of its message: not redelivered by the broker
/// (flag or quorum `x-delivery-count`), first attempt (not from a delay tier), not a replay.
/// Those others read the dedupe record first, so a processed message is republished
/// without running its handler again (what a replay after a fixed topology relies on).
pub fn first_delivery(message: &Incoming) -> bool {
    let counted = match message.headers.get("x-delivery-count") {
        Some(crate::stage::HeaderValue::Int(n)) => *n > 0,
        Some(_) => true,
        None => false,
    };
    !message.redelivered
        && !counted
        && message.attempt <= 1
        && !message.headers.contains_key(headers::REPLAYED_AT)
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked without a message".to_string()
    }
}

/// How a delivery ended, for logs and tests of the logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    Acked,
    /// Not acked (channel gone, ack refused): the broker will redeliver it.
    LeftForRedelivery,
}

impl StageRunner {
    /// Handles one delivery to the end. Never panics, never returns an error: every outcome
    /// is an ack after a confirmed publish, or a message left (or put back) for redelivery.
    pub async fn handle(&self, mut delivery: Delivery) {
        let started = Instant::now();
        let body = Bytes::from(std::mem::take(&mut delivery.data));
        let message = incoming(&delivery, body);
        let id = dedupe_id(message.message_id.as_deref(), &message.body);
        let span = tracing::info_span!(
            "message",
            stage = %self.name,
            message_id = %id,
            attempt = message.attempt,
        );
        if bundle::is_bundle(&message) {
            self.handle_bundle(delivery, message).instrument(span).await;
            metrics::duration(&self.name, started.elapsed());
            return;
        }
        self.handle_in_span(delivery, message, id, started)
            .instrument(span)
            .await;
    }

    async fn handle_in_span(
        &self,
        delivery: Delivery,
        message: Incoming,
        id: String,
        started: Instant,
    ) {
        // A first delivery skips the dedupe read: the processed row's uniqueness, checked in
        // the commit (`succeed`), still keeps a copy sent twice from applying twice — its
        // handler runs, its effect is dropped and the first outputs are republished.
        let known = if first_delivery(&message) {
            Ok(None)
        } else {
            self.ledger.processed(&self.name, &id).await
        };
        let outcome = match known {
            Ok(Some(record)) => self.republish_stored(&delivery, &message, record).await,
            Ok(None) => match self.run_handler(&message).await {
                Ok(handled) => self.succeed(&delivery, &message, &id, handled).await,
                Err(error) => self.fail(&delivery, &message, error).await,
            },
            Err(e) => self.fail(&delivery, &message, StageError::from(e)).await,
        };
        if outcome == Settled::Acked {
            tracing::debug!("Message settled.");
        }
        metrics::duration(&self.name, started.elapsed());
    }

    /// Runs the handler, retrying transient failures in process, and turning a panic into a
    /// permanent failure (a bug: the same bytes would panic again; parked for replay once
    /// fixed) instead of killing the consumer.
    pub(super) async fn run_handler(&self, message: &Incoming) -> Result<Handled, StageError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.retry.in_process_min_delay_ms))
            .with_factor(2.0)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.retry.in_process_retries as usize)
            .with_jitter()
            .build();
        loop {
            let result = AssertUnwindSafe(self.stage.handle(message))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(StageError::permanent(
                        "handler_panicked",
                        format!("the handler panicked: {}", panic_message(panic.as_ref())),
                    ))
                });
            match result {
                Err(error) if error.class == ErrorClass::Transient => {
                    let Some(delay) = delays.next() else {
                        return Err(error);
                    };
                    if self.shutdown.is_cancelled() {
                        return Err(error);
                    }
                    tracing::debug!(error = %error, kind = %error.kind, delay_ms = delay.as_millis() as u64, "Transient failure; retrying in process.");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shutdown.cancelled() => return Err(error),
                    }
                }
                other => return other,
            }
        }
    }

    /// Records the message as processed (with the stage's ledger effect, atomically, in the
    /// stage's next burst), then publishes the outputs (confirmed), then acks.
    async fn succeed(
        &self,
        delivery: &Delivery,
        message: &Incoming,
        id: &str,
        handled: Handled,
    ) -> Settled {
        match self.commit_handled(message, id, handled).await {
            Ok(Committed { outputs, duplicate }) => {
                if duplicate {
                    metrics::duplicate(&self.name);
                }
                let settled = self
                    .publish_outputs_then_ack(delivery, message, &outputs)
                    .await;
                if settled == Settled::Acked && !duplicate {
                    metrics::processed(&self.name);
                }
                settled
            }
            Err(error) => self.fail(delivery, message, error).await,
        }
    }

    /// Commits the processed record of `message` with the stage's ledger effect (in the
    /// stage's next burst) and returns the outputs to publish: the handler's, or those of
    /// an earlier delivery of the same message that committed first.
    pub(super) async fn commit_handled(
        &self,
        message: &Incoming,
        id: &str,
        handled: Handled,
    ) -> Result<Committed, StageError> {
        let (unit, outputs) = self.unit_for(message, id, handled)?;
        resolve(self.committer.commit(unit).await, outputs)
    }

    /// What committing `handled` writes: the processed record (with the outputs it keeps
    /// for a redelivery) and the stage's ledger effect; and the outputs to publish once
    /// it is committed.
    pub(super) fn unit_for(
        &self,
        message: &Incoming,
        id: &str,
        mut handled: Handled,
    ) -> Result<(Unit, Vec<Outgoing>), StageError> {
        let encoded = outbox::encode(&handled.outputs)
            .map_err(|e| StageError::permanent("unencodable_outputs", e.to_string()))?;
        let record = ProcessedMessage {
            stage: self.name.clone(),
            message_id: id.to_string(),
            message_type: message.message_type.clone(),
            tenant: message.header_text(headers::TENANT).map(str::to_string),
            invoice_key: handled
                .invoice
                .as_ref()
                .map(|i| i.key())
                .or_else(|| message.header_text(headers::INVOICE).map(str::to_string)),
            processed_at: now_rfc3339(),
            outputs: encoded,
        };
        let unit = Unit {
            record,
            effect: handled.ledger_effect.take(),
        };
        Ok((unit, handled.outputs))
    }

    /// A redelivery of a processed message: the stored outputs again (same ids), then ack.
    async fn republish_stored(
        &self,
        delivery: &Delivery,
        message: &Incoming,
        record: ProcessedMessage,
    ) -> Settled {
        metrics::duplicate(&self.name);
        tracing::info!(processed_at = %record.processed_at, "Message already processed; republishing its outputs without running the stage.");
        match stored_outputs(&record) {
            Ok(outputs) => {
                self.publish_outputs_then_ack(delivery, message, &outputs)
                    .await
            }
            Err(error) => self.fail(delivery, message, error).await,
        }
    }

    async fn publish_outputs_then_ack(
        &self,
        delivery: &Delivery,
        message: &Incoming,
        outputs: &[Outgoing],
    ) -> Settled {
        match self
            .publish_with_retries(|| self.publisher.publish(outputs))
            .await
        {
            Ok(()) => ack(delivery).await,
            Err(e) => match refused_output(&e) {
                // The record stays: once the topology (or the stage) is fixed, replaying the
                // parked message republishes the stored outputs without rerunning the stage.
                Some(error) => self.park_or_retry(delivery, message, &error).await,
                None => {
                    tracing::warn!(error = %e, "Outputs not confirmed; the message goes back to the queue and its outputs will be republished.");
                    requeue(delivery).await
                }
            },
        }
    }

    /// In-process retries of a transient publish failure (the publisher already waits for a
    /// reconnection within its own bound).
    pub(super) async fn publish_with_retries<'a, F, Fut>(
        &self,
        publish: F,
    ) -> Result<(), PublishError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), PublishError>> + 'a,
    {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.retry.in_process_min_delay_ms))
            .with_max_times(self.retry.in_process_retries as usize)
            .with_jitter()
            .build();
        loop {
            match publish().await {
                Err(e) if e.is_transient() && !matches!(e, PublishError::ShuttingDown) => {
                    match delays.next() {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => return Err(e),
                    }
                }
                other => return other,
            }
        }
    }

    async fn fail(&self, delivery: &Delivery, message: &Incoming, error: StageError) -> Settled {
        self.park_or_retry(delivery, message, &error).await
    }

    /// Transient and attempts left: the next delay tier, with attempt + 1. Otherwise (or
    /// permanent, or poison): the parking lot, with the attempt that failed. Both keep the
    /// original body and properties and add the failure headers; confirmed, then acked.
    async fn park_or_retry(
        &self,
        delivery: &Delivery,
        message: &Incoming,
        error: &StageError,
    ) -> Settled {
        let moved = self.failure_move(
            &delivery.properties,
            message,
            delivery.exchange.as_str(),
            delivery.routing_key.as_str(),
            error,
        );
        let published = self
            .publish_with_retries(|| {
                self.publisher
                    .publish_wire(std::slice::from_ref(&moved.wire))
            })
            .await;
        match published {
            Ok(()) => {
                self.count_move(&moved, error);
                ack(delivery).await
            }
            Err(e) => {
                tracing::warn!(error = %e, failure = %error, queue = %moved.wire.routing_key, "Could not move the failed message; it goes back to the queue.");
                requeue(delivery).await
            }
        }
    }

    /// Where a failed message goes (its delay tier or the parking lot) and in what form:
    /// its own properties and body, plus the failure headers. `exchange` and `routing_key`
    /// are those it was delivered with (kept as its origin).
    pub(super) fn failure_move(
        &self,
        properties: &BasicProperties,
        message: &Incoming,
        exchange: &str,
        routing_key: &str,
        error: &StageError,
    ) -> Moved {
        let attempt = message.attempt;
        let tier = (error.class == ErrorClass::Transient && attempt < self.retry.max_attempts)
            .then(|| self.queues.tier_for(attempt))
            .flatten();
        let now = now_rfc3339();
        let (target, next_attempt, parked) = match tier {
            Some((_, queue)) => (queue.clone(), attempt.saturating_add(1), false),
            None => (self.queues.parked.clone(), attempt, true),
        };
        let table = headers::with_failure(
            properties.headers().as_ref(),
            &Failure {
                stage: &self.name,
                attempt: next_attempt,
                error: &error.message,
                class: error.class.as_str(),
                kind: &error.kind,
                origin_queue: &self.queues.work,
                exchange,
                routing_key,
                now: &now,
                parked,
            },
        );
        Moved {
            wire: Wire {
                exchange: String::new(),
                routing_key: target,
                message_id: message.message_id.clone().unwrap_or_default(),
                properties: properties.clone().with_headers(table),
                body: message.body.clone(),
            },
            parked,
            next_attempt,
        }
    }

    /// Metrics and the log line of a failed message once it is in its tier or parked.
    pub(super) fn count_move(&self, moved: &Moved, error: &StageError) {
        let queue = &moved.wire.routing_key;
        if moved.parked {
            metrics::parked(&self.name, error.class.as_str(), &error.kind);
            tracing::warn!(message_id = %moved.wire.message_id, class = %error.class, kind = %error.kind, error = %error, queue = %queue, "Message parked.");
        } else {
            metrics::retried(&self.name, &error.kind);
            tracing::info!(message_id = %moved.wire.message_id, kind = %error.kind, error = %error, queue = %queue, next_attempt = moved.next_attempt, "Transient failure; message sent to a delay tier.");
        }
    }
}

/// What a handled message committed: the outputs to publish, and whether an earlier
/// delivery of it had committed first (its outputs, this one's effect dropped).
pub(super) struct Committed {
    pub outputs: Vec<Outgoing>,
    pub duplicate: bool,
}

/// A failed message in the form it is moved in.
pub(super) struct Moved {
    /// To the default exchange, routed to the tier or the parking lot.
    pub wire: Wire,
    pub parked: bool,
    pub next_attempt: u32,
}

/// The outcome of a commit: `outputs` when this delivery's record is the one committed,
/// else the outputs stored by the earlier delivery of the same message (its effect won).
pub(super) fn resolve(
    outcome: super::burst::Outcome,
    outputs: Vec<Outgoing>,
) -> Result<Committed, StageError> {
    match outcome? {
        None => Ok(Committed {
            outputs,
            duplicate: false,
        }),
        Some(earlier) => {
            tracing::info!("Message was processed concurrently; republishing the first outputs.");
            stored_outputs(&earlier).map(|outputs| Committed {
                outputs,
                duplicate: true,
            })
        }
    }
}

/// An output refused for good (no queue bound for it, or not fit for the wire), as the
/// permanent failure of the message that produced it; `None` for a failure worth retrying.
pub(super) fn refused_output(e: &PublishError) -> Option<StageError> {
    let kind = match e {
        PublishError::Unroutable { .. } => "unroutable_output",
        PublishError::Invalid { .. } => "invalid_output",
        _ => return None,
    };
    Some(StageError::permanent(kind, e.to_string()))
}

/// The outputs an earlier delivery stored with its processed record.
pub(super) fn stored_outputs(record: &ProcessedMessage) -> Result<Vec<Outgoing>, StageError> {
    outbox::decode(&record.outputs)
        .map_err(|e| StageError::permanent("unreadable_stored_outputs", e.to_string()))
}

/// Acks; a failed ack (channel lost, typically after a reconnection) means the broker will
/// redeliver the message, and the ledger will recognise it.
pub(super) async fn ack(delivery: &Delivery) -> Settled {
    match delivery.acker.ack(BasicAckOptions::default()).await {
        Ok(true) => Settled::Acked,
        Ok(false) => {
            tracing::info!(
                "Ack not sent (channel closed); the message will be redelivered and deduplicated."
            );
            Settled::LeftForRedelivery
        }
        Err(e) => {
            tracing::info!(error = %e, "Ack failed; the message will be redelivered and deduplicated.");
            Settled::LeftForRedelivery
        }
    }
}

/// Puts the message back at once (nack with requeue); it counts toward `x-delivery-limit`.
pub(super) async fn requeue(delivery: &Delivery) -> Settled {
    let options = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    if let Err(e) = delivery.acker.nack(options).await {
        tracing::info!(error = %e, "Nack failed; the message will be redelivered.");
    }
    Settled::LeftForRedelivery
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_without_id_are_deduplicated_on_their_body() {
        assert_eq!(dedupe_id(Some("abc"), b"x"), "abc");
        let derived = dedupe_id(None, b"{}");
        assert_eq!(
            derived,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(dedupe_id(Some(""), b"{}"), derived);
    }

    #[test]
    fn only_a_plain_first_delivery_skips_the_dedupe_read() {
        use crate::stage::HeaderValue;
        let plain = Incoming {
            message_id: Some("m".into()),
            message_type: None,
            exchange: "p".into(),
            routing_key: "k".into(),
            headers: Default::default(),
            body: Bytes::new(),
            redelivered: false,
            attempt: 1,
        };
        assert!(first_delivery(&plain));
        let mut redelivered = plain.clone();
        redelivered.redelivered = true;
        let mut retried = plain.clone();
        retried.attempt = 2;
        let mut counted = plain.clone();
        counted
            .headers
            .insert("x-delivery-count".into(), HeaderValue::Int(1));
        let mut replayed = plain.clone();
        replayed.headers.insert(
            headers::REPLAYED_AT.into(),
            HeaderValue::Text("2026-12-06T00:00:00Z".into()),
        );
        for other in [redelivered, retried, counted, replayed] {
            assert!(!first_delivery(&other));
        }
    }
}
