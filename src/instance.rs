//! One daemon per ledger: `encaisse run` holds an exclusive lock on `encaisse.lock` in its
//! data directory for as long as it runs.
//!
//! The lock is an advisory `flock` taken on the open file, so the kernel releases it when
//! the holder dies, however it dies: a stale lock file never blocks a restart. The file's
//! content (pid, host, start time) is only there to name the holder in the refusal a second
//! daemon prints; the ops commands (`dlq`, `trace`, `check`) never take the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "encaisse.lock";

/// Why the data directory could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Another daemon holds the lock (permanent while it runs).
    #[error(
        "{path} is locked by another encaisse daemon ({holder}); one daemon per data directory: stop it first, or give this one its own data_dir"
    )]
    Held { path: String, holder: String },
    /// The lock file could not be opened or written.
    #[error("{path}: cannot take the daemon lock: {message}")]
    Io { path: String, message: String },
}

/// The lock, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (which must exist) without waiting.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, InstanceError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |e: std::io::Error| InstanceError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        // Not truncated on open: the content names the holder until the lock is ours.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(InstanceError::Held {
                    path: path.display().to_string(),
                    holder: read_holder(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(holder_description().as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(io)?;
        Ok(DataDirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    // Bounded: the file is ours, but nothing on disk is trusted to be small.
    let read = file.take(1024).read_to_string(&mut text);
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().replace('\n', ", "),
        _ => "holder unknown: the lock file is empty".to_string(),
    }
}

/// `pid 1234 on host h, started 2026-12-06T19:30:00Z`: who holds a lock or a broker claim.
pub fn holder_description() -> String {
    format!(
        "pid {} on host {}, started {}",
        std::process::id(),
        host_name(),
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    )
}

/// The machine's host name (Linux), or `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, InstanceError::Held { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {} on host", std::process::id())),
            "{text}"
        );
        drop(first);
        let again = DataDirLock::acquire(dir.path()).unwrap();
        assert_eq!(again.path(), dir.path().join(LOCK_FILE));
    }

    #[test]
    fn a_stale_lock_file_without_a_holder_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "pid 1 on host gone").unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let content = std::fs::read_to_string(lock.path()).unwrap();
        assert!(
            content.starts_with(&format!("pid {}", std::process::id())),
            "{content}"
        );
    }
}
