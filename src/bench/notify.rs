//! Online payment latency through the real daemon: from the moment the PayFiP gateway (the
//! adapter's simulator, in this process) completes a payment and sends its notification to
//! the daemon, to the moment `payment.received` reaches a consumer of the daemon's exchange.
//! In between: the notification route (ledger claim, confirmed `payfip.confirm`), the
//! `payfip.confirm` stage (dedupe, `recupererDetailPaiementSecurise` against the simulator,
//! commission, ledger record, confirmed publish), and the broker hops.
//!
//! The invoices are régie invoices published to the daemon's exchange as a source would;
//! the payments are started through the daemon's payment API, as the Kiosque famille does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use encaisse_payfip::Resultrans;
use encaisse_payfip::sim::SimulatorHandle;
use encaisse_pipelines::Outgoing;
use encaisse_schemas::{
    Address, Civilite, CollectionPath, InvoiceIssued, InvoiceRef, Money, Payer, PaymentMode,
    SourceRef, TenantId,
};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::broker;
use super::daemon::TOKEN;
use super::error::{BenchError, Result};
use super::ledger::LedgerView;
use super::settings::{REGIE, REGIE_ACTIVITY, TENANT};

/// Invoice numbers of the payments (`PAY0000001`…), apart from the export's.
const NUMBER_PREFIX: &str = "PAY";

/// What the latency benchmark measured.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct NotifyResult {
    pub payments: usize,
    /// Payments paid at the same time.
    pub concurrency: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Payments confirmed per second over the paying phase.
    pub payments_per_s: f64,
}

/// The `p`-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn invoice(i: usize, exercice: u16) -> Result<InvoiceIssued> {
    let setup = |e: String| BenchError::Setup(e);
    let today = super::export::today();
    Ok(InvoiceIssued {
        schema_version: 1,
        invoice: InvoiceRef {
            tenant: TenantId::new(TENANT).map_err(|e| setup(e.to_string()))?,
            exercice,
            number: format!("{NUMBER_PREFIX}{i:07}"),
        },
        source: SourceRef {
            application: "encaisse-bench".into(),
            run_id: "encaisse-bench-payments".into(),
            file: None,
            lines: None,
        },
        content_hash: format!("encaisse-bench-payment-{i}"),
        issued_on: today,
        period: 12,
        activity: REGIE_ACTIVITY.into(),
        budget: "principal".into(),
        collection: CollectionPath::Regie,
        regie: Some(REGIE.into()),
        family_code: format!("FAM{i:06}"),
        payer: Payer {
            civilite: Civilite::Mme,
            last_name: "Essai".into(),
            first_name: "Camille".into(),
            address: Address {
                complement: None,
                street: "1 rue du Banc".into(),
                locality: None,
                postal_code: "94400".into(),
                city: "Vitry-sur-Seine".into(),
            },
            email: Some(format!("famille{i}@exemple.fr")),
        },
        lines: Vec::new(),
        total: Money::parse("45.60").map_err(|e| setup(e.to_string()))?,
        due_date: today + chrono::Duration::days(30),
        payment_mode: PaymentMode::Tipi,
        mandate: None,
        online_payable: true,
    })
}

/// What the latency benchmark needs.
pub struct NotifyInput<'a> {
    pub amqp_url: &'a str,
    pub prefix: &'a str,
    pub base_url: &'a str,
    pub http: &'a reqwest::Client,
    pub ledger: &'a LedgerView,
    pub sim: Arc<SimulatorHandle>,
    pub payments: usize,
    pub concurrency: usize,
}

