//! Files the daemon emits (PES, pain.008, REGLEMENTS, reports): written atomically and
//! recorded in the ledger before the message that caused them is acknowledged.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::error::LedgerError;
use crate::store::Ledger;
use crate::stores::CoreStore;

/// A file recorded in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedFile {
    pub id: i64,
    pub tenant: String,
    pub kind: String,
    pub path: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub written_at: String,
}

fn io_error(path: &Path, source: std::io::Error) -> LedgerError {
    LedgerError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The directory of `path` (created) and the name of its temporary file.
fn temporary_for(path: &Path) -> Result<(PathBuf, PathBuf), LedgerError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    crate::access::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    remove_stale_temporaries(&dir, &file_name);
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    Ok((dir, tmp))
}

/// Removes temporary files a killed process left for `file_name` (`.<name>.<pid>.tmp` of
/// another pid): one daemon writes a data directory, so they can only be leftovers, and a
/// reader of the directory must not find them there forever.
fn remove_stale_temporaries(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let own = format!(".{file_name}.{}.tmp", std::process::id());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".tmp") && name != own {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Renames the temporary file over `path`, then fsyncs the directory so the rename itself
/// survives a power cut.
fn publish(tmp: &Path, path: &Path, dir: &Path) -> Result<(), LedgerError> {
    fs::rename(tmp, path).map_err(|e| io_error(path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Writes `bytes` to `path` so that a reader never sees a partial file: a temporary file in
/// the same directory (hidden, `.tmp` suffix), fsync, rename over `path`, fsync of the
/// directory so the rename itself survives a power cut.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let (dir, tmp) = temporary_for(path)?;
    {
        let mut file = crate::access::create_file(&tmp).map_err(|e| io_error(&tmp, e))?;
        file.write_all(bytes).map_err(|e| io_error(&tmp, e))?;
        file.sync_all().map_err(|e| io_error(&tmp, e))?;
    }
    publish(&tmp, path, &dir)
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A file written to its temporary name (fsynced, hashed) and not yet in place: what
/// [`stage_file`] makes and [`Ledger::emit_staged`] publishes. Dropped unpublished, the
/// temporary file is removed.
#[derive(Debug)]
pub struct StagedFile {
    path: PathBuf,
    dir: PathBuf,
    tmp: Option<PathBuf>,
    pub sha256: String,
    pub bytes: u64,
}

impl StagedFile {
    /// Where it will be published.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn discard(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }

    fn publish(&mut self) -> Result<(), LedgerError> {
        match self.tmp.take() {
            Some(tmp) => publish(&tmp, &self.path, &self.dir),
            None => Ok(()),
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Counts and hashes what goes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams a file to a temporary name next to `path` through `write` (buffered, hashed,
/// fsynced), without holding it in memory: for files too large to build as one `Vec` (a
/// PES Aller file of a large billing run). Publish it with [`Ledger::emit_staged`].
pub fn stage_file<T, E>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, E>,
) -> Result<(StagedFile, T), E>
where
    E: From<LedgerError>,
{
    let (dir, tmp) = temporary_for(path)?;
    let mut staged = StagedFile {
        path: path.to_path_buf(),
        dir,
        tmp: Some(tmp.clone()),
        sha256: String::new(),
        bytes: 0,
    };
    let file = crate::access::create_file(&tmp).map_err(|e| io_error(&tmp, e))?;
    let mut out = Hashing {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        sha: Sha256::new(),
        bytes: 0,
    };
    let value = write(&mut out)?;
    let Hashing { inner, sha, bytes } = out;
    let file = inner
        .into_inner()
        .map_err(|e| io_error(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| io_error(&tmp, e))?;
    staged.sha256 = hex::encode(sha.finalize());
    staged.bytes = bytes;
    Ok((staged, value))
}

impl Ledger {
    /// Writes a file atomically and records it. Idempotent: emitting the same bytes to the
    /// same path again (a redelivered message) rewrites nothing new and returns the existing
    /// record; emitting *different* bytes to a recorded path is a conflict, because a file
    /// that may already have been sent must never silently change.
    pub async fn emit_file(
        &self,
        tenant: &str,
        kind: &str,
        path: &Path,
        bytes: Vec<u8>,
        caused_by: &str,
    ) -> Result<EmittedFile, LedgerError> {
        let sha = sha256_hex(&bytes);
        let path_text = path.display().to_string();
        if let Some(existing) = self.emitted_file_by_path(&path_text).await? {
            if existing.sha256 == sha {
                if !path.exists() {
                    // Recorded but lost on disk (restored backup?): write it back.
                    let p = path.to_path_buf();
                    tokio::task::spawn_blocking(move || write_atomically(&p, &bytes))
                        .await
                        .map_err(|_| LedgerError::WriterGone)??;
                }
                return Ok(existing);
            }
            return Err(changed(&path_text, &existing));
        }
        let size = bytes.len() as u64;
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || write_atomically(&p, &bytes))
            .await
            .map_err(|_| LedgerError::WriterGone)??;
        self.record_emitted(tenant, kind, path_text, sha, size, caused_by)
            .await
    }

    /// [`Ledger::emit_file`] for a file [`stage_file`] streamed to disk: the same rules (a
    /// recorded path with the same content is kept, or written back if lost; different
    /// content is a conflict and the new bytes are discarded), without the file in memory.
    pub async fn emit_staged(
        &self,
        tenant: &str,
        kind: &str,
        mut staged: StagedFile,
        caused_by: &str,
    ) -> Result<EmittedFile, LedgerError> {
        let path_text = staged.path.display().to_string();
        if let Some(existing) = self.emitted_file_by_path(&path_text).await? {
            if existing.sha256 != staged.sha256 {
                staged.discard();
                return Err(changed(&path_text, &existing));
            }
            if staged.path.exists() {
                staged.discard();
            } else {
                tokio::task::spawn_blocking(move || staged.publish())
                    .await
                    .map_err(|_| LedgerError::WriterGone)??;
            }
            return Ok(existing);
        }
        let (sha, size) = (staged.sha256.clone(), staged.bytes);
        tokio::task::spawn_blocking(move || staged.publish())
            .await
            .map_err(|_| LedgerError::WriterGone)??;
        self.record_emitted(tenant, kind, path_text, sha, size, caused_by)
            .await
    }

    /// Records a file just written (idempotent for the same content).
    async fn record_emitted(
        &self,
        tenant: &str,
        kind: &str,
        path_text: String,
        sha: String,
        size: u64,
        caused_by: &str,
    ) -> Result<EmittedFile, LedgerError> {
        let file = NewFile {
            tenant: tenant.to_string(),
            kind: kind.to_string(),
            path: path_text,
            sha256: sha,
            bytes: size,
            written_at: crate::clock::now(),
            caused_by: caused_by.to_string(),
        };
        self.transact(move |tx| tx.record_file(&file)).await
    }

    /// The record of a file by its path.
    pub async fn emitted_file_by_path(
        &self,
        path: &str,
    ) -> Result<Option<EmittedFile>, LedgerError> {
        let path = path.to_string();
        self.inspect(move |tx| tx.file_by_path(&path)).await
    }
}

/// A file written and about to be recorded ([`CoreStore::record_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub tenant: String,
    pub kind: String,
    /// The path as text, the record's key.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub written_at: String,
    /// Stage and message id, or run id.
    pub caused_by: String,
}

impl NewFile {
    /// A concurrent record of the same path with other bytes.
    pub(crate) fn check_same(&self, row: EmittedFile) -> Result<EmittedFile, LedgerError> {
        if row.sha256 != self.sha256 {
            return Err(LedgerError::Conflict(format!(
                "{} was concurrently emitted with different content",
                self.path
            )));
        }
        Ok(row)
    }
}

/// [`CoreStore::record_file`] on SQLite.
pub(crate) fn record_file_in(c: &Connection, file: &NewFile) -> Result<EmittedFile, LedgerError> {
    c.prepare_cached(
        "INSERT INTO emitted_file (tenant, kind, path, sha256, bytes, written_at, caused_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (path) DO NOTHING",
    )?
    .execute((
        &file.tenant,
        &file.kind,
        &file.path,
        &file.sha256,
        file.bytes as i64,
        &file.written_at,
        &file.caused_by,
    ))?;
    match file_by_path_in(c, &file.path)? {
        Some(row) => file.check_same(row),
        None => Err(LedgerError::Corrupt(format!(
            "{} is not recorded right after its insert",
            file.path
        ))),
    }
}

/// [`CoreStore::last_written`] on SQLite.
pub(crate) fn last_written_in(
    c: &rusqlite::Connection,
) -> Result<Vec<(String, String, String)>, LedgerError> {
    let mut stmt = c.prepare_cached(
        "SELECT tenant, kind, max(written_at) FROM emitted_file GROUP BY tenant, kind",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// [`CoreStore::file_by_path`] on SQLite.
pub(crate) fn file_by_path_in(
    c: &Connection,
    path: &str,
) -> Result<Option<EmittedFile>, LedgerError> {
    Ok(c.prepare_cached(
        "SELECT id, tenant, kind, path, sha256, bytes, written_at FROM emitted_file WHERE path = ?1",
    )?
    .query_row([path], row_to_file)
    .optional()?)
}

/// A recorded file must never change.
fn changed(path_text: &str, existing: &EmittedFile) -> LedgerError {
    LedgerError::Conflict(format!(
        "{path_text} was already emitted with different content (sha256 {})",
        existing.sha256
    ))
}

fn row_to_file(r: &rusqlite::Row<'_>) -> rusqlite::Result<EmittedFile> {
    Ok(EmittedFile {
        id: r.get(0)?,
        tenant: r.get(1)?,
        kind: r.get(2)?,
        path: PathBuf::from(r.get::<_, String>(3)?),
        sha256: r.get(4)?,
        bytes: r.get::<_, i64>(5)? as u64,
        written_at: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn emit_is_atomic_idempotent_and_refuses_changes() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let out = dir.path().join("vitry/helios/outbox/PES.xml");
        let first = ledger
            .emit_file("vitry", "pes_aller", &out, b"<a/>".to_vec(), "run-1")
            .await
            .unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"<a/>");
        let again = ledger
            .emit_file("vitry", "pes_aller", &out, b"<a/>".to_vec(), "run-1")
            .await
            .unwrap();
        assert_eq!(first, again);
        let err = ledger
            .emit_file("vitry", "pes_aller", &out, b"<b/>".to_vec(), "run-1")
            .await
            .unwrap_err();
        assert!(matches!(err, LedgerError::Conflict(_)), "{err}");
        assert_eq!(
            fs::read(&out).unwrap(),
            b"<a/>",
            "a recorded file never changes"
        );
        // No temporary file left behind.
        let leftovers: Vec<_> = fs::read_dir(out.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    fn temporaries(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[tokio::test]
    async fn a_streamed_file_follows_the_same_rules() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let out = dir.path().join("vitry/helios/outbox/PES.xml");
        // A killed process's temporary file for the same name is cleared.
        fs::create_dir_all(out.parent().unwrap()).unwrap();
        fs::write(out.with_file_name(".PES.xml.999999999.tmp"), b"half").unwrap();
        let stage = |bytes: &'static [u8]| {
            stage_file(&out, |w| w.write_all(bytes).map_err(|e| io_error(&out, e))).unwrap()
        };
        let (staged, ()) = stage(b"<a/>");
        assert_eq!(staged.sha256, sha256_hex(b"<a/>"));
        assert_eq!(staged.bytes, 4);
        assert!(!out.exists(), "nothing published before emit_staged");
        let first = ledger
            .emit_staged("vitry", "pes_aller", staged, "run-1")
            .await
            .unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"<a/>");
        assert_eq!(first.bytes, 4);
        // The same bytes again: the record; other bytes: a conflict, the file unchanged.
        let (staged, ()) = stage(b"<a/>");
        assert_eq!(
            ledger
                .emit_staged("vitry", "pes_aller", staged, "run-1")
                .await
                .unwrap(),
            first
        );
        let (staged, ()) = stage(b"<b/>");
        let err = ledger
            .emit_staged("vitry", "pes_aller", staged, "run-1")
            .await
            .unwrap_err();
        assert!(matches!(err, LedgerError::Conflict(_)), "{err}");
        assert_eq!(fs::read(&out).unwrap(), b"<a/>");
        // Lost on disk: written back from the new staging.
        fs::remove_file(&out).unwrap();
        let (staged, ()) = stage(b"<a/>");
        ledger
            .emit_staged("vitry", "pes_aller", staged, "run-1")
            .await
            .unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"<a/>");
        // A staging dropped unpublished leaves nothing.
        drop(stage(b"<c/>"));
        assert_eq!(temporaries(out.parent().unwrap()), Vec::<String>::new());
    }
}
