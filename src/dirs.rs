//! The data directory's layout (ARCHITECTURE.md, "Files"): the ledger and, per tenant,
//! `polyfac/`, `helios/` and `bank/` with their inboxes, outboxes, archives and rejects.

use std::path::{Path, PathBuf};

use encaisse_schemas::TenantId;

/// File name of the ledger inside the data directory.
pub const LEDGER_FILE: &str = encaisse_ledger::url::SQLITE_FILE;

/// Sub-directories of a tenant: `(area, [folders])`.
pub const TENANT_LAYOUT: &[(&str, &[&str])] = &[
    ("polyfac", &["inbox", "archive", "rejected", "outbox"]),
    ("helios", &["outbox", "inbox", "archive", "rejected"]),
    ("bank", &["outbox", "inbox", "archive", "rejected"]),
];

/// A directory that could not be created or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DirError {
    pub path: String,
    pub message: String,
}

/// Path of the ledger.
pub fn ledger_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LEDGER_FILE)
}

/// Every directory of one tenant, in layout order.
pub fn tenant_dirs(data_dir: &Path, tenant: &TenantId) -> Vec<PathBuf> {
    let root = data_dir.join(tenant.as_str());
    TENANT_LAYOUT
        .iter()
        .flat_map(|(area, folders)| folders.iter().map(move |f| (area, f)))
        .map(|(area, folder)| root.join(area).join(folder))
        .collect()
}

/// Creates the data directory and every tenant's directories (idempotent).
pub fn create_all<'a>(
    data_dir: &Path,
    tenants: impl IntoIterator<Item = &'a TenantId>,
) -> Result<Vec<PathBuf>, DirError> {
    let mut all = vec![data_dir.to_path_buf()];
    for tenant in tenants {
        all.extend(tenant_dirs(data_dir, tenant));
    }
    for dir in &all {
        let created = if dir.ends_with("inbox") {
            encaisse_ledger::access::create_inbox_dir_all(dir)
        } else {
            encaisse_ledger::access::create_dir_all(dir)
        };
        created.map_err(|e| DirError {
            path: dir.display().to_string(),
            message: format!("cannot create directory: {e}"),
        })?;
    }
    Ok(all)
}

/// Proves `dir` is writable by creating and removing a hidden probe file (inbox watchers
/// ignore files starting with `.`).
pub fn probe_writable(dir: &Path) -> Result<(), DirError> {
    // One name per probe: concurrent probes of one directory (`/readyz` called in parallel)
    // must not remove each other's file.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".encaisse-probe-{}-{n}", std::process::id()));
    let result = std::fs::write(&probe, b"probe").and_then(|()| std::fs::remove_file(&probe));
    result.map_err(|e| DirError {
        path: dir.display().to_string(),
        message: format!("not writable: {e}"),
    })
}

/// Whether `path` is, or could be created as, a writable directory — without creating it
/// (`encaisse check` changes nothing): the path itself if it exists, else its nearest existing
/// ancestor must be a writable directory.
pub fn check_creatable(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("must not be empty".into());
    }
    let mut candidate = path;
    loop {
        match std::fs::metadata(candidate) {
            Ok(meta) if meta.is_dir() => {
                return probe_writable(candidate).map_err(|e| {
                    if candidate == path {
                        e.to_string()
                    } else {
                        format!("{} cannot be created: {e}", path.display())
                    }
                });
            }
            Ok(_) => {
                return Err(format!(
                    "{} is not a directory, so {} cannot be one",
                    candidate.display(),
                    path.display()
                ));
            }
            Err(_) => match candidate.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => candidate = parent,
                // A relative path with no existing component: it will be made in the
                // current directory.
                _ => candidate = Path::new("."),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_twelve_directories_per_tenant() {
        let id = TenantId::new("vitry").unwrap();
        let dirs = tenant_dirs(Path::new("/data"), &id);
        assert_eq!(dirs.len(), 12);
        assert!(dirs.contains(&PathBuf::from("/data/vitry/polyfac/inbox")));
        assert!(dirs.contains(&PathBuf::from("/data/vitry/bank/rejected")));
        assert!(dirs.contains(&PathBuf::from("/data/vitry/helios/outbox")));
    }

    #[test]
    fn create_all_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let ids = [TenantId::new("a").unwrap(), TenantId::new("b").unwrap()];
        let first = create_all(&data, &ids).unwrap();
        let second = create_all(&data, &ids).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 25);
        assert!(data.join("b/polyfac/outbox").is_dir());
    }

    #[test]
    fn check_creatable_accepts_missing_dirs_under_a_writable_parent() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(check_creatable(&tmp.path().join("x/y/z")).is_ok());
        assert!(!tmp.path().join("x").exists(), "check must not create");
    }

    #[test]
    fn check_creatable_refuses_a_file_in_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = check_creatable(&file.join("data")).unwrap_err();
        assert!(err.contains("not a directory"), "{err}");
        assert!(check_creatable(&file).is_err());
    }
}
