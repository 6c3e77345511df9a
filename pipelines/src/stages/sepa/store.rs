//! The régie path's own tables besides the mandate history (`sepa_0001.sql`): planned
//! files, pending events, bank records already handled, the invoices kept for
//! re-presentation, and the journal facts. Every function takes the caller's transaction
//! ([`Tx`], SQLite or PostgreSQL). The events, kept invoices and bank records go through the
//! ledger's `SepaStore` and only encode or decode their bodies; the planned files are
//! portable statements here.

use chrono::NaiveDateTime;
use encaisse_ledger::sepa::{BankRecord, PendingEvent, Uses};
use encaisse_ledger::{CoreStore, InvoiceFact, LedgerError, SepaStore, Tx};
use encaisse_schemas::{InvoiceIssued, PaymentRejected};

use super::clock::ledger_now;
use crate::mandates::{self, MandateUse};

/// What a planned file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Pain008,
    RefusedReport,
    UnmatchedReport,
}

impl FileKind {
    /// `sepa_file.kind` and `emitted_file.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Pain008 => "pain008",
            FileKind::RefusedReport => "sepa_refused_report",
            FileKind::UnmatchedReport => "sepa_unmatched_report",
        }
    }

    fn parse(text: &str) -> Result<Self, LedgerError> {
        Ok(match text {
            "pain008" => FileKind::Pain008,
            "sepa_refused_report" => FileKind::RefusedReport,
            "sepa_unmatched_report" => FileKind::UnmatchedReport,
            other => {
                return Err(LedgerError::Corrupt(format!(
                    "sepa_file.kind: unexpected value {other:?}"
                )));
            }
        })
    }
}

/// The pain.008 part of a planned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PainMeta {
    pub regie: String,
    pub message_id: String,
    pub created_at: NaiveDateTime,
    pub day_seq: u32,
    pub collections: u64,
    pub amount_cents: u64,
}

/// A file to plan.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub tenant: &'a str,
    pub origin: &'a str,
    pub kind: FileKind,
    /// Relative to the data directory (`ivry/bank/outbox/X.xml`).
    pub path: String,
    pub bytes: Vec<u8>,
    /// Billing run id, or the bank file that caused it.
    pub cause: &'a str,
    pub pain: Option<PainMeta>,
}

/// Records a planned file; returns its id.
pub fn insert_file(tx: &mut Tx<'_>, file: &NewFile<'_>) -> Result<i64, LedgerError> {
    let pain = file.pain.as_ref();
    let count = |n: u64| {
        i64::try_from(n).map_err(|_| LedgerError::Corrupt(format!("sepa_file: {n} too large")))
    };
    let collections = pain.map(|p| count(p.collections)).transpose()?;
    let amount_cents = pain.map(|p| count(p.amount_cents)).transpose()?;
    tx.query_one(
        "INSERT INTO sepa_file (tenant, origin, kind, path, bytes, cause, planned_at, regie,
             message_id, created_at, created_on, day_seq, collections, amount_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         RETURNING id",
        &[
            &file.tenant,
            &file.origin,
            &file.kind.as_str(),
            &file.path,
            &file.bytes,
            &file.cause,
            &ledger_now(),
            &pain.map(|p| p.regie.as_str()),
            &pain.map(|p| p.message_id.as_str()),
            &pain.map(|p| p.created_at.format("%Y-%m-%dT%H:%M:%S").to_string()),
            &pain.map(|p| p.created_at.date().to_string()),
            &pain.map(|p| p.day_seq),
            &collections,
            &amount_cents,
        ],
        |r| r.get(0),
    )
}

/// Whether a path (relative to the data directory) or a `MsgId` is already planned.
pub fn name_taken(
    tx: &mut Tx<'_>,
    tenant: &str,
    path: &str,
    message_id: Option<&str>,
) -> Result<bool, LedgerError> {
    tx.query_one(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM sepa_file WHERE path = ?1)
                  OR EXISTS (SELECT 1 FROM sepa_file WHERE tenant = ?2 AND message_id = ?3)
             THEN 1 ELSE 0 END",
        &[&path, &tenant, &message_id],
        |r| r.get(0),
    )
}

