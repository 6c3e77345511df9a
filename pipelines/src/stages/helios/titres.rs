//! The `helios.titres` stage: one PES Aller file per billing run, budget (and exercice).
//!
//! ```text
//! invoice.issued.titres ──add_item(run, budget)──┐
//! billing_run.closed ───set_expected(run, budget)┴─► try_close ─► (one transaction) plan:
//!     check each invoice (refused ones aside, no number, their titre.rejected queued) →
//!     IdBord, IdPce → split by max_pieces_per_bordereau → file name, date,
//!     invoice ↔ titre mapping stored
//! ─► commit ─► render (adapter) ─► emit_file (helios/outbox) ─► written + titre_emitted facts
//! ─► titre.rejected (source local) of the refused ones handed to the runtime
//! ```
//!
//! Every titres invoice of a run is collected per budget with the shared billing-run
//! collector (`encaisse_ledger::batch`), so the group closes exactly once, whatever the
//! order of the messages and after any crash or redelivery. Each call starts by writing
//! what an earlier call planned and did not write (and ends the same way), so a crash
//! between planning and writing writes the same file later: never a second bordereau, never
//! a gap in the numbers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use encaisse_ledger::BatchStore;
use encaisse_ledger::Ledger;
use encaisse_ledger::batch::{AddOutcome, BatchKey};
use encaisse_schemas::{
    BillingRunClosed, CollectionPath, CreditNoteIssued, Event, InvoiceIssued, InvoiceRef,
};
use futures::future::BoxFuture;

use super::error::{HeliosError, write_tx};
use super::metrics;
use super::outputs::{self, Check, complete_pending};
use super::plan::{Planned, STAGE, close_and_plan};
use super::reductions::{self, Decision};
use super::refusal;
use super::settings::{HeliosSettings, TenantHelios};
use crate::stage::{ErrorClass, Handled, Incoming, Stage, StageError};

/// The `helios.titres` stage.
pub struct HeliosTitres {
    settings: HeliosSettings,
    ledger: Ledger,
}

impl HeliosTitres {
    pub fn new(settings: HeliosSettings, ledger: Ledger) -> Self {
        metrics::describe();
        HeliosTitres { settings, ledger }
    }

    fn data_dir(&self) -> &PathBuf {
        &self.settings.data_dir
    }

    async fn dispatch(&self, message: &Incoming) -> Result<Handled, StageError> {
        let kind = message
            .message_type
            .as_deref()
            .unwrap_or(message.routing_key.as_str());
        if kind == BillingRunClosed::TYPE {
            self.on_run_closed(message.decode()?).await
        } else if kind == CreditNoteIssued::TYPE || kind.starts_with("credit_note.issued.") {
            self.on_credit_note(message.decode()?, message.body.to_vec())
                .await
        } else if kind == InvoiceIssued::TYPE || kind.starts_with("invoice.issued.") {
            self.on_invoice(message.decode()?, message.body.to_vec())
                .await
        } else {
            Err(StageError::permanent(
                "unexpected_message",
                format!("{STAGE} does not handle {kind:?} messages"),
            ))
        }
    }

    async fn on_invoice(
        &self,
        invoice: InvoiceIssued,
        body: Vec<u8>,
    ) -> Result<Handled, StageError> {
        let invoice_ref = invoice.invoice.clone();
        if invoice.collection != CollectionPath::Titres {
            return Ok(Handled::none().about(invoice_ref));
        }
        let Some(tenant) = self.settings.tenant(invoice_ref.tenant.as_str()) else {
            return Err(HeliosError::Setup(format!(
                "tenant {} has no [tenants.helios] section: its titres cannot be sent to Hélios",
                invoice_ref.tenant
            ))
            .into());
        };
        self.write_pending(tenant, Check::IfPending).await?;
        let key = BatchKey {
            stage: STAGE.to_string(),
            tenant: tenant.id.to_string(),
            run_id: invoice.source.run_id.clone(),
            group: invoice.budget.clone(),
        };
        let (tenant_cfg, now, item_key) =
            (tenant.clone(), self.settings.clock.now(), invoice_ref.key());
        let hash = invoice.content_hash.clone();
        let planned = write_tx(&self.ledger, move |tx| {
            if let AddOutcome::Conflict { reason } = tx.add_item(&key, &item_key, &hash, &body)? {
                return Err(HeliosError::Batch(reason));
            }
            close_and_plan(tx, &tenant_cfg, &key, now)
        })
        .await?;
        self.after_plan(tenant, planned).await?;
        Ok(self.finish(tenant).await?.about(invoice_ref))
    }

