//! The daemon's ledger, read from outside (a read-only SQLite connection beside the running
//! daemon: WAL lets it read without blocking the writer; or the PostgreSQL ledger the daemon
//! runs on): how far a run has gone, and when each step ended. The queries are the ledger's
//! portable statements ([`Tx`]), the same on both backends.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use encaisse_ledger::Tx;
use encaisse_ledger::rusqlite::{Connection, OpenFlags};
use encaisse_ledger::sql::Row;

use super::error::{BenchError, Result};

/// A read-only view of the daemon's ledger.
pub struct LedgerView {
    source: Source,
}

enum Source {
    /// `<data_dir>/ledger.sqlite`, opened read-only.
    Sqlite(Connection),
    /// A PostgreSQL ledger, read in `READ ONLY` transactions.
    Postgres(encaisse_ledger::Ledger),
}

/// The Polyfac run of an export, once `polyfac.ingest` closed it.
#[derive(Debug, Clone)]
pub struct IngestRun {
    pub run_id: String,
    /// Invoices published by the run (titres and régie).
    pub invoices: u64,
    /// Invoices the ingest rejected (invalid or refused).
    pub refused: u64,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Where `helios.titres` stands for a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeliosProgress {
    /// Files planned and written.
    pub files_written: u64,
    /// Files planned and not written yet.
    pub files_unwritten: u64,
    /// Titres in the written files.
    pub titres_written: u64,
    /// Invoices of the run refused before numbering.
    pub refused: u64,
}

/// When each step of a run ended, from the ledger's own timestamps.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub ingest_closed: Option<DateTime<Utc>>,
    /// The last `helios.titres` group of the run closed: every invoice and the run's
    /// `billing_run.closed` were consumed.
    pub helios_collected: Option<DateTime<Utc>>,
    pub last_file_planned: Option<DateTime<Utc>>,
    pub last_file_written: Option<DateTime<Utc>>,
}

/// A count or size (an `i64` column), as `u64`.
fn count(r: &Row<'_>, i: usize) -> std::result::Result<u64, encaisse_ledger::LedgerError> {
    Ok(u64::try_from(r.get::<i64>(i)?).unwrap_or(0))
}

