//! The ops area (`migrations/ops_0001.sql`, `ops_0002.sql`): parked messages drained from the
//! parking lots, the actions taken on them, and the console's audit trail. The types and the
//! SQLite implementation of [`crate::stores::OpsStore`] (the PostgreSQL one is
//! `crate::pg::ops`); the stages reach them through a [`crate::Tx`].

use rusqlite::{Connection, Params, params_from_iter};
use serde::Serialize;

use crate::error::LedgerError;

/// Who moved the message to the parking lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkedBy {
    /// The runtime, after a permanent or poison failure, or transient ones past
    /// `retry.max_attempts` (failure headers set).
    Runtime,
    /// The broker, when the work queue's `x-delivery-limit` was reached (the message was
    /// delivered again and again without an ack: it crashes or stalls the daemon).
    Broker,
}

impl ParkedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ParkedBy::Runtime => "runtime",
            ParkedBy::Broker => "broker",
        }
    }
}

/// A parked message ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedRecord {
    pub fingerprint: String,
    pub queue: String,
    pub stage: String,
    pub parked_by: ParkedBy,
    pub origin_queue: String,
    pub origin_exchange: Option<String>,
    pub origin_routing_key: Option<String>,
    pub message_id: Option<String>,
    pub message_type: Option<String>,
    pub tenant: Option<String>,
    pub invoice_key: Option<String>,
    pub error_class: String,
    pub error_kind: String,
    pub error: String,
    pub attempts: i64,
    pub first_failure_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub parked_at: String,
    pub stored_at: String,
    pub properties: Vec<u8>,
    pub body: Vec<u8>,
}

/// Where a parked message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// In the store, waiting for ops.
    Parked,
    /// Republished to its stage.
    Replayed,
    /// Set aside for good, with a reason.
    Discarded,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Parked => "parked",
            State::Replayed => "replayed",
            State::Discarded => "discarded",
        }
    }

    pub(crate) fn parse(text: &str) -> State {
        match text {
            "replayed" => State::Replayed,
            "discarded" => State::Discarded,
            _ => State::Parked,
        }
    }
}

/// A group of parked messages: one stage, one error kind (`helios.titres/unknown_tenant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupKey {
    pub stage: String,
    pub kind: String,
}

impl GroupKey {
    /// Reads `stage/kind` (the form `dlq list --group` prints).
    pub fn parse(text: &str) -> Result<GroupKey, String> {
        match text.rsplit_once('/') {
            Some((stage, kind)) if !stage.is_empty() && !kind.is_empty() => Ok(GroupKey {
                stage: stage.to_string(),
                kind: kind.to_string(),
            }),
            _ => Err(format!(
                "group {text:?} is not of the form <stage>/<error kind> (as `encaisse dlq list --group` prints it)"
            )),
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.stage, self.kind)
    }
}

/// Which parked messages a query is about. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tenant: Option<String>,
    pub stage: Option<String>,
    pub class: Option<String>,
    /// RFC 3339 UTC: parked at or after.
    pub since: Option<String>,
    pub group: Option<GroupKey>,
    pub invoice_key: Option<String>,
    /// `None`: every state.
    pub state: Option<State>,
}

impl Filter {
    /// Messages still waiting (the default view of `dlq list`).
    pub fn parked() -> Self {
        Filter {
            state: Some(State::Parked),
            ..Filter::default()
        }
    }

    /// The `WHERE` clause (`?N` placeholders) and its values, in order.
    pub(crate) fn where_clause(&self) -> (String, Vec<String>) {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        let mut add = |clause: &str, value: &str| {
            values.push(value.to_string());
            clauses.push(clause.replace('?', &format!("?{}", values.len())));
        };
        if let Some(v) = &self.tenant {
            add("tenant = ?", v);
        }
        if let Some(v) = &self.stage {
            add("stage = ?", v);
        }
        if let Some(v) = &self.class {
            add("error_class = ?", v);
        }
        if let Some(v) = &self.since {
            add("parked_at >= ?", v);
        }
        if let Some(g) = &self.group {
            add("stage = ?", &g.stage);
            add("error_kind = ?", &g.kind);
        }
        if let Some(v) = &self.invoice_key {
            add("invoice_key = ?", v);
        }
        if let Some(s) = self.state {
            add("state = ?", s.as_str());
        }
        if clauses.is_empty() {
            (String::new(), values)
        } else {
            (format!("WHERE {}", clauses.join(" AND ")), values)
        }
    }
}

