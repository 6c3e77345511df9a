use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use crate::error::LedgerError;
use crate::migrations::{self, Migration};
use crate::stores::Tx;
use crate::url::LedgerUrl;

/// Told once the batch's transaction has committed (`Ok`) or failed (`Err(message)`).
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write request: runs inside the batch transaction, returns how to answer its caller.
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Most write requests joined into one transaction.
const MAX_BATCH: usize = 512;
/// Read-only connections kept open, and most reads running at once: a burst of concurrent
/// reads used to start a blocking thread and open a fresh connection (its own page and
/// statement caches) per read beyond the pool, and the daemon grew to ~120 threads and
/// their malloc arenas under load.
const READ_POOL: usize = 4;
/// Prepared statements each connection keeps (`prepare_cached`): every hot statement of the
/// stages and the runtime, so none is parsed again per message.
const STATEMENT_CACHE: usize = 256;

/// Handle to the ledger. Cheap to clone; all clones share the writer thread and read pool
/// (SQLite) or the connection pool (PostgreSQL).
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Backend>,
}

enum Backend {
    Sqlite(Inner),
    /// Shared with the blocking threads that run its transactions.
    Postgres(Arc<crate::pg::Pool>),
}

struct Inner {
    path: PathBuf,
    writer: mpsc::UnboundedSender<Job>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled reader: async reads wait here rather than on new threads.
    read_slots: Arc<tokio::sync::Semaphore>,
}

/// What a closure written against `rusqlite` gets on a PostgreSQL ledger: its area has no
/// PostgreSQL store yet.
fn sqlite_only() -> LedgerError {
    LedgerError::Unsupported(
        "this operation is written for SQLite and its area has no PostgreSQL store yet \
         (docs/scaling.md)"
            .into(),
    )
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Creates the database file with the daemon's file mode before SQLite does (SQLite makes
/// its `-wal` and `-shm` files with the database file's mode), and narrows the mode of the
/// three files when an earlier version left them wider.
fn restrict_database_files(path: &Path) -> Result<(), LedgerError> {
    let io = |source| LedgerError::Io {
        path: path.display().to_string(),
        source,
    };
    if !path.exists() {
        crate::access::create_file(path).map_err(io)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            crate::access::restrict_file(&file).map_err(io)?;
        }
    }
    Ok(())
}

/// The writer's page cache, in KiB (SQLite reads a negative `cache_size` as KiB).
const WRITER_CACHE_KIB: i64 = -16_384;

fn open_writer(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    // WAL: readers never block the writer. FULL: a commit is on disk when it returns, which
    // is what "effects durable before the ack" needs.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LedgerError::Unsupported(format!(
            "{} cannot use WAL journal mode (got {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The page cache holds a group commit's pages (the 2 MB default spilled dirty pages
    // into the WAL mid-transaction and read pages back: 11 % of the writer's time under a
    // big export, measured with `perf`). The savepoints' statement journals stay on disk
    // (`temp_store` left as it is): in memory they saved a write syscall per page, but a
    // job that writes a million rows (the facts of a PES file) held a copy of every page it
    // changed, and the daemon's peak went from 86 to 303 MB at 1,000,000 invoices. (Keeping
    // only small journals in memory, `SQLITE_CONFIG_STMTJRNL_SPILL`, fails with "database
    // or disk is full" past 128 KiB: the unix VFS writes at most 128 KiB at once, and the
    // spill copies the journal in one write.)
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
    Ok(conn)
}

