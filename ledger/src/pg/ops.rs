//! The ops area's operations on PostgreSQL (`crate::stores::OpsStore`): the statements of
//! `crate::ops` with `$N` placeholders, and `RETURNING id` and `string_agg` where SQLite has
//! `last_insert_rowid()` and `group_concat`. Rows are read by `crate::ops`'s readers.

use crate::pg::Prepared;
use postgres::Row;
use postgres::types::ToSql;

use crate::error::LedgerError;
use crate::ops::{
    self, ACTIONS, AuditEntry, CONSOLE_ACTIONS, Columns, Filter, Group, Marked, ParkedMessage,
    ParkedRecord, ParkedSummary, RECORD_ACTION, RECORD_CONSOLE_ACTION, RESOLVE, Resolution,
    WAITING, Waiting,
};

/// Every row of `sql` (with `?N` placeholders, numbered when the statement is prepared),
/// each read by `read`.
pub(crate) fn all<T>(
    c: &mut Prepared<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    read: impl Fn(&Row) -> Result<T, LedgerError>,
) -> Result<Vec<T>, LedgerError> {
    c.query(sql, params)?.iter().map(read).collect()
}

fn params(values: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// `ON CONFLICT DO NOTHING … RETURNING id`: a concurrent drain of the same message waits
/// for the first insert to commit and then returns no row.
pub(crate) fn insert(c: &mut Prepared<'_>, r: &ParkedRecord) -> Result<Option<i64>, LedgerError> {
    let row = c.query_opt(
        &format!("{} RETURNING id", ops::INSERT),
        &[
            &r.fingerprint,
            &r.queue,
            &r.stage,
            &r.parked_by.as_str(),
            &r.origin_queue,
            &r.origin_exchange,
            &r.origin_routing_key,
            &r.message_id,
            &r.message_type,
            &r.tenant,
            &r.invoice_key,
            &r.error_class,
            &r.error_kind,
            &r.error,
            &r.attempts,
            &r.first_failure_at,
            &r.last_failure_at,
            &r.parked_at,
            &r.stored_at,
            &r.properties,
            &r.body,
        ],
    )?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

pub(crate) fn list(
    c: &mut Prepared<'_>,
    filter: &Filter,
    limit: u32,
) -> Result<Vec<ParkedSummary>, LedgerError> {
    let (clause, values) = filter.where_clause();
    all(
        c,
        &ops::list_sql(&clause, limit),
        &params(&values),
        ops::summary,
    )
}

pub(crate) fn ids(c: &mut Prepared<'_>, filter: &Filter) -> Result<Vec<i64>, LedgerError> {
    let (clause, values) = filter.where_clause();
    all(c, &ops::ids_sql(&clause), &params(&values), |r| r.col(0))
}

pub(crate) fn groups(c: &mut Prepared<'_>, filter: &Filter) -> Result<Vec<Group>, LedgerError> {
    let (clause, values) = filter.where_clause();
    let sql = ops::groups_sql(&clause, |column| {
        format!("string_agg(DISTINCT {column}, ',')")
    });
    all(c, &sql, &params(&values), ops::group)
}

pub(crate) fn get(c: &mut Prepared<'_>, id: i64) -> Result<Option<ParkedMessage>, LedgerError> {
    Ok(all(c, &ops::get_sql(), &[&id], ops::message)?.pop())
}

pub(crate) fn earlier_parkings(
    c: &mut Prepared<'_>,
    message: &ParkedMessage,
) -> Result<Vec<ParkedSummary>, LedgerError> {
    let Some(message_id) = &message.summary.message_id else {
        return Ok(Vec::new());
    };
    all(
        c,
        &ops::earlier_sql(),
        &[&message.summary.stage, message_id, &message.summary.id],
        ops::summary,
    )
}

pub(crate) fn actions(c: &mut Prepared<'_>, id: i64) -> Result<Vec<ops::Action>, LedgerError> {
    all(c, ACTIONS, &[&id], ops::action)
}

/// The `UPDATE … WHERE state = 'parked'` locks the row: a concurrent resolution of the same
/// message waits, then finds it resolved and changes nothing, so exactly one is `Done`.
pub(crate) fn resolve(
    c: &mut Prepared<'_>,
    id: i64,
    r: &Resolution<'_>,
) -> Result<Marked, LedgerError> {
    let changed = c.execute(RESOLVE, &[&id, &r.to.as_str(), &r.at, &r.by, &r.reason])?;
    if changed == 0 {
        return Ok(match get(c, id)? {
            Some(message) => Marked::AlreadyResolved(Box::new(message.summary)),
            None => Marked::NotFound,
        });
    }
    c.execute(
        RECORD_ACTION,
        &[&id, &r.action, &r.at, &r.by, &r.reason, &r.detail],
    )?;
    Ok(Marked::Done)
}

pub(crate) fn waiting_by_group(c: &mut Prepared<'_>) -> Result<Vec<Waiting>, LedgerError> {
    all(c, WAITING, &[], ops::waiting)
}

pub(crate) fn record_console_action(
    c: &mut Prepared<'_>,
    e: &AuditEntry,
) -> Result<(), LedgerError> {
    c.execute(
        RECORD_CONSOLE_ACTION,
        &[
            &e.at, &e.user, &e.role, &e.action, &e.target, &e.reason, &e.outcome,
        ],
    )?;
    Ok(())
}

pub(crate) fn console_actions(
    c: &mut Prepared<'_>,
    limit: u32,
    offset: u32,
) -> Result<Vec<AuditEntry>, LedgerError> {
    let (limit, offset) = (i64::from(limit), i64::from(offset));
    all(c, CONSOLE_ACTIONS, &[&limit, &offset], ops::audit_entry)
}