/// One parked message as listed (no bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParkedSummary {
    pub id: i64,
    pub tenant: Option<String>,
    pub stage: String,
    pub group: String,
    pub error_class: String,
    pub error_kind: String,
    pub error: String,
    pub attempts: i64,
    pub parked_at: String,
    pub parked_by: String,
    pub invoice: Option<String>,
    pub message_id: Option<String>,
    pub message_type: Option<String>,
    pub state: State,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
    pub resolution_reason: Option<String>,
}

/// One parked message with everything kept of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedMessage {
    pub summary: ParkedSummary,
    pub fingerprint: String,
    pub queue: String,
    pub origin_queue: String,
    pub origin_exchange: Option<String>,
    pub origin_routing_key: Option<String>,
    pub first_failure_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub stored_at: String,
    /// The AMQP property list, wire-encoded (`wire::decode_properties`).
    pub properties: Vec<u8>,
    pub body: Vec<u8>,
}

/// One action taken on a parked message (audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub action: String,
    pub at: String,
    pub by: String,
    pub reason: Option<String>,
    /// JSON text (where a replay went).
    pub detail: Option<String>,
}

/// Parked messages of one group, with their counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub group: String,
    pub stage: String,
    pub error_kind: String,
    /// Classes seen in the group (usually one).
    pub error_classes: Vec<String>,
    pub count: i64,
    pub tenants: Vec<String>,
    pub oldest_parked_at: String,
    pub newest_parked_at: String,
    /// The newest message's error text.
    pub example_error: String,
}

pub(crate) const SUMMARY_COLUMNS: &str = "id, tenant, stage, error_class, error_kind, error, attempts, \
     parked_at, parked_by, invoice_key, message_id, message_type, state, resolved_at, \
     resolved_by, resolution_reason";

/// A result row of either backend, read by column index, so that each row becomes a value
/// in one place for both.
pub(crate) trait Columns {
    fn col<T>(&self, index: usize) -> Result<T, LedgerError>
    where
        T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>;
}

impl Columns for rusqlite::Row<'_> {
    fn col<T>(&self, index: usize) -> Result<T, LedgerError>
    where
        T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>,
    {
        Ok(self.get(index)?)
    }
}

impl Columns for postgres::Row {
    fn col<T>(&self, index: usize) -> Result<T, LedgerError>
    where
        T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>,
    {
        Ok(self.try_get(index)?)
    }
}

