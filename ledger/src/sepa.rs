//! The sepa area's operations ported to both backends (`migrations/sepa_0001.sql`,
//! `sepa_0002.sql`): the `payment.rejected` events waiting to be published, the
//! `invoice.issued` bodies kept for re-presentation, and the bank records already handled.
//! The statements and the SQLite implementation of [`crate::stores::SepaStore`] (the
//! PostgreSQL one is `crate::pg::sepa`, with the same statements). Bodies are stored as the
//! stage encoded them: the ledger does not know the event schemas.
//!
//! The mandate history (`sepa_mandate`, `sepa_collection`), the planned files (`sepa_file`)
//! and the credit notes still run as SQLite SQL in the pipelines (docs/scaling.md).

use rusqlite::{Connection, OptionalExtension};

use crate::error::LedgerError;
use crate::ops::all;

/// A `payment.rejected` decided and waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// The event's message id (deterministic: a decision taken twice queues it once).
    pub message_id: String,
    pub tenant: String,
    /// The component that decided it (`sepa.returns`, `sepa.batch`).
    pub origin: String,
    /// The encoded event.
    pub body: Vec<u8>,
    pub created_at: String,
}

/// A bank record (pain.002 or camt.054 entry) handled, by its reader's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankRecord {
    pub tenant: String,
    pub idempotency_key: String,
    /// The bank file it came from.
    pub file: String,
    /// `matched`, `duplicate`, `unmatched`.
    pub outcome: String,
    /// JSON, no personal data.
    pub detail: String,
    pub recorded_at: String,
}

pub(crate) const INSERT_EVENT: &str = "INSERT INTO sepa_event \
     (message_id, tenant, origin, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (message_id) DO NOTHING";
pub(crate) const PENDING_EVENTS: &str = "SELECT body FROM sepa_event \
     WHERE tenant = ?1 AND origin = ?2 AND handed_at IS NULL ORDER BY created_at, message_id";
pub(crate) const MARK_HANDED: &str =
    "UPDATE sepa_event SET handed_at = ?2 WHERE message_id = ?1 AND handed_at IS NULL";
pub(crate) const KEEP_INVOICE: &str = "INSERT INTO sepa_invoice (tenant, invoice_key, payload) \
     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
pub(crate) const KEPT_INVOICE: &str =
    "SELECT payload FROM sepa_invoice WHERE tenant = ?1 AND invoice_key = ?2";
pub(crate) const RECORD_SEEN: &str = "SELECT EXISTS (SELECT 1 FROM sepa_return_record \
     WHERE tenant = ?1 AND idempotency_key = ?2)";
pub(crate) const RECORD_HANDLED: &str = "INSERT INTO sepa_return_record \
     (tenant, idempotency_key, file, outcome, detail, recorded_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";

pub(crate) fn insert_event(c: &Connection, e: &PendingEvent) -> Result<bool, LedgerError> {
    let changed = c.execute(
        INSERT_EVENT,
        (&e.message_id, &e.tenant, &e.origin, &e.body, &e.created_at),
    )?;
    Ok(changed > 0)
}

pub(crate) fn pending_events(
    c: &Connection,
    tenant: &str,
    origin: &str,
) -> Result<Vec<Vec<u8>>, LedgerError> {
    all(c, PENDING_EVENTS, (tenant, origin), |r| Ok(r.get(0)?))
}

pub(crate) fn mark_handed(
    c: &Connection,
    message_ids: &[String],
    at: &str,
) -> Result<(), LedgerError> {
    for id in message_ids {
        c.execute(MARK_HANDED, (id, at))?;
    }
    Ok(())
}

pub(crate) fn keep_invoice(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
    payload: &[u8],
) -> Result<bool, LedgerError> {
    Ok(c.execute(KEEP_INVOICE, (tenant, invoice_key, payload))? > 0)
}

pub(crate) fn kept_invoice(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<Vec<u8>>, LedgerError> {
    Ok(
        c.query_row(KEPT_INVOICE, (tenant, invoice_key), |r| r.get(0))
            .optional()?,
    )
}

pub(crate) fn record_seen(c: &Connection, tenant: &str, key: &str) -> Result<bool, LedgerError> {
    Ok(c.query_row(RECORD_SEEN, (tenant, key), |r| r.get(0))?)
}

pub(crate) fn record_handled(c: &Connection, r: &BankRecord) -> Result<bool, LedgerError> {
    let changed = c.execute(
        RECORD_HANDLED,
        (
            &r.tenant,
            &r.idempotency_key,
            &r.file,
            &r.outcome,
            &r.detail,
            &r.recorded_at,
        ),
    )?;
    Ok(changed > 0)
}
