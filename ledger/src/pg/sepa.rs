//! The sepa area's ported operations on PostgreSQL (`crate::stores::SepaStore`): the
//! statements of `crate::sepa` with `$N` placeholders, rows read by its readers.
//! `ON CONFLICT DO NOTHING` makes a concurrent insert of the same mandate, event, invoice or
//! bank record wait for the first one to commit and then change nothing, so exactly one
//! caller is told it recorded it; a mandate read for a decision is locked (`FOR UPDATE`).

use crate::pg::Prepared;
use postgres::types::ToSql;

use crate::error::LedgerError;
use crate::pg::ops::all;
use crate::sepa::{
    BankRecord, DELETE_USE, INSERT_EVENT, INSERT_MANDATE, INSERT_USE, KEEP_INVOICE, KEPT_INVOICE,
    MANDATE, MARK_HANDED, MandateRow, NewUse, PENDING_EVENTS, PendingEvent, RECORD_HANDLED,
    RECORD_SEEN, SET_DUE_DATE, UPDATE_MANDATE, UseRow, Uses, mandate_row, use_row, use_sql,
};

pub(crate) fn insert_event(c: &mut Prepared<'_>, e: &PendingEvent) -> Result<bool, LedgerError> {
    let changed = c.execute(
        INSERT_EVENT,
        &[&e.message_id, &e.tenant, &e.origin, &e.body, &e.created_at],
    )?;
    Ok(changed > 0)
}

pub(crate) fn pending_events(
    c: &mut Prepared<'_>,
    tenant: &str,
    origin: &str,
) -> Result<Vec<Vec<u8>>, LedgerError> {
    all(
        c,
        PENDING_EVENTS,
        &[&tenant, &origin],
        |r| Ok(r.try_get(0)?),
    )
}

pub(crate) fn mark_handed(
    c: &mut Prepared<'_>,
    message_ids: &[String],
    at: &str,
) -> Result<(), LedgerError> {
    for id in message_ids {
        c.execute(MARK_HANDED, &[id, &at])?;
    }
    Ok(())
}

pub(crate) fn keep_invoice(
    c: &mut Prepared<'_>,
    tenant: &str,
    invoice_key: &str,
    payload: &[u8],
) -> Result<bool, LedgerError> {
    Ok(c.execute(KEEP_INVOICE, &[&tenant, &invoice_key, &payload])? > 0)
}

