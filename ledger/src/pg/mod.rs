//! The PostgreSQL backend: a small pool of connections of the synchronous `postgres` crate,
//! used from blocking threads so that store operations stay plain functions over a
//! transaction, as on SQLite.
//!
//! Each [`crate::Ledger::transact`] is one transaction at `READ COMMITTED`, with explicit
//! row locks where order matters (a batch group); PostgreSQL's own group commit replaces the
//! SQLite writer's. A failed statement, a serialization failure or a deadlock, a lost
//! connection: [`LedgerError::Postgres`], transient, so the message is retried.
//!
//! A `postgres::Client` runs its own small runtime and must never be used, nor dropped, on
//! an async thread: every use is on a blocking thread, and the pool drops its idle
//! connections on a thread of its own.

pub(crate) mod batch;
pub(crate) mod core;
pub(crate) mod ops;
pub(crate) mod sepa;

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, RowIter};

use crate::error::LedgerError;
use crate::migrations::Migration;
use crate::sql::StatementCache;
use crate::stores::Tx;

/// Most connections open at once: concurrent transactions beyond it wait for one (a
/// server's `max_connections` is shared with every daemon and tool).
const MAX_CONNECTIONS: usize = 16;
/// Key of the advisory lock that serialises migrations when several daemons start at once.
const MIGRATION_LOCK: i64 = 0x656e_6361_6973_7365; // "encaisse"

/// A connection inside a transaction with its prepared statements: what the store
/// operations of this module run on. SQL texts may use `$N` or the portable `?N` (numbered
/// when prepared). The client's own `execute`/`query` with an SQL text
/// prepare the statement again on every call (a round trip of its own before the one that
/// runs it); these prepare each text once per connection.
pub(crate) struct Prepared<'a> {
    client: &'a mut Client,
    statements: &'a mut StatementCache,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<'a> Prepared<'a> {
    pub(crate) fn new(client: &'a mut Client, statements: &'a mut StatementCache) -> Self {
        Prepared { client, statements }
    }

    pub(crate) fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, LedgerError> {
        let statement = self.statements.prepare(self.client, sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    pub(crate) fn query(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, LedgerError> {
        let statement = self.statements.prepare(self.client, sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, LedgerError> {
        let statement = self.statements.prepare(self.client, sql)?;
        Ok(self.client.query_opt(&statement, params)?)
    }

    pub(crate) fn query_one(&mut self, sql: &str, params: &Params<'_>) -> Result<Row, LedgerError> {
        let statement = self.statements.prepare(self.client, sql)?;
        Ok(self.client.query_one(&statement, params)?)
    }

    /// Streams the rows instead of collecting them.
    pub(crate) fn query_raw(
        &mut self,
        sql: &str,
        params: [&(dyn ToSql + Sync); 4],
    ) -> Result<RowIter<'_>, LedgerError> {
        let statement = self.statements.prepare(self.client, sql)?;
        Ok(self.client.query_raw(&statement, params)?)
    }
}

/// The connections of a PostgreSQL ledger.
pub(crate) struct Pool {
    config: postgres::Config,
    slots: Mutex<Slots>,
    freed: Condvar,
}

/// Idle connections, and how many are open (idle or lent).
#[derive(Default)]
struct Slots {
    idle: Vec<Conn>,
    open: usize,
}

/// A connection and the statements prepared on it (they live as long as it does).
struct Conn {
    client: Client,
    statements: StatementCache,
}

/// A connection lent by the pool: back to it when dropped, or its slot freed when the
/// connection is broken (or the transaction panicked).
struct Lease<'p> {
    pool: &'p Pool,
    client: Option<Conn>,
    usable: bool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let client = self.client.take();
        let mut slots = self.pool.lock();
        match client {
            Some(conn) if self.usable && !conn.client.is_closed() => slots.idle.push(conn),
            _ => slots.open = slots.open.saturating_sub(1),
        }
        drop(slots);
        self.pool.freed.notify_one();
    }
}

impl Pool {
    /// Connects once (so a wrong URL fails at open, not at the first message) and applies
    /// the pending migrations. Runs on a thread of its own: the caller may be async.
    pub(crate) fn open(url: &str, all: &'static [Migration]) -> Result<Self, LedgerError> {
        let config: postgres::Config = url.parse()?;
        let pool = Pool {
            config,
            slots: Mutex::new(Slots::default()),
            freed: Condvar::new(),
        };
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut lease = pool.take()?;
                    match lease.client.as_mut() {
                        Some(conn) => migrate(&mut conn.client, all),
                        None => Err(LedgerError::WriterGone),
                    }
                })
                .join()
                .unwrap_or(Err(LedgerError::WriterGone))
        })?;
        Ok(pool)
    }

    /// The slots, even after a panic elsewhere (they hold no invariant a panic can break).
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, a new one while fewer than [`MAX_CONNECTIONS`] are open, or the
    /// first one given back.
    fn take(&self) -> Result<Lease<'_>, LedgerError> {
        let mut slots = self.lock();
        loop {
            if let Some(conn) = slots.idle.pop() {
                if !conn.client.is_closed() {
                    return Ok(self.lease(conn));
                }
                slots.open -= 1;
                continue;
            }
            if slots.open < MAX_CONNECTIONS {
                slots.open += 1;
                drop(slots);
                return match self.config.connect(NoTls) {
                    Ok(client) => Ok(self.lease(Conn {
                        client,
                        statements: StatementCache::default(),
                    })),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e.into())
                    }
                };
            }
            slots = self
                .freed
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lease(&self, conn: Conn) -> Lease<'_> {
        Lease {
            pool: self,
            client: Some(conn),
            usable: true,
        }
    }

    /// Runs `f` in one transaction (read-only when `read_only`) on a pooled connection:
    /// committed when it returns `Ok`, rolled back otherwise. Blocking: call it from a
    /// blocking thread.
    pub(crate) fn run<T, E, F>(&self, read_only: bool, f: F) -> Result<T, E>
    where
        E: From<LedgerError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        let mut lease = self.take().map_err(E::from)?;
        let Some(Conn { client, statements }) = lease.client.as_mut() else {
            return Err(E::from(LedgerError::WriterGone));
        };
        let begin = if read_only {
            "BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY"
        } else {
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        };
        if let Err(e) = client.batch_execute(begin) {
            lease.usable = false;
            return Err(E::from(LedgerError::from(e)));
        }
        let outcome = f(&mut Tx::postgres(client, statements));
        let end = if outcome.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        match (client.batch_execute(end), outcome) {
            (Ok(()), outcome) => outcome,
            // The connection's state is unknown: it is closed, not lent again.
            (Err(e), Ok(_)) => {
                lease.usable = false;
                Err(E::from(LedgerError::Commit(e.to_string())))
            }
            (Err(_), Err(e)) => {
                lease.usable = false;
                Err(e)
            }
        }
    }
}

