//! Copying the write-ahead log into the database file (a checkpoint) on a thread of its
//! own, instead of inside the writer's commits.
//!
//! SQLite's automatic checkpoint runs in the commit that makes the log reach 1,000 pages:
//! it copies the pages, fsyncs the database file, and the callers of that group commit
//! wait for it. Under a big export that was about 12 % of the writer thread's time
//! (`perf`), on the one thread every write of the daemon goes through. Here the writer only
//! wakes the checkpointer, which copies the log on another connection while the writer
//! goes on (a `PASSIVE` checkpoint never blocks a writer or a reader).
//!
//! SQLite starts the log over from its beginning only when a write transaction begins
//! after a checkpoint that copied *every* frame. A writer that never pauses could keep the
//! background checkpoint one step behind and the log would grow, so once the log reaches
//! [`WRITER_COPIES_AT_FRAMES`] the writer checkpoints itself, between two transactions:
//! only the frames the checkpointer has not copied yet, after which the next transaction
//! starts the log over. The `-wal` file stays around 16 MB.

use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags};

use crate::error::LedgerError;

/// Log frames (pages) at which the checkpointer is woken: SQLite's own automatic
/// checkpoint threshold.
pub const WAKE_AT_FRAMES: c_int = 1_000;
/// Log frames at which the writer copies what is left itself (see the module's doc).
pub const WRITER_COPIES_AT_FRAMES: c_int = 4_000;

/// Replaces the automatic checkpoint of `writer` (the database at `path`) by a checkpoint
/// thread. When the writer connection closes, the thread ends.
pub(crate) fn take_over(writer: &mut Connection, path: &Path) -> Result<(), LedgerError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // One pending wake-up is enough: a checkpoint copies whatever the log holds by then.
    let (wake, woken) = sync_channel::<()>(1);
    // Registering a hook replaces SQLite's automatic checkpoint (it is a hook too).
    writer.wal_hook(Some(move |wal: &mut Wal, frames: c_int| {
        if frames >= WRITER_COPIES_AT_FRAMES {
            // An error here would make the commit that has just succeeded report a failure
            // (and its callers retry): the log is simply copied at the next commit.
            if let Err(e) = wal.checkpoint() {
                tracing::debug!(error = %e, frames, "The writer's checkpoint did not complete; the next commit tries again.");
            }
        } else if frames >= WAKE_AT_FRAMES {
            let _ = wake.try_send(());
        }
        Ok(())
    }))?;
    std::thread::Builder::new()
        // Linux keeps 15 bytes of a thread name: this one shows whole in `ps` and `top`.
        .name("ledger-checkpt".into())
        .spawn(move || run(&conn, &woken))
        .map_err(|source| LedgerError::Io {
            path: path.display().to_string(),
            source,
        })?;
    Ok(())
}

/// Checkpoints each time the writer asks, until the writer is gone.
fn run(conn: &Connection, woken: &Receiver<()>) {
    while woken.recv().is_ok() {
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(error = %e, "Ledger checkpoint failed; the writer copies the log itself when it grows.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ledger;

    /// Size of a WAL frame for the default 4 KiB page, and of the log's header.
    const FRAME_BYTES: u64 = 4096 + 24;
    const HEADER_BYTES: u64 = 32;

    /// Whether a thread of this process has that name (Linux: `/proc/self/task/*/comm`).
    fn thread_named(name: &str) -> bool {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
            .any(|comm| comm.trim() == name)
    }

    #[tokio::test]
    async fn the_log_stays_bounded_and_every_write_reaches_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let ledger = Ledger::open(&path).unwrap();
        // About 60,000 pages written in 600 commits of ~100 pages, faster than one
        // checkpoint at a time can follow.
        let filler = "x".repeat(3_000);
        for round in 0..600u32 {
            let filler = filler.clone();
            ledger
                .write(move |c| {
                    for i in 0..100u32 {
                        c.execute(
                            "INSERT INTO invoice_event (invoice_key, tenant, at, kind, detail)
                             VALUES (?1, 't', '2026-01-01T00:00:00Z', 'issued', ?2)",
                            (format!("t/2026/{round}-{i}"), &filler),
                        )?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
        }
        // A spawned thread names itself once it runs: by now it has long done so.
        assert!(
            thread_named("ledger-checkpt"),
            "the checkpointer runs on a thread of its own"
        );
        let wal = std::fs::metadata(dir.path().join("ledger.sqlite-wal"))
            .unwrap()
            .len();
        // At most the writer's threshold plus one commit's frames (a commit of 100 rows of
        // 3 KB and their index pages), and far less than the 60,000 pages written.
        let bound = HEADER_BYTES + FRAME_BYTES * (WRITER_COPIES_AT_FRAMES as u64 + 400);
        assert!(wal <= bound, "the WAL holds {wal} bytes, bound {bound}");
        let database = std::fs::metadata(&path).unwrap().len();
        assert!(
            database > 150_000_000,
            "the checkpoints copied the pages into the database file ({database} bytes)"
        );
        let count: i64 = ledger
            .read(|c| Ok(c.query_row("SELECT count(*) FROM invoice_event", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(count, 60_000);
        drop(ledger);
        let again = Ledger::open(&path).unwrap();
        let count: i64 = again
            .read_blocking(|c| {
                Ok(c.query_row("SELECT count(*) FROM invoice_event", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(count, 60_000, "every commit survives a reopen");
    }
}
