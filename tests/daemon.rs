//! `encaisse run` as ops run it: starts, serves health/readiness/metrics, creates its
//! directories and ledger, survives a missing broker, stops on SIGTERM with exit code 0.
//! Uses the real RabbitMQ on 127.0.0.1:5672 (scripts/setup.sh starts it).

mod common;

use std::time::Duration;

use common::{BROKER_URL, Daemon, Topology, get, unique_prefix, wait_for_status, write_config};

const START: Duration = Duration::from_secs(30);
const STOP: Duration = Duration::from_secs(30);

#[tokio::test]
async fn run_serves_health_and_readiness_then_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("run");
    let _topology = Topology(prefix.clone());
    let config = write_config(tmp.path(), &prefix, BROKER_URL);
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();

    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"alive":true}"#));

    let body = wait_for_status(&format!("{base}/readyz"), 200, START).await;
    let readiness: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(readiness["ready"], true);
    assert_eq!(readiness["checks"]["broker"]["detail"], "connected");
    assert_eq!(
        readiness["checks"]["data_dirs"]["detail"],
        "25 directories writable"
    );

    let (status, metrics) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("encaisse_build_info{version=\""),
        "{metrics}"
    );

    // The ledger and every tenant directory exist (ARCHITECTURE.md, "Files").
    let data = tmp.path().join("data");
    assert!(data.join("ledger.sqlite").is_file());
    for tenant in ["vitry", "ivry"] {
        for dir in [
            "polyfac/inbox",
            "polyfac/archive",
            "polyfac/rejected",
            "polyfac/outbox",
            "helios/outbox",
            "helios/inbox",
            "bank/outbox",
            "bank/inbox",
        ] {
            assert!(data.join(tenant).join(dir).is_dir(), "{tenant}/{dir}");
        }
    }

    let status = daemon.terminate(STOP);
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.seen.join("\n"));
    daemon.wait_for_line("Stopped.", Duration::from_secs(1));
    assert!(
        !daemon.seen.iter().any(|l| l.contains('\x1b')),
        "no colour codes when standard error is not a terminal"
    );
    // A clean stop closes the channels, then the connection: nothing at ERROR (a channel
    // left to lapin's background close raced the connection's: "invalid channel state").
    let errors: Vec<&String> = daemon
        .seen
        .iter()
        .filter(|l| l.contains(" ERROR "))
        .collect();
    assert!(
        errors.is_empty(),
        "ERROR lines on a clean stop: {errors:#?}"
    );
}

#[tokio::test]
async fn json_log_format_prints_one_json_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("json");
    let _topology = Topology(prefix.clone());
    let config = write_config(tmp.path(), &prefix, BROKER_URL);
    let mut daemon = Daemon::start(&config, &["--log-format", "json"]);
    daemon.http_base();
    let status = daemon.terminate(STOP);
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.seen.join("\n"));
    assert!(daemon.seen.len() >= 3, "{:?}", daemon.seen);
    for line in &daemon.seen {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event["timestamp"].is_string(), "{line}");
        assert!(event["level"].is_string(), "{line}");
        assert!(event["message"].is_string(), "{line}");
    }
    assert!(
        !daemon.seen.iter().any(|l| l.contains("guest:guest")),
        "the broker password is never logged"
    );
}

/// Drops `name` into `area/inbox` (hidden name, then renamed, as a transfer tool does) and
/// returns how long the daemon took to move it out to `area/rejected`.
fn time_to_reject(area: &std::path::Path, name: &str) -> Duration {
    let hidden = area.join("inbox").join(format!(".{name}.part"));
    std::fs::write(&hidden, b"not XML at all").unwrap();
    let started = std::time::Instant::now();
    std::fs::rename(&hidden, area.join("inbox").join(name)).unwrap();
    while !area.join("rejected").join(name).exists() {
        assert!(started.elapsed() < START, "{name} never left the inbox");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[tokio::test]
async fn returns_inboxes_are_read_with_their_configured_timing() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("inbox-timing");
    let _topology = Topology(prefix.clone());
    let config = write_config(tmp.path(), &prefix, BROKER_URL);
    // The defaults (2 s poll, 2 s settle) would take 2 s at the very least.
    let mut text = std::fs::read_to_string(&config).unwrap();
    for section in ["helios", "sepa"] {
        text.push_str(&format!(
            "\n[{section}]\ninbox_poll_interval_ms = 100\ninbox_settle_ms = 0\n"
        ));
    }
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;

    // Ivry has both [tenants.helios] and [tenants.sepa]: both watchers read its inboxes.
    let data = tmp.path().join("data/ivry");
    for (area, name) in [
        ("helios", "PES_Retour_junk.xml"),
        ("bank", "pain002_junk.xml"),
    ] {
        let took = time_to_reject(&data.join(area), name);
        assert!(
            took < Duration::from_millis(1500),
            "{area}/inbox read after {took:?}"
        );
    }
    let status = daemon.terminate(STOP);
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.seen.join("\n"));
}

#[tokio::test]
async fn broker_down_does_not_stop_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let config = write_config(tmp.path(), &unique_prefix("down"), &url);
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();
    daemon.wait_for_line("Broker connection failed; retrying.", START);
    // Still alive, not ready, and says why.
    let (status, _) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 200);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    let readiness: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(readiness["checks"]["broker"]["ok"], false);
    assert_eq!(readiness["checks"]["ledger"]["ok"], true);
    assert!(daemon.child.try_wait().unwrap().is_none(), "still running");
    let status = daemon.terminate(STOP);
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.seen.join("\n"));
}

#[tokio::test]
async fn invalid_configuration_refuses_to_start_with_78() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &unique_prefix("bad"), BROKER_URL);
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "cod_col = \"081\"",
        "cod_col = \"000\"",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let mut daemon = Daemon::start(&config, &[]);
    let status = daemon.wait(STOP);
    assert_eq!(status.code(), Some(78));
    assert!(
        daemon
            .seen
            .iter()
            .any(|l| l.contains("tenants[0].budgets[0].cod_col")),
        "{:?}",
        daemon.seen
    );
    assert!(
        !tmp.path().join("data").exists(),
        "nothing created before the check passes"
    );
}
