//! Writing REGLEMENTS files: the lines `polyfac.export` recorded go to
//! `<tenant>/polyfac/outbox/REGLEMENTS_<tenant>_<AAAAMMJJ>_<seq>.csv` (the default source),
//! or to `<tenant>/sources/<name>/outbox/…` (a further source: the lines of the invoices it
//! issued, in its dialect), so that a source never reads half a file, the same event twice,
//! nor another source's invoices. Each outbox has its own sequence.
//!
//! The phase-2 pattern: in one ledger transaction, **plan** the file (the day's next `seq`,
//! its name, the unassigned lines of that day assigned to it); commit; **render** it from the
//! ledger (header + the lines' stored bytes, in recording order) and write it with
//! `emit_file` (temporary file, fsync, rename: atomic); **mark** it written. A planned file
//! not written yet (crash) is completed first, with the same bytes. A written file is never
//! changed: later lines go to the next `seq`.
//!
//! [`ReglementsFlusher`] is a [`Source`] that flushes every tenant at start-up, every
//! `flush_interval_secs`, and right after midnight (Europe/Paris), when the day rolls.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use encaisse_ledger::{CoreStore, InvoiceFact, Ledger, LedgerError};
use encaisse_polyfac::reglements::{ReglementsFormat, file_name};
use encaisse_schemas::TenantId;
use futures::future::BoxFuture;

use super::export_store::{self, PlannedFile};
use super::ledger_now;
use super::tenants::PolyfacTenants;
use crate::runtime::{Source, SourceContext};

/// Source name.
pub const NAME: &str = "polyfac.export.flush";

/// Writes pending REGLEMENTS lines to files, per tenant.
pub struct ReglementsFlusher {
    tenants: PolyfacTenants,
    data_dir: PathBuf,
    interval: Duration,
}

impl ReglementsFlusher {
    pub fn new(tenants: PolyfacTenants, data_dir: PathBuf, interval: Duration) -> Self {
        ReglementsFlusher {
            tenants,
            data_dir,
            interval,
        }
    }

    /// `<data_dir>/<tenant>/polyfac/outbox`: the default source's outbox.
    pub fn outbox(&self, tenant: &TenantId) -> PathBuf {
        self.data_dir
            .join(tenant.as_str())
            .join("polyfac")
            .join("outbox")
    }

    /// Flushes every outbox of every tenant once; returns the files written (or completed).
    pub async fn flush_all(&self, ledger: &Ledger) -> Vec<PathBuf> {
        let mut written = Vec::new();
        for tenant in self.tenants.ids() {
            for outbox in self.tenants.outboxes(tenant.as_str()) {
                let format = outbox.setup.reglements_format();
                let dir = outbox.dir(&self.data_dir);
                match flush_tenant(ledger, &tenant, &outbox.source, &dir, &format).await {
                    Ok(files) => written.extend(files),
                    Err(error) => {
                        tracing::warn!(source = NAME, tenant = %tenant, outbox = %dir.display(), %error, "REGLEMENTS flush failed; will try again.");
                    }
                }
            }
        }
        written
    }
}

/// Writes every pending file of the outbox `source` of `tenant` (`""`: the default
/// source's) to `outbox`, completing a planned one first. Returns the paths written.
pub async fn flush_tenant(
    ledger: &Ledger,
    tenant: &TenantId,
    source: &str,
    outbox: &Path,
    format: &ReglementsFormat,
) -> Result<Vec<PathBuf>, LedgerError> {
    let mut written = Vec::new();
    loop {
        let planned = plan_next(ledger, tenant, source).await?;
        let Some(file) = planned else {
            return Ok(written);
        };
        let path = outbox.join(&file.name);
        // A further source's outbox is made on its first file (the daemon's layout only
        // knows the default areas).
        encaisse_ledger::access::create_dir_all(outbox).map_err(|source| LedgerError::Io {
            path: outbox.display().to_string(),
            source,
        })?;
        let rows = {
            let id = file.id;
            ledger
                .inspect(move |tx| export_store::file_rows(tx, id))
                .await?
        };
        let mut bytes = format.header();
        for (_, row) in &rows {
            bytes.extend_from_slice(row);
        }
        ledger
            .emit_file(
                tenant.as_str(),
                "reglements",
                &path,
                bytes,
                &format!("{NAME}:{}", file.name),
            )
            .await?;
        mark_written(ledger, &file, rows.into_iter().map(|(key, _)| key)).await?;
        metrics::counter!("encaisse_polyfac_reglements_files_total", "tenant" => tenant.to_string())
            .increment(1);
        tracing::info!(source = NAME, tenant = %tenant, file = %file.name, lines = file.lines, "REGLEMENTS file written.");
        written.push(path);
    }
}

