use std::path::PathBuf;

/// The shared specs directory: `ENCAISSE_SPECS_DIR` if set, else `../shared/specs` next to
/// the repository root (where CI and developers have it). Tests read schemas and samples
/// from there; nothing is copied into the repository.
pub fn specs_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ENCAISSE_SPECS_DIR") {
        return PathBuf::from(dir);
    }
    // adapters/xml → repository root is two levels up.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs")
}