fn time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl LedgerView {
    /// Opens the ledger read-only, waiting (bounded) for the daemon to create it.
    pub async fn open(path: &Path, timeout: Duration) -> Result<Self> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if path.exists() {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(Duration::from_secs(10))?;
                return Ok(LedgerView {
                    source: Source::Sqlite(conn),
                });
            }
            if std::time::Instant::now() > deadline {
                return Err(BenchError::Daemon(format!(
                    "no ledger at {} after {timeout:?}",
                    path.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The ledger of the daemon configured by `config`.
    pub async fn of(config: &crate::config::Config) -> Result<Self> {
        match config.usable_ledger_url().map_err(BenchError::Setup)? {
            encaisse_ledger::LedgerUrl::Sqlite(path) => {
                Self::open(&path, Duration::from_secs(30)).await
            }
            url => {
                let ledger =
                    tokio::task::spawn_blocking(move || encaisse_ledger::Ledger::open_url(&url))
                        .await
                        .map_err(|e| BenchError::Setup(format!("opening the ledger: {e}")))??;
                Ok(LedgerView {
                    source: Source::Postgres(ledger),
                })
            }
        }
    }

    /// Runs `read` in one read-only transaction of the ledger. On PostgreSQL the
    /// synchronous client runs off the async workers (`block_in_place`: the benchmark's
    /// runtime is multi-threaded).
    fn read<T>(
        &self,
        read: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, encaisse_ledger::LedgerError>,
    ) -> Result<T> {
        match &self.source {
            Source::Sqlite(conn) => Ok(read(&mut Tx::sqlite(conn))?),
            Source::Postgres(ledger) => Ok(tokio::task::block_in_place(|| {
                ledger.inspect_blocking(read)
            })?),
        }
    }

    /// [`count`] for the chaos checks.
    pub fn count(r: &Row<'_>, i: usize) -> std::result::Result<u64, encaisse_ledger::LedgerError> {
        count(r, i)
    }

    /// A transaction-less view of an SQLite ledger for portable statements (the chaos
    /// run's checks, which read a PostgreSQL ledger through an SQLite snapshot).
    pub fn tx(&self) -> Result<Tx<'_>> {
        match &self.source {
            Source::Sqlite(conn) => Ok(Tx::sqlite(conn)),
            Source::Postgres(_) => Err(BenchError::Setup(
                "the strict checks read an SQLite snapshot of a PostgreSQL ledger".into(),
            )),
        }
    }

    /// The run `polyfac.ingest` closed for the export `file` of `tenant`, if closed.
    pub fn ingest_run(&self, tenant: &str, file: &str) -> Result<Option<IngestRun>> {
        self.read(|tx| {
            tx.query_opt(
                "SELECT run_id, invoices, refused, closed_at FROM polyfac_run
             WHERE tenant = ?1 AND file = ?2 ORDER BY closed_at DESC LIMIT 1",
                &[&tenant, &file],
                |r| {
                    Ok(IngestRun {
                        run_id: r.get(0)?,
                        invoices: count(r, 1)?,
                        refused: count(r, 2)?,
                        closed_at: time(r.get(3)?),
                    })
                },
            )
        })
    }

    /// Invoices `polyfac.ingest` published and recorded so far (every run).
    pub fn issued(&self, tenant: &str) -> Result<u64> {
        self.read(|tx| {
            tx.query_one(
                "SELECT count(*) FROM polyfac_issued WHERE tenant = ?1",
                &[&tenant],
                |r| count(r, 0),
            )
        })
    }

    /// Invoices `helios.titres` collected so far (every run).
    pub fn helios_collected(&self, tenant: &str) -> Result<u64> {
        self.read(|tx| {
            tx.query_one(
                "SELECT count(*) FROM batch_item WHERE stage = 'helios.titres' AND tenant = ?1",
                &[&tenant],
                |r| count(r, 0),
            )
        })
    }

    /// Messages each stage processed (deduplication records), by stage.
    pub fn processed_by_stage(&self) -> Result<Vec<(String, u64)>> {
        self.read(|tx| {
            tx.query_all(
                "SELECT stage, count(*) FROM processed_message GROUP BY stage ORDER BY stage",
                &[],
                |r| Ok((r.get(0)?, count(r, 1)?)),
            )
        })
    }

    /// `helios.titres`'s files and refusals for a run.
    pub fn helios_progress(&self, tenant: &str, run_id: &str) -> Result<HeliosProgress> {
        self.read(|tx| Self::helios_progress_in(tx, tenant, run_id))
    }

    fn helios_progress_in(
        tx: &mut Tx<'_>,
        tenant: &str,
        run_id: &str,
    ) -> std::result::Result<HeliosProgress, encaisse_ledger::LedgerError> {
        let (files_written, files_unwritten, titres_written): (u64, u64, u64) = tx.query_one(
            "SELECT count(written_at), count(*) - count(written_at),
                    CAST(coalesce(sum(CASE WHEN written_at IS NOT NULL THEN pieces END), 0)
                         AS BIGINT)
             FROM helios_file WHERE tenant = ?1 AND run_id = ?2",
            &[&tenant, &run_id],
            |r| Ok((count(r, 0)?, count(r, 1)?, count(r, 2)?)),
        )?;
        let refused = tx.query_one(
            "SELECT count(*) FROM helios_refused WHERE tenant = ?1 AND run_id = ?2",
            &[&tenant, &run_id],
            |r| count(r, 0),
        )?;
        Ok(HeliosProgress {
            files_written,
            files_unwritten,
            titres_written,
            refused,
        })
    }

    /// When each step of the run ended.
    pub fn timeline(&self, tenant: &str, run_id: &str) -> Result<Timeline> {
        self.read(|tx| Self::timeline_in(tx, tenant, run_id))
    }

    fn timeline_in(
        tx: &mut Tx<'_>,
        tenant: &str,
        run_id: &str,
    ) -> std::result::Result<Timeline, encaisse_ledger::LedgerError> {
        let ingest_closed: Option<Option<String>> = tx.query_opt(
            "SELECT closed_at FROM polyfac_run WHERE tenant = ?1 AND run_id = ?2",
            &[&tenant, &run_id],
            |r| r.get(0),
        )?;
        let helios_collected = tx.query_one(
            "SELECT max(closed_at) FROM batch_group WHERE stage = 'helios.titres' AND tenant = ?1 AND run_id = ?2",
            &[&tenant, &run_id],
            |r| r.get(0),
        )?;
        let (planned, written) = tx.query_one(
            "SELECT max(planned_at), max(written_at) FROM helios_file WHERE tenant = ?1 AND run_id = ?2",
            &[&tenant, &run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(Timeline {
            ingest_closed: time(ingest_closed.flatten()),
            helios_collected: time(helios_collected),
            last_file_planned: time(planned),
            last_file_written: time(written),
        })
    }

    /// Parked messages `ops.parking` stored (every stage).
    pub fn parked(&self) -> Result<u64> {
        self.read(|tx| tx.query_one("SELECT count(*) FROM parked_message", &[], |r| count(r, 0)))
    }

    /// `payfip_invoice` rows of a tenant whose number starts with `prefix`.
    pub fn payfip_invoices(&self, tenant: &str, prefix: &str) -> Result<u64> {
        self.read(|tx| {
            tx.query_one(
                "SELECT count(*) FROM payfip_invoice
             WHERE tenant = ?1 AND number LIKE CAST(?2 AS TEXT) || '%'",
                &[&tenant, &prefix],
                |r| count(r, 0),
            )
        })
    }
}

impl LedgerView {
    /// `titres` invoices a run published.
    pub fn titres_issued(&self, tenant: &str, run_id: &str) -> Result<u64> {
        self.read(|tx| tx.query_one(
            "SELECT count(*) FROM polyfac_issued WHERE tenant = ?1 AND run_id = ?2 AND collection = 'titres'",
            &[&tenant, &run_id],
            |r| count(r, 0),
        ))
    }
}
