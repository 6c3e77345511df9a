//! Throughput and memory of `polyfac.ingest` through the real broker: a generated export of
//! N lines (default 1,000,000) is dropped in a tenant's inbox and ingested — both reading
//! passes, validation, enrichment, the ledger's checks and records, confirmed publishing of
//! every `invoice.issued` and of `billing_run.closed` — while a consumer drains a test queue
//! bound to everything.
//!
//! ```text
//! cargo build --release -p encaisse-pipelines --example ingest_bench
//! /usr/bin/time -v target/release/examples/ingest_bench            # peak RSS: "Maximum resident set size"
//! INGEST_LINES=100000 INGEST_BATCH=500 target/release/examples/ingest_bench
//! ```
//!
//! The broker is `ENCAISSE_AMQP_URL` (default the local guest broker). Everything declared
//! lives under a random prefix and is deleted at the end; files and ledger go to a
//! temporary directory.

use std::collections::HashMap;
use std::io::BufWriter;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use encaisse_ledger::Ledger;
use encaisse_pipelines::mandates::SequencePolicy;
use encaisse_pipelines::runtime::{BrokerState, Runtime, RuntimeConfig, SourceContext};
use encaisse_pipelines::stages::polyfac::{
    PolyfacStagesConfig, PolyfacTenant, PolyfacTenants, ingest_source,
};
use encaisse_polyfac::SourceMapping;
use encaisse_polyfac::generate::{ExportSpec, example_catalogue, write_export};
use encaisse_schemas::TenantId;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use tokio_util::sync::CancellationToken;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lines = env_u64("INGEST_LINES", 1_000_000);
    let batch = usize::try_from(env_u64("INGEST_BATCH", 500))?;
    let url = std::env::var("ENCAISSE_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let inbox = data_dir.join("bench").join("polyfac").join("inbox");
    std::fs::create_dir_all(&inbox)?;

    let started = Instant::now();
    let file = std::fs::File::create(inbox.join("FACT_BENCH.csv"))?;
    let generated = write_export(&ExportSpec::new(lines), BufWriter::new(file))?;
    let bytes = std::fs::metadata(inbox.join("FACT_BENCH.csv"))?.len();
    println!(
        "generated {} lines, {} invoices, {:.1} MB in {:.1} s",
        generated.lines,
        generated.invoices,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let tenant = TenantId::new("bench")?;
    let catalogue = example_catalogue(tenant.clone()).map_err(|issues| format!("{issues:?}"))?;
    let tenants = PolyfacTenants::new([PolyfacTenant {
        tenant,
        application: "polyfac".into(),
        mapping: SourceMapping::polyfac_default(),
        catalogue: Arc::new(catalogue),
        sequence_policy: SequencePolicy::from(&encaisse_sepa::config::SepaTenantConfig::default()),
    }]);

    let ledger = Ledger::open(dir.path().join("ledger.sqlite"))?;
    let mut config = RuntimeConfig::default();
    config.broker.url = url.clone();
    config.broker.prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let prefix = config.broker.prefix.clone();

    // The consumer: a queue bound to everything on the exchange, drained without acks.
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .exchange_declare(
            prefix.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let queue = format!("{prefix}.drain");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            prefix.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let drain = tokio::spawn(async move {
        while let Some(delivery) = consumer.next().await {
            if delivery.is_err() {
                break;
            }
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });

    let runtime = Runtime::new(config, ledger.clone());
    let health = runtime.health();
    let ctx = SourceContext {
        publisher: runtime.publisher(),
        ledger: ledger.clone(),
        shutdown: CancellationToken::new(),
    };
    let token = CancellationToken::new();
    let running = tokio::spawn(runtime.run(token.clone()));
    while health.state() != BrokerState::Connected {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let settings = PolyfacStagesConfig {
        inbox_settle_ms: 0,
        publish_batch_size: batch,
        ..PolyfacStagesConfig::default()
    };
    let watcher = ingest_source(tenants, data_dir.clone(), &settings);
    let started = Instant::now();
    let handled = watcher.scan_once(&ctx, &mut HashMap::new()).await;
    let ingest = started.elapsed();
    let expected = generated.invoices + 1; // and billing_run.closed
    while received.load(Ordering::Relaxed) < expected
        && started.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed();
    let archived = data_dir
        .join("bench/polyfac/archive/FACT_BENCH.csv")
        .exists();

    println!(
        "ingest: {handled} file (archived: {archived}), {} lines, {} invoices published in {:.2} s: {:.0} lines/s, {:.0} invoices/s (batch {batch})",
        generated.lines,
        generated.invoices,
        ingest.as_secs_f64(),
        generated.lines as f64 / ingest.as_secs_f64(),
        generated.invoices as f64 / ingest.as_secs_f64(),
    );
    println!(
        "consumer: {} of {expected} messages drained after {:.2} s",
        received.load(Ordering::Relaxed),
        drained.as_secs_f64()
    );

    token.cancel();
    let _ = running.await;
    drain.abort();
    channel
        .exchange_delete(prefix.as_str().into(), ExchangeDeleteOptions::default())
        .await?;
    let _ = conn.close(200, "OK".into()).await;
    if !archived || received.load(Ordering::Relaxed) < expected {
        return Err("the export was not fully ingested".into());
    }
    Ok(())
}
