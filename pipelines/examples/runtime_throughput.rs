//! Throughput of the runtime with a no-op stage (and, with `THROUGHPUT_OUTPUTS=1`, a stage
//! that publishes one output per message) against a local RabbitMQ.
//!
//! ```text
//! cargo run --release -p encaisse-pipelines --example runtime_throughput
//! THROUGHPUT_MESSAGES=10000 THROUGHPUT_PREFETCH=128 THROUGHPUT_OUTPUTS=1 cargo run ...
//! ```
//!
//! 1. publishes N messages through the runtime's `Publisher` (confirmed, window 256) while
//!    the stage is held back;
//! 2. then lets the stage go and measures until all N are handled and the queue is empty:
//!    dedupe lookup, ledger record (group commit), confirmed outputs, ack.
//!
//! Everything it declares lives under a random prefix and is deleted at the end.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{Runtime, RuntimeConfig, StageQueues};
use encaisse_pipelines::{Handled, Outgoing, stage_fn};
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn message(i: usize, routing_key: &str) -> Outgoing {
    Outgoing {
        exchange: None,
        routing_key: routing_key.into(),
        message_id: format!("bench-{routing_key}-{i}"),
        message_type: "bench.item".into(),
        headers: BTreeMap::new(),
        body: Bytes::from(format!(
            "{{\"schema_version\":1,\"n\":{i},\"pad\":\"{}\"}}",
            "x".repeat(200)
        )),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env_usize("THROUGHPUT_MESSAGES", 5_000);
    let outputs = env_usize("THROUGHPUT_OUTPUTS", 0) == 1;
    let dir = tempfile::tempdir()?;
    let ledger = Ledger::open(dir.path().join("ledger.sqlite"))?;
    let mut config = RuntimeConfig::default();
    config.broker.prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    config.broker.prefetch = u16::try_from(env_usize("THROUGHPUT_PREFETCH", 64)).unwrap_or(64);

    // The stage waits for the gate: messages pile up while they are published, then the
    // consumption is timed on its own.
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    let stage = stage_fn("bench.noop", ["bench.in"], move |msg| {
        let counter = counter.clone();
        let mut gate = gate_rx.clone();
        async move {
            let _ = gate.wait_for(|open| *open).await;
            counter.fetch_add(1, Ordering::Relaxed);
            if outputs {
                let id = msg.message_id.clone().unwrap_or_default();
                let mut out = message(0, "bench.out");
                out.message_id = format!("out-{id}");
                return Ok(Handled::publish(vec![out]));
            }
            Ok(Handled::none())
        }
    });
    let mut runtime = Runtime::new(config.clone(), ledger.clone());
    runtime.add_stage(stage);
    if outputs {
        runtime.add_stage(stage_fn("bench.sink", ["bench.out"], |_| async {
            Ok(Handled::none())
        }));
    }
    let publisher = runtime.publisher();
    let health = runtime.health();
    let token = CancellationToken::new();
    let running = tokio::spawn(runtime.run(token.clone()));
    while !health.is_connected() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let batch = 500;
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        publisher
            .publish((i..end).map(|k| message(k, "bench.in")).collect())
            .await?;
        i = end;
    }
    let publish_secs = started.elapsed().as_secs_f64();

    let conn = Connection::connect(&config.broker.url, ConnectionProperties::default()).await?;
    let work = StageQueues::new(
        &config.broker.prefix,
        "bench.noop",
        &config.retry.tiers_secs,
    );
    let started = Instant::now();
    gate_tx.send_replace(true);
    while handled.load(Ordering::Relaxed) < n || ready_count(&conn, &work.work).await > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let consume_secs = started.elapsed().as_secs_f64();
    token.cancel();
    running.await??;

    println!(
        "messages: {n} (~260 bytes), prefetch: {}, outputs per message: {}",
        config.broker.prefetch,
        usize::from(outputs)
    );
    println!(
        "publish (confirmed, batches of {batch}, window {}): {:.0} msg/s ({publish_secs:.2} s)",
        config.broker.confirm_window,
        n as f64 / publish_secs
    );
    println!(
        "consume (dedupe lookup + ledger record + outputs confirmed + ack): {:.0} msg/s ({consume_secs:.2} s)",
        n as f64 / consume_secs
    );

    // Clean up.
    let ch = conn.create_channel().await?;
    let mut names = Vec::new();
    for stage in ["bench.noop", "bench.sink"] {
        let q = StageQueues::new(&config.broker.prefix, stage, &config.retry.tiers_secs);
        names.push(q.work);
        names.push(q.parked);
        names.extend(q.tiers.into_iter().map(|(_, t)| t));
    }
    for name in names {
        let _ = ch
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = ch
        .exchange_delete(
            config.broker.prefix.as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await;
    Ok(())
}

async fn ready_count(conn: &Connection, queue: &str) -> u32 {
    let Ok(ch) = conn.create_channel().await else {
        return 0;
    };
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let count = ch
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .map(|q| q.message_count())
        .unwrap_or(0);
    let _ = ch.close(200, "OK".into()).await;
    count
}
