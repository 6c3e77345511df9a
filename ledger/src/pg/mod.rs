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

use std::sync::Mutex;

use postgres::{Client, NoTls};

use crate::error::LedgerError;
use crate::migrations::Migration;
use crate::stores::Tx;

/// Idle connections kept open.
const IDLE: usize = 8;
/// Key of the advisory lock that serialises migrations when several daemons start at once.
const MIGRATION_LOCK: i64 = 0x656e_6361_6973_7365; // "encaisse"

/// The connections of a PostgreSQL ledger.
pub(crate) struct Pool {
    config: postgres::Config,
    idle: Mutex<Vec<Client>>,
}

impl Pool {
    /// Connects once (so a wrong URL fails at open, not at the first message) and applies
    /// the pending migrations. Runs on a thread of its own: the caller may be async.
    pub(crate) fn open(url: &str, all: &'static [Migration]) -> Result<Self, LedgerError> {
        let config: postgres::Config = url.parse()?;
        let pool = Pool {
            config,
            idle: Mutex::new(Vec::new()),
        };
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut client = pool.connect()?;
                    migrate(&mut client, all)?;
                    pool.give_back(client);
                    Ok(())
                })
                .join()
                .unwrap_or(Err(LedgerError::WriterGone))
        })?;
        Ok(pool)
    }

    fn connect(&self) -> Result<Client, LedgerError> {
        Ok(self.config.connect(NoTls)?)
    }

    fn take(&self) -> Result<Client, LedgerError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match pooled {
            Some(client) if !client.is_closed() => Ok(client),
            _ => self.connect(),
        }
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE
        {
            idle.push(client);
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
        let mut client = self.take().map_err(E::from)?;
        let begin = if read_only {
            "BEGIN ISOLATION LEVEL READ COMMITTED, READ ONLY"
        } else {
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        };
        client
            .batch_execute(begin)
            .map_err(|e| E::from(LedgerError::from(e)))?;
        let outcome = f(&mut Tx::postgres(&mut client));
        let end = if outcome.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        match (client.batch_execute(end), outcome) {
            (Ok(()), outcome) => {
                self.give_back(client);
                outcome
            }
            // The connection's state is unknown: it is dropped (here, on a blocking thread).
            (Err(e), Ok(_)) => Err(E::from(LedgerError::Commit(e.to_string()))),
            (Err(_), Err(e)) => Err(e),
        }
    }
}

impl Drop for Pool {
    /// Idle connections are closed on a thread of their own: closing one blocks on its
    /// runtime, which panics on an async thread (where the last `Ledger` handle may go).
    fn drop(&mut self) {
        let idle = self.idle.get_mut().map(std::mem::take).unwrap_or_default();
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
            .map_err(|e| LedgerError::Migration {
                area: migration.area,
                version: migration.version,
                message: e.to_string(),
            })?;
        tx.execute(
            "INSERT INTO schema_migration (area, version, applied_at) VALUES ($1, $2, $3)",
            &[&migration.area, &version, &crate::clock::now()],
        )?;
        tx.commit()?;
        tracing::info!(
            area = migration.area,
            version = migration.version,
            "Ledger migration applied (PostgreSQL)."
        );
    }
    Ok(())
}

/// A count the ledger stores as `integer`.
pub(crate) fn count(value: i32) -> Result<u32, LedgerError> {
    u32::try_from(value).map_err(|_| LedgerError::Corrupt(format!("negative count {value}")))
}
