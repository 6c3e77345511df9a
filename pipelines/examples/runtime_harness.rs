//! A small daemon around the runtime, for the process tests (SIGKILL, SIGTERM) and for
//! trying the runtime by hand.
//!
//! One stage `harness.work` bound to `work.#`: it prints `START <message_id>`, waits
//! `HARNESS_DELAY_MS`, then records its effect in the ledger table `harness_effect`
//! (one row per message id, `n` = how many times the effect ran; atomic with the dedupe
//! record) and publishes `out.item`. Prints `READY` once the broker is connected.
//! SIGTERM / SIGINT stop it gracefully (exit 0).
//!
//! ```text
//! HARNESS_URL=amqp://guest:guest@127.0.0.1:5672/%2f HARNESS_PREFIX=demo \
//! HARNESS_LEDGER=/tmp/harness.sqlite cargo run -p encaisse-pipelines --example runtime_harness
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{Runtime, RuntimeConfig};
use encaisse_pipelines::{Handled, Outgoing, stage_fn};
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let delay = Duration::from_millis(env("HARNESS_DELAY_MS", "5").parse().unwrap_or(5));
    let mut config = RuntimeConfig::default();
    config.broker.url = env("HARNESS_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
    config.broker.prefix = env("HARNESS_PREFIX", "harness");
    config.broker.prefetch = 8;
    config.broker.reconnect_min_delay_ms = 100;
    config.broker.reconnect_max_delay_ms = 1_000;
    config.retry.tiers_secs = vec![1];
    config.shutdown_grace_secs = env("HARNESS_GRACE_SECS", "10").parse().unwrap_or(10);

    let ledger = match Ledger::open(env("HARNESS_LEDGER", "harness.sqlite")) {
        Ok(ledger) => ledger,
        Err(e) => {
            eprintln!("ledger: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let created = ledger
        .write(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS harness_effect (key TEXT PRIMARY KEY, n INTEGER NOT NULL)",
            )?;
            Ok(())
        })
        .await;
    if let Err(e) = created {
        eprintln!("ledger: {e}");
        return std::process::ExitCode::FAILURE;
    }

    let stage = stage_fn("harness.work", ["work.#"], move |msg| async move {
        let key = msg.message_id.clone().unwrap_or_default();
        say(&format!("START {key}"));
        tokio::time::sleep(delay).await;
        let out = Outgoing {
            exchange: None,
            routing_key: "out.item".into(),
            message_id: format!("out-{key}"),
            message_type: "harness.output".into(),
            headers: BTreeMap::new(),
            body: Bytes::from(format!("{{\"of\":\"{key}\"}}")),
        };
        Ok(Handled::publish(vec![out]).commit_with(move |tx| {
            tx.execute(
                "INSERT INTO harness_effect (key, n) VALUES (?1, 1)
                 ON CONFLICT (key) DO UPDATE SET n = n + 1",
                &[&key],
            )?;
            Ok(())
        }))
    });
    let mut runtime = Runtime::new(config, ledger);
    runtime.add_stage(stage);
    let health = runtime.health();
    tokio::spawn(async move {
        while !health.is_connected() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        say("READY");
    });

    let token = CancellationToken::new();
    let signals = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        say("STOPPING");
        signals.cancel();
    });
    match runtime.run(token).await {
        Ok(()) => {
            say("STOPPED");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