/// Applies the pending migrations of `all`; `announce` logs each one (not for a throwaway
/// in-memory copy).
pub(crate) fn migrate(
    conn: &mut Connection,
    all: &[Migration],
    announce: bool,
) -> Result<(), LedgerError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migration (
             area TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,
             PRIMARY KEY (area, version))",
    )?;
    let mut areas: Vec<&'static str> = all.iter().map(|m| m.area).collect();
    areas.dedup();
    for migration in all {
        let applied: Option<u32> = conn
            .query_row(
                "SELECT version FROM schema_migration WHERE area = ?1 AND version = ?2",
                (migration.area, migration.version),
                |r| r.get(0),
            )
            .optional()?;
        if applied.is_some() {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(migration.sql)
            .map_err(|e| migration.failed(e))?;
        tx.execute(
            "INSERT INTO schema_migration (area, version, applied_at)
             VALUES (?1, ?2, ?3)",
            (migration.area, migration.version, crate::clock::now()),
        )?;
        tx.commit()?;
        if announce {
            migration.announce("sqlite");
        }
    }
    Ok(())
}

/// The writer loop: take every pending job, run each in its own savepoint inside one
/// transaction, commit once, and only then answer the callers.
fn writer_loop(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "Ledger could not begin a transaction.");
                // Dropping the jobs drops their senders: callers get WriterGone and retry.
                continue;
            }
        };
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(&tx)).collect();
        let committed = tx.commit().map_err(|e| {
            tracing::error!(error = %e, "Ledger commit failed; the batch's callers will retry.");
            e.to_string()
        });
        for reply in replies {
            reply(committed.clone());
        }
    }
}

