//! Copying an SQLite ledger into an empty PostgreSQL one (`encaisse ledger migrate`).
//!
//! Generic over the schema, so that it needs no change when an area adds a table: the
//! tables and their columns are read from the SQLite file (`sqlite_master`,
//! `pragma_table_info`) and matched by name on PostgreSQL (`information_schema`), where the
//! migrations created them. Everything is copied in one PostgreSQL transaction: a failure
//! leaves the target as empty as it was.
//!
//! - Tables are copied parents first (SQLite's foreign keys), since PostgreSQL checks its
//!   foreign keys row by row even with user triggers disabled.
//! - User triggers are disabled on each target table while it is filled
//!   (`ALTER TABLE … DISABLE TRIGGER USER`) and enabled again before the commit: derived
//!   tables (summaries kept by triggers) are copied as they are, not computed a second time.
//! - Identity columns take the copied ids (`OVERRIDING SYSTEM VALUE`) and their sequences
//!   continue after the largest (`setval`).
//! - A target that holds any row (besides its own migrations) is refused; a table of the
//!   SQLite file with rows that has no PostgreSQL table (an area not ported) is refused
//!   rather than left behind; the row counts of every table are compared before the commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::error::LedgerError;
use crate::sql::{Param, Value};
use crate::stores::Tx;

/// Rows per `INSERT` (fewer for wide tables: PostgreSQL takes at most 65,535 parameters).
pub const BATCH_ROWS: usize = 500;
const MAX_PARAMS: usize = 60_000;

/// Tables the copy leaves alone: each backend's own record of its migrations.
const NOT_COPIED: &[&str] = &["schema_migration"];

