//! Opening and reading a file a partner dropped in an inbox, which may be hostile: the path
//! may have been replaced by a symbolic link (to the ledger, to `/etc/shadow`) or a FIFO
//! (which would block the reading thread forever) between the directory listing and the
//! open, and the file may grow after its size was checked.
//!
//! The open does not follow symbolic links (`O_NOFOLLOW`) and does not block
//! (`O_NONBLOCK`, no effect on regular files); the opened descriptor is then checked
//! (`fstat`) to be a regular file, so what is read is what was checked. Reads stop at the
//! caller's byte limit.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::stage::StageError;

/// Why an inbox file was not read.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedFileError {
    /// The name is a symbolic link: never followed.
    #[error("{file}: is a symbolic link; inbox files are never followed through links")]
    SymbolicLink { file: String },
    /// Not a regular file (FIFO, device, directory).
    #[error("{file}: is not a regular file")]
    NotRegular { file: String },
    /// Larger than the limit (possibly grown after it was listed).
    #[error("{file}: more than {limit} bytes: not read")]
    TooLarge { file: String, limit: u64 },
    /// Any other I/O failure (the file vanished, a disk error): worth another try.
    #[error("{file}: cannot be read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

impl UntrustedFileError {
    /// A link, a special file or an oversized file is refused for good; other I/O failures
    /// may pass.
    pub fn into_stage_error(self) -> StageError {
        match self {
            UntrustedFileError::Io { .. } => StageError::transient("inbox_io", self.to_string()),
            UntrustedFileError::TooLarge { .. } => {
                StageError::poison("inbox_file_too_large", self.to_string())
            }
            UntrustedFileError::SymbolicLink { .. } | UntrustedFileError::NotRegular { .. } => {
                StageError::poison("inbox_file_not_regular", self.to_string())
            }
        }
    }
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Opens `path` for reading without following a symbolic link; the opened file is a
/// regular file.
pub fn open(path: &Path) -> Result<File, UntrustedFileError> {
    let file_name = display_name(path);
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                UntrustedFileError::SymbolicLink {
                    file: file_name.clone(),
                }
            } else {
                UntrustedFileError::Io {
                    file: file_name.clone(),
                    source,
                }
            }
        })?;
    let meta = file.metadata().map_err(|source| UntrustedFileError::Io {
        file: file_name.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(UntrustedFileError::NotRegular { file: file_name });
    }
    Ok(file)
}

/// Reads the whole of `path` (opened as [`open`] does), refusing it when it holds more than
/// `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, UntrustedFileError> {
    let file = open(path)?;
    let file_name = display_name(path);
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| UntrustedFileError::Io {
            file: file_name.clone(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(UntrustedFileError::TooLarge {
            file: file_name,
            limit,
        });
    }
    Ok(bytes)
}

/// [`read`] on a blocking thread, as a stage error.
pub async fn read_async(path: &Path, limit: u64) -> Result<Vec<u8>, StageError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || read(&path, limit))
        .await
        .map_err(|e| join_error("inbox_read", e))?
        .map_err(UntrustedFileError::into_stage_error)
}

/// A blocking task that did not finish: a panic (a hostile input reached a bug) is a
/// permanent failure of that file, so it is set aside and the next file is read; a
/// cancellation (the daemon is stopping) is transient.
pub fn join_error(task: &str, e: tokio::task::JoinError) -> StageError {
    if e.is_panic() {
        let panic = e.into_panic();
        StageError::permanent(
            "reader_panicked",
            format!(
                "{task} panicked: {}",
                crate::runtime::handling::panic_message(panic.as_ref())
            ),
        )
    } else {
        StageError::transient(task, format!("{task} did not finish: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_special_files_are_refused_regular_files_read_within_limit() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "ledger").unwrap();
        let link = dir.path().join("link.xml");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(matches!(
            read(&link, 100),
            Err(UntrustedFileError::SymbolicLink { .. })
        ));
        assert!(matches!(
            open(dir.path()),
            Err(UntrustedFileError::NotRegular { .. })
        ));
        let fifo = dir.path().join("fifo.xml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            read(&fifo, 100),
            Err(UntrustedFileError::NotRegular { .. })
        ));
        assert_eq!(read(&secret, 6).unwrap(), b"ledger");
        let too_large = read(&secret, 5).unwrap_err();
        assert!(matches!(too_large, UntrustedFileError::TooLarge { .. }));
        assert_eq!(
            too_large.into_stage_error().class,
            crate::stage::ErrorClass::Poison
        );
    }

    #[tokio::test]
    async fn a_panicking_reader_is_a_permanent_failure() {
        let e = tokio::task::spawn_blocking(|| panic!("boom at byte 7"))
            .await
            .unwrap_err();
        let error = join_error("reader", e);
        assert_eq!(error.class, crate::stage::ErrorClass::Permanent);
        assert!(error.message.contains("boom at byte 7"), "{error}");
    }
}