impl Drop for Pool {
    /// Idle connections are closed on a thread of their own: closing one blocks on its
    /// runtime, which panics on an async thread (where the last `Ledger` handle may go).
    fn drop(&mut self) {
        let slots = self.slots.get_mut().unwrap_or_else(PoisonError::into_inner);
        let idle = std::mem::take(&mut slots.idle);
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

/// Applies the pending migrations, one transaction each, under an advisory lock so that
/// daemons starting together apply each one once.
fn migrate(client: &mut Client, all: &[Migration]) -> Result<(), LedgerError> {
    for migration in all {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migration (
                 area text NOT NULL, version integer NOT NULL, applied_at text NOT NULL,
                 PRIMARY KEY (area, version))",
        )?;
        let version = i32::try_from(migration.version).map_err(|_| {
            LedgerError::Corrupt(format!("migration version {}", migration.version))
        })?;
        let applied = tx
            .query_opt(
                "SELECT version FROM schema_migration WHERE area = $1 AND version = $2",
                &[&migration.area, &version],
            )?
            .is_some();
        if applied {
            tx.commit()?;
            continue;
        }
        tx.batch_execute(migration.sql)
            .map_err(|e| migration.failed(crate::error::postgres_detail(&e)))?;
        tx.execute(
            "INSERT INTO schema_migration (area, version, applied_at) VALUES ($1, $2, $3)",
            &[&migration.area, &version, &crate::clock::now()],
        )?;
        tx.commit()?;
        migration.announce("postgres");
    }
    Ok(())
}

/// A count the ledger stores as `integer`.
pub(crate) fn count(value: i32) -> Result<u32, LedgerError> {
    u32::try_from(value).map_err(|_| LedgerError::Corrupt(format!("negative count {value}")))
}
