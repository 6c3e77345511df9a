use std::path::{Path, PathBuf};

/// The shared specs directory: `ENCAISSE_SPECS_DIR` if set; else `../shared/specs` next to
/// the repository root (where CI and developers have it). Tests read schemas and samples
/// from there; nothing is copied into the repository.
///
/// The repository root is first taken from where this crate was compiled; when that
/// directory does not exist (a build directory shared between checkouts), the current
/// directory and its ancestors are searched for a `shared/specs` sibling instead.
pub fn specs_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ENCAISSE_SPECS_DIR") {
        return PathBuf::from(dir);
    }
    // adapters/xml → repository root is two levels up; its parent holds `shared/`.
    let compiled = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs");
    if compiled.is_dir() {
        return compiled;
    }
    if let Ok(cwd) = std::env::current_dir()
        && let Some(found) = search_upwards(&cwd)
    {
        return found;
    }
    compiled
}

fn search_upwards(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("shared/specs"))
        .find(|candidate| candidate.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_shared_specs_sibling_upwards() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("shared/specs")).unwrap();
        let deep = root.path().join("main/adapters/xml");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(
            search_upwards(&deep).unwrap(),
            root.path().join("shared/specs")
        );
    }
}
