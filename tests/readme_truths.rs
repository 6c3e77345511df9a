//! What README.md states about the binary stays true.

#[test]
fn the_readyz_example_shows_todays_migration_count() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let count = encaisse_ledger::migrations::ALL.len();
    assert!(
        readme.contains(&format!("(schema migrations applied: {count})")),
        "README's /readyz example must show {count} migrations (the ledger's count today)"
    );
}

/// `rust-version` is the highest one the locked dependencies declare: lower, `cargo build`
/// on that toolchain would fail on them; higher, it would refuse a toolchain that works.
#[test]
fn rust_version_is_what_the_locked_dependencies_need() {
    // Not `--offline`: the metadata covers every target's dependencies, and a machine that
    // only built for its own target has not downloaded the others (a registry is reachable
    // wherever the tests run; nothing is fetched when the cache already holds them).
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = |text: &str| -> (u64, u64) {
        let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap_or(0))
    };
    let mut ours = None;
    let mut needed = ((0, 0), String::new());
    for package in metadata["packages"].as_array().unwrap() {
        let Some(rust) = package["rust_version"].as_str() else {
            continue;
        };
        let name = package["name"].as_str().unwrap();
        if name == "encaisse" {
            ours = Some(version(rust));
        } else if package["source"].is_string() && version(rust) > needed.0 {
            needed = (version(rust), name.to_string());
        }
    }
    assert_eq!(
        ours,
        Some(needed.0),
        "rust-version must be {:?}, which {} needs",
        needed.0,
        needed.1
    );
}
