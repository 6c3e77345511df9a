//! `ops.parking`: drains every stage's parking lot into the ledger, so that ops inspect parked
//! messages there (`encaisse dlq`) and never by consuming or reordering the broker's queues.
//! A message is acked only once its row is durable; a redelivery to the drain (lost ack) is
//! recognised by its fingerprint and stored once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use encaisse_ledger::{Ledger, OpsStore};
use futures::future::BoxFuture;

use super::gauges::ParkedGauges;
use super::parked;
use super::replay::now_rfc3339;
use crate::runtime::{Drain, DrainError, Drained, StageQueues};

/// The drain's name (logs, metrics, wiring).
pub const NAME: &str = "ops.parking";

/// At most one gauge refresh per this many milliseconds from the drain: a burst of parked
/// messages (a whole run refused) must not run one grouping query per message. A message
/// stored inside the window gets one trailing refresh at its end, so the gauges show the
/// last of a burst within a second (not at the `ops.metrics` source's next 15 s tick).
const REFRESH_EVERY_MS: i64 = 1_000;

/// Copies parked messages into `parked_message`.
pub struct ParkingDrain {
    prefix: String,
    ledger: Ledger,
    gauges: Arc<ParkedGauges>,
    /// Unix milliseconds of the drain's last gauge refresh.
    refreshed_at_ms: AtomicI64,
    /// A trailing refresh is scheduled (shared with its task).
    trailing: Arc<AtomicBool>,
}

impl ParkingDrain {
    /// `prefix`: the broker prefix (`[broker] prefix`), to tell the stage from a parking
    /// lot's name. `gauges` are refreshed after each new message.
    pub fn new(prefix: impl Into<String>, ledger: Ledger, gauges: Arc<ParkedGauges>) -> Self {
        ParkingDrain {
            prefix: prefix.into(),
            ledger,
            gauges,
            refreshed_at_ms: AtomicI64::new(0),
            trailing: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn store(&self, message: &Drained) -> Result<(), DrainError> {
        let record = parked::classify(&self.prefix, message, &now_rfc3339())
            .map_err(|e| DrainError::new(e.to_string()))?;
        let (stage, kind, class) = (
            record.stage.clone(),
            record.error_kind.clone(),
            record.error_class.clone(),
        );
        let (tenant, invoice) = (record.tenant.clone(), record.invoice_key.clone());
        let parked_by = record.parked_by.as_str();
        let stored = self
            .ledger
            .transact(move |tx| tx.record_parked(&record))
            .await?;
        match stored {
            Some(id) => {
                metrics::counter!(
                    "encaisse_parked_stored_total",
                    "stage" => stage.clone(),
                    "kind" => kind.clone(),
                    "class" => class.clone()
                )
                .increment(1);
                tracing::warn!(
                    id,
                    %stage,
                    %kind,
                    %class,
                    parked_by,
                    tenant = tenant.as_deref().unwrap_or("-"),
                    invoice = invoice.as_deref().unwrap_or("-"),
                    "Parked message stored; see `encaisse dlq show {id}`."
                );
                self.refresh_gauges().await;
            }
            None => tracing::debug!(%stage, "Parked message already stored (redelivery)."),
        }
        Ok(())
    }
}

impl ParkingDrain {
    /// Refreshes the gauges now, or once at the end of the window when the drain did so less
    /// than [`REFRESH_EVERY_MS`] ago.
    async fn refresh_gauges(&self) {
        let now = chrono::Utc::now().timestamp_millis();
        let last = self.refreshed_at_ms.load(Ordering::Relaxed);
        let elapsed = now - last;
        if elapsed >= REFRESH_EVERY_MS
            && self
                .refreshed_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            refresh(&self.gauges).await;
            return;
        }
        if self.trailing.swap(true, Ordering::AcqRel) {
            return; // one trailing refresh already covers this message
        }
        let wait =
            u64::try_from(REFRESH_EVERY_MS - elapsed.clamp(0, REFRESH_EVERY_MS)).unwrap_or(0);
        let (gauges, trailing) = (self.gauges.clone(), self.trailing.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            trailing.store(false, Ordering::Release);
            refresh(&gauges).await;
        });
    }
}

async fn refresh(gauges: &ParkedGauges) {
    if let Err(error) = gauges.refresh().await {
        tracing::debug!(%error, "Parked-message gauges not refreshed.");
    }
}

impl Drain for ParkingDrain {
    fn name(&self) -> &str {
        NAME
    }

    /// Every stage's parking lot.
    fn queues(&self, stages: &[StageQueues]) -> Vec<String> {
        stages.iter().map(|s| s.parked.clone()).collect()
    }

    fn handle<'a>(&'a self, message: &'a Drained) -> BoxFuture<'a, Result<(), DrainError>> {
        Box::pin(self.store(message))
    }
}
