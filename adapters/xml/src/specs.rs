//! Where the official schemas and partner samples live, and what a test does when they are
//! absent.
//!
//! They are not ours to copy into the repository: they stay in `ENCAISSE_SPECS_DIR`, or in
//! `../shared/specs` beside the checkout (docs/schemas.md says where to get them). A test
//! that needs one asks [`official`] (or the [`specs_or_skip!`](crate::specs_or_skip) macro,
//! or [`schema_or_skip`] for a validation inside a longer test):
//!
//! * present: it gets the path and runs;
//! * absent: it prints `SKIPPED (official schemas absent): <what>`, appends one line to the
//!   file named by [`SKIP_LOG_ENV`] (so `scripts/test.sh` can count the skipped checks), and
//!   skips that check;
//! * absent with [`REQUIRE_ENV`]`=1` (CI): the test fails, naming the missing path, so that
//!   CI keeps validating every file against the official schemas.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable: `1` turns a missing official schema or sample into a failure.
pub const REQUIRE_ENV: &str = "ENCAISSE_REQUIRE_SPECS";
/// Environment variable: a file to which each skipped check appends one line
/// (`<test>\t<what>\t<missing path>`).
pub const SKIP_LOG_ENV: &str = "ENCAISSE_SPECS_SKIP_LOG";

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

/// `specs_dir()/relative` when it exists; otherwise the check `what` is skipped (recorded,
/// `None`), or the test fails when [`REQUIRE_ENV`] is `1`.
pub fn official(relative: impl AsRef<Path>, what: &str) -> Option<PathBuf> {
    let path = specs_dir().join(relative);
    if path.exists() {
        Some(path)
    } else {
        skip(&path, what);
        None
    }
}

/// For a path already resolved under the specs directory (a schema returned by an
/// adapter's `schemas::` helper, say): `true` when it exists; otherwise the check `what` is
/// skipped (recorded, `false`), or the test fails when [`REQUIRE_ENV`] is `1`.
pub fn schema_or_skip(path: &Path, what: &str) -> bool {
    if path.exists() {
        true
    } else {
        skip(path, what);
        false
    }
}

/// In a test: validates `bytes` against the official `schema` when it is present; when it
/// is absent, the check is skipped as [`schema_or_skip`] says and `Ok` is returned (the
/// rest of the test still runs).
pub fn validate_bytes_or_skip(
    schema: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), crate::XsdError> {
    if !schema_or_skip(schema, &validation_of(name, schema)) {
        return Ok(());
    }
    crate::xsd::validate_bytes(schema, name, bytes)
}

/// [`validate_bytes_or_skip`] for a file.
pub fn validate_file_or_skip(schema: &Path, document: &Path) -> Result<(), crate::XsdError> {
    let name = document.display().to_string();
    if !schema_or_skip(schema, &validation_of(&name, schema)) {
        return Ok(());
    }
    crate::xsd::validate_file(schema, document)
}

fn validation_of(document: &str, schema: &Path) -> String {
    let schema = schema.file_name().map_or_else(
        || schema.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("validation of {document} against {schema}")
}

/// Whether a missing official file must fail instead of being skipped.
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1")
}

fn skip(missing: &Path, what: &str) {
    let log = std::env::var_os(SKIP_LOG_ENV).map(PathBuf::from);
    skip_with(missing, what, required(), log.as_deref());
}

fn skip_with(missing: &Path, what: &str, required: bool, log: Option<&Path>) {
    if required {
        panic!(
            "{} is missing and {REQUIRE_ENV}=1: {what} needs the official schemas/samples \
             (docs/schemas.md says where to get them; ENCAISSE_SPECS_DIR points at them)",
            missing.display()
        );
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    eprintln!(
        "SKIPPED (official schemas absent): {what} [{test}]: {} not found (docs/schemas.md)",
        missing.display()
    );
    if let Some(log) = log {
        record(log, &test, what, missing);
    }
}

/// Appends one line to the skip log. Several test processes append at once: one `write`
/// of a short line to a file opened in append mode is not interleaved.
fn record(log: &Path, test: &str, what: &str, missing: &Path) {
    let line = format!(
        "{}\t{}\t{}\n",
        test.replace(['\t', '\n'], " "),
        what.replace(['\t', '\n'], " "),
        missing.display()
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot record the skipped check in {}: {e}", log.display());
    }
}

/// In a test: the path of an official file under the specs directory, or `return` from the
/// test after recording the skip (see the module's documentation).
///
/// ```ignore
/// let samples = encaisse_xml::specs_or_skip!("pes-v2/samples", "PES samples are read");
/// ```
#[macro_export]
macro_rules! specs_or_skip {
    ($relative:expr, $what:expr) => {
        match $crate::specs::official($relative, $what) {
            Some(path) => path,
            None => return,
        }
    };
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

    #[test]
    fn a_skip_is_recorded_with_the_test_name_and_what_was_missing() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skipped");
        record(&log, "a::test", "PES samples\tread", Path::new("/x/y"));
        record(&log, "b::test", "schema", Path::new("/z"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text,
            "a::test\tPES samples read\t/x/y\nb::test\tschema\t/z\n"
        );
    }

    #[test]
    fn a_missing_file_is_skipped_and_logged_unless_required() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skipped");
        skip_with(Path::new("/absent.xsd"), "a schema", false, Some(&log));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.ends_with("\ta schema\t/absent.xsd\n"), "{text}");
        let required = std::panic::catch_unwind(|| {
            skip_with(Path::new("/absent.xsd"), "a schema", true, None);
        });
        assert!(required.is_err(), "a required schema must fail the test");
    }

    #[test]
    fn an_existing_path_is_returned_and_nothing_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.xsd"), "x").unwrap();
        assert!(schema_or_skip(&dir.path().join("a.xsd"), "a schema"));
    }
}
