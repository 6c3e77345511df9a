//! Latency from a PayFiP notification to its `payment.received`, over a few thousand
//! payments against the adapter's gateway simulator and a local RabbitMQ.
//!
//! ```text
//! cargo run --release -p encaisse-pipelines --example payfip_latency
//! PAYFIP_PAYMENTS=5000 PAYFIP_CONCURRENCY=64 cargo run --release -p encaisse-pipelines --example payfip_latency
//! ```
//!
//! Set-up: the `payfip.register` and `payfip.confirm` stages in a runtime (default retry
//! settings), the daemon's PayFiP routes on an ephemeral port, the simulator on another.
//! N régie invoices are published and registered, N payments started through the payment
//! API (`creerPaiementSecurise`), then paid `PAYFIP_CONCURRENCY` at a time with the
//! simulator's `pay` (outcome `P`), which records the result and POSTs the notification to
//! our endpoint. Measured, per payment: from the moment the gateway completes the payment
//! (its notification leaves) to the moment a consumer of `payment.received` receives the
//! event — notification route (ledger claim, confirmed publish of `payfip.confirm`), the
//! stage (dedupe, `recupererDetailPaiementSecurise`, commission, group-committed ledger
//! record, confirmed publish), and the broker hops. Everything lives under a random prefix
//! and is deleted at the end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use encaisse_ledger::Ledger;
use encaisse_payfip::sim::{SimulatorHandle, SimulatorOptions};
use encaisse_payfip::{GatewayConfig, PayfipMode, PayfipTenantConfig, Resultrans};
use encaisse_pipelines::Outgoing;
use encaisse_pipelines::runtime::{Runtime, RuntimeConfig, StageQueues};
use encaisse_pipelines::stages::payfip::{
    ApiToken, ConfirmStage, Gateway, PayfipSettings, RegisterStage, TenantPayfip, router,
};
use encaisse_schemas::tenant::Regie;
use encaisse_schemas::{
    Address, Civilite, CollectionPath, InvoiceIssued, InvoiceRef, Money, Payer, PaymentMode,
    SourceRef, TenantId,
};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "bench-token";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn invoice(i: usize) -> Result<InvoiceIssued, Box<dyn std::error::Error>> {
    let total = Money::parse("45.60")?;
    Ok(InvoiceIssued {
        schema_version: 1,
        invoice: InvoiceRef {
            tenant: TenantId::new("bench")?,
            exercice: 2026,
            number: format!("B{i:06}"),
        },
        source: SourceRef {
            application: "bench".into(),
            run_id: "bench".into(),
            file: None,
            lines: None,
        },
        content_hash: format!("bench-{i}"),
        issued_on: chrono::NaiveDate::from_ymd_opt(2026, 1, 31).ok_or("date")?,
        period: 1,
        activity: "PERISCOLAIRE".into(),
        budget: "principal".into(),
        collection: CollectionPath::Regie,
        regie: Some("regie".into()),
        family_code: format!("FAM{i}"),
        payer: Payer {
            civilite: Civilite::Mme,
            last_name: "Bench".into(),
            first_name: "Mark".into(),
            address: Address {
                complement: None,
                street: "1 rue du Test".into(),
                locality: None,
                postal_code: "94400".into(),
                city: "Vitry-sur-Seine".into(),
            },
            email: Some("bench@example.org".into()),
        },
        lines: Vec::new(),
        total,
        due_date: chrono::NaiveDate::from_ymd_opt(2026, 2, 28).ok_or("date")?,
        payment_mode: PaymentMode::Tipi,
        mandate: None,
        online_payable: true,
    })
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_ms.len() as f64).ceil() as usize;
    sorted_ms[rank.clamp(1, sorted_ms.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = env_usize("PAYFIP_PAYMENTS", 2_000);
    let concurrency = env_usize("PAYFIP_CONCURRENCY", 32).max(1);
    let dir = tempfile::tempdir()?;
    let ledger = Ledger::open(dir.path().join("ledger.sqlite"))?;
    let mut config = RuntimeConfig::default();
    config.broker.prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let prefix = config.broker.prefix.clone();
    let tiers = config.retry.tiers_secs.clone();

    let sim = SimulatorHandle::start(SimulatorOptions::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let gateway = sim.gateway_config();
    let gateway = GatewayConfig {
        public_base_url: Some(base.clone()),
        ..gateway
    };
    let settings = Arc::new(PayfipSettings::new(
        gateway.clone(),
        [TenantPayfip {
            id: TenantId::new("bench")?,
            payfip: PayfipTenantConfig {
                enabled: true,
                mode: PayfipMode::Test,
                ..PayfipTenantConfig::default()
            },
            budgets: Vec::new(),
            regies: vec![Regie {
                code: "regie".into(),
                label: "Régie".into(),
                payfip_numcli: Some("090909".into()),
                ics: None,
                creditor_name: None,
                creditor_iban: None,
                creditor_bic: None,
            }],
            api_token: ApiToken::new(TOKEN),
        }],
    ));
    let client = Gateway::new(&gateway)?;
    let mut runtime = Runtime::new(config.clone(), ledger.clone());
    runtime.add_stage(Arc::new(RegisterStage::new(settings.clone())));
    runtime.add_stage(Arc::new(ConfirmStage::new(
        settings.clone(),
        ledger.clone(),
        client.clone(),
    )));
    let publisher = runtime.publisher();
    let health = runtime.health();
    let app = router(settings, ledger.clone(), publisher.clone(), client);
    let stop = CancellationToken::new();
    let server_stop = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(server_stop.cancelled_owned())
            .await;
    });
    let running = tokio::spawn(runtime.run(stop.clone()));
    let connect_deadline = Instant::now() + Duration::from_secs(30);
    while !health.is_connected() {
        if Instant::now() > connect_deadline {
            return Err("the broker did not connect".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A consumer of payment.received records when each result arrives.
    let conn = Connection::connect(&config.broker.url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let sink = format!("{prefix}.bench-sink");
    channel
        .queue_declare(
            sink.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            sink.as_str().into(),
            prefix.as_str().into(),
            "payment.received".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut consumer = channel
        .basic_consume(
            sink.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let seen = arrivals.clone();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let at = Instant::now();
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&delivery.data)
                && let Some(id) = body["payment_id"].as_str()
                && let Ok(mut seen) = seen.lock()
            {
                seen.entry(id.to_string()).or_insert(at);
            }
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
        }
    });

    // Invoices in, registered.
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let batch: Result<Vec<Outgoing>, _> = chunk
            .iter()
            .map(|i| invoice(*i).map(|e| Outgoing::event(&e)))
            .collect();
        publisher.publish(batch?).await?;
    }
    loop {
        let count = ledger
            .read(|c| {
                Ok(c.query_row("SELECT count(*) FROM payfip_invoice", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .await?;
        if count as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{n} invoices registered in {:?}", started.elapsed());

    // Payments started through the API.
    let http = reqwest::Client::new();
    let started = Instant::now();
    let links: Vec<Result<String, String>> = futures::stream::iter(0..n)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let response = http
                    .post(format!("{base}/api/v1/tenants/bench/payments"))
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .header("content-type", "application/json")
                    .body(format!("{{\"invoice\":\"B{i:06}\"}}"))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let text = response.text().await.map_err(|e| e.to_string())?;
                let body: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| e.to_string())?;
                body["payment_id"]
                    .as_str()
                    .and_then(|p| p.strip_prefix("payfip:"))
                    .map(str::to_string)
                    .ok_or_else(|| format!("payment not started: {body}"))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let idops: Vec<String> = links.into_iter().collect::<Result<_, _>>()?;
    eprintln!("{n} payments started in {:?}", started.elapsed());

    // Paid; each notification's departure time is kept.
    let sim = Arc::new(sim);
    let started = Instant::now();
    let sent: Vec<Result<(String, Instant), String>> = futures::stream::iter(idops)
        .map(|idop| {
            let sim = sim.clone();
            async move {
                let at = Instant::now();
                sim.pay(&idop, Resultrans::P)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((format!("payfip:{idop}"), at))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let sent: Vec<(String, Instant)> = sent.into_iter().collect::<Result<_, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = arrivals.lock().map(|a| a.len()).unwrap_or(0);
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {done} of {n} results arrived").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let mut latencies: Vec<f64> = {
        let arrivals = arrivals.lock().map_err(|_| "poisoned")?;
        sent.iter()
            .filter_map(|(id, at)| arrivals.get(id).map(|t| (*t - *at).as_secs_f64() * 1000.0))
            .collect()
    };
    latencies.sort_by(f64::total_cmp);
    let paid = ledger
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM payfip_operation WHERE outcome = 'P'",
                [],
                |r| r.get::<_, i64>(0),
            )?)
        })
        .await?;
    let counters = sim.counters();
    println!(
        "payments={n} concurrency={concurrency} paid_in_ledger={paid} notifications={} result_queries={}",
        counters.notifications_delivered, counters.recuperer_detail_paiement
    );
    println!(
        "notification -> payment.received latency (ms): p50={:.1} p90={:.1} p99={:.1} max={:.1}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(0.0),
    );
    println!(
        "throughput: {:.0} payments/s confirmed ({} in {:.1} s)",
        n as f64 / elapsed.as_secs_f64(),
        n,
        elapsed.as_secs_f64()
    );

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
    for stage in ["payfip.register", "payfip.confirm"] {
        let queues = StageQueues::new(&prefix, stage, &tiers);
        let all = [queues.work.clone(), queues.parked.clone()]
            .into_iter()
            .chain(queues.tiers.iter().map(|(_, q)| q.clone()));
        for queue in all {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    let _ = channel
        .queue_delete(sink.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(prefix.as_str().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = conn.close(200, "OK".into()).await;
    Ok(())
}
