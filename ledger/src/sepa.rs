//! The sepa area's operations ported to both backends (`migrations/sepa_0001.sql`,
//! `sepa_0002.sql`): the mandates and their uses as rows (the rules that read them are
//! `encaisse_pipelines::mandates`'), the `payment.rejected` events waiting to be published,
//! the `invoice.issued` bodies kept for re-presentation, and the bank records already handled.
//! The statements and the SQLite implementation of [`crate::stores::SepaStore`] (the
//! PostgreSQL one is `crate::pg::sepa`, with the same statements). Bodies are stored as the
//! stage encoded them: the ledger does not know the event schemas.
//!
//! On PostgreSQL a mandate's row is the lock of its uses: [`crate::stores::SepaStore::lock_sepa_mandate`]
//! reads it `FOR UPDATE`, so two transactions deciding uses of one mandate follow one
//! another and the second sees the first's use (one `FRST`). The planned files
//! (`sepa_file`), the bank's outcomes and the credit notes still run as SQLite SQL in the
//! pipelines (docs/scaling.md).

use rusqlite::{Connection, OptionalExtension};

use crate::error::LedgerError;
use crate::ops::{Columns, all};

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

/// A `sepa_mandate` row (per tenant and RUM key, the upper-case RUM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MandateRow {
    /// The RUM as last given by the source.
    pub rum: String,
    /// A one-off mandate (the source said OOFF).
    pub one_off: bool,
    /// `YYYY-MM-DD`.
    pub signed_on: String,
    /// The debtor account last given (personal data: never logged).
    pub iban: String,
    pub bic: Option<String>,
    /// The last day the debtor account changed, `YYYY-MM-DD`.
    pub amended_on: Option<String>,
}

/// A `sepa_collection` row as the mandate history reads it: one use of a mandate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseRow {
    pub invoice_key: String,
    pub attempt: i64,
    pub rum_key: String,
    pub end_to_end_id: Option<String>,
    pub due_date: String,
    pub sequence: String,
    pub status: String,
    pub regie: Option<String>,
    pub amount_cents: Option<i64>,
    pub outcome_code: Option<String>,
    pub outcome_on: Option<String>,
}

/// A use to record, status `planned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUse<'a> {
    pub tenant: &'a str,
    pub invoice_key: &'a str,
    pub attempt: i64,
    pub rum_key: &'a str,
    pub end_to_end_id: Option<&'a str>,
    pub due_date: &'a str,
    pub sequence: &'a str,
    pub planned_at: &'a str,
}

