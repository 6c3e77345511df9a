//! Files the daemon emits (PES, pain.008, REGLEMENTS, reports): written atomically and
//! recorded in the ledger before the message that caused them is acknowledged.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::OptionalExtension;
use sha2::{Digest, Sha256};

use crate::error::LedgerError;
use crate::store::Ledger;

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

/// Writes `bytes` to `path` so that a reader never sees a partial file: a temporary file in
/// the same directory (hidden, `.tmp` suffix), fsync, rename over `path`, fsync of the
/// directory so the rename itself survives a power cut.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LedgerError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    {
        let mut file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        file.write_all(bytes).map_err(|e| io_error(&tmp, e))?;
        file.sync_all().map_err(|e| io_error(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| io_error(path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))?;
    Ok(())
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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
            return Err(LedgerError::Conflict(format!(
                "{path_text} was already emitted with different content (sha256 {})",
                existing.sha256
            )));
        }
        let size = bytes.len() as u64;
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || write_atomically(&p, &bytes))
            .await
            .map_err(|_| LedgerError::WriterGone)??;
        let (tenant, kind, caused_by) =
            (tenant.to_string(), kind.to_string(), caused_by.to_string());
        let written_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.write(move |c| {
            c.execute(
                "INSERT INTO emitted_file (tenant, kind, path, sha256, bytes, written_at, caused_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (path) DO NOTHING",
                (&tenant, &kind, &path_text, &sha, size as i64, &written_at, &caused_by),
            )?;
            let row = c.query_row(
                "SELECT id, tenant, kind, path, sha256, bytes, written_at FROM emitted_file WHERE path = ?1",
                [&path_text],
                row_to_file,
            )?;
            if row.sha256 != sha {
                return Err(LedgerError::Conflict(format!(
                    "{path_text} was concurrently emitted with different content"
                )));
            }
            Ok(row)
        })
        .await
    }

    /// The record of a file by its path.
    pub async fn emitted_file_by_path(
        &self,
        path: &str,
    ) -> Result<Option<EmittedFile>, LedgerError> {
        let path = path.to_string();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT id, tenant, kind, path, sha256, bytes, written_at FROM emitted_file WHERE path = ?1",
                [&path],
                row_to_file,
            )
            .optional()?)
        })
        .await
    }
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
}