/// Every row of `sql` on SQLite, each read by `read`.
pub(crate) fn all<T, P: Params>(
    c: &Connection,
    sql: &str,
    params: P,
    read: impl Fn(&rusqlite::Row<'_>) -> Result<T, LedgerError>,
) -> Result<Vec<T>, LedgerError> {
    let mut stmt = c.prepare(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}

/// [`SUMMARY_COLUMNS`] as a summary.
pub(crate) fn summary(r: &impl Columns) -> Result<ParkedSummary, LedgerError> {
    let stage: String = r.col(2)?;
    let kind: String = r.col(4)?;
    Ok(ParkedSummary {
        id: r.col(0)?,
        tenant: r.col(1)?,
        group: format!("{stage}/{kind}"),
        stage,
        error_class: r.col(3)?,
        error_kind: kind,
        error: r.col(5)?,
        attempts: r.col(6)?,
        parked_at: r.col(7)?,
        parked_by: r.col(8)?,
        invoice: r.col(9)?,
        message_id: r.col(10)?,
        message_type: r.col(11)?,
        state: State::parse(&r.col::<String>(12)?),
        resolved_at: r.col(13)?,
        resolved_by: r.col(14)?,
        resolution_reason: r.col(15)?,
    })
}

/// [`GET`]'s row.
pub(crate) fn message(r: &impl Columns) -> Result<ParkedMessage, LedgerError> {
    Ok(ParkedMessage {
        summary: summary(r)?,
        fingerprint: r.col(16)?,
        queue: r.col(17)?,
        origin_queue: r.col(18)?,
        origin_exchange: r.col(19)?,
        origin_routing_key: r.col(20)?,
        first_failure_at: r.col(21)?,
        last_failure_at: r.col(22)?,
        stored_at: r.col(23)?,
        properties: r.col(24)?,
        body: r.col(25)?,
    })
}

/// A row of the groups query.
pub(crate) fn group(r: &impl Columns) -> Result<Group, LedgerError> {
    let stage: String = r.col(0)?;
    let kind: String = r.col(1)?;
    Ok(Group {
        group: format!("{stage}/{kind}"),
        stage,
        error_kind: kind,
        error_classes: split_set(r.col(2)?),
        count: r.col(3)?,
        tenants: split_set(r.col(4)?),
        oldest_parked_at: r.col(5)?,
        newest_parked_at: r.col(6)?,
        example_error: r.col(7)?,
    })
}

/// [`ACTIONS`]' row.
pub(crate) fn action(r: &impl Columns) -> Result<Action, LedgerError> {
    Ok(Action {
        action: r.col(0)?,
        at: r.col(1)?,
        by: r.col(2)?,
        reason: r.col(3)?,
        detail: r.col(4)?,
    })
}

/// [`WAITING`]'s row.
pub(crate) fn waiting(r: &impl Columns) -> Result<Waiting, LedgerError> {
    Ok(Waiting {
        stage: r.col(0)?,
        kind: r.col(1)?,
        class: r.col(2)?,
        count: r.col(3)?,
        oldest_parked_at: r.col(4)?,
    })
}

/// [`CONSOLE_ACTIONS`]' row.
pub(crate) fn audit_entry(r: &impl Columns) -> Result<AuditEntry, LedgerError> {
    Ok(AuditEntry {
        at: r.col(0)?,
        user: r.col(1)?,
        role: r.col(2)?,
        action: r.col(3)?,
        target: r.col(4)?,
        reason: r.col(5)?,
        outcome: r.col(6)?,
    })
}

/// One parked message, whole (`?1`: its id).
pub(crate) fn get_sql() -> String {
    format!(
        "SELECT {SUMMARY_COLUMNS}, fingerprint, queue, origin_queue, origin_exchange,
                origin_routing_key, first_failure_at, last_failure_at, stored_at, properties, body
         FROM parked_message WHERE id = ?1"
    )
}
/// Stores a drained message once per fingerprint.
pub(crate) const INSERT: &str = "INSERT INTO parked_message (fingerprint, queue, stage, \
     parked_by, origin_queue, origin_exchange, origin_routing_key, message_id, message_type, \
     tenant, invoice_key, error_class, error_kind, error, attempts, first_failure_at, \
     last_failure_at, parked_at, stored_at, properties, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
     ?18, ?19, ?20, ?21) ON CONFLICT (fingerprint) DO NOTHING";
/// A parked message's actions, oldest first.
pub(crate) const ACTIONS: &str = "SELECT action, at, by, reason, detail FROM parked_action \
     WHERE parked_id = ?1 ORDER BY at, id";
/// Messages still parked per stage, kind and class.
pub(crate) const WAITING: &str = "SELECT stage, error_kind, error_class, count(*), \
     min(parked_at) FROM parked_message WHERE state = 'parked' \
     GROUP BY stage, error_kind, error_class";
/// The same message's other parkings (`?1` stage, `?2` message id, `?3` its id).
pub(crate) fn earlier_sql() -> String {
    format!(
        "SELECT {SUMMARY_COLUMNS} FROM parked_message
         WHERE stage = ?1 AND message_id = ?2 AND id <> ?3 ORDER BY parked_at, id"
    )
}

/// Parked messages matching a filter's `clause`, newest first, at most `limit`.
pub(crate) fn list_sql(clause: &str, limit: u32) -> String {
    format!(
        "SELECT {SUMMARY_COLUMNS} FROM parked_message {clause}
         ORDER BY parked_at DESC, id DESC LIMIT {limit}"
    )
}

/// The ids matching a filter's `clause`, oldest first.
pub(crate) fn ids_sql(clause: &str) -> String {
    format!("SELECT id FROM parked_message {clause} ORDER BY parked_at, id")
}

/// The groups of messages matching a filter's `clause`; `set` aggregates distinct text
/// (`group_concat` on SQLite, `string_agg` on PostgreSQL).
pub(crate) fn groups_sql(clause: &str, set: fn(&str) -> String) -> String {
    format!(
        "SELECT stage, error_kind, {}, count(*),
                {}, min(parked_at), max(parked_at),
                (SELECT error FROM parked_message e
                  WHERE e.stage = m.stage AND e.error_kind = m.error_kind
                  ORDER BY e.parked_at DESC, e.id DESC LIMIT 1)
         FROM parked_message m {clause}
         GROUP BY stage, error_kind
         ORDER BY count(*) DESC, stage, error_kind",
        set("error_class"),
        set("tenant")
    )
}

/// A resolution: only a message still parked changes.
pub(crate) const RESOLVE: &str = "UPDATE parked_message SET state = ?2, resolved_at = ?3, \
     resolved_by = ?4, resolution_reason = ?5 WHERE id = ?1 AND state = 'parked'";
/// A resolution's audit row.
pub(crate) const RECORD_ACTION: &str = "INSERT INTO parked_action \
     (parked_id, action, at, by, reason, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// A console action (`user` quoted: a reserved word in PostgreSQL).
pub(crate) const RECORD_CONSOLE_ACTION: &str = "INSERT INTO console_action \
     (at, \"user\", role, action, target, reason, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/// The console's actions, newest first, by pages (`?1` limit, `?2` offset).
pub(crate) const CONSOLE_ACTIONS: &str = "SELECT at, \"user\", role, action, target, reason, \
     outcome FROM console_action ORDER BY at DESC, id DESC LIMIT ?1 OFFSET ?2";

/// Stores a drained message. `Some(id)` when new, `None` when the same message (same
/// fingerprint) was stored before: a redelivery to the drain.
pub(crate) fn insert(c: &Connection, r: &ParkedRecord) -> Result<Option<i64>, LedgerError> {
    let inserted = c.execute(
        INSERT,
        rusqlite::params![
            r.fingerprint,
            r.queue,
            r.stage,
            r.parked_by.as_str(),
            r.origin_queue,
            r.origin_exchange,
            r.origin_routing_key,
            r.message_id,
            r.message_type,
            r.tenant,
            r.invoice_key,
            r.error_class,
            r.error_kind,
            r.error,
            r.attempts,
            r.first_failure_at,
            r.last_failure_at,
            r.parked_at,
            r.stored_at,
            r.properties,
            r.body,
        ],
    )?;
    Ok((inserted == 1).then(|| c.last_insert_rowid()))
}

/// Parked messages matching `filter`, newest first, at most `limit`.
pub(crate) fn list(
    c: &Connection,
    filter: &Filter,
    limit: u32,
) -> Result<Vec<ParkedSummary>, LedgerError> {
    let (clause, values) = filter.where_clause();
    all(
        c,
        &list_sql(&clause, limit),
        params_from_iter(values.iter()),
        |r| summary(r),
    )
}

/// The ids matching `filter`, oldest first (the order a replay republishes them in).
pub(crate) fn ids(c: &Connection, filter: &Filter) -> Result<Vec<i64>, LedgerError> {
    let (clause, values) = filter.where_clause();
    all(c, &ids_sql(&clause), params_from_iter(values.iter()), |r| {
        r.col(0)
    })
}

/// A `,`-joined aggregate as a sorted set.
pub(crate) fn split_set(text: Option<String>) -> Vec<String> {
    let mut items: Vec<String> = text
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    items.sort();
    items.dedup();
    items
}

/// Messages matching `filter` grouped by stage and error kind, largest group first.
pub(crate) fn groups(c: &Connection, filter: &Filter) -> Result<Vec<Group>, LedgerError> {
    let (clause, values) = filter.where_clause();
    let sql = groups_sql(&clause, |column| format!("group_concat(DISTINCT {column})"));
    all(c, &sql, params_from_iter(values.iter()), |r| group(r))
}

/// One parked message, whole.
pub(crate) fn get(c: &Connection, id: i64) -> Result<Option<ParkedMessage>, LedgerError> {
    Ok(all(c, &get_sql(), [id], |r| message(r))?.pop())
}

/// The other times the same message (same stage and message id) was parked, oldest first:
/// its earlier failures and what was done about them.
pub(crate) fn earlier_parkings(
    c: &Connection,
    message: &ParkedMessage,
) -> Result<Vec<ParkedSummary>, LedgerError> {
    let Some(message_id) = &message.summary.message_id else {
        return Ok(Vec::new());
    };
    all(
        c,
        &earlier_sql(),
        rusqlite::params![message.summary.stage, message_id, message.summary.id],
        |r| summary(r),
    )
}

/// The audit trail of a parked message, oldest first.
pub(crate) fn actions(c: &Connection, id: i64) -> Result<Vec<Action>, LedgerError> {
    all(c, ACTIONS, [id], |r| action(r))
}

/// What marking a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marked {
    /// The state changed (and an audit row was written).
    Done,
    /// It was not parked any more: nothing changed.
    AlreadyResolved(Box<ParkedSummary>),
    NotFound,
}