/// The next `{seq}` of the tenant's files created on `day` (1 for the first).
///
/// The number is the largest of that day plus one, so it is unique and gapless only if no
/// other transaction numbers a file of the same tenant and day between this read and the
/// caller's commit. SQLite's single writer gives that; on PostgreSQL the transaction takes
/// an advisory lock on (tenant, day) first, held until it ends: a concurrent planner waits,
/// then (`READ COMMITTED`, a fresh snapshot per statement) reads the committed file and
/// takes the next number. The caller must insert the file in the same transaction.
pub fn next_day_seq(
    tx: &mut Tx<'_>,
    tenant: &str,
    day: chrono::NaiveDate,
) -> Result<u32, LedgerError> {
    let day = day.to_string();
    lock(tx, &format!("sepa_file.day_seq:{tenant}:{day}"))?;
    let max: Option<u32> = tx.query_one(
        "SELECT max(day_seq) FROM sepa_file WHERE tenant = ?1 AND created_on = ?2",
        &[&tenant, &day],
        |r| r.get(0),
    )?;
    Ok(max.unwrap_or(0) + 1)
}

/// Takes a lock named `name` until the transaction ends, on PostgreSQL (a transaction-scoped
/// advisory lock on the name's hash: an unrelated name sharing the hash only waits a little);
/// nothing on SQLite, whose single writer already runs one transaction at a time.
pub fn lock(tx: &mut Tx<'_>, name: &str) -> Result<(), LedgerError> {
    if tx.is_postgres() {
        tx.query_one(
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))) AS held",
            &[&name],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// A planned file not written yet.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub id: i64,
    pub kind: FileKind,
    pub path: String,
    pub bytes: Vec<u8>,
    pub cause: String,
    pub regie: Option<String>,
    pub message_id: Option<String>,
    pub collections: Option<i64>,
    pub amount_cents: Option<i64>,
}

/// Files `origin` planned for `tenant` and did not write yet, oldest first.
pub fn unwritten_files(
    tx: &mut Tx<'_>,
    tenant: &str,
    origin: &str,
) -> Result<Vec<PlannedFile>, LedgerError> {
    tx.query_all(
        "SELECT id, kind, path, bytes, cause, regie, message_id, collections, amount_cents
         FROM sepa_file WHERE tenant = ?1 AND origin = ?2 AND written_at IS NULL ORDER BY id",
        &[&tenant, &origin],
        |r| {
            Ok(PlannedFile {
                id: r.get(0)?,
                kind: FileKind::parse(&r.get::<String>(1)?)?,
                path: r.get(2)?,
                bytes: r.get(3)?,
                cause: r.get(4)?,
                regie: r.get(5)?,
                message_id: r.get(6)?,
                collections: r.get(7)?,
                amount_cents: r.get(8)?,
            })
        },
    )
}

