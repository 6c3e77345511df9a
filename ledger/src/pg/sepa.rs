//! The sepa area's ported operations on PostgreSQL (`crate::stores::SepaStore`): the
//! statements of `crate::sepa` with `$N` placeholders. `ON CONFLICT DO NOTHING` makes a
//! concurrent insert of the same event, invoice or bank record wait for the first one to
//! commit and then change nothing, so exactly one caller is told it recorded it.

use postgres::Client;

use crate::error::LedgerError;
use crate::ops::numbered;
use crate::pg::ops::all;
use crate::sepa::{
    BankRecord, INSERT_EVENT, KEEP_INVOICE, KEPT_INVOICE, MARK_HANDED, PENDING_EVENTS,
    PendingEvent, RECORD_HANDLED, RECORD_SEEN,
};

pub(crate) fn insert_event(c: &mut Client, e: &PendingEvent) -> Result<bool, LedgerError> {
    let changed = c.execute(
        &numbered(INSERT_EVENT),
        &[&e.message_id, &e.tenant, &e.origin, &e.body, &e.created_at],
    )?;
    Ok(changed > 0)
}

pub(crate) fn pending_events(
    c: &mut Client,
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
    c: &mut Client,
    message_ids: &[String],
    at: &str,
) -> Result<(), LedgerError> {
    let sql = numbered(MARK_HANDED);
    for id in message_ids {
        c.execute(&sql, &[id, &at])?;
    }
    Ok(())
}

pub(crate) fn keep_invoice(
    c: &mut Client,
    tenant: &str,
    invoice_key: &str,
    payload: &[u8],
) -> Result<bool, LedgerError> {
    Ok(c.execute(&numbered(KEEP_INVOICE), &[&tenant, &invoice_key, &payload])? > 0)
}

pub(crate) fn kept_invoice(
    c: &mut Client,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<Vec<u8>>, LedgerError> {
    Ok(all(c, KEPT_INVOICE, &[&tenant, &invoice_key], |r| {
        Ok(r.try_get(0)?)
    })?
    .pop())
}

pub(crate) fn record_seen(c: &mut Client, tenant: &str, key: &str) -> Result<bool, LedgerError> {
    let row = c.query_one(&numbered(RECORD_SEEN), &[&tenant, &key])?;
    Ok(row.try_get(0)?)
}

pub(crate) fn record_handled(c: &mut Client, r: &BankRecord) -> Result<bool, LedgerError> {
    let changed = c.execute(
        &numbered(RECORD_HANDLED),
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