    /// The titres invoices of a bundle: added to their runs' groups in one transaction per
    /// tenant, which also plans the groups they complete; anything else one by one. The
    /// same outcome per invoice as [`Self::on_invoice`], for one transaction instead of one
    /// per invoice.
    async fn dispatch_many(&self, messages: &[Incoming]) -> Vec<Result<Handled, StageError>> {
        let mut results: Vec<Option<Result<Handled, StageError>>> =
            messages.iter().map(|_| None).collect();
        let mut by_tenant: BTreeMap<String, Vec<Added>> = BTreeMap::new();
        for (slot, message) in messages.iter().enumerate() {
            let kind = message
                .message_type
                .as_deref()
                .unwrap_or(message.routing_key.as_str());
            if kind != InvoiceIssued::TYPE && !kind.starts_with("invoice.issued.") {
                results[slot] = Some(self.dispatch(message).await);
                continue;
            }
            match message.decode::<InvoiceIssued>() {
                Ok(invoice) if invoice.collection == CollectionPath::Titres => {
                    by_tenant
                        .entry(invoice.invoice.tenant.to_string())
                        .or_default()
                        .push(Added {
                            slot,
                            invoice,
                            body: message.body.to_vec(),
                        });
                }
                Ok(invoice) => results[slot] = Some(Ok(Handled::none().about(invoice.invoice))),
                Err(error) => results[slot] = Some(Err(error)),
            }
        }
        for (tenant, invoices) in by_tenant {
            for (slot, result) in self.add_together(&tenant, invoices).await {
                results[slot] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StageError::permanent(
                        "unhandled_item",
                        format!("{STAGE} left an item of a bundle without an answer"),
                    ))
                })
            })
            .collect()
    }

    /// One tenant's invoices of a bundle, in one transaction.
    async fn add_together(
        &self,
        tenant_id: &str,
        invoices: Vec<Added>,
    ) -> Vec<(usize, Result<Handled, StageError>)> {
        let refs: Vec<(usize, InvoiceRef)> = invoices
            .iter()
            .map(|a| (a.slot, a.invoice.invoice.clone()))
            .collect();
        let every_one = |error: StageError| -> Vec<(usize, Result<Handled, StageError>)> {
            refs.iter()
                .map(|(slot, _)| {
                    let copy =
                        StageError::new(error.class, error.kind.clone(), error.message.clone());
                    (*slot, Err(copy))
                })
                .collect()
        };
        let Some(tenant) = self.settings.tenant(tenant_id) else {
            return every_one(
                HeliosError::Setup(format!(
                    "tenant {tenant_id} has no [tenants.helios] section: its titres cannot be sent to Hélios"
                ))
                .into(),
            );
        };
        if let Err(error) = self.write_pending(tenant, Check::IfPending).await {
            return every_one(error);
        }
        let adds: Vec<(BatchKey, String, String, Vec<u8>)> = invoices
            .into_iter()
            .map(|a| {
                let key = BatchKey {
                    stage: STAGE.to_string(),
                    tenant: tenant.id.to_string(),
                    run_id: a.invoice.source.run_id.clone(),
                    group: a.invoice.budget.clone(),
                };
                (key, a.invoice.invoice.key(), a.invoice.content_hash, a.body)
            })
            .collect();
        let (tenant_cfg, now) = (tenant.clone(), self.settings.clock.now());
        let written = write_tx(&self.ledger, move |tx| {
            let mut conflicts = Vec::with_capacity(adds.len());
            let mut groups: Vec<&BatchKey> = Vec::new();
            for (key, item_key, hash, body) in &adds {
                match tx.add_item(key, item_key, hash, body)? {
                    AddOutcome::Conflict { reason } => conflicts.push(Some(reason)),
                    AddOutcome::Added | AddOutcome::AlreadyPresent => {
                        conflicts.push(None);
                        if !groups.contains(&key) {
                            groups.push(key);
                        }
                    }
                }
            }
            let mut planned = Planned::default();
            for key in groups {
                planned.absorb(close_and_plan(tx, &tenant_cfg, key, now)?);
            }
            Ok((conflicts, planned))
        })
        .await;
        let (conflicts, planned) = match written {
            Ok(written) => written,
            Err(error) => return every_one(error.into()),
        };
        // From here the adds are committed: a failure sends the invoices back, and adding
        // them again finds them present.
        if let Err(error) = self.after_plan(tenant, planned).await {
            return every_one(error);
        }
        let mut finished = match self.finish(tenant).await {
            Ok(handled) => Some(handled),
            Err(error) => return every_one(error),
        };
        refs.into_iter()
            .zip(conflicts)
            .map(|((slot, invoice), conflict)| match conflict {
                Some(reason) => (slot, Err(HeliosError::Batch(reason).into())),
                // The tenant's queued events go out once, with the first invoice added.
                None => (
                    slot,
                    Ok(finished.take().unwrap_or_else(Handled::none).about(invoice)),
                ),
            })
            .collect()
    }

    async fn on_credit_note(
        &self,
        note: CreditNoteIssued,
        body: Vec<u8>,
    ) -> Result<Handled, StageError> {
        let note_ref = note.note.invoice.clone();
        if note.note.collection != CollectionPath::Titres {
            return Ok(Handled::none().about(note_ref));
        }
        let Some(tenant) = self.settings.tenant(note_ref.tenant.as_str()) else {
            return Err(HeliosError::Setup(format!(
                "tenant {} has no [tenants.helios] section: its credit notes cannot be sent to Hélios",
                note_ref.tenant
            ))
            .into());
        };
        self.write_pending(tenant, Check::IfPending).await?;
        let (tenant_cfg, now) = (tenant.clone(), self.settings.clock.now());
        let decision = write_tx(&self.ledger, move |tx| {
            reductions::receive(tx, &tenant_cfg, &note, &body, now)
        })
        .await?;
        self.after_decisions(tenant, std::slice::from_ref(&decision))
            .await?;
        Ok(self.finish(tenant).await?.about(note_ref))
    }

    /// Writes the réduction titres just planned; makes the refusals' events go out.
    async fn after_decisions(
        &self,
        tenant: &TenantHelios,
        decisions: &[Decision],
    ) -> Result<(), StageError> {
        if decisions
            .iter()
            .any(|d| matches!(d, Decision::Refused { .. }))
        {
            outputs::events_flag(self.data_dir(), tenant).store(true, Ordering::SeqCst);
        }
        if decisions
            .iter()
            .any(|d| matches!(d, Decision::Planned { .. }))
        {
            self.write_pending(tenant, Check::Ledger).await?;
        }
        Ok(())
    }

    async fn on_run_closed(&self, run: BillingRunClosed) -> Result<Handled, StageError> {
        let groups: Vec<(String, u32)> = run
            .budgets
            .iter()
            .filter(|b| b.collection == CollectionPath::Titres)
            .map(|b| (b.budget.clone(), b.invoices))
            .collect();
        let Some(tenant) = self.settings.tenant(run.tenant.as_str()) else {
            let titres: u32 = groups.iter().map(|(_, n)| n).sum();
            if titres == 0 {
                return Ok(Handled::none());
            }
            // Parked like the run's invoices (same kind): once `[tenants.helios]` is added,
            // replaying them all closes the run and writes its PES file.
            return Err(HeliosError::Setup(format!(
                "tenant {} has no [tenants.helios] section: billing run {} ({titres} titres) cannot be sent to Hélios",
                run.tenant, run.run_id
            ))
            .into());
        };
        self.write_pending(tenant, Check::IfPending).await?;
        let (tenant_cfg, now, tenant_id, run_id) = (
            tenant.clone(),
            self.settings.clock.now(),
            tenant.id.to_string(),
            run.run_id.clone(),
        );
        let planned = write_tx(&self.ledger, move |tx| {
            let mut planned = Planned::default();
            for (group, expected) in &groups {
                let key = BatchKey {
                    stage: STAGE.to_string(),
                    tenant: tenant_id.clone(),
                    run_id: run_id.clone(),
                    group: group.clone(),
                };
                tx.set_expected(&key, *expected)?;
                planned.absorb(close_and_plan(tx, &tenant_cfg, &key, now)?);
            }
            Ok(planned)
        })
        .await?;
        self.after_plan(tenant, planned).await?;
        self.finish(tenant).await
    }

    /// Logs and counts what a commit planned, then writes it.
    async fn after_plan(&self, tenant: &TenantHelios, planned: Planned) -> Result<(), StageError> {
        if !planned.refused.is_empty() {
            // Their titre.rejected were queued with the plan: this call hands them over.
            outputs::events_flag(self.data_dir(), tenant).store(true, Ordering::SeqCst);
            metrics::refused(tenant.id.as_str(), planned.refused.len() as u64);
            for r in &planned.refused {
                tracing::warn!(tenant = %tenant.id, invoice = %r.invoice.key(), code = r.code().as_str(), field = %r.field, "Invoice refused before numbering: not sent to Hélios, Polyfac told (titre.rejected); see the report in helios/rejected.");
            }
        }
        if planned.files.is_empty() && planned.refused.is_empty() {
            return Ok(());
        }
        self.write_pending(tenant, Check::Ledger).await?;
        // Credit notes waiting for an original this plan numbered (or refused).
        let (tenant_cfg, now) = (tenant.clone(), self.settings.clock.now());
        let decisions = write_tx(&self.ledger, move |tx| {
            reductions::retry_waiting(tx, &tenant_cfg, now)
        })
        .await?;
        self.after_decisions(tenant, &decisions).await
    }

    /// Every successful call ends here: the tenant's queued events (this call's refusals,
    /// or an earlier call's that crashed before its dedupe record) become this message's
    /// outputs.
    async fn finish(&self, tenant: &TenantHelios) -> Result<Handled, StageError> {
        refusal::hand_over(&self.ledger, self.data_dir(), tenant).await
    }

    /// Writes what is planned and unwritten. A transient failure fails the message (it is
    /// retried, and the file written before the ack); a permanent one (the configuration
    /// changed under a plan) is logged and counted, and left to the flush source, so that
    /// it does not block every later message of the tenant.
    async fn write_pending(&self, tenant: &TenantHelios, check: Check) -> Result<(), StageError> {
        match complete_pending(&self.ledger, self.data_dir(), tenant, check).await {
            Ok(_) => Ok(()),
            Err(e) if e.class() == ErrorClass::Transient => Err(e.into()),
            Err(e) => {
                tracing::error!(tenant = %tenant.id, kind = e.kind(), error = %e, "A planned PES Aller file cannot be written; it stays planned (helios.titres.flush retries it).");
                Ok(())
            }
        }
    }
}

impl Stage for HeliosTitres {
    fn name(&self) -> &str {
        STAGE
    }

    fn bindings(&self) -> Vec<String> {
        vec![
            "invoice.issued.titres".to_string(),
            "credit_note.issued.titres".to_string(),
            BillingRunClosed::TYPE.to_string(),
        ]
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Handled, StageError>> {
        Box::pin(self.dispatch(message))
    }

    fn handle_many<'a>(
        &'a self,
        messages: &'a [Incoming],
    ) -> Option<BoxFuture<'a, Vec<Result<Handled, StageError>>>> {
        Some(Box::pin(self.dispatch_many(messages)))
    }
}

/// A titres invoice of a bundle, with its place in the bundle.
struct Added {
    slot: usize,
    invoice: InvoiceIssued,
    body: Vec<u8>,
}
