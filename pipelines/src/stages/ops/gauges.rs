//! Gauges read from the ledger, refreshed periodically by the `ops.metrics` source (and by
//! the drain after each new parked message): they survive restarts and follow what the CLI
//! does in another process (a replay or a discard lowers them within one refresh).
//!
//! - `encaisse_parked_messages{stage,kind,class}`: messages waiting in the store;
//! - `encaisse_parked_oldest_age_seconds{stage,kind,class}`: how long the oldest has waited;
//! - `encaisse_file_last_emitted_timestamp_seconds{tenant,kind}`: Unix time of the last file
//!   of each kind written for a tenant (`pes_aller`, `pain008`, `reglements`…), from
//!   `emitted_file`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use encaisse_ledger::{CoreStore, Ledger, LedgerError, OpsStore};
use futures::future::BoxFuture;

use crate::runtime::{Source, SourceContext};

/// The source's name (logs, wiring).
pub const NAME: &str = "ops.metrics";

/// How often the gauges are read from the ledger.
pub const REFRESH: Duration = Duration::from_secs(15);

type Labels = (String, String, String);

/// The parked-group label sets published so far in this process (a group that empties is set
/// to 0 rather than left at its last value). Process-wide, as the metrics recorder is: every
/// refresher, whoever built it, sees the same set.
static PUBLISHED: Mutex<BTreeSet<Labels>> = Mutex::new(BTreeSet::new());

/// The parked-message and file gauges, read from the ledger.
pub struct ParkedGauges {
    ledger: Ledger,
}

fn parse_secs(rfc3339: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|at| at.timestamp_micros() as f64 / 1e6)
}

impl ParkedGauges {
    pub fn new(ledger: Ledger) -> Arc<Self> {
        Arc::new(ParkedGauges { ledger })
    }

    /// Reads the ledger and sets every gauge.
    pub async fn refresh(&self) -> Result<(), LedgerError> {
        let (waiting, files) = self
            .ledger
            .inspect(|tx| Ok::<_, LedgerError>((tx.waiting_by_group()?, tx.last_written()?)))
            .await?;
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        let mut seen = BTreeSet::new();
        for w in waiting {
            let labels = (w.stage, w.kind, w.class);
            let age = parse_secs(&w.oldest_parked_at).map_or(0.0, |at| (now - at).max(0.0));
            set(&labels, w.count as f64, age);
            seen.insert(labels);
        }
        if let Ok(mut published) = PUBLISHED.lock() {
            for gone in published.difference(&seen) {
                set(gone, 0.0, 0.0);
            }
            published.extend(seen);
        }
        for (tenant, kind, at) in files {
            if let Some(secs) = parse_secs(&at) {
                metrics::gauge!(
                    "encaisse_file_last_emitted_timestamp_seconds",
                    "tenant" => tenant,
                    "kind" => kind
                )
                .set(secs);
            }
        }
        Ok(())
    }
}

/// Describes the ops metrics to the recorder (called once the daemon's recorder is
/// installed: when the `ops.metrics` source starts).
pub fn describe() {
    metrics::describe_gauge!(
        "encaisse_parked_messages",
        "Parked messages waiting in the store (encaisse dlq list), by stage, error kind and class."
    );
    metrics::describe_gauge!(
        "encaisse_parked_oldest_age_seconds",
        metrics::Unit::Seconds,
        "Age of the oldest parked message still waiting, by stage, error kind and class."
    );
    metrics::describe_gauge!(
        "encaisse_file_last_emitted_timestamp_seconds",
        metrics::Unit::Seconds,
        "Unix time of the last file of each kind written for a tenant (pes_aller, pain008, reglements...)."
    );
    metrics::describe_counter!(
        "encaisse_parked_stored_total",
        "Parked messages copied from the parking lots into the store, by stage, error kind and class."
    );
}

fn set((stage, kind, class): &Labels, count: f64, age: f64) {
    let labels = [
        ("stage", stage.clone()),
        ("kind", kind.clone()),
        ("class", class.clone()),
    ];
    metrics::gauge!("encaisse_parked_messages", &labels).set(count);
    metrics::gauge!("encaisse_parked_oldest_age_seconds", &labels).set(age);
}

/// Refreshes the gauges every [`REFRESH`] until shutdown.
pub struct GaugeSource {
    gauges: Arc<ParkedGauges>,
}

impl GaugeSource {
    pub fn new(gauges: Arc<ParkedGauges>) -> Arc<Self> {
        Arc::new(GaugeSource { gauges })
    }
}

impl Source for GaugeSource {
    fn name(&self) -> &str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            describe();
            loop {
                if let Err(error) = self.gauges.refresh().await {
                    tracing::warn!(%error, "Ops gauges not refreshed; will try again.");
                }
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH) => {}
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                }
            }
        })
    }
}
