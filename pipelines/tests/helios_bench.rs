//! Benchmark of PES writing through the `helios.titres` stage (ignored by default; run in
//! release):
//!
//! ```text
//! ENCAISSE_SPECS_DIR=../shared/specs HELIOS_BENCH_TITRES=100000 \
//!   cargo test --release -p encaisse-pipelines --test helios_bench -- --ignored --nocapture
//! ```
//!
//! 100 000 ORMC invoices (one in three by direct debit) go through the stage's handler with
//! 64 in flight (the daemon's prefetch), each collected in the ledger; the billing run's
//! closure then checks and numbers them, plans, renders and writes the PES Aller file (two
//! bordereaux: 99 999 + 1). Printed: collecting rate, closing time, titres/s end to end,
//! file size, peak RSS. The broker is not involved (its cost is the runtime's; see
//! `examples/runtime_throughput.rs`).

#[path = "helios_support/mod.rs"]
mod helios;
#[path = "runtime_support/mod.rs"]
mod support;

use std::time::Instant;

use encaisse_helios::codes::BordereauKind;
use encaisse_ledger::Ledger;
use encaisse_pipelines::Stage;
use encaisse_pipelines::stages::helios::HeliosTitres;
use futures::StreamExt;
use helios::*;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
async fn pes_writing_through_the_stage() {
    let n: usize = std::env::var("HELIOS_BENCH_TITRES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let t = tenant_id("bench");
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let stage = HeliosTitres::new(
        settings(dir.path(), vec![tenant(&t, BordereauKind::Ormc)]),
        ledger.clone(),
    );
    let run = "run-bench";
    let invoices: Vec<_> = (1..=n)
        .map(|i| {
            let number = format!("F2026{i:06}");
            let inv = if i % 3 == 0 {
                Inv::debit(&number, "57.30", Some("RCUR"))
            } else {
                Inv::new(&number, "41.20")
            };
            invoice(&t, run, &inv)
        })
        .collect();
    let messages: Vec<_> = invoices.iter().map(incoming).collect();
    let closed = incoming(&run_closed(&t, run, &invoices));
    drop(invoices);

    // Transient failures are retried, as the runtime does.
    let retries = std::sync::atomic::AtomicUsize::new(0);
    let (stage_ref, retries_ref) = (&stage, &retries);
    let started = Instant::now();
    futures::stream::iter(messages)
        .map(|m| async move {
            loop {
                match stage_ref.handle(&m).await {
                    Ok(_) => return,
                    Err(e) if e.class == encaisse_pipelines::ErrorClass::Transient => {
                        retries_ref.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
    let collected = started.elapsed();
    let rss_collected = peak_rss_mb();
    let closing = Instant::now();
    stage.handle(&closed).await.unwrap();
    let closed_in = closing.elapsed();
    let total = started.elapsed();

    let files = list(&dir.path().join(t.as_str()).join("helios/outbox"));
    assert_eq!(files.len(), 1);
    let size = std::fs::metadata(&files[0]).unwrap().len();
    let sent = read_sent(&std::fs::read(&files[0]).unwrap());
    let pieces: usize = sent.bordereaux.iter().map(|b| b.pieces.len()).sum();
    assert_eq!(pieces, n);
    if n <= 10_000 {
        assert_valid(
            &pes_aller_xsd(),
            &file_name(&files[0]),
            &std::fs::read(&files[0]).unwrap(),
        );
    }
    println!(
        "helios.titres: {n} titres, {} bordereau(x), file {:.1} MB",
        sent.bordereaux.len(),
        size as f64 / 1e6
    );
    println!(
        "  collecting {n} invoices: {:.2} s ({:.0} invoices/s); peak RSS so far {:.0} MB",
        collected.as_secs_f64(),
        n as f64 / collected.as_secs_f64(),
        rss_collected
    );
    println!(
        "  closing the run (check, number, plan, render, write, journal): {:.2} s ({:.0} titres/s)",
        closed_in.as_secs_f64(),
        n as f64 / closed_in.as_secs_f64()
    );
    println!(
        "  invoices → file: {:.2} s ({:.0} titres/s); peak RSS {:.0} MB; transient retries {}",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        peak_rss_mb(),
        retries.load(std::sync::atomic::Ordering::Relaxed)
    );
}
