//! `payfip.reconcile`: the source that finds results whose notification never came.
//!
//! Notifications can be lost (spec §3.3: other integrations run a "rattrapage" job too).
//! Every `[payfip.reconciliation] interval_secs` the job:
//! * publishes `payfip.confirm` for web-service operations without a result, older than
//!   `min_age_secs` (a younger one may still be on the payment page) and not asked about in
//!   the last `requery_after_secs`, oldest first, at most `batch_size` per sweep. The
//!   confirmation stage then asks the gateway: a result is published, `P5` is retried by its
//!   delay tiers, and `P1` or `P5` past `[payfip] result_wait_secs` (the gateway's window)
//!   expires the operation (`payment.failed` with `Expired`). Nothing is ever expired without
//!   asking the gateway: an operation it paid must not be reported failed;
//! * closes classic-URL attempts (titres) without a result after
//!   `classic_result_wait_secs` — that channel has no status query; a later result that
//!   verifies is still accepted;
//! * reports classic claims (a "paid" classic result, unsigned) that no PES Retour
//!   émargement confirmed within `classic_claim_confirm_secs`: a warning, the counter
//!   `encaisse_payfip_claims_total{outcome="unconfirmed"}` and a `payfip_claim_unconfirmed`
//!   fact in the invoice's journal (`encaisse trace`), once per claim — either a forged
//!   result or a payment the Trésorerie has not seen, for ops to look into;
//! * removes reservations left by a crash during `creerPaiementSecurise` (no family was sent
//!   to the gateway with them).

use std::sync::Arc;

use chrono::Utc;
use encaisse_ledger::{CoreStore, InvoiceFact, Ledger, LedgerError};
use futures::future::BoxFuture;

use super::RECONCILE_SOURCE;
use super::confirm::command;
use super::routes::CLAIMS;
use super::settings::PayfipSettings;
use super::store;
use crate::runtime::{Source, SourceContext};

/// The reconciliation source.
pub struct Reconciler {
    settings: Arc<PayfipSettings>,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// `payfip.confirm` commands published.
    pub asked: usize,
    /// Classic attempts closed.
    pub closed: usize,
    /// Stale reservations removed.
    pub dropped: usize,
    /// Classic claims reported unconfirmed.
    pub unconfirmed: usize,
}

impl Reconciler {
    pub fn new(settings: Arc<PayfipSettings>) -> Self {
        Reconciler { settings }
    }

    /// One pass (public for tests and the benchmark).
    pub async fn sweep(&self, ctx: &SourceContext) -> Result<Sweep, String> {
        let config = &self.settings.gateway.reconciliation;
        let now = Utc::now();
        let created_before = store::ts(now - config.min_age());
        let requested_before = store::ts(now - config.requery_after());
        let limit = config.batch_size;
        let due = ctx
            .ledger
            .inspect(move |tx| store::due_for_query(tx, &created_before, &requested_before, limit))
            .await
            .map_err(|e| format!("reading unresolved PayFiP operations: {e}"))?;
        let mut sweep = Sweep::default();
        if !due.is_empty() {
            let commands = due
                .iter()
                .map(|(tenant, idop)| command(tenant, idop))
                .collect();
            ctx.publisher
                .publish(commands)
                .await
                .map_err(|e| format!("publishing payfip.confirm commands: {e}"))?;
            let idops: Vec<String> = due.into_iter().map(|(_, idop)| idop).collect();
            sweep.asked = idops.len();
            let at = store::ts(now);
            ctx.ledger
                .transact(move |tx| store::mark_requested(tx, &idops, &at))
                .await
                .map_err(|e| format!("recording PayFiP questions: {e}"))?;
        }
        sweep.closed = close_classic(&ctx.ledger, now - config.classic_result_wait()).await?;
        sweep.unconfirmed =
            report_unconfirmed(&ctx.ledger, now - config.classic_claim_confirm(), limit).await?;
        // A reservation lives for one gateway call: twice its timeout is generous.
        let reservation_age = chrono::Duration::milliseconds(
            i64::try_from(self.settings.gateway.request_timeout_ms.saturating_mul(2))
                .unwrap_or(i64::MAX / 2)
                .saturating_add(60_000),
        );
        let cutoff = store::ts(now - reservation_age);
        sweep.dropped = ctx
            .ledger
            .transact(move |tx| store::drop_stale_reservations(tx, &cutoff))
            .await
            .map_err(|e| format!("dropping stale PayFiP reservations: {e}"))?;
        Ok(sweep)
    }
}

