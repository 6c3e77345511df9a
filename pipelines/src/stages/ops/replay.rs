//! `encaisse dlq replay` and `discard`: republish parked messages to the stage that failed, or
//! set them aside with a reason — each recorded in the store with who and when.
//!
//! A replay publishes the **stored bytes and properties** through the default exchange to the
//! stage's work queue (so only that stage sees it again), with publisher confirms and
//! `mandatory` (a missing queue is an error, not a silent drop), then marks the row replayed.
//! The republished headers differ from the parked ones in three ways only (besides the
//! broker's own `x-delivery-count`, which is never republished):
//! - `encaisse-attempt` is removed: the message gets a fresh series of attempts;
//! - the broker's `x-death` / `x-first-death-*` / `x-last-death-*` are removed: the store
//!   keeps that history, and a message carrying an `x-death` entry for its own work queue
//!   (a delivery-limit parking) would be seen as a dead-letter cycle and silently dropped by
//!   RabbitMQ 3.x the next time a delay tier returned it to that queue;
//! - `encaisse-replayed-at` and `encaisse-replayed-by` are set.
//!
//! Idempotent: only rows still `parked` are replayed, so replaying twice does nothing the
//! second time. If the process dies between the broker's confirm and the mark, the next
//! replay publishes the same message again: the stage's deduplication (same message id)
//! makes that harmless.

use std::sync::Arc;
use std::time::Duration;

use encaisse_ledger::{Ledger, LedgerError, OpsStore};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde::Serialize;
use tokio::sync::watch;

use super::store::{Marked, ParkedSummary, State};
use super::wire;
use crate::runtime::headers as h;
use crate::runtime::publisher::{PublisherCore, Wire};
use crate::runtime::{PublishError, RuntimeConfig};
use crate::stage::ErrorClass;

/// Why a replay or discard could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("broker unreachable: {0}")]
    BrokerUnreachable(String),
    #[error("{0}")]
    Invalid(String),
}

impl OpsError {
    /// Retry class: the ledger and the broker may come back (transient); a bad request does
    /// not (permanent).
    pub fn class(&self) -> ErrorClass {
        match self {
            OpsError::Ledger(e) if !e.is_transient() => ErrorClass::Permanent,
            OpsError::Ledger(_) | OpsError::BrokerUnreachable(_) => ErrorClass::Transient,
            OpsError::Invalid(_) => ErrorClass::Permanent,
        }
    }
}

/// What happened to one parked message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Published (confirmed) to `queue` and marked replayed.
    Replayed {
        id: i64,
        queue: String,
    },
    /// `--dry-run`: would be published to `queue`.
    WouldReplay {
        id: i64,
        queue: String,
    },
    /// Discarded with the reason.
    Discarded {
        id: i64,
    },
    /// Not parked any more (replayed or discarded before): nothing done.
    AlreadyResolved {
        id: i64,
        state: State,
        at: Option<String>,
        by: Option<String>,
    },
    NotFound {
        id: i64,
    },
    /// Could not be done (broker refused, queue missing, ledger failure).
    Failed {
        id: i64,
        error: String,
    },
}

impl Outcome {
    pub fn id(&self) -> i64 {
        match self {
            Outcome::Replayed { id, .. }
            | Outcome::WouldReplay { id, .. }
            | Outcome::Discarded { id }
            | Outcome::AlreadyResolved { id, .. }
            | Outcome::NotFound { id }
            | Outcome::Failed { id, .. } => *id,
        }
    }

    /// Whether the request for this id went wrong (unknown id, failure).
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::NotFound { .. } | Outcome::Failed { .. })
    }

    fn already(s: ParkedSummary) -> Outcome {
        Outcome::AlreadyResolved {
            id: s.id,
            state: s.state,
            at: s.resolved_at,
            by: s.resolved_by,
        }
    }

    fn from_marked(id: i64, marked: Marked, done: Outcome) -> Outcome {
        match marked {
            Marked::Done => done,
            Marked::NotFound => Outcome::NotFound { id },
            Marked::AlreadyResolved(s) => Outcome::already(*s),
        }
    }
}

