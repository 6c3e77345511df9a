//! Portable statements: one SQL text run on whichever backend a [`Tx`] holds.
//!
//! Most of a store's SQL is the same on SQLite and PostgreSQL once it keeps to their common
//! ground (`INSERT … ON CONFLICT … DO NOTHING/UPDATE`, `RETURNING`, `COALESCE`, `CAST(… AS
//! BIGINT)`, no `INSERT OR IGNORE`, no `datetime()`): such an operation is written once, with
//! `?N` placeholders, and [`Tx::execute`] / [`Tx::query_all`] run it on SQLite as written and
//! on PostgreSQL with `$N`. Where the backends differ (locks, triggers, upserts SQLite lacks),
//! a store branches on [`Tx::is_postgres`].
//!
//! Values cross as four kinds ([`Value`]): integers, text, bytes and NULL. PostgreSQL types
//! are strict where SQLite is not, so an integer parameter is written as whatever integer
//! column (or boolean) the statement expects, and [`Row::get`] reads any integer column into
//! any integer type; an amount summed on PostgreSQL (`numeric`) must be cast back to `BIGINT`
//! in the SQL.
//!
//! On PostgreSQL each connection keeps its prepared statements ([`StatementCache`]), so a
//! statement run once per message costs one round trip, not a prepare and an execute.

use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::LedgerError;
use crate::stores::Tx;

/// One parameter, as both backends take it.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A value a portable statement takes as a parameter.
pub trait Param: Sync {
    fn value(&self) -> Value<'_>;
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, Param::value)
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            fn value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_param!(i64, i32, i16, u32, u16, u8);

impl Param for bool {
    fn value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl Param for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Param for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl Param for Value<'_> {
    fn value(&self) -> Value<'_> {
        *self
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                _ => Err(format!("integer parameter for a {ty} column").into()),
            },
            Value::Text(t) => t.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    /// Which kind goes where is decided per value in `to_sql`: a NULL fits any column.
    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8 | Type::INT4 | Type::INT2 | Type::BOOL | Type::BYTEA
        ) || <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// `(?1, ?2, ?3), (?4, ?5, ?6)…`: the `VALUES` of a multi-row statement, `rows` rows of
/// `width` numbered parameters. One statement for many rows is one round trip on PostgreSQL
/// instead of one per row.
pub fn value_rows(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|row| {
            let cells: Vec<String> = (1..=width)
                .map(|c| format!("?{}", row * width + c))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `?N` placeholders of a portable statement as PostgreSQL's `$N` (quoted text and
/// identifiers left alone). A bare `?` is numbered in order of appearance.
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut next = 0u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    next += 1;
                    out.push_str(&next.to_string());
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// A connection's prepared statements, by their portable text. Bounded: a caller building
/// SQL with varying text (an `IN` list) must not grow it without end.
#[derive(Default)]
pub(crate) struct StatementCache {
    statements: HashMap<String, postgres::Statement>,
}

/// Statements kept per connection before the cache starts over.
const MAX_CACHED_STATEMENTS: usize = 512;

impl StatementCache {
    pub(crate) fn prepare(
        &mut self,
        client: &mut postgres::Client,
        sql: &str,
    ) -> Result<postgres::Statement, LedgerError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        if self.statements.len() >= MAX_CACHED_STATEMENTS {
            self.statements.clear();
        }
        let statement = client.prepare(&numbered(sql))?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// A row of a portable query.
pub struct Row<'r> {
    inner: RowInner<'r>,
}

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    /// Column `index` as `T`; a NULL, a wrong kind or an integer out of `T`'s range is a
    /// [`LedgerError::Corrupt`] naming the column (or the backend's own error).
    pub fn get<T: FromColumn>(&self, index: usize) -> Result<T, LedgerError> {
        match &self.inner {
            RowInner::Sqlite(row) => T::from_sqlite(row, index),
            RowInner::Postgres(row) => T::from_postgres(row, index),
        }
    }
}

/// A column value a portable query reads.
pub trait FromColumn: Sized {
    fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> Result<Self, LedgerError>;
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, LedgerError>;
}

/// An integer column of either type on PostgreSQL (`bigint`, `integer`, `smallint`,
/// `boolean` as 0/1).
fn pg_int(row: &postgres::Row, index: usize) -> Result<Option<i64>, LedgerError> {
    let ty = row
        .columns()
        .get(index)
        .map(|c| c.type_().clone())
        .ok_or_else(|| LedgerError::Corrupt(format!("no column {index}")))?;
    Ok(match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?,
        Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(i64::from),
        Type::INT2 => row.try_get::<_, Option<i16>>(index)?.map(i64::from),
        Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(i64::from),
        other => {
            return Err(LedgerError::Corrupt(format!(
                "column {index} is {other}, read as an integer (cast it to BIGINT)"
            )));
        }
    })
}

