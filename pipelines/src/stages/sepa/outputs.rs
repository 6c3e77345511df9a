//! Completing what was planned: write every planned-but-unwritten file of a tenant
//! (`Ledger::emit_file`: atomic, recorded, idempotent on the same bytes), mark it written,
//! and take the events waiting to be published. Each component calls this at the start and
//! at the end of its work, so a crash between planning and writing (or publishing) is
//! completed by the next call — with the stored bytes, never a second file.

use std::path::Path;

use encaisse_ledger::{Ledger, LedgerError};
use encaisse_schemas::PaymentRejected;

use super::metrics;
use super::store::{self, FileKind};
use crate::stage::StageError;

/// A file just written.
#[derive(Debug, Clone)]
pub struct Written {
    pub kind: FileKind,
    /// Relative to the data directory.
    pub path: String,
    pub regie: Option<String>,
    pub collections: u64,
}

fn emit_error(e: LedgerError) -> StageError {
    match e {
        LedgerError::Conflict(message) => StageError::permanent("file_conflict", message),
        other => StageError::from(other),
    }
}

/// Writes the files `origin` planned for `tenant` and has not written yet.
pub async fn write_planned(
    ledger: &Ledger,
    data_dir: &Path,
    tenant: &str,
    origin: &str,
) -> Result<Vec<Written>, StageError> {
    let (t, o) = (tenant.to_string(), origin.to_string());
    let planned = ledger
        .inspect(move |tx| store::unwritten_files(tx, &t, &o))
        .await?;
    let mut written = Vec::new();
    for file in planned {
        let target = data_dir.join(&file.path);
        ledger
            .emit_file(
                tenant,
                file.kind.as_str(),
                &target,
                file.bytes.clone(),
                &format!("{origin}:{}", file.cause),
            )
            .await
            .map_err(emit_error)?;
        let (t, f) = (tenant.to_string(), file.clone());
        ledger
            .transact(move |tx| store::mark_written(tx, &t, &f))
            .await?;
        let collections = file.collections.unwrap_or(0).max(0) as u64;
        match file.kind {
            FileKind::Pain008 => {
                let regie = file.regie.as_deref().unwrap_or("");
                metrics::pain008_written(
                    tenant,
                    regie,
                    origin,
                    collections,
                    file.amount_cents.unwrap_or(0).max(0) as u64,
                );
                tracing::info!(
                    tenant,
                    regie,
                    file = %file.path,
                    message_id = file.message_id.as_deref().unwrap_or(""),
                    collections,
                    amount_cents = file.amount_cents.unwrap_or(0),
                    "Pain.008 written to the bank outbox."
                );
            }
            kind => {
                metrics::report_written(tenant, kind.as_str());
                tracing::warn!(tenant, file = %file.path, kind = kind.as_str(), "Report written for ops.");
            }
        }
        written.push(Written {
            kind: file.kind,
            path: file.path,
            regie: file.regie,
            collections,
        });
    }
    Ok(written)
}

/// The events `origin` queued for `tenant` and has not handed over yet.
pub async fn pending_events(
    ledger: &Ledger,
    tenant: &str,
    origin: &str,
) -> Result<Vec<PaymentRejected>, StageError> {
    let (t, o) = (tenant.to_string(), origin.to_string());
    Ok(ledger
        .inspect(move |tx| store::pending_events(tx, &t, &o))
        .await?)
}
