//! The ops area's operations on PostgreSQL (`crate::stores::OpsStore`): the statements of
//! `crate::ops` with `$N` placeholders, `RETURNING id` and `string_agg`.

use postgres::types::ToSql;
use postgres::{Client, Row};

use crate::error::LedgerError;
use crate::ops::{
    Action, AuditEntry, Filter, Group, Marked, ParkedMessage, ParkedRecord, ParkedSummary,
    Resolution, SUMMARY_COLUMNS, State, Waiting, split_set,
};

/// The filter's clause with PostgreSQL placeholders (`?N` → `$N`: the clause holds only
/// column names, operators and placeholders) and its values as parameters.
fn where_clause(filter: &Filter) -> (String, Vec<String>) {
    let (clause, values) = filter.where_clause();
    (clause.replace('?', "$"), values)
}

fn params(values: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn summary(r: &Row) -> Result<ParkedSummary, LedgerError> {
    let stage: String = r.try_get(2)?;
    let kind: String = r.try_get(4)?;
    Ok(ParkedSummary {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        group: format!("{stage}/{kind}"),
        stage,
        error_class: r.try_get(3)?,
        error_kind: kind,
        error: r.try_get(5)?,
        attempts: r.try_get(6)?,
        parked_at: r.try_get(7)?,
        parked_by: r.try_get(8)?,
        invoice: r.try_get(9)?,
        message_id: r.try_get(10)?,
        message_type: r.try_get(11)?,
        state: State::parse(r.try_get(12)?),
        resolved_at: r.try_get(13)?,
        resolved_by: r.try_get(14)?,
        resolution_reason: r.try_get(15)?,
    })
}

/// `ON CONFLICT DO NOTHING … RETURNING id`: a concurrent drain of the same message waits
/// for the first insert to commit and then returns no row.
pub(crate) fn insert(c: &mut Client, r: &ParkedRecord) -> Result<Option<i64>, LedgerError> {
    let row = c.query_opt(
        "INSERT INTO parked_message (fingerprint, queue, stage, parked_by, origin_queue,
             origin_exchange, origin_routing_key, message_id, message_type, tenant, invoice_key,
             error_class, error_kind, error, attempts, first_failure_at, last_failure_at,
             parked_at, stored_at, properties, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
             $18, $19, $20, $21)
         ON CONFLICT (fingerprint) DO NOTHING
         RETURNING id",
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
    c: &mut Client,
    filter: &Filter,
    limit: u32,
) -> Result<Vec<ParkedSummary>, LedgerError> {
    let (clause, values) = where_clause(filter);
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM parked_message {clause}
         ORDER BY parked_at DESC, id DESC LIMIT {limit}"
    );
    c.query(&sql, &params(&values))?
        .iter()
        .map(summary)
        .collect()
}

pub(crate) fn ids(c: &mut Client, filter: &Filter) -> Result<Vec<i64>, LedgerError> {
    let (clause, values) = where_clause(filter);
    let sql = format!("SELECT id FROM parked_message {clause} ORDER BY parked_at, id");
    let rows = c.query(&sql, &params(&values))?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

pub(crate) fn groups(c: &mut Client, filter: &Filter) -> Result<Vec<Group>, LedgerError> {
    let (clause, values) = where_clause(filter);
    let sql = format!(
        "SELECT stage, error_kind, string_agg(DISTINCT error_class, ','), count(*),
                string_agg(DISTINCT tenant, ','), min(parked_at), max(parked_at),
                (SELECT error FROM parked_message e
                  WHERE e.stage = m.stage AND e.error_kind = m.error_kind
                  ORDER BY e.parked_at DESC, e.id DESC LIMIT 1)
         FROM parked_message m {clause}
         GROUP BY stage, error_kind
         ORDER BY count(*) DESC, stage, error_kind"
    );
    c.query(&sql, &params(&values))?
        .iter()
        .map(|r| {
            let stage: String = r.try_get(0)?;
            let kind: String = r.try_get(1)?;
            Ok(Group {
                group: format!("{stage}/{kind}"),
                stage,
                error_kind: kind,
                error_classes: split_set(r.try_get(2)?),
                count: r.try_get(3)?,
                tenants: split_set(r.try_get(4)?),
                oldest_parked_at: r.try_get(5)?,
                newest_parked_at: r.try_get(6)?,
                example_error: r.try_get(7)?,
            })
        })
        .collect()
}

pub(crate) fn get(c: &mut Client, id: i64) -> Result<Option<ParkedMessage>, LedgerError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, fingerprint, queue, origin_queue, origin_exchange,
                origin_routing_key, first_failure_at, last_failure_at, stored_at, properties, body
         FROM parked_message WHERE id = $1"
    );
    let Some(r) = c.query_opt(&sql, &[&id])? else {
        return Ok(None);
    };
    Ok(Some(ParkedMessage {
        summary: summary(&r)?,
        fingerprint: r.try_get(16)?,
        queue: r.try_get(17)?,
        origin_queue: r.try_get(18)?,
        origin_exchange: r.try_get(19)?,
        origin_routing_key: r.try_get(20)?,
        first_failure_at: r.try_get(21)?,
        last_failure_at: r.try_get(22)?,
        stored_at: r.try_get(23)?,
        properties: r.try_get(24)?,
        body: r.try_get(25)?,
    }))
}