/// Registers the invoices, starts the payments, pays them and measures.
pub async fn run(input: NotifyInput<'_>) -> Result<NotifyResult> {
    let NotifyInput {
        amqp_url,
        prefix,
        base_url,
        http,
        ledger,
        sim,
        payments: n,
        concurrency,
    } = input;
    let concurrency = concurrency.max(1);
    let exercice = u16::try_from(chrono::Datelike::year(&super::export::today()))
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let conn = broker::connect(amqp_url).await?;

    // A consumer of payment.received notes when each result arrives.
    let channel = conn.create_channel().await?;
    let sink = format!("{prefix}.bench-payments");
    channel
        .queue_declare(
            sink.as_str().into(),
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
            sink.as_str().into(),
            prefix.into(),
            "payment.received".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut consumer = channel
        .basic_consume(
            sink.as_str().into(),
            "encaisse-bench-payments".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let seen = arrivals.clone();
    let listening = tokio::spawn(async move {
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

    // The invoices, as a source publishes them; registered by payfip.register.
    let publisher = broker::confirm_channel(&conn).await?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
        let events: Vec<Outgoing> = chunk
            .iter()
            .map(|i| invoice(*i, exercice).map(|e| Outgoing::event(&e)))
            .collect::<Result<_>>()?;
        broker::publish_confirmed(&publisher, prefix, &events).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while ledger.payfip_invoices(TENANT, NUMBER_PREFIX)? < n as u64 {
        if Instant::now() > deadline {
            return Err(BenchError::Daemon(
                "payfip.register did not register the payment invoices within 120 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Payments started through the daemon's API (creerPaiementSecurise on the simulator).
    let started: Vec<Result<String>> = futures::stream::iter(0..n)
        .map(|i| async move {
            let response = http
                .post(format!("{base_url}/api/v1/tenants/{TENANT}/payments"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(serde_json::json!({"invoice": format!("{NUMBER_PREFIX}{i:07}")}).to_string())
                .send()
                .await?;
            let status = response.status();
            let text = response.text().await?;
            let body: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| BenchError::Daemon(format!("payment API ({status}): {e}: {text}")))?;
            body["payment_id"]
                .as_str()
                .and_then(|p| p.strip_prefix("payfip:"))
                .map(str::to_string)
                .ok_or_else(|| {
                    BenchError::Daemon(format!("payment not started ({status}): {body}"))
                })
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let idops: Vec<String> = started.into_iter().collect::<Result<_>>()?;

    // Paid: the simulator completes each payment and notifies the daemon.
    let paying = Instant::now();
    let sent: Vec<Result<(String, Instant)>> = futures::stream::iter(idops)
        .map(|idop| {
            let sim = sim.clone();
            async move {
                let at = Instant::now();
                sim.pay(&idop, Resultrans::P)
                    .await
                    .map_err(|e| BenchError::Daemon(format!("simulator: {e}")))?;
                Ok((format!("payfip:{idop}"), at))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let sent: Vec<(String, Instant)> = sent.into_iter().collect::<Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = arrivals.lock().map(|a| a.len()).unwrap_or(0);
        if done >= n {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Daemon(format!(
                "only {done} of {n} payment.received arrived within 300 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = paying.elapsed();
    listening.abort();
    let mut latencies: Vec<f64> = {
        let arrivals = arrivals
            .lock()
            .map_err(|_| BenchError::Setup("arrival map poisoned".into()))?;
        sent.iter()
            .filter_map(|(id, at)| {
                arrivals
                    .get(id)
                    .map(|t| t.saturating_duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    latencies.sort_by(f64::total_cmp);
    let _ = conn.close(200, "OK".into()).await;
    Ok(NotifyResult {
        payments: n,
        concurrency,
        p50_ms: percentile(&latencies, 50.0),
        p90_ms: percentile(&latencies, 90.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        payments_per_s: n as f64 / elapsed.as_secs_f64().max(1e-6),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn payment_invoices_are_valid_regie_events() {
        let event = invoice(42, 2026).unwrap();
        assert_eq!(event.invoice.key(), "bench/2026/PAY0000042");
        let out = Outgoing::event(&event);
        assert_eq!(out.routing_key, "invoice.issued.regie");
        let back: InvoiceIssued = encaisse_schemas::decode(&out.body).unwrap();
        assert_eq!(back, event);
    }
}