/// A change of state and its audit row.
pub(crate) struct Resolution<'a> {
    pub(crate) to: State,
    pub(crate) action: &'a str,
    pub(crate) at: &'a str,
    pub(crate) by: &'a str,
    pub(crate) reason: Option<&'a str>,
    pub(crate) detail: Option<&'a str>,
}

impl<'a> Resolution<'a> {
    /// Replayed, with who, when and where to (`detail`, JSON).
    pub(crate) fn replay(at: &'a str, by: &'a str, detail: &'a str) -> Self {
        Resolution {
            to: State::Replayed,
            action: "replay",
            at,
            by,
            reason: None,
            detail: Some(detail),
        }
    }

    /// Discarded for `reason`: the row and bytes stay.
    pub(crate) fn discard(at: &'a str, by: &'a str, reason: &'a str) -> Self {
        Resolution {
            to: State::Discarded,
            action: "discard",
            at,
            by,
            reason: Some(reason),
            detail: None,
        }
    }
}

/// [`crate::stores::OpsStore::mark_replayed`] and `discard_parked` on SQLite: only a message
/// still parked changes, with its audit row.
pub(crate) fn resolve(c: &Connection, id: i64, r: &Resolution<'_>) -> Result<Marked, LedgerError> {
    let changed = c.execute(
        RESOLVE,
        rusqlite::params![id, r.to.as_str(), r.at, r.by, r.reason],
    )?;
    if changed == 0 {
        return Ok(match get(c, id)? {
            Some(message) => Marked::AlreadyResolved(Box::new(message.summary)),
            None => Marked::NotFound,
        });
    }
    c.execute(
        RECORD_ACTION,
        rusqlite::params![id, r.action, r.at, r.by, r.reason, r.detail],
    )?;
    Ok(Marked::Done)
}