/// Runs one job in its own savepoint of the batch transaction: released when `f` succeeds,
/// rolled back (alone) when it fails. A savepoint statement that fails is a ledger failure
/// and wins over `f`'s own error, since the job's changes may then not be undone.
fn run_in_savepoint<T, E, F>(conn: &Connection, f: F) -> Result<T, E>
where
    E: From<LedgerError>,
    F: FnOnce(&Connection) -> Result<T, E>,
{
    // Cached statements: a group commit runs these for every job, and parsing them again
    // each time was a visible part of the writer's time.
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(|e| E::from(LedgerError::from(e)))
    };
    run("SAVEPOINT job")?;
    match f(conn) {
        Ok(value) => {
            run("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            run("ROLLBACK TO job")?;
            run("RELEASE job")?;
            Err(e)
        }
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` and applies pending migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        Self::open_with(path, migrations::ALL)
    }

    /// Opens with an explicit migration list (tests of one area).
    pub fn open_with(path: impl AsRef<Path>, all: &[Migration]) -> Result<Self, LedgerError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            crate::access::create_dir_all(parent).map_err(|source| LedgerError::Io {
                path: parent.display().to_string(),
                source,
            })?;
        }
        restrict_database_files(&path)?;
        let mut conn = open_writer(&path)?;
        migrate(&mut conn, all, true)?;
        crate::checkpoint::take_over(&mut conn, &path)?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|source| LedgerError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Ledger {
            inner: Arc::new(Backend::Sqlite(Inner {
                path,
                writer: tx,
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(tokio::sync::Semaphore::new(READ_POOL)),
            })),
        })
    }

    /// Opens the ledger `url` names: [`Ledger::open`] for SQLite; for PostgreSQL, connects
    /// and applies the pending PostgreSQL migrations ([`migrations::POSTGRES`]).
    pub fn open_url(url: &LedgerUrl) -> Result<Self, LedgerError> {
        match url {
            LedgerUrl::Sqlite(path) => Self::open(path),
            LedgerUrl::Postgres(url) => Ok(Ledger {
                inner: Arc::new(Backend::Postgres(Arc::new(crate::pg::Pool::open(
                    url,
                    migrations::POSTGRES,
                )?))),
            }),
        }
    }

    /// Path of the database file (empty for a PostgreSQL ledger).
    pub fn path(&self) -> &Path {
        match &*self.inner {
            Backend::Sqlite(inner) => &inner.path,
            Backend::Postgres(_) => Path::new(""),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match &*self.inner {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    fn sqlite(&self) -> Result<&Inner, LedgerError> {
        match &*self.inner {
            Backend::Sqlite(inner) => Ok(inner),
            Backend::Postgres(_) => Err(sqlite_only()),
        }
    }

    /// Runs `f` in one write transaction on either backend and returns its value once the
    /// transaction is durable, or the caller's error with the transaction's changes rolled
    /// back. On SQLite this is [`Ledger::write_with`] (group commit, a savepoint per job);
    /// on PostgreSQL one transaction on a pooled connection, on a blocking thread.
    pub async fn transact<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        self.neutral(false, f).await
    }

    /// Runs `f` on a read-only transaction of either backend (a pooled read connection on
    /// SQLite, a `READ ONLY` transaction on PostgreSQL).
    pub async fn inspect<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        self.neutral(true, f).await
    }

    async fn neutral<T, E, F>(&self, read_only: bool, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let pool = match &*self.inner {
            Backend::Sqlite(_) if read_only => {
                return self.read_with(move |c| f(&mut Tx::sqlite(c))).await;
            }
            Backend::Sqlite(_) => return self.write_with(move |c| f(&mut Tx::sqlite(c))).await,
            Backend::Postgres(pool) => Arc::clone(pool),
        };
        tokio::task::spawn_blocking(move || pool.run(read_only, f))
            .await
            .map_err(|_| E::from(LedgerError::WriterGone))?
    }

    /// Runs `f` inside the next group-committed transaction and returns its result once the
    /// transaction is durable. If `f` fails, its changes are rolled back (others' are not).
    pub async fn write<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        self.write_with(f).await
    }

    /// [`Ledger::write`] for a closure that fails with the caller's own error `E`: a business
    /// refusal rolls the job's changes back and comes back as itself, so callers need not
    /// smuggle it through a [`LedgerError`]. Failures of the ledger itself (savepoint,
    /// commit, writer gone) arrive as `E::from(LedgerError)`.
    pub async fn write_with<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (result_tx, result_rx) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let outcome = run_in_savepoint(conn, f);
            Box::new(move |committed: Result<(), String>| {
                let answer = match (outcome, committed) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(message)) => Err(E::from(LedgerError::Commit(message))),
                    (Ok(value), Ok(())) => Ok(value),
                };
                let _ = result_tx.send(answer);
            })
        });
        self.sqlite()?
            .writer
            .send(job)
            .map_err(|_| E::from(LedgerError::WriterGone))?;
        result_rx
            .await
            .map_err(|_| E::from(LedgerError::WriterGone))?
    }

    /// Runs a read-only query on a pooled connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        self.read_with(f).await
    }

    /// [`Ledger::read`] for a closure that fails with the caller's own error `E`. Waits for
    /// one of the pooled read connections rather than starting a thread and opening a fresh
    /// connection per read (a burst of reads did that, each with its own caches).
    pub async fn read_with<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let permit = self
            .sqlite()?
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| E::from(LedgerError::WriterGone))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.take_reader()?;
            let result = f(&conn);
            this.give_back(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|_| E::from(LedgerError::WriterGone))?
    }

    /// [`Ledger::inspect`] on the calling thread, for blocking contexts (a tool polling the
    /// ledger from outside the daemon). On PostgreSQL the synchronous client must not run
    /// on an async worker thread: call it from a blocking thread or inside
    /// `tokio::task::block_in_place`.
    pub fn inspect_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        E: From<LedgerError>,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    {
        match &*self.inner {
            Backend::Sqlite(_) => {
                let conn = self.take_reader()?;
                let result = f(&mut Tx::sqlite(&conn));
                self.give_back(conn);
                result
            }
            Backend::Postgres(pool) => pool.run(true, f),
        }
    }

    /// Synchronous read, for the CLI and for blocking contexts.
    pub fn read_blocking<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        F: FnOnce(&Connection) -> Result<T, LedgerError>,
    {
        let conn = self.take_reader()?;
        let result = f(&conn);
        self.give_back(conn);
        result
    }

    /// Returns a read connection to the pool (dropped when the pool is full).
    fn give_back(&self, conn: Connection) {
        let Ok(inner) = self.sqlite() else {
            return;
        };
        if let Ok(mut pool) = inner.readers.lock()
            && pool.len() < READ_POOL
        {
            pool.push(conn);
        }
    }

    fn take_reader(&self) -> Result<Connection, LedgerError> {
        let inner = self.sqlite()?;
        if let Ok(mut pool) = inner.readers.lock()
            && let Some(conn) = pool.pop()
        {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &inner.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_are_durable_and_failures_roll_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let mut handles = Vec::new();
        for i in 0..200u32 {
            let l = ledger.clone();
            handles.push(tokio::spawn(async move {
                l.write(move |c| {
                    c.execute(
                        "INSERT INTO invoice_event (invoice_key, tenant, at, kind, detail)
                         VALUES (?1, 't', '2026-01-01T00:00:00Z', 'issued', '{}')",
                        [format!("t/2026/{i}")],
                    )?;
                    if i % 10 == 0 {
                        return Err(LedgerError::Conflict("refused".into()));
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut ok = 0;
        for h in handles {
            if h.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 180);
        let count: i64 = ledger
            .read(|c| Ok(c.query_row("SELECT count(*) FROM invoice_event", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(count, 180, "failed jobs must roll back, others must commit");
        drop(ledger);
        // Reopening applies no migration twice and sees the committed rows.
        let again = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let count: i64 = again
            .read_blocking(|c| {
                Ok(c.query_row("SELECT count(*) FROM invoice_event", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(count, 180);
    }

    /// A caller's own error type: a business refusal and the ledger's failures.
    #[derive(Debug)]
    enum Refusal {
        Business(u32),
        Ledger(LedgerError),
    }

    impl From<LedgerError> for Refusal {
        fn from(e: LedgerError) -> Self {
            Refusal::Ledger(e)
        }
    }

    fn insert_event(c: &Connection, key: &str) -> Result<(), LedgerError> {
        c.execute(
            "INSERT INTO invoice_event (invoice_key, tenant, at, kind, detail)
             VALUES (?1, 't', '2026-01-01T00:00:00Z', 'issued', '{}')",
            [key],
        )?;
        Ok(())
    }

    #[tokio::test]
    async fn a_callers_error_rolls_its_job_back_and_comes_back_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let mut handles = Vec::new();
        for i in 0..50u32 {
            let l = ledger.clone();
            handles.push(tokio::spawn(async move {
                l.write_with(move |c| {
                    insert_event(c, &format!("t/2026/{i}"))?;
                    if i % 5 == 0 {
                        return Err(Refusal::Business(i));
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut refused = Vec::new();
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => {}
                Err(Refusal::Business(i)) => refused.push(i),
                Err(Refusal::Ledger(e)) => panic!("unexpected ledger failure: {e}"),
            }
        }
        refused.sort_unstable();
        assert_eq!(refused, (0..50).step_by(5).collect::<Vec<u32>>());
        let keys: Vec<String> = ledger
            .read(|c| {
                let mut stmt = c.prepare("SELECT invoice_key FROM invoice_event")?;
                let keys = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(keys)
            })
            .await
            .unwrap();
        assert_eq!(keys.len(), 40, "the refused jobs' rows are rolled back");
        assert!(!keys.contains(&"t/2026/5".to_string()));
        assert!(keys.contains(&"t/2026/6".to_string()));
    }

    #[tokio::test]
    async fn ledger_failures_reach_the_callers_error_type() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let failed = ledger
            .write_with(|c| -> Result<(), Refusal> {
                c.execute("INSERT INTO no_such_table VALUES (1)", [])
                    .map_err(LedgerError::from)?;
                Ok(())
            })
            .await;
        assert!(matches!(
            failed,
            Err(Refusal::Ledger(LedgerError::Sqlite(_)))
        ));
        let read = ledger
            .read_with(|c| -> Result<i64, Refusal> {
                let n: i64 = c
                    .query_row("SELECT count(*) FROM invoice_event", [], |r| r.get(0))
                    .map_err(LedgerError::from)?;
                if n == 0 {
                    return Err(Refusal::Business(0));
                }
                Ok(n)
            })
            .await;
        assert!(matches!(read, Err(Refusal::Business(0))));
    }
}