/// Why a ledger was not copied.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The target is not PostgreSQL.
    #[error("the target ledger must be PostgreSQL, not {0}")]
    NotPostgres(&'static str),
    /// The target holds rows already: copying would mix two ledgers.
    #[error("the target ledger is not empty ({}): migrate into a new, empty database", describe(.0))]
    NotEmpty(Vec<(String, u64)>),
    /// A table with rows that PostgreSQL does not have (its area has no PostgreSQL schema).
    #[error(
        "table {table} ({rows} rows) has no PostgreSQL table: its area is not on PostgreSQL yet; nothing was copied"
    )]
    MissingTable { table: String, rows: u64 },
    /// A column the target table lacks.
    #[error("column {table}.{column} has no PostgreSQL column; nothing was copied")]
    MissingColumn { table: String, column: String },
    /// A value the ledger never stores (a floating-point number).
    #[error("{table}.{column} holds a floating-point value, which the ledger never stores")]
    Float { table: String, column: String },
    /// The copy's counts differ (nothing was committed).
    #[error(
        "table {table}: {source_rows} rows in SQLite, {target_rows} copied; nothing was committed"
    )]
    CountMismatch {
        table: String,
        source_rows: u64,
        target_rows: u64,
    },
    /// The SQLite file is missing, unreadable or behind the current migrations.
    #[error("{0}")]
    Source(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<rusqlite::Error> for TransferError {
    fn from(e: rusqlite::Error) -> Self {
        TransferError::Source(e.to_string())
    }
}

fn describe(tables: &[(String, u64)]) -> String {
    tables
        .iter()
        .map(|(t, n)| format!("{t}: {n} rows"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One table copied: its rows on each side (equal, or the copy fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: String,
    pub source_rows: u64,
    pub target_rows: u64,
}

/// A value read from SQLite, owned until its batch is written.
enum Owned {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(i) => Value::Int(*i),
            Owned::Text(t) => Value::Text(t),
            Owned::Blob(b) => Value::Blob(b),
        }
    }
}

/// Opens the SQLite ledger at `path` read-only and checks it has every migration of
/// `expected` (the daemon of this version opened it last).
pub fn open_source(path: &Path) -> Result<Connection, TransferError> {
    if !path.exists() {
        return Err(TransferError::Source(format!(
            "{}: no such ledger file",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| TransferError::Source(format!("{}: {e}", path.display())))?;
    let applied: BTreeSet<(String, u32)> = crate::migrations::applied_in(&conn)
        .map_err(|e| TransferError::Source(format!("{}: {e}", path.display())))?
        .into_iter()
        .collect();
    let missing: Vec<String> = crate::migrations::ALL
        .iter()
        .filter(|m| !applied.contains(&(m.area.to_string(), m.version)))
        .map(|m| format!("{} {}", m.area, m.version))
        .collect();
    if !missing.is_empty() {
        return Err(TransferError::Source(format!(
            "{} lacks migrations {}: open it once with this version (`encaisse check` \
             then `encaisse run`, or any ledger command) before migrating",
            path.display(),
            missing.join(", ")
        )));
    }
    Ok(conn)
}

/// Tables of the SQLite ledger, parents before the tables whose foreign keys name them,
/// then by name.
fn source_tables(conn: &Connection) -> Result<Vec<String>, TransferError> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in &names {
        let mut fk = conn.prepare("SELECT \"table\" FROM pragma_foreign_key_list(?1)")?;
        let of: BTreeSet<String> = fk
            .query_map([name], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        parents.insert(
            name.clone(),
            of.into_iter()
                .filter(|p| p != name && names.contains(p))
                .collect(),
        );
    }
    let mut ordered: Vec<String> = Vec::new();
    while ordered.len() < names.len() {
        let before = ordered.len();
        for name in &names {
            if !ordered.contains(name) && parents[name].iter().all(|p| ordered.contains(p)) {
                ordered.push(name.clone());
            }
        }
        if ordered.len() == before {
            // A cycle of foreign keys: the rest in name order (PostgreSQL will say which row).
            for name in &names {
                if !ordered.contains(name) {
                    ordered.push(name.clone());
                }
            }
        }
    }
    Ok(ordered)
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

fn count_source(conn: &Connection, table: &str) -> Result<u64, TransferError> {
    let n: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM {}", quoted(table)),
        [],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or_default())
}

fn count_target(tx: &mut Tx<'_>, table: &str) -> Result<u64, LedgerError> {
    tx.query_one(
        &format!("SELECT COUNT(*) FROM {}", quoted(table)),
        &[],
        |r| r.get(0),
    )
}

/// Tables of the target's schema (`current_schema()`), with their columns.
fn target_tables(tx: &mut Tx<'_>) -> Result<BTreeMap<String, BTreeSet<String>>, LedgerError> {
    let rows: Vec<(String, String)> = tx.query_all(
        "SELECT c.table_name::text, c.column_name::text
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (table, column) in rows {
        tables.entry(table).or_default().insert(column);
    }
    Ok(tables)
}

/// Refuses a target holding any row outside [`NOT_COPIED`].
pub fn check_empty(tx: &mut Tx<'_>) -> Result<(), TransferError> {
    if !tx.is_postgres() {
        return Err(TransferError::NotPostgres(tx.backend()));
    }
    let mut filled = Vec::new();
    for table in target_tables(tx)?.keys() {
        if NOT_COPIED.contains(&table.as_str()) {
            continue;
        }
        let rows = count_target(tx, table)?;
        if rows > 0 {
            filled.push((table.clone(), rows));
        }
    }
    if filled.is_empty() {
        Ok(())
    } else {
        Err(TransferError::NotEmpty(filled))
    }
}

/// Copies every table of `source` into the PostgreSQL transaction `tx` (see the module);
/// what was copied, table by table. `batch_rows` rows per `INSERT` at most.
pub fn copy_into(
    source: &Connection,
    tx: &mut Tx<'_>,
    batch_rows: usize,
) -> Result<Vec<Copied>, TransferError> {
    check_empty(tx)?;
    let target = target_tables(tx)?;
    let mut copied = Vec::new();
    for table in source_tables(source)? {
        if NOT_COPIED.contains(&table.as_str()) {
            continue;
        }
        let source_rows = count_source(source, &table)?;
        let Some(target_columns) = target.get(&table) else {
            if source_rows > 0 {
                return Err(TransferError::MissingTable {
                    table,
                    rows: source_rows,
                });
            }
            continue;
        };
        let columns: Vec<String> = {
            let mut stmt = source.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
            stmt.query_map([&table], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        if let Some(column) = columns.iter().find(|c| !target_columns.contains(*c)) {
            return Err(TransferError::MissingColumn {
                table,
                column: column.clone(),
            });
        }
        tx.execute_script(&format!(
            "ALTER TABLE {} DISABLE TRIGGER USER",
            quoted(&table)
        ))?;
        copy_table(source, tx, &table, &columns, batch_rows)?;
        tx.execute_script(&format!(
            "ALTER TABLE {} ENABLE TRIGGER USER",
            quoted(&table)
        ))?;
        reset_identities(tx, &table, &columns)?;
        let target_rows = count_target(tx, &table)?;
        if target_rows != source_rows {
            return Err(TransferError::CountMismatch {
                table,
                source_rows,
                target_rows,
            });
        }
        copied.push(Copied {
            table,
            source_rows,
            target_rows,
        });
    }
    Ok(copied)
}

fn copy_table(
    source: &Connection,
    tx: &mut Tx<'_>,
    table: &str,
    columns: &[String],
    batch_rows: usize,
) -> Result<(), TransferError> {
    let list = columns
        .iter()
        .map(|c| quoted(c))
        .collect::<Vec<_>>()
        .join(", ");
    let per_batch = batch_rows.clamp(1, (MAX_PARAMS / columns.len().max(1)).max(1));
    let mut stmt = source.prepare(&format!("SELECT {list} FROM {}", quoted(table)))?;
    let mut rows = stmt.query([])?;
    let mut batch: Vec<Vec<Owned>> = Vec::with_capacity(per_batch);
    loop {
        let row = rows.next()?;
        if let Some(row) = row {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Owned::Null,
                    ValueRef::Integer(n) => Owned::Int(n),
                    ValueRef::Text(t) => Owned::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Owned::Blob(b.to_vec()),
                    ValueRef::Real(_) => {
                        return Err(TransferError::Float {
                            table: table.to_string(),
                            column: column.clone(),
                        });
                    }
                });
            }
            batch.push(values);
        }
        let last = row.is_none();
        if batch.len() == per_batch || (last && !batch.is_empty()) {
            insert_batch(tx, table, &list, columns.len(), &batch)?;
            batch.clear();
        }
        if last {
            return Ok(());
        }
    }
}

fn insert_batch(
    tx: &mut Tx<'_>,
    table: &str,
    list: &str,
    width: usize,
    batch: &[Vec<Owned>],
) -> Result<(), LedgerError> {
    let mut placeholders = Vec::with_capacity(batch.len());
    for r in 0..batch.len() {
        let row: Vec<String> = (1..=width).map(|c| format!("?{}", r * width + c)).collect();
        placeholders.push(format!("({})", row.join(", ")));
    }
    let sql = format!(
        "INSERT INTO {} ({list}) OVERRIDING SYSTEM VALUE VALUES {}",
        quoted(table),
        placeholders.join(", ")
    );
    let values: Vec<Value<'_>> = batch.iter().flatten().map(Owned::value).collect();
    let params: Vec<&dyn Param> = values.iter().map(|v| v as &dyn Param).collect();
    tx.execute(&sql, &params)?;
    Ok(())
}

/// Moves the sequence of each identity (or serial) column past the largest copied id.
fn reset_identities(tx: &mut Tx<'_>, table: &str, columns: &[String]) -> Result<(), LedgerError> {
    for column in columns {
        let sequence: Option<String> = tx.query_one(
            "SELECT pg_get_serial_sequence(CAST(?1 AS TEXT), CAST(?2 AS TEXT))",
            &[&quoted(table), &column.as_str()],
            |r| r.get(0),
        )?;
        if let Some(sequence) = sequence {
            tx.query_one(
                &format!(
                    "SELECT setval(CAST(?1 AS TEXT)::regclass, COALESCE(MAX({c}), 1), MAX({c}) IS NOT NULL) FROM {t}",
                    c = quoted(column),
                    t = quoted(table)
                ),
                &[&sequence],
                |r| r.get::<i64>(0),
            )?;
        }
    }
    Ok(())
}

/// The type family of a PostgreSQL column, to read it generically.
fn pg_kind(data_type: &str) -> u8 {
    match data_type {
        "bigint" | "integer" | "smallint" | "boolean" => b'i',
        "bytea" => b'b',
        _ => b't',
    }
}

/// Copies every table of the PostgreSQL ledger `tx` into `target`, an SQLite ledger of the
/// same migrations, empty: a snapshot for tools that read the SQLite file (the cluster chaos
/// run's checks). The snapshot's triggers are dropped first, so derived tables are copied
/// as they are; its foreign keys are not checked.
pub fn snapshot_into_sqlite(
    tx: &mut Tx<'_>,
    target: &Connection,
) -> Result<Vec<Copied>, TransferError> {
    if !tx.is_postgres() {
        return Err(TransferError::NotPostgres(tx.backend()));
    }
    target.execute_batch("PRAGMA foreign_keys = OFF")?;
    let triggers: Vec<String> = {
        let mut stmt = target.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for trigger in triggers {
        target.execute_batch(&format!("DROP TRIGGER {}", quoted(&trigger)))?;
    }
    let columns: Vec<(String, String, String)> = tx.query_all(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
         ORDER BY c.table_name, c.ordinal_position",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut tables: BTreeMap<String, Vec<(String, u8)>> = BTreeMap::new();
    for (table, column, data_type) in columns {
        tables
            .entry(table)
            .or_default()
            .push((column, pg_kind(&data_type)));
    }
    let sqlite_tables: BTreeSet<String> = source_tables(target)?.into_iter().collect();
    let mut copied = Vec::new();
    for (table, columns) in tables {
        if NOT_COPIED.contains(&table.as_str()) || !sqlite_tables.contains(&table) {
            continue;
        }
        let list = columns
            .iter()
            .map(|(c, _)| quoted(c))
            .collect::<Vec<_>>()
            .join(", ");
        let marks = (1..=columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut insert = target.prepare(&format!(
            "INSERT INTO {} ({list}) VALUES ({marks})",
            quoted(&table)
        ))?;
        let mut rows = 0u64;
        let mut failed: Option<rusqlite::Error> = None;
        tx.query_each(
            &format!("SELECT {list} FROM {}", quoted(&table)),
            &[],
            |row| {
                let mut values = Vec::with_capacity(columns.len());
                for (i, (_, kind)) in columns.iter().enumerate() {
                    values.push(match kind {
                        b'i' => row.get::<Option<i64>>(i)?.map_or(Owned::Null, Owned::Int),
                        b'b' => row
                            .get::<Option<Vec<u8>>>(i)?
                            .map_or(Owned::Null, Owned::Blob),
                        _ => row
                            .get::<Option<String>>(i)?
                            .map_or(Owned::Null, Owned::Text),
                    });
                }
                let params: Vec<Value<'_>> = values.iter().map(Owned::value).collect();
                if failed.is_none() {
                    match insert.execute(rusqlite::params_from_iter(params.iter())) {
                        Ok(_) => rows += 1,
                        Err(e) => failed = Some(e),
                    }
                }
                Ok::<_, LedgerError>(())
            },
        )?;
        if let Some(e) = failed {
            return Err(TransferError::Source(format!("{table}: {e}")));
        }
        copied.push(Copied {
            table,
            source_rows: rows,
            target_rows: rows,
        });
    }
    Ok(copied)
}