fn null_column(index: usize) -> LedgerError {
    LedgerError::Corrupt(format!("column {index} is NULL"))
}

/// An integer read as the narrower type the caller wants.
fn in_range<T: TryFrom<i64>>(value: Option<i64>, index: usize) -> Result<Option<T>, LedgerError> {
    value
        .map(|i| {
            T::try_from(i)
                .map_err(|_| LedgerError::Corrupt(format!("column {index}: {i} out of range")))
        })
        .transpose()
}

macro_rules! int_column {
    ($($t:ty),*) => {$(
        impl FromColumn for Option<$t> {
            fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> Result<Self, LedgerError> {
                in_range(row.get::<_, Option<i64>>(index)?, index)
            }
            fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, LedgerError> {
                in_range(pg_int(row, index)?, index)
            }
        }
        impl FromColumn for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> Result<Self, LedgerError> {
                Option::<$t>::from_sqlite(row, index)?.ok_or_else(|| null_column(index))
            }
            fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, LedgerError> {
                Option::<$t>::from_postgres(row, index)?.ok_or_else(|| null_column(index))
            }
        }
    )*};
}
int_column!(i64, i32, u32, u16, u8, usize, u64);

impl FromColumn for Option<bool> {
    fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> Result<Self, LedgerError> {
        Ok(row.get(index)?)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, LedgerError> {
        Ok(pg_int(row, index)?.map(|i| i != 0))
    }
}

impl FromColumn for bool {
    fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> Result<Self, LedgerError> {
        Ok(row.get(index)?)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, LedgerError> {
        Option::<bool>::from_postgres(row, index)?.ok_or_else(|| null_column(index))
    }
}

macro_rules! plain_column {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, index: usize) -> Result<Self, LedgerError> {
                Ok(row.get(index)?)
            }
            fn from_postgres(row: &postgres::Row, index: usize) -> Result<Self, LedgerError> {
                Ok(row.try_get(index)?)
            }
        }
    )*};
}
plain_column!(String, Option<String>, Vec<u8>, Option<Vec<u8>>);