pub(crate) fn kept_invoice(
    c: &mut Prepared<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<Vec<u8>>, LedgerError> {
    Ok(all(c, KEPT_INVOICE, &[&tenant, &invoice_key], |r| {
        Ok(r.try_get(0)?)
    })?
    .pop())
}

pub(crate) fn record_seen(
    c: &mut Prepared<'_>,
    tenant: &str,
    key: &str,
) -> Result<bool, LedgerError> {
    let row = c.query_one(RECORD_SEEN, &[&tenant, &key])?;
    Ok(row.try_get(0)?)
}

pub(crate) fn record_handled(c: &mut Prepared<'_>, r: &BankRecord) -> Result<bool, LedgerError> {
    let changed = c.execute(
        RECORD_HANDLED,
        &[
            &r.tenant,
            &r.idempotency_key,
            &r.file,
            &r.outcome,
            &r.detail,
            &r.recorded_at,
        ],
    )?;
    Ok(changed > 0)
}

/// `FOR UPDATE` when `lock`: the row is the lock of the mandate's uses until commit.
pub(crate) fn mandate(
    c: &mut Prepared<'_>,
    tenant: &str,
    rum_key: &str,
    lock: bool,
) -> Result<Option<MandateRow>, LedgerError> {
    let sql = if lock {
        format!("{MANDATE} FOR UPDATE")
    } else {
        MANDATE.to_string()
    };
    Ok(all(c, &sql, &[&tenant, &rum_key], mandate_row)?.pop())
}

/// `ON CONFLICT DO NOTHING`: of two transactions creating one mandate, the second waits for
/// the first to commit and gets `false` (it then locks the row and reads it).
pub(crate) fn insert_mandate(
    c: &mut Prepared<'_>,
    tenant: &str,
    rum_key: &str,
    m: &MandateRow,
    at: &str,
) -> Result<bool, LedgerError> {
    Ok(write_mandate(c, INSERT_MANDATE, tenant, rum_key, m, at)? > 0)
}

pub(crate) fn update_mandate(
    c: &mut Prepared<'_>,
    tenant: &str,
    rum_key: &str,
    m: &MandateRow,
    at: &str,
) -> Result<(), LedgerError> {
    write_mandate(c, UPDATE_MANDATE, tenant, rum_key, m, at)?;
    Ok(())
}

/// `INSERT_MANDATE` or `UPDATE_MANDATE` (the same values in the same places).
fn write_mandate(
    c: &mut Prepared<'_>,
    sql: &str,
    tenant: &str,
    rum_key: &str,
    m: &MandateRow,
    at: &str,
) -> Result<u64, LedgerError> {
    c.execute(
        sql,
        &[
            &tenant,
            &rum_key,
            &m.rum,
            &i32::from(m.one_off),
            &m.signed_on,
            &m.iban,
            &m.bic,
            &m.amended_on,
            &at,
        ],
    )
}

pub(crate) fn use_of(
    c: &mut Prepared<'_>,
    tenant: &str,
    invoice_key: &str,
    attempt: i64,
) -> Result<Option<UseRow>, LedgerError> {
    let params: [&(dyn ToSql + Sync); 3] = [&tenant, &invoice_key, &attempt];
    Ok(all(c, &use_sql(false), &params, use_row)?.pop())
}

pub(crate) fn use_by_end_to_end_id(
    c: &mut Prepared<'_>,
    tenant: &str,
    end_to_end_id: &str,
) -> Result<Option<UseRow>, LedgerError> {
    Ok(all(c, &use_sql(true), &[&tenant, &end_to_end_id], |r| {
        use_row(r)
    })?
    .pop())
}

pub(crate) fn uses(
    c: &mut Prepared<'_>,
    tenant: &str,
    which: &Uses<'_>,
) -> Result<Vec<UseRow>, LedgerError> {
    let sql = which.sql();
    let read = |r: &postgres::Row| use_row(r);
    match *which {
        Uses::OfMandate(rum_key) => all(c, &sql, &[&tenant, &rum_key], read),
        Uses::OfFile(file_id, None) => all(c, &sql, &[&tenant, &file_id], read),
        Uses::OfFile(file_id, Some(block)) => all(c, &sql, &[&tenant, &file_id, &block], read),
        Uses::ByMandateAndAmount(rum_key, amount) => {
            all(c, &sql, &[&tenant, &rum_key, &amount], read)
        }
    }
}

pub(crate) fn insert_use(c: &mut Prepared<'_>, u: &NewUse<'_>) -> Result<(), LedgerError> {
    c.execute(
        INSERT_USE,
        &[
            &u.tenant,
            &u.invoice_key,
            &u.attempt,
            &u.rum_key,
            &u.end_to_end_id,
            &u.due_date,
            &u.sequence,
            &u.planned_at,
        ],
    )?;
    Ok(())
}

pub(crate) fn set_due_date(
    c: &mut Prepared<'_>,
    tenant: &str,
    invoice_key: &str,
    attempt: i64,
    due_date: &str,
) -> Result<(), LedgerError> {
    c.execute(SET_DUE_DATE, &[&tenant, &invoice_key, &attempt, &due_date])?;
    Ok(())
}

pub(crate) fn delete_use(
    c: &mut Prepared<'_>,
    tenant: &str,
    invoice_key: &str,
    attempt: i64,
) -> Result<(), LedgerError> {
    c.execute(DELETE_USE, &[&tenant, &invoice_key, &attempt])?;
    Ok(())
}