/// Now in the ledger's time format.
pub use encaisse_ledger::clock::now as now_rfc3339;

/// The properties a replay publishes: the parked ones without the attempt counter and the
/// broker's dead-lettering history, marked with who replayed it and when.
pub fn replay_properties(parked: &BasicProperties, at: &str, by: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(original) = parked.headers() {
        for (key, value) in original.inner() {
            let k = key.as_str();
            let dropped = k == h::ATTEMPT
                || wire::DELIVERY_HEADERS.contains(&k)
                || k == "x-death"
                || k.starts_with("x-first-death-")
                || k.starts_with("x-last-death-");
            if !dropped {
                headers.insert(key.clone(), value.clone());
            }
        }
    }
    headers.insert(
        ShortString::from(h::REPLAYED_AT),
        AMQPValue::LongString(LongString::from(at)),
    );
    headers.insert(
        ShortString::from(h::REPLAYED_BY),
        AMQPValue::LongString(LongString::from(by)),
    );
    parked.clone().with_headers(headers)
}

/// The replays `ids` would make, without a broker (`--dry-run`).
pub async fn plan(ledger: &Ledger, ids: Vec<i64>) -> Result<Vec<Outcome>, OpsError> {
    Ok(ledger
        .inspect(move |tx| {
            ids.iter()
                .map(|&id| {
                    Ok(match tx.parked(id)? {
                        None => Outcome::NotFound { id },
                        Some(m) if m.summary.state != State::Parked => Outcome::already(m.summary),
                        Some(m) => Outcome::WouldReplay {
                            id,
                            queue: m.origin_queue,
                        },
                    })
                })
                .collect::<Result<Vec<_>, LedgerError>>()
        })
        .await?)
}

/// Discards `ids` with `reason` (mandatory, not blank), recording who and when.
pub async fn discard(
    ledger: &Ledger,
    ids: Vec<i64>,
    by: &str,
    reason: &str,
) -> Result<Vec<Outcome>, OpsError> {
    let reason = reason.trim().to_string();
    if reason.is_empty() {
        return Err(OpsError::Invalid(
            "a discard needs a reason (--reason TEXT): it is kept for audit".into(),
        ));
    }
    let (by, at) = (by.to_string(), now_rfc3339());
    Ok(ledger
        .transact(move |tx| {
            ids.iter()
                .map(|&id| {
                    let marked = tx.discard_parked(id, &at, &by, &reason)?;
                    Ok(Outcome::from_marked(id, marked, Outcome::Discarded { id }))
                })
                .collect::<Result<Vec<_>, LedgerError>>()
        })
        .await?)
}

/// A confirmed-publishing connection to the broker, for replays (works without the daemon).
pub struct Replayer {
    connection: Arc<Connection>,
    publisher: PublisherCore,
    // Kept so the publisher's connection slot stays open.
    _slot: watch::Sender<Option<Arc<Connection>>>,
}

impl Replayer {
    /// Connects with the daemon's broker settings (`[broker]`, `ENCAISSE_AMQP_URL`).
    pub async fn connect(config: &RuntimeConfig) -> Result<Replayer, OpsError> {
        let uri = crate::runtime::supervisor::broker_uri(config)
            .map_err(|e| OpsError::Invalid(e.to_string()))?;
        let timeout = Duration::from_millis(config.broker.connect_timeout_ms.saturating_add(1000));
        let properties =
            ConnectionProperties::default().with_connection_name("encaisse dlq replay".into());
        let connection =
            match tokio::time::timeout(timeout, Connection::connect_uri(uri, properties)).await {
                Ok(Ok(connection)) => Arc::new(connection),
                Ok(Err(e)) => return Err(OpsError::BrokerUnreachable(e.to_string())),
                Err(_) => {
                    return Err(OpsError::BrokerUnreachable(format!(
                        "no answer within {} ms",
                        timeout.as_millis()
                    )));
                }
            };
        let (slot, rx) = watch::channel(Some(connection.clone()));
        let publisher = PublisherCore::new(
            config.broker.prefix.clone(),
            Duration::from_millis(config.broker.publish_wait_ms),
            config.broker.confirm_window,
            rx,
        );
        Ok(Replayer {
            connection,
            publisher,
            _slot: slot,
        })
    }