/// Marks a planned file written and, for a pain.008, its collections presented, with a
/// `pain008_emitted` fact per invoice. Returns the invoice keys and end-to-end ids.
pub fn mark_written(
    tx: &mut Tx<'_>,
    tenant: &str,
    file: &PlannedFile,
) -> Result<Vec<(String, String)>, LedgerError> {
    tx.execute(
        "UPDATE sepa_file SET written_at = ?2 WHERE id = ?1 AND written_at IS NULL",
        &[&file.id, &ledger_now()],
    )?;
    if file.kind != FileKind::Pain008 {
        return Ok(Vec::new());
    }
    tx.execute(
        "UPDATE sepa_collection SET status = 'presented' WHERE file_id = ?1 AND status = 'planned'",
        &[&file.id],
    )?;
    let collections = tx.query_all(
        "SELECT invoice_key, end_to_end_id FROM sepa_collection
         WHERE file_id = ?1 AND end_to_end_id IS NOT NULL ORDER BY end_to_end_id",
        &[&file.id],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let name = file.path.rsplit('/').next().unwrap_or(&file.path);
    for (invoice_key, e2e) in &collections {
        fact(
            tx,
            invoice_key,
            tenant,
            "pain008_emitted",
            serde_json::json!({
                "file": name,
                "message_id": file.message_id,
                "end_to_end_id": e2e,
                "regie": file.regie,
            }),
            &format!("sepa:emitted:{tenant}:{e2e}"),
        )?;
    }
    Ok(collections)
}

/// Records a journal fact (`encaisse trace`), once per `dedupe_key`. No personal data in
/// `detail`.
pub fn fact(
    tx: &mut Tx<'_>,
    invoice_key: &str,
    tenant: &str,
    kind: &str,
    detail: serde_json::Value,
    dedupe_key: &str,
) -> Result<(), LedgerError> {
    tx.record_fact(&InvoiceFact {
        invoice_key: invoice_key.to_string(),
        tenant: tenant.to_string(),
        at: ledger_now(),
        kind: kind.to_string(),
        detail: detail.to_string(),
        dedupe_key: Some(dedupe_key.to_string()),
    })
}

/// Queues a `payment.rejected` for publication (once per message id).
pub fn insert_event(
    tx: &mut Tx<'_>,
    tenant: &str,
    origin: &str,
    event: &PaymentRejected,
) -> Result<(), LedgerError> {
    use encaisse_schemas::Event;
    tx.queue_sepa_event(&PendingEvent {
        message_id: event.message_id(),
        tenant: tenant.to_string(),
        origin: origin.to_string(),
        body: encaisse_schemas::encode(event),
        created_at: ledger_now(),
    })?;
    Ok(())
}

/// Events `origin` queued for `tenant` and did not hand over yet, oldest first.
pub fn pending_events(
    tx: &mut Tx<'_>,
    tenant: &str,
    origin: &str,
) -> Result<Vec<PaymentRejected>, LedgerError> {
    let bodies = tx.pending_sepa_events(tenant, origin)?;
    bodies
        .iter()
        .map(|b| {
            encaisse_schemas::decode::<PaymentRejected>(b)
                .map_err(|e| LedgerError::Corrupt(format!("sepa_event.body: {e}")))
        })
        .collect()
}

/// Marks events published (or handed to the runtime's outbox).
pub fn mark_handed(tx: &mut Tx<'_>, message_ids: &[String]) -> Result<(), LedgerError> {
    tx.mark_sepa_events_handed(message_ids, &ledger_now())
}

/// Keeps the `invoice.issued` of an invoice planned for direct debit (first one wins).
pub fn keep_invoice(tx: &mut Tx<'_>, invoice: &InvoiceIssued) -> Result<(), LedgerError> {
    tx.keep_sepa_invoice(
        invoice.invoice.tenant.as_str(),
        &invoice.invoice.key(),
        &encaisse_schemas::encode(invoice),
    )?;
    Ok(())
}

/// The kept `invoice.issued` of an invoice.
pub fn kept_invoice(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<InvoiceIssued>, LedgerError> {
    tx.kept_sepa_invoice(tenant, invoice_key)?
        .map(|p| {
            serde_json::from_slice(&p)
                .map_err(|e| LedgerError::Corrupt(format!("sepa_invoice.payload: {e}")))
        })
        .transpose()
}

/// Whether a bank record (by its idempotency key) was handled already.
pub fn record_seen(tx: &mut Tx<'_>, tenant: &str, key: &str) -> Result<bool, LedgerError> {
    tx.bank_record_seen(tenant, key)
}

/// Records that a bank record was handled, and how.
pub fn record_handled(
    tx: &mut Tx<'_>,
    tenant: &str,
    key: &str,
    file: &str,
    outcome: &str,
    detail: serde_json::Value,
) -> Result<(), LedgerError> {
    tx.record_bank_record(&BankRecord {
        tenant: tenant.to_string(),
        idempotency_key: key.to_string(),
        file: file.to_string(),
        outcome: outcome.to_string(),
        detail: detail.to_string(),
        recorded_at: ledger_now(),
    })?;
    Ok(())
}

/// The id of the tenant's pain.008 whose `MsgId` is `message_id`.
pub fn file_by_message_id(
    tx: &mut Tx<'_>,
    tenant: &str,
    message_id: &str,
) -> Result<Option<i64>, LedgerError> {
    tx.query_opt(
        "SELECT id FROM sepa_file WHERE tenant = ?1 AND message_id = ?2",
        &[&tenant, &message_id],
        |r| r.get(0),
    )
}

/// Uses read through the ledger's `SepaStore`.
fn uses_where(
    tx: &mut Tx<'_>,
    tenant: &str,
    which: &Uses<'_>,
) -> Result<Vec<MandateUse>, LedgerError> {
    tx.sepa_uses(tenant, which)?
        .into_iter()
        .map(mandates::typed)
        .collect()
}

/// The collections of a written pain.008, or of one of its blocks.
pub fn uses_of_file(
    tx: &mut Tx<'_>,
    tenant: &str,
    file_id: i64,
    payment_info_id: Option<&str>,
) -> Result<Vec<MandateUse>, LedgerError> {
    uses_where(tx, tenant, &Uses::OfFile(file_id, payment_info_id))
}

/// The presented collections under a mandate for an amount (the fallback key of spec §6.3).
pub fn uses_by_mandate_and_amount(
    tx: &mut Tx<'_>,
    tenant: &str,
    rum_key: &str,
    amount_cents: i64,
) -> Result<Vec<MandateUse>, LedgerError> {
    uses_where(tx, tenant, &Uses::ByMandateAndAmount(rum_key, amount_cents))
}