/// Plans the next file of the outbox `source` of the tenant (step 1), or returns the planned
/// file not written yet. `None`: nothing to write.
pub async fn plan_next(
    ledger: &Ledger,
    tenant: &TenantId,
    source: &str,
) -> Result<Option<PlannedFile>, LedgerError> {
    let (tenant, source) = (tenant.clone(), source.to_string());
    ledger
        .transact(move |tx| {
            let name_of = |day: &str, seq: u32| {
                let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| {
                    LedgerError::Corrupt(format!(
                        "polyfac_reglement_line.day: unexpected value {day:?} in the ledger"
                    ))
                })?;
                Ok(file_name(&tenant, date, seq))
            };
            export_store::plan_next_file(tx, tenant.as_str(), &source, name_of, &ledger_now())
        })
        .await
}

/// Marks the file written and journals it for each invoice it tells Polyfac about.
async fn mark_written(
    ledger: &Ledger,
    file: &PlannedFile,
    invoices: impl Iterator<Item = String>,
) -> Result<(), LedgerError> {
    let (id, name, tenant) = (file.id, file.name.clone(), file.tenant.clone());
    // Named with its outbox: the same name exists in each (`trace` finds files by the end of
    // their path). The default outbox's facts keep their earlier dedupe keys.
    let (shown, dedupe) = match file.source.as_str() {
        "" => (format!("polyfac/outbox/{name}"), name.clone()),
        source => {
            let shown = format!("{}/outbox/{name}", super::source_area(source));
            (shown.clone(), shown)
        }
    };
    let mut invoices: Vec<String> = invoices.collect();
    invoices.dedup();
    ledger
        .transact(move |tx| {
            let at = ledger_now();
            for invoice_key in &invoices {
                tx.record_fact(&InvoiceFact {
                    invoice_key: invoice_key.clone(),
                    tenant: tenant.clone(),
                    at: at.clone(),
                    kind: "reglements_written".into(),
                    detail: serde_json::json!({"stage": NAME, "file": shown}).to_string(),
                    dedupe_key: Some(format!("{NAME}/{dedupe}/{invoice_key}")),
                })?;
            }
            export_store::mark_written(tx, id, &at)
        })
        .await
}

/// Time until the next flush: the interval, or the next Paris midnight (plus a second) when
/// that comes first.
fn next_wait(interval: Duration, now: chrono::DateTime<Utc>) -> Duration {
    let local = now.with_timezone(&Paris);
    let tomorrow = local.date_naive().succ_opt();
    let midnight = tomorrow
        .and_then(|d| {
            Paris
                .from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
                .earliest()
        })
        .map(|m| m.with_timezone(&Utc));
    match midnight {
        Some(m) => {
            let until = (m - now).to_std().unwrap_or_default() + Duration::from_secs(1);
            interval.min(until)
        }
        None => interval,
    }
}

impl Source for ReglementsFlusher {
    fn name(&self) -> &str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            loop {
                self.flush_all(&ctx.ledger).await;
                let wait = next_wait(self.interval, Utc::now());
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_day_roll_cuts_the_wait_short() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&Utc)
        };
        let minute = Duration::from_secs(60);
        // 23:59:30 in Paris (winter, UTC+1): midnight is 30 s away.
        assert_eq!(
            next_wait(minute, at("2026-01-15T22:59:30Z")),
            Duration::from_secs(31)
        );
        assert_eq!(next_wait(minute, at("2026-01-15T10:00:00Z")), minute);
    }
}