impl Tx<'_> {
    /// Runs a portable statement; returns how many rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[&dyn Param]) -> Result<usize, LedgerError> {
        let values: Vec<Value<'_>> = params.iter().map(|p| p.value()).collect();
        match self.parts() {
            Parts::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                Ok(statement.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Parts::Postgres(client, cache) => {
                let statement = cache.prepare(client, sql)?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                let changed = client.execute(&statement, &refs)?;
                usize::try_from(changed)
                    .map_err(|_| LedgerError::Corrupt(format!("{changed} rows changed")))
            }
        }
    }

    /// Calls `visit` on each row of a portable query, in the query's order, without
    /// collecting them (on PostgreSQL the rows stream from the server).
    pub fn query_each<E, F>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        mut visit: F,
    ) -> Result<(), E>
    where
        E: From<LedgerError>,
        F: FnMut(&Row<'_>) -> Result<(), E>,
    {
        let values: Vec<Value<'_>> = params.iter().map(|p| p.value()).collect();
        match self.parts() {
            Parts::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql).map_err(LedgerError::from)?;
                let mut rows = statement
                    .query(rusqlite::params_from_iter(values.iter()))
                    .map_err(LedgerError::from)?;
                while let Some(row) = rows.next().map_err(LedgerError::from)? {
                    visit(&Row {
                        inner: RowInner::Sqlite(row),
                    })?;
                }
                Ok(())
            }
            Parts::Postgres(client, cache) => {
                let statement = cache.prepare(client, sql)?;
                let mut rows = client
                    .query_raw(&statement, values.iter())
                    .map_err(LedgerError::from)?;
                while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)
                    .map_err(LedgerError::from)?
                {
                    visit(&Row {
                        inner: RowInner::Postgres(&row),
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Every row of a portable query, each read by `read`.
    pub fn query_all<T, F>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        mut read: F,
    ) -> Result<Vec<T>, LedgerError>
    where
        F: FnMut(&Row<'_>) -> Result<T, LedgerError>,
    {
        let mut all = Vec::new();
        self.query_each(sql, params, |row| {
            all.push(read(row)?);
            Ok::<_, LedgerError>(())
        })?;
        Ok(all)
    }

    /// The first row of a portable query, if any.
    pub fn query_opt<T, F>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        read: F,
    ) -> Result<Option<T>, LedgerError>
    where
        F: FnOnce(&Row<'_>) -> Result<T, LedgerError>,
    {
        let mut read = Some(read);
        let mut first = None;
        self.query_each(sql, params, |row| {
            if first.is_none()
                && let Some(read) = read.take()
            {
                first = Some(read(row)?);
            }
            Ok::<_, LedgerError>(())
        })?;
        Ok(first)
    }

    /// The one row a portable query must return (an aggregate, a `RETURNING`); none is a
    /// [`LedgerError::Corrupt`].
    pub fn query_one<T, F>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        read: F,
    ) -> Result<T, LedgerError>
    where
        F: FnOnce(&Row<'_>) -> Result<T, LedgerError>,
    {
        self.query_opt(sql, params, read)?.ok_or_else(|| {
            LedgerError::Corrupt(format!(
                "expected a row from: {}",
                sql.split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        })
    }

    /// Runs `f` inside a savepoint of this transaction: its changes stay when it returns
    /// `Ok` and are undone alone when it returns `Err`, the transaction staying usable for
    /// what comes next (on PostgreSQL a failed statement otherwise aborts the whole
    /// transaction). This is what lets several units of work share one commit and still
    /// fail one by one.
    ///
    /// The outer `Err` is a failure of the savepoint statements themselves: what `f` wrote
    /// may then not be undone, so the caller must not commit the transaction.
    pub fn within_savepoint<T, E>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<Result<T, E>, LedgerError> {
        self.savepoint_statement("SAVEPOINT unit_of_work")?;
        let outcome = f(self);
        match outcome {
            Ok(value) => {
                self.savepoint_statement("RELEASE SAVEPOINT unit_of_work")?;
                Ok(Ok(value))
            }
            Err(e) => {
                self.savepoint_statement("ROLLBACK TO SAVEPOINT unit_of_work")?;
                self.savepoint_statement("RELEASE SAVEPOINT unit_of_work")?;
                Ok(Err(e))
            }
        }
    }

    /// One savepoint statement. On SQLite it is prepared once per connection: a bundle runs
    /// one savepoint per item, and parsing the statement each time showed in the writer's
    /// profile.
    fn savepoint_statement(&mut self, sql: &str) -> Result<(), LedgerError> {
        match self.parts() {
            Parts::Sqlite(conn) => {
                conn.prepare_cached(sql)?.execute([])?;
                Ok(())
            }
            Parts::Postgres(client, _) => Ok(client.batch_execute(sql)?),
        }
    }

    /// Runs several statements without parameters (DDL of a test, a backend's own script).
    pub fn execute_script(&mut self, sql: &str) -> Result<(), LedgerError> {
        match self.parts() {
            Parts::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Parts::Postgres(client, _) => Ok(client.batch_execute(sql)?),
        }
    }

    /// Whether this transaction runs on PostgreSQL (for the few operations whose SQL
    /// differs: row locks, upserts, functions).
    pub fn is_postgres(&self) -> bool {
        self.backend() == "postgres"
    }
}

/// What a [`Tx`] holds, split for the statement runners.
pub(crate) enum Parts<'t> {
    Sqlite(&'t rusqlite::Connection),
    Postgres(&'t mut postgres::Client, &'t mut StatementCache),
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ?2 AND c = '?' AND \"d?\" = ?1"),
            "SELECT a FROM t WHERE b = $2 AND c = '?' AND \"d?\" = $1"
        );
        assert_eq!(numbered("VALUES (?, ?, ?10)"), "VALUES ($1, $2, $10)");
    }
}
