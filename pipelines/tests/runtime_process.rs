//! The runtime as a process (`examples/runtime_harness.rs`): killed with SIGKILL mid-stream
//! then restarted, and stopped with SIGTERM while a message is in flight.
//!
//! `cargo test -p encaisse-pipelines` builds the example first; with a `--test` filter,
//! build it with `cargo build -p encaisse-pipelines --example runtime_harness`.

mod runtime_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use encaisse_ledger::rusqlite::{Connection, OpenFlags};
use runtime_support::*;

fn harness_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().unwrap().parent().unwrap();
    let path = debug.join("examples").join("runtime_harness");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p encaisse-pipelines --example runtime_harness`",
        path.display()
    );
    path
}

struct Harness {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Harness {
    fn start(prefix: &str, ledger: &Path, delay_ms: u64) -> Self {
        let mut child = Command::new(harness_path())
            .env("HARNESS_URL", broker_url(BROKER))
            .env("HARNESS_PREFIX", prefix)
            .env("HARNESS_LEDGER", ledger)
            .env("HARNESS_DELAY_MS", delay_ms.to_string())
            .env("HARNESS_GRACE_SECS", "10")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let harness = Harness { child, lines };
        harness.expect("READY", Duration::from_secs(30));
        harness
    }

    /// Waits for a line starting with `prefix`.
    fn expect(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!("no {prefix:?} line from the harness: {e}"),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; `None` on timeout.
    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `harness_effect` rows (key → times the effect ran), read-only.
fn effects_in(ledger: &Path) -> BTreeMap<String, i64> {
    let Ok(conn) = Connection::open_with_flags(ledger, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return BTreeMap::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT key, n FROM harness_effect") else {
        return BTreeMap::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn wait_effects(ledger: &Path, at_least: usize, timeout: Duration) {
    wait_until("effects", timeout, || async {
        effects_in(ledger).len() >= at_least
    })
    .await;
}

#[tokio::test]
async fn sigkill_mid_stream_then_restart_causes_no_second_effect_and_loses_nothing() {
    const MESSAGES: usize = 300;
    let ns = Namespace::new();
    let queues = ns.stage("harness.work", &[1]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;

    let mut first = Harness::start(&ns.prefix, &ledger, 50);
    for i in 0..MESSAGES {
        client
            .publish(
                &ns.prefix,
                "work.item",
                message_props(&format!("m-{i:04}"), "vitry"),
                b"{}",
            )
            .await;
    }
    wait_effects(&ledger, MESSAGES / 3, Duration::from_secs(60)).await;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let at_kill = effects_in(&ledger).len();
    assert!(at_kill < MESSAGES, "killed mid-stream ({at_kill} done)");
    drop(first);

    let mut second = Harness::start(&ns.prefix, &ledger, 50);
    wait_effects(&ledger, MESSAGES, Duration::from_secs(90)).await;
    let mut outputs = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while outputs.len() < MESSAGES {
        assert!(
            Instant::now() < deadline,
            "missing outputs: {}",
            MESSAGES - outputs.len()
        );
        for d in client.drain(&sink).await {
            outputs.insert(d.properties.message_id().clone().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.signal("TERM");
    let status = second
        .wait(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));

    let effects = effects_in(&ledger);
    assert_eq!(effects.len(), MESSAGES, "nothing lost");
    let doubled: Vec<_> = effects.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubled.is_empty(),
        "second effects after SIGKILL: {doubled:?}"
    );
    assert_eq!(client.count(&queues.work).await, 0);
    assert_eq!(client.count(&queues.parked).await, 0);
    eprintln!("sigkill: killed after {at_kill}/{MESSAGES} effects; all {MESSAGES} done once");
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_message_finish_and_exits_zero() {
    let ns = Namespace::new();
    let queues = ns.stage("harness.work", &[1]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;

    let mut harness = Harness::start(&ns.prefix, &ledger, 3_000);
    client
        .publish(
            &ns.prefix,
            "work.item",
            message_props("m-slow", "vitry"),
            b"{}",
        )
        .await;
    harness.expect("START m-slow", Duration::from_secs(20));
    let signalled = Instant::now();
    harness.signal("TERM");
    let status = harness
        .wait(Duration::from_secs(15))
        .expect("exits within the grace period (10 s) plus margin");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "graceful exit");
    assert!(
        took >= Duration::from_millis(2_000),
        "waited for the in-flight message ({took:?})"
    );
    assert_eq!(
        effects_in(&ledger),
        BTreeMap::from([("m-slow".to_string(), 1)]),
        "in-flight effect recorded once"
    );
    assert_eq!(client.count(&sink).await, 1, "its output was published");
    assert_eq!(client.count(&queues.work).await, 0, "and it was acked");
}
