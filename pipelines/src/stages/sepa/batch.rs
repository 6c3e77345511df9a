//! The `sepa.batch` stage: one pain.008 per régie and billing run.
//!
//! ```text
//! invoice.issued.regie ──add_item(run, budget)──┐
//! billing_run.closed ───set_expected(run, budget)┴─► try_close ─► (one transaction) plan:
//!     PRELEVEMENT invoices per régie → sequence (mandate history), amendment, due date,
//!     EPC rules → refused ones aside → {seq}, name, CreDtTm → rendered bytes stored
//! ─► commit ─► emit_file (bank/outbox) ─► written ─► payment.rejected for the refused ones
//! ```
//!
//! Every régie invoice of a run is collected per budget with the shared billing-run
//! collector (the count of `billing_run.closed` is per budget and collection path), so the
//! group closes exactly once, whatever the order of the messages and after any crash or
//! redelivery. The plan (bytes included) is committed before the file is written; each call
//! starts by writing what an earlier call planned and did not write, so a crash between the
//! two writes the same file later, never a second one.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use encaisse_ledger::batch::{AddOutcome, BatchItem, BatchKey};
use encaisse_ledger::{BatchStore, Ledger, Tx};
use encaisse_schemas::{
    BillingRunClosed, CollectionPath, CreditNoteIssued, Event, InvoiceIssued, PaymentMode,
    PaymentRejected, TenantId,
};
use encaisse_sepa::report::refused_report;
use futures::future::BoxFuture;

use super::clock::{Clock, paris};
use super::credit_notes;
use super::outputs;
use super::plan::{self, Candidate, PlanContext, PlanError};
use super::refusal::{self, Refusal, RefusalCode};
use super::store::{self, FileKind, NewFile};
use super::{SepaSettings, TenantSepa};
use crate::stage::{Handled, Incoming, Outgoing, Stage, StageError};

/// The stage's name (its queue is `<prefix>.sepa.batch`), also the batch collector's key.
pub const STAGE: &str = "sepa.batch";

/// The `sepa.batch` stage.
pub struct SepaBatch {
    tenants: BTreeMap<TenantId, TenantSepa>,
    ledger: Ledger,
    data_dir: PathBuf,
    clock: Clock,
    /// One writer of planned files at a time per tenant: planning is serialised by the
    /// ledger, but two calls writing the same planned file at once would race on its
    /// temporary file.
    locks: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<()>>>>,
}

