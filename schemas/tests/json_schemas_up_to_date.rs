//! The JSON Schemas in `schemas/json/` are the integrators' contract: they must match the
//! Rust types. Run with `UPDATE_SCHEMAS=1` to regenerate them after a deliberate change.

use std::path::PathBuf;

#[test]
fn json_schema_files_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    let expected = encaisse_schemas::json_schemas::all();
    for (name, text) in &expected {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == *text => {}
            _ => stale.push(name.clone()),
        }
    }
    // No stray schema files for messages that no longer exist.
    if !update {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            if name.ends_with(".json") && !expected.iter().any(|(n, _)| *n == name) {
                stale.push(format!("{name} (no such message)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "schemas/json is out of date for {stale:?}; run `UPDATE_SCHEMAS=1 cargo test -p encaisse-schemas`"
    );
}