pub(crate) fn earlier_parkings(
    c: &mut Client,
    message: &ParkedMessage,
) -> Result<Vec<ParkedSummary>, LedgerError> {
    let Some(message_id) = &message.summary.message_id else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM parked_message
         WHERE stage = $1 AND message_id = $2 AND id <> $3 ORDER BY parked_at, id"
    );
    c.query(
        &sql,
        &[&message.summary.stage, message_id, &message.summary.id],
    )?
    .iter()
    .map(summary)
    .collect()
}

pub(crate) fn actions(c: &mut Client, id: i64) -> Result<Vec<Action>, LedgerError> {
    let rows = c.query(
        "SELECT action, at, by, reason, detail FROM parked_action WHERE parked_id = $1
         ORDER BY at, id",
        &[&id],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Action {
                action: r.try_get(0)?,
                at: r.try_get(1)?,
                by: r.try_get(2)?,
                reason: r.try_get(3)?,
                detail: r.try_get(4)?,
            })
        })
        .collect()
}

/// The `UPDATE … WHERE state = 'parked'` locks the row: a concurrent resolution of the same
/// message waits, then finds it resolved and changes nothing, so exactly one is `Done`.
pub(crate) fn resolve(c: &mut Client, id: i64, r: &Resolution<'_>) -> Result<Marked, LedgerError> {
    let changed = c.execute(
        "UPDATE parked_message SET state = $2, resolved_at = $3, resolved_by = $4,
             resolution_reason = $5
         WHERE id = $1 AND state = 'parked'",
        &[&id, &r.to.as_str(), &r.at, &r.by, &r.reason],
    )?;
    if changed == 0 {
        return Ok(match get(c, id)? {
            Some(message) => Marked::AlreadyResolved(Box::new(message.summary)),
            None => Marked::NotFound,
        });
    }
    c.execute(
        "INSERT INTO parked_action (parked_id, action, at, by, reason, detail)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &r.action, &r.at, &r.by, &r.reason, &r.detail],
    )?;
    Ok(Marked::Done)
}

pub(crate) fn waiting_by_group(c: &mut Client) -> Result<Vec<Waiting>, LedgerError> {
    let rows = c.query(
        "SELECT stage, error_kind, error_class, count(*), min(parked_at) FROM parked_message
         WHERE state = 'parked' GROUP BY stage, error_kind, error_class",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Waiting {
                stage: r.try_get(0)?,
                kind: r.try_get(1)?,
                class: r.try_get(2)?,
                count: r.try_get(3)?,
                oldest_parked_at: r.try_get(4)?,
            })
        })
        .collect()
}

/// `user` is a reserved word in PostgreSQL: quoted.
pub(crate) fn record_console_action(c: &mut Client, e: &AuditEntry) -> Result<(), LedgerError> {
    c.execute(
        "INSERT INTO console_action (at, \"user\", role, action, target, reason, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &e.at, &e.user, &e.role, &e.action, &e.target, &e.reason, &e.outcome,
        ],
    )?;
    Ok(())
}

pub(crate) fn console_actions(
    c: &mut Client,
    limit: u32,
    offset: u32,
) -> Result<Vec<AuditEntry>, LedgerError> {
    let rows = c.query(
        "SELECT at, \"user\", role, action, target, reason, outcome FROM console_action
         ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2",
        &[&i64::from(limit), &i64::from(offset)],
    )?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                at: r.try_get(0)?,
                user: r.try_get(1)?,
                role: r.try_get(2)?,
                action: r.try_get(3)?,
                target: r.try_get(4)?,
                reason: r.try_get(5)?,
                outcome: r.try_get(6)?,
            })
        })
        .collect()
}