impl SepaBatch {
    pub fn new(settings: SepaSettings, ledger: Ledger) -> Self {
        SepaBatch {
            tenants: settings
                .tenants
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            ledger,
            data_dir: settings.data_dir,
            clock: settings.clock,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self, tenant: &TenantId) -> Arc<tokio::sync::Mutex<()>> {
        match self.locks.lock() {
            Ok(mut locks) => locks.entry(tenant.clone()).or_default().clone(),
            // A poisoned map only means another handler panicked: a fresh lock is as good.
            Err(_) => Arc::default(),
        }
    }

    async fn dispatch(&self, message: &Incoming) -> Result<Handled, StageError> {
        let kind = message
            .message_type
            .as_deref()
            .unwrap_or(message.routing_key.as_str());
        if kind == BillingRunClosed::TYPE {
            self.on_run_closed(message.decode()?).await
        } else if kind == InvoiceIssued::TYPE || kind.starts_with("invoice.issued.") {
            self.on_invoice(message.decode()?, message.body.to_vec())
                .await
        } else if kind == CreditNoteIssued::TYPE || kind.starts_with("credit_note.issued.") {
            self.on_credit_note(message.decode()?).await
        } else {
            Err(StageError::permanent(
                "unexpected_message",
                format!("sepa.batch does not handle {kind:?} messages"),
            ))
        }
    }

    async fn on_invoice(
        &self,
        invoice: InvoiceIssued,
        body: Vec<u8>,
    ) -> Result<Handled, StageError> {
        let invoice_ref = invoice.invoice.clone();
        if invoice.collection != CollectionPath::Regie {
            return Ok(Handled::none().about(invoice_ref));
        }
        let Some(tenant) = self.tenants.get(&invoice_ref.tenant) else {
            return Ok(self.without_direct_debit(invoice));
        };
        let key = BatchKey {
            stage: STAGE.to_string(),
            tenant: tenant.id.to_string(),
            run_id: invoice.source.run_id.clone(),
            group: invoice.budget.clone(),
        };
        let (tenant_cfg, now, item_key) = (tenant.clone(), self.clock.now(), invoice_ref.key());
        let hash = invoice.content_hash.clone();
        let outcome = plan::commit(&self.ledger, move |tx| {
            if let AddOutcome::Conflict { reason } = tx.add_item(&key, &item_key, &hash, &body)? {
                return Ok(Err(reason));
            }
            close_and_plan(tx, &tenant_cfg, &key, now).map(Ok)
        })
        .await?;
        match outcome {
            Ok(refused) => refusal::log(&refused),
            Err(reason) => return Err(StageError::permanent("batch_conflict", reason)),
        }
        Ok(self.finish(tenant).await?.about(invoice_ref))
    }

    /// A credit note against a régie invoice: lowers its debit if not planned yet, else a
    /// refund (or a refusal) told to Polyfac.
    async fn on_credit_note(&self, note: CreditNoteIssued) -> Result<Handled, StageError> {
        let note_ref = note.note.invoice.clone();
        if note.note.collection != CollectionPath::Regie {
            return Ok(Handled::none().about(note_ref));
        }
        let Some(tenant) = self.tenants.get(&note_ref.tenant) else {
            return Ok(Handled::none().about(note_ref));
        };
        let now = self.clock.now();
        let decision = plan::commit(&self.ledger, move |tx| {
            credit_notes::decide(tx, STAGE, &note, now)
        })
        .await?;
        match decision {
            credit_notes::Decision::Pending => Ok(self.finish(tenant).await?.about(note_ref)),
            credit_notes::Decision::Tell(event) => {
                tracing::warn!(tenant = %tenant.id, credit_note = %note_ref.key(), code = %event.code, "Credit note against a régie invoice not applied to a debit; Polyfac told (AVOIR_REJETE).");
                Ok(Handled::publish(vec![Outgoing::event(event.as_ref())]).about(note_ref))
            }
        }
    }

    async fn on_run_closed(&self, run: BillingRunClosed) -> Result<Handled, StageError> {
        let Some(tenant) = self.tenants.get(&run.tenant) else {
            return Ok(Handled::none());
        };
        // What an earlier call planned and did not write comes first.
        self.write_planned(tenant).await?;
        let groups: Vec<(BatchKey, u32)> = run
            .budgets
            .iter()
            .filter(|b| b.collection == CollectionPath::Regie)
            .map(|b| {
                (
                    BatchKey {
                        stage: STAGE.to_string(),
                        tenant: tenant.id.to_string(),
                        run_id: run.run_id.clone(),
                        group: b.budget.clone(),
                    },
                    b.invoices,
                )
            })
            .collect();
        let (tenant_cfg, now) = (tenant.clone(), self.clock.now());
        let refused = plan::commit(&self.ledger, move |tx| {
            let mut refused = Vec::new();
            for (key, expected) in &groups {
                tx.set_expected(key, *expected)?;
                refused.extend(close_and_plan(tx, &tenant_cfg, key, now)?);
            }
            Ok(refused)
        })
        .await?;
        refusal::log(&refused);
        self.finish(tenant).await
    }

    /// Writes every file planned for the tenant and not written yet (this call's, or an
    /// earlier call's that crashed), one writer per tenant at a time.
    async fn write_planned(&self, tenant: &TenantSepa) -> Result<(), StageError> {
        let guard = self.lock(&tenant.id);
        let _held = guard.lock().await;
        outputs::write_planned(&self.ledger, &self.data_dir, tenant.id.as_str(), STAGE).await?;
        Ok(())
    }

    /// Writes what was planned and hands the waiting events to the runtime, which marks
    /// them handed atomically with this message's dedupe record. Every successful call ends
    /// here, so a plan left unwritten by a crash is completed by the next message of the
    /// tenant (its own redelivery at the latest).
    async fn finish(&self, tenant: &TenantSepa) -> Result<Handled, StageError> {
        self.write_planned(tenant).await?;
        let events = outputs::pending_events(&self.ledger, tenant.id.as_str(), STAGE).await?;
        Ok(hand_over(events))
    }

    /// A régie invoice of a tenant without `[tenants.sepa]`: nothing to collect, except a
    /// direct-debit invoice, which cannot be debited — say so at once.
    fn without_direct_debit(&self, invoice: InvoiceIssued) -> Handled {
        let invoice_ref = invoice.invoice.clone();
        if invoice.payment_mode != PaymentMode::Prelevement {
            return Handled::none().about(invoice_ref);
        }
        let refusal = Refusal {
            end_to_end_id: encaisse_sepa::ids::end_to_end_id(&invoice.invoice, 1).ok(),
            invoice,
            attempt: 1,
            code: RefusalCode::Setup,
            reason: without_sepa_reason(&invoice_ref.tenant),
        };
        let event = refusal.event(paris(self.clock.now()));
        refusal::log(std::slice::from_ref(&refusal));
        let cause = refusal.invoice.source.run_id.clone();
        Handled::publish(vec![Outgoing::event(&event)])
            .about(invoice_ref)
            .commit_with(move |tx| {
                refusal::record_facts(tx, std::slice::from_ref(&refusal), &cause)
            })
    }
}

/// Why a direct debit of a tenant without `[tenants.sepa]` is refused (also what
/// `encaisse preview` says of it).
pub fn without_sepa_reason(tenant: &encaisse_schemas::TenantId) -> String {
    format!("tenant {tenant} has no [tenants.sepa] section: it sends no direct debit")
}

/// The waiting events as outputs, marked handed in the dedupe transaction.
fn hand_over(events: Vec<PaymentRejected>) -> Handled {
    if events.is_empty() {
        return Handled::none();
    }
    let ids: Vec<String> = events.iter().map(Event::message_id).collect();
    Handled::publish(events.iter().map(Outgoing::event).collect())
        .commit_with(move |tx| store::mark_handed(tx, &ids))
}

/// Closes the group if complete and plans its files: one pain.008 per régie for the
/// `PRELEVEMENT` invoices, a report of the refused ones.
fn close_and_plan(
    tx: &mut Tx<'_>,
    tenant: &TenantSepa,
    key: &BatchKey,
    now: chrono::NaiveDateTime,
) -> Result<Vec<Refusal>, PlanError> {
    if !tx.close_if_complete(key)? {
        return Ok(Vec::new());
    }
    credit_notes::lock_tenant(tx, &key.tenant)?;
    let items = tx.items(key)?;
    let ctx = PlanContext {
        tenant,
        now,
        origin: STAGE,
        cause: &key.run_id,
    };
    let mut per_regie: BTreeMap<Option<String>, Vec<Candidate>> = BTreeMap::new();
    let total = items.len();
    for item in &items {
        let invoice = decode_item(item)?;
        if invoice.payment_mode != PaymentMode::Prelevement {
            continue;
        }
        // Credit notes received before the debit is planned lower it (or remove it).
        let Some(invoice) = credit_notes::lower_debit(tx, key, invoice)? else {
            continue;
        };
        per_regie
            .entry(invoice.regie.clone())
            .or_default()
            .push(Candidate {
                attempt: 1,
                due_date: invoice.due_date,
                previous_sequence: None,
                invoice,
            });
    }
    let mut refused = Vec::new();
    let mut files = Vec::new();
    for (regie, candidates) in per_regie {
        let planned = plan::plan_regie(tx, ctx, regie.as_deref(), candidates)?;
        refused.extend(planned.refused);
        files.extend(planned.file_name);
    }
    tracing::info!(
        tenant = %tenant.id,
        run = %key.run_id,
        budget = %key.group,
        invoices = total,
        files = files.len(),
        refused = refused.len(),
        "Billing run closed for direct debit."
    );
    if refused.is_empty() {
        return Ok(refused);
    }
    refusal::record(tx, STAGE, &refused, paris(now), &key.run_id)?;
    let rows: Vec<_> = refused.iter().map(Refusal::row).collect();
    let bytes = refused_report(&rows).map_err(|e| PlanError::Setup(e.to_string()))?;
    store::insert_file(
        tx,
        &NewFile {
            tenant: tenant.id.as_str(),
            origin: STAGE,
            kind: FileKind::RefusedReport,
            path: format!(
                "{}/bank/rejected/{}-{}-refused.csv",
                tenant.id,
                file_safe(&key.run_id),
                file_safe(&key.group)
            ),
            bytes,
            cause: &key.run_id,
            pain: None,
        },
    )?;
    Ok(refused)
}

fn decode_item(item: &BatchItem) -> Result<InvoiceIssued, PlanError> {
    encaisse_schemas::decode::<InvoiceIssued>(&item.payload)
        .map_err(|e| PlanError::Corrupt(format!("batch item {}: {e}", item.item_key)))
}

/// A name part safe in a file name: letters, digits, `.`, `_`, `-`.
pub(crate) fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Stage for SepaBatch {
    fn name(&self) -> &str {
        STAGE
    }

    fn bindings(&self) -> Vec<String> {
        vec![
            "invoice.issued.regie".to_string(),
            "credit_note.issued.regie".to_string(),
            BillingRunClosed::TYPE.to_string(),
        ]
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Handled, StageError>> {
        Box::pin(self.dispatch(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_safe() {
        assert_eq!(file_safe("run-ab12"), "run-ab12");
        assert_eq!(file_safe("caisse écoles/2"), "caisse--coles-2");
    }
}