async fn close_classic(
    ledger: &Ledger,
    created_before: chrono::DateTime<Utc>,
) -> Result<usize, String> {
    let (before, now) = (store::ts(created_before), store::ts(Utc::now()));
    ledger
        .transact(move |tx| store::close_stale_classic(tx, &before, &now))
        .await
        .map_err(|e| format!("closing stale classic PayFiP attempts: {e}"))
}

async fn report_unconfirmed(
    ledger: &Ledger,
    claimed_before: chrono::DateTime<Utc>,
    limit: u32,
) -> Result<usize, String> {
    let (before, now) = (store::ts(claimed_before), store::ts(Utc::now()));
    let reported = ledger
        .transact(move |tx| {
            let claims = store::report_unconfirmed_claims(tx, &before, limit, &now)?;
            for op in &claims {
                tx.record_fact(&unconfirmed_fact(op, &now))?;
            }
            Ok::<_, LedgerError>(claims)
        })
        .await
        .map_err(|e| format!("reporting unconfirmed classic PayFiP claims: {e}"))?;
    for op in &reported {
        metrics::counter!(CLAIMS, "tenant" => op.invoice.tenant.to_string(), "outcome" => "unconfirmed")
            .increment(1);
        tracing::warn!(
            invoice = %op.invoice.key(),
            payment_id = op.payment_id.as_deref().unwrap_or(""),
            amount = %op.amount,
            announced_at = %op.claim.map(|c| store::ts(c.at)).unwrap_or_default(),
            "Classic PayFiP payment announced but never confirmed by a PES Retour émargement: a forged result, or a payment the Trésorerie has not recorded. Check with the comptable."
        );
    }
    Ok(reported.len())
}

fn unconfirmed_fact(op: &store::Operation, now: &str) -> InvoiceFact {
    InvoiceFact {
        invoice_key: op.invoice.key(),
        tenant: op.invoice.tenant.to_string(),
        at: now.to_string(),
        kind: "payfip_claim_unconfirmed".into(),
        detail: serde_json::json!({
            "payment_id": op.payment_id,
            "amount": op.amount.to_dot_string(),
            "announced_at": op.claim.map(|c| store::ts(c.at)),
        })
        .to_string(),
        dedupe_key: Some(format!("payfip.claim#{}#unconfirmed", op.op_id)),
    }
}

impl Source for Reconciler {
    fn name(&self) -> &str {
        RECONCILE_SOURCE
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            if !self.settings.gateway.reconciliation.enabled {
                tracing::info!(
                    "PayFiP reconciliation is disabled ([payfip.reconciliation] enabled = false)."
                );
                ctx.shutdown.cancelled().await;
                return Ok(());
            }
            let interval = self.settings.gateway.reconciliation.interval();
            loop {
                match self.sweep(&ctx).await {
                    Ok(sweep) if sweep != Sweep::default() => {
                        tracing::info!(
                            asked = sweep.asked,
                            closed = sweep.closed,
                            dropped = sweep.dropped,
                            unconfirmed = sweep.unconfirmed,
                            "PayFiP reconciliation sweep done."
                        );
                    }
                    Ok(_) => {}
                    // The next sweep tries again; nothing is lost meanwhile.
                    Err(e) => tracing::warn!(error = %e, "PayFiP reconciliation sweep failed."),
                }
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        })
    }
}