/// Which uses to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uses<'a> {
    /// Every use of a mandate (by RUM key), oldest first (due date, planning time, invoice,
    /// attempt).
    OfMandate(&'a str),
    /// The uses of a written pain.008, or of one of its blocks (`PmtInfId`), by end-to-end id.
    OfFile(i64, Option<&'a str>),
    /// The presented uses under a mandate for an amount (the fallback key of spec §6.3), by
    /// end-to-end id.
    ByMandateAndAmount(&'a str, i64),
}

const USE_COLUMNS: &str = "invoice_key, attempt, rum_key, end_to_end_id, due_date, sequence, \
     status, regie, amount_cents, outcome_code, outcome_on";
pub(crate) const MANDATE: &str = "SELECT rum, one_off, signed_on, iban, bic, amended_on \
     FROM sepa_mandate WHERE tenant = ?1 AND rum_key = ?2";
pub(crate) const INSERT_MANDATE: &str = "INSERT INTO sepa_mandate \
     (tenant, rum_key, rum, one_off, signed_on, iban, bic, amended_on, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING";
pub(crate) const UPDATE_MANDATE: &str = "UPDATE sepa_mandate SET rum = ?3, one_off = ?4, \
     signed_on = ?5, iban = ?6, bic = ?7, amended_on = ?8, updated_at = ?9 \
     WHERE tenant = ?1 AND rum_key = ?2";
pub(crate) const INSERT_USE: &str = "INSERT INTO sepa_collection \
     (tenant, invoice_key, attempt, rum_key, end_to_end_id, due_date, sequence, status, planned_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'planned', ?8)";
pub(crate) const SET_DUE_DATE: &str = "UPDATE sepa_collection SET due_date = ?4 \
     WHERE tenant = ?1 AND invoice_key = ?2 AND attempt = ?3";
pub(crate) const DELETE_USE: &str =
    "DELETE FROM sepa_collection WHERE tenant = ?1 AND invoice_key = ?2 AND attempt = ?3";

/// The `SELECT` of a use by its key (`?1` tenant, `?2` invoice key, `?3` attempt) or by its
/// end-to-end id (`?1` tenant, `?2` id).
pub(crate) fn use_sql(by_end_to_end_id: bool) -> String {
    let condition = if by_end_to_end_id {
        "end_to_end_id = ?2"
    } else {
        "invoice_key = ?2 AND attempt = ?3"
    };
    format!("SELECT {USE_COLUMNS} FROM sepa_collection WHERE tenant = ?1 AND {condition}")
}

impl Uses<'_> {
    /// The statement: `?1` is the tenant, then the variant's values in their order.
    pub(crate) fn sql(&self) -> String {
        let (condition, order) = match self {
            Uses::OfMandate(_) => ("rum_key = ?2", "due_date, planned_at, invoice_key, attempt"),
            Uses::OfFile(_, None) => ("file_id = ?2", "end_to_end_id"),
            Uses::OfFile(_, Some(_)) => ("file_id = ?2 AND payment_info_id = ?3", "end_to_end_id"),
            Uses::ByMandateAndAmount(..) => (
                "rum_key = ?2 AND amount_cents = ?3 AND file_id IS NOT NULL \
                 AND status <> 'refused'",
                "end_to_end_id",
            ),
        };
        format!(
            "SELECT {USE_COLUMNS} FROM sepa_collection WHERE tenant = ?1 AND {condition} \
             ORDER BY {order}"
        )
    }
}

pub(crate) fn mandate_row(r: &impl Columns) -> Result<MandateRow, LedgerError> {
    Ok(MandateRow {
        rum: r.col(0)?,
        one_off: r.col::<i32>(1)? != 0,
        signed_on: r.col(2)?,
        iban: r.col(3)?,
        bic: r.col(4)?,
        amended_on: r.col(5)?,
    })
}

pub(crate) fn use_row(r: &impl Columns) -> Result<UseRow, LedgerError> {
    Ok(UseRow {
        invoice_key: r.col(0)?,
        attempt: r.col(1)?,
        rum_key: r.col(2)?,
        end_to_end_id: r.col(3)?,
        due_date: r.col(4)?,
        sequence: r.col(5)?,
        status: r.col(6)?,
        regie: r.col(7)?,
        amount_cents: r.col(8)?,
        outcome_code: r.col(9)?,
        outcome_on: r.col(10)?,
    })
}

/// `lock` changes nothing on SQLite: the write transaction holds the one writer lock.
pub(crate) fn mandate(
    c: &Connection,
    tenant: &str,
    rum_key: &str,
    _lock: bool,
) -> Result<Option<MandateRow>, LedgerError> {
    Ok(all(c, MANDATE, (tenant, rum_key), |r| mandate_row(r))?.pop())
}

pub(crate) fn insert_mandate(
    c: &Connection,
    tenant: &str,
    rum_key: &str,
    m: &MandateRow,
    at: &str,
) -> Result<bool, LedgerError> {
    Ok(write_mandate(c, INSERT_MANDATE, tenant, rum_key, m, at)? > 0)
}

pub(crate) fn update_mandate(
    c: &Connection,
    tenant: &str,
    rum_key: &str,
    m: &MandateRow,
    at: &str,
) -> Result<(), LedgerError> {
    write_mandate(c, UPDATE_MANDATE, tenant, rum_key, m, at)?;
    Ok(())
}

/// [`INSERT_MANDATE`] or [`UPDATE_MANDATE`] (the same values in the same places).
fn write_mandate(
    c: &Connection,
    sql: &str,
    tenant: &str,
    rum_key: &str,
    m: &MandateRow,
    at: &str,
) -> Result<usize, LedgerError> {
    Ok(c.execute(
        sql,
        rusqlite::params![
            tenant,
            rum_key,
            &m.rum,
            i32::from(m.one_off),
            &m.signed_on,
            &m.iban,
            &m.bic,
            &m.amended_on,
            at
        ],
    )?)
}

pub(crate) fn use_of(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
    attempt: i64,
) -> Result<Option<UseRow>, LedgerError> {
    Ok(
        all(c, &use_sql(false), (tenant, invoice_key, attempt), |r| {
            use_row(r)
        })?
        .pop(),
    )
}

pub(crate) fn use_by_end_to_end_id(
    c: &Connection,
    tenant: &str,
    end_to_end_id: &str,
) -> Result<Option<UseRow>, LedgerError> {
    Ok(all(c, &use_sql(true), (tenant, end_to_end_id), |r| use_row(r))?.pop())
}

pub(crate) fn uses(
    c: &Connection,
    tenant: &str,
    which: &Uses<'_>,
) -> Result<Vec<UseRow>, LedgerError> {
    let sql = which.sql();
    let read = |r: &rusqlite::Row<'_>| use_row(r);
    match *which {
        Uses::OfMandate(rum_key) => all(c, &sql, (tenant, rum_key), read),
        Uses::OfFile(file_id, None) => all(c, &sql, (tenant, file_id), read),
        Uses::OfFile(file_id, Some(block)) => all(c, &sql, (tenant, file_id, block), read),
        Uses::ByMandateAndAmount(rum_key, amount) => all(c, &sql, (tenant, rum_key, amount), read),
    }
}

pub(crate) fn insert_use(c: &Connection, u: &NewUse<'_>) -> Result<(), LedgerError> {
    c.execute(
        INSERT_USE,
        rusqlite::params![
            u.tenant,
            u.invoice_key,
            u.attempt,
            u.rum_key,
            u.end_to_end_id,
            u.due_date,
            u.sequence,
            u.planned_at
        ],
    )?;
    Ok(())
}

pub(crate) fn set_due_date(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
    attempt: i64,
    due_date: &str,
) -> Result<(), LedgerError> {
    c.execute(SET_DUE_DATE, (tenant, invoice_key, attempt, due_date))?;
    Ok(())
}

pub(crate) fn delete_use(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
    attempt: i64,
) -> Result<(), LedgerError> {
    c.execute(DELETE_USE, (tenant, invoice_key, attempt))?;
    Ok(())
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
