//! One daemon per data directory and per broker prefix, through the real binary and the real
//! RabbitMQ: a second `encaisse run` exits at once with 75 naming the holder; the first one
//! stays ready, and the ops commands keep working beside it.

mod common;

use std::time::Duration;

use common::{BROKER_URL, Daemon, Topology, command, unique_prefix, wait_for_status, write_config};

const START: Duration = Duration::from_secs(30);
/// "Exits at once": well within this, broker connection included.
const REFUSED_WITHIN: Duration = Duration::from_secs(15);

fn run_cli(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = command(&all).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn a_second_daemon_on_the_same_data_directory_or_prefix_exits_75_naming_the_holder() {
    let prefix = unique_prefix("single-instance");
    let _topology = Topology(prefix.clone());
    let first_dir = tempfile::tempdir().unwrap();
    let first_config = write_config(first_dir.path(), &prefix, BROKER_URL);
    let mut first = Daemon::start(&first_config, &[]);
    let base = first.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;
    let holder = format!("pid {} on host", first.child.id());

    // The same configuration: the same data directory (and prefix).
    let mut same_dir = Daemon::start(&first_config, &[]);
    let status = same_dir.wait(REFUSED_WITHIN);
    let log = same_dir.seen.join("\n");
    assert_eq!(status.code(), Some(75), "{log}");
    assert!(
        log.contains("is locked by another encaisse daemon"),
        "{log}"
    );
    assert!(log.contains(&holder), "the holder is named: {log}");

    // Another data directory, the same prefix: refused by the broker claim.
    let second_dir = tempfile::tempdir().unwrap();
    let second_config = write_config(second_dir.path(), &prefix, BROKER_URL);
    let mut same_prefix = Daemon::start(&second_config, &[]);
    let status = same_prefix.wait(REFUSED_WITHIN);
    let log = same_prefix.seen.join("\n");
    assert_eq!(status.code(), Some(75), "{log}");
    assert!(
        log.contains(&format!("holds the broker prefix {prefix}")),
        "{log}"
    );
    assert!(log.contains(&holder), "the holder is named: {log}");
    assert!(
        log.contains(&first_dir.path().join("data").display().to_string()),
        "the holder's data directory is named: {log}"
    );

    // The ops commands work beside the running daemon.
    let (code, out) = run_cli(&first_config, &["check"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&first_config, &["dlq", "list"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_cli(&first_config, &["trace", "vitry/2026/NOT-SENT"]);
    assert_eq!(code, 66, "an unknown invoice, not a lock: {out}");

    // The first one was not disturbed.
    wait_for_status(&format!("{base}/readyz"), 200, Duration::from_secs(5)).await;
    assert_eq!(first.terminate(START).code(), Some(0));

    // Once it stopped, both its data directory and its prefix are free again.
    let mut next = Daemon::start(&second_config, &[]);
    let base = next.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;
    assert_eq!(next.terminate(START).code(), Some(0));
}

#[test]
fn encaisse_config_selects_the_configuration_of_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &unique_prefix("config-env"), BROKER_URL);
    let out = command(&["check"])
        .env("ENCAISSE_CONFIG", &config)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with(&format!("{}: OK", config.display())),
        "{text}"
    );
    let missing = command(&["check"])
        .env("ENCAISSE_CONFIG", dir.path().join("absent.toml"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        missing.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("absent.toml"));
}