    /// Replays `ids` in the given order; one outcome per id.
    pub async fn replay(&self, ledger: &Ledger, ids: &[i64], by: &str) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for &id in ids {
            let outcome = match self.replay_one(ledger, id, by).await {
                Ok(outcome) => outcome,
                Err(error) => Outcome::Failed { id, error },
            };
            match &outcome {
                Outcome::Replayed { queue, .. } => {
                    tracing::info!(id, queue = %queue, by, "Parked message replayed.")
                }
                Outcome::Failed { error, .. } => {
                    tracing::warn!(id, %error, "Parked message not replayed.")
                }
                _ => {}
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    async fn replay_one(&self, ledger: &Ledger, id: i64, by: &str) -> Result<Outcome, String> {
        let stored = ledger
            .inspect(move |tx| tx.parked(id))
            .await
            .map_err(|e| e.to_string())?;
        let message = match stored {
            None => return Ok(Outcome::NotFound { id }),
            Some(m) if m.summary.state != State::Parked => {
                return Ok(Outcome::already(m.summary));
            }
            Some(m) => m,
        };
        let parked = wire::decode_properties(&message.properties).map_err(|e| e.to_string())?;
        let at = now_rfc3339();
        let wire = Wire {
            exchange: String::new(),
            routing_key: message.origin_queue.clone(),
            message_id: message.summary.message_id.clone().unwrap_or_default(),
            properties: replay_properties(&parked, &at, by),
            body: message.body.into(),
        };
        self.publisher
            .publish_wire(std::slice::from_ref(&wire))
            .await
            .map_err(|e| match e {
                PublishError::Unroutable { .. } => format!(
                    "queue {} does not exist (has the daemon declared its topology with this prefix?)",
                    message.origin_queue
                ),
                other => other.to_string(),
            })?;
        let queue = message.origin_queue.clone();
        let detail = serde_json::json!({ "queue": queue, "exchange": "" }).to_string();
        let by = by.to_string();
        let marked = ledger
            .transact(move |tx| tx.mark_replayed(id, &at, &by, &detail))
            .await
            .map_err(|e| format!("published, but not marked replayed: {e}"))?;
        Ok(Outcome::from_marked(
            id,
            marked,
            Outcome::Replayed { id, queue },
        ))
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.publisher.close();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.connection.close(200, "encaisse dlq done".into()),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::FieldArray;

    #[test]
    fn a_replay_starts_the_attempts_afresh_and_says_who_replayed_it() {
        let mut headers = FieldTable::default();
        headers.insert(h::ATTEMPT.into(), AMQPValue::LongLongInt(8));
        headers.insert(
            h::ERROR_KIND.into(),
            AMQPValue::LongString(LongString::from("unknown_tenant")),
        );
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::default()),
        );
        headers.insert(
            "x-first-death-queue".into(),
            AMQPValue::LongString(LongString::from("p.s")),
        );
        let parked = BasicProperties::default()
            .with_message_id("m-1".into())
            .with_type("invoice.issued".into())
            .with_headers(headers);
        let replayed = replay_properties(&parked, "2026-05-04T10:00:00.000000Z", "alice");
        let t = replayed.headers().as_ref();
        assert_eq!(wire::header_integer(t, h::ATTEMPT), None);
        assert!(!t.unwrap().contains_key("x-death"));
        assert!(!t.unwrap().contains_key("x-first-death-queue"));
        assert_eq!(
            wire::header_text(t, h::REPLAYED_BY).as_deref(),
            Some("alice")
        );
        assert_eq!(
            wire::header_text(t, h::REPLAYED_AT).as_deref(),
            Some("2026-05-04T10:00:00.000000Z")
        );
        assert_eq!(
            wire::header_text(t, h::ERROR_KIND).as_deref(),
            Some("unknown_tenant"),
            "the failure history stays"
        );
        assert_eq!(replayed.message_id(), parked.message_id());
        assert_eq!(replayed.kind(), parked.kind());
    }
}