/// Messages waiting in one group (for the gauges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub stage: String,
    pub kind: String,
    pub class: String,
    pub count: i64,
    pub oldest_parked_at: String,
}

/// Parked (unresolved) messages per stage, kind and class, with the oldest parking time:
/// the gauges ops alert on.
pub(crate) fn waiting_by_group(c: &Connection) -> Result<Vec<Waiting>, LedgerError> {
    all(c, WAITING, [], |r| waiting(r))
}

/// One action taken in the web console (`console_action`, shown on its audit-trail page):
/// logins (refused ones too), logouts, replays, discards, downloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub at: String,
    pub user: String,
    pub role: String,
    pub action: String,
    pub target: Option<String>,
    pub reason: Option<String>,
    pub outcome: String,
}

impl AuditEntry {
    /// An action taken now.
    pub fn new(user: &str, role: &str, action: &str, outcome: impl Into<String>) -> AuditEntry {
        AuditEntry {
            at: crate::clock::now(),
            user: user.to_string(),
            role: role.to_string(),
            action: action.to_string(),
            target: None,
            reason: None,
            outcome: outcome.into(),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> AuditEntry {
        self.target = Some(target.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> AuditEntry {
        self.reason = Some(reason.into());
        self
    }
}

/// [`crate::stores::OpsStore::record_console_action`] on SQLite.
pub(crate) fn record_console_action(c: &Connection, e: &AuditEntry) -> Result<(), LedgerError> {
    c.execute(
        RECORD_CONSOLE_ACTION,
        rusqlite::params![
            e.at, e.user, e.role, e.action, e.target, e.reason, e.outcome
        ],
    )?;
    Ok(())
}

/// [`crate::stores::OpsStore::console_actions`] on SQLite.
pub(crate) fn console_actions(
    c: &Connection,
    limit: u32,
    offset: u32,
) -> Result<Vec<AuditEntry>, LedgerError> {
    all(c, CONSOLE_ACTIONS, [limit, offset], |r| audit_entry(r))
}
