//! Who may read what the daemon writes. Its files hold personal data (IBANs, names,
//! addresses, payments): by default they are `0600` and its directories `0700`, readable
//! by the daemon's own account only. A deployment whose transfer tool runs under another
//! account of the same group allows group read access (`0640` / `0750`); nobody else ever
//! gets access.
//!
//! Modes are set explicitly where files and directories are created (the process umask
//! could be anything) and again on files moved in from an inbox, which keep whatever mode
//! their sender gave them. [`allow_group`] also sets the process umask to match, so that
//! nothing created elsewhere (SQLite's WAL and shared-memory files, logs) is wider.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

static GROUP_READABLE: AtomicBool = AtomicBool::new(false);

/// Chooses owner-only (`false`, the default) or owner and group read access for everything
/// written from now on, and sets the process umask accordingly (`077` or `027`).
pub fn allow_group(group_readable: bool) {
    GROUP_READABLE.store(group_readable, Ordering::SeqCst);
    let mask = if group_readable { 0o027 } else { 0o077 };
    // SAFETY: umask only changes the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(mask);
    }
}

/// Mode of a file the daemon writes: `0600`, or `0640` when the group may read.
pub fn file_mode() -> u32 {
    if GROUP_READABLE.load(Ordering::SeqCst) {
        0o640
    } else {
        0o600
    }
}

/// Mode of a directory the daemon makes: `0700`, or `0750` when the group may read.
pub fn dir_mode() -> u32 {
    if GROUP_READABLE.load(Ordering::SeqCst) {
        0o750
    } else {
        0o700
    }
}

/// Mode of an inbox directory: `0700`, or `0770` when the group may read, so that the
/// group's transfer tool can also drop files there (and nobody else can).
pub fn inbox_dir_mode() -> u32 {
    if GROUP_READABLE.load(Ordering::SeqCst) {
        0o770
    } else {
        0o700
    }
}

/// Creates `dir` and its missing parents with [`dir_mode`], and gives `dir` itself that mode
/// if it already existed (a data directory made by an earlier version, or by hand). Parents
/// that existed are left alone: they are not the daemon's.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    create_dir_all_with(dir, dir_mode())
}

/// [`create_dir_all`] for an inbox: `dir` itself gets [`inbox_dir_mode`].
pub fn create_inbox_dir_all(dir: &Path) -> io::Result<()> {
    create_dir_all_with(dir, inbox_dir_mode())
}

fn create_dir_all_with(dir: &Path, mode: u32) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(dir_mode())
        .create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(mode))
}

/// Creates (or truncates) `path` for writing with [`file_mode`].
pub fn create_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(file_mode())
        .open(path)?;
    file.set_permissions(Permissions::from_mode(file_mode()))?;
    Ok(file)
}

/// Writes `bytes` to `path` (created or truncated) with [`file_mode`].
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    create_file(path)?.write_all(bytes)
}

/// Gives an existing file [`file_mode`] (a file moved in from an inbox keeps its sender's).
pub fn restrict_file(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(file_mode()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn owner_only_by_default_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("old");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, Permissions::from_mode(0o755)).unwrap();
        create_dir_all(&existing).unwrap();
        assert_eq!(mode(&existing), 0o700);
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!((mode(&dir.path().join("a")), mode(&nested)), (0o700, 0o700));
        let file = nested.join("f");
        write_file(&file, b"x").unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, Permissions::from_mode(0o666)).unwrap();
        restrict_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
    }
}
