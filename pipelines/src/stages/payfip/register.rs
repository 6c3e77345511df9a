//! `payfip.register`: keeps in the ledger what the payment API needs to know of each invoice.
//!
//! * `invoice.issued.#` → `payfip_invoice`: amount, payer e-mail, collection path, budget or
//!   régie and its PayFiP client number, whether the source made it payable online. A
//!   corrected invoice (new content hash) replaces the row. Only tenants with
//!   `[tenants.payfip] enabled = true` are kept (no payer address is stored for the others;
//!   invoices issued before the switch are not payable online until issued again).
//! * `titre.accepted` from a **PES Retour** (the comptable's prise en charge) → `payfip_titre`:
//!   titres are payable online only once taken in charge (DGFiP loads them into PayFiP the
//!   next day); an acquit (`PES_ACQUIT`) only acknowledges the file and changes nothing.
//! * `credit_note.issued.#` → `payfip_credit_note`: once the credit note's réduction titre
//!   is taken in charge (its `titre.accepted`, recorded like any titre), what can be paid
//!   online of the original is lowered by its amount; fully cancelled, it is not payable.
//! * `payment.received` / `payment.reversed` → `payfip_payment`: what is paid, whatever the
//!   channel (PayFiP, Hélios émargement, bank), so that a paid invoice is refused. A Hélios
//!   émargement of an online payment also confirms the classic-URL claims it covers (a
//!   classic result is unsigned: only the PES Retour makes such a titre paid).
//!
//! Every write is committed with the deduplication record ([`Handled::commit_with`]); the
//! tables are keyed so that any order of arrival gives the same state.

use std::sync::Arc;

use chrono::Utc;
use encaisse_ledger::{CoreStore, InvoiceFact};
use encaisse_schemas::{
    Channel, CreditNoteIssued, Event, InvoiceIssued, InvoiceRef, Money, PaymentReceived,
    PaymentReversed, PaymentSource, TitreAccepted, TitreSource,
};
use futures::future::BoxFuture;

use super::REGISTER_STAGE;
use super::routes::CLAIMS;
use super::settings::PayfipSettings;
use super::store::{self, InvoiceRecord, Operation, PaymentFact, TitreRecord};
use crate::stage::{Handled, Incoming, Stage, StageError};

/// The `payfip.register` stage.
pub struct RegisterStage {
    settings: Arc<PayfipSettings>,
}

impl RegisterStage {
    pub fn new(settings: Arc<PayfipSettings>) -> Self {
        RegisterStage { settings }
    }

    fn invoice_issued(&self, event: InvoiceIssued) -> Handled {
        let Some(tenant) = self
            .settings
            .tenants
            .get(&event.invoice.tenant)
            .filter(|t| t.payfip.enabled)
        else {
            // No online payment for this commune: its payers' addresses are not kept.
            return Handled::none().about(event.invoice);
        };
        let numcli = tenant.numcli_for(event.collection, &event.budget, event.regie.as_deref());
        let record = InvoiceRecord {
            invoice: event.invoice.clone(),
            content_hash: event.content_hash,
            amount: event.total,
            email: event.payer.email.filter(|e| !e.trim().is_empty()),
            collection: event.collection,
            budget: event.budget,
            regie: event.regie,
            numcli,
            online_payable: event.online_payable,
            issued_on: event.issued_on,
        };
        tracing::debug!(invoice = %record.invoice.key(), online_payable = record.online_payable, "Invoice registered for online payment.");
        let now = store::ts(Utc::now());
        Handled::none()
            .about(event.invoice)
            .commit_with(move |tx| store::upsert_invoice(tx, &record, &now))
    }

    fn credit_note_issued(&self, event: CreditNoteIssued) -> Handled {
        let enabled = self
            .settings
            .tenants
            .get(&event.note.invoice.tenant)
            .is_some_and(|t| t.payfip.enabled);
        if !enabled {
            return Handled::none().about(event.note.invoice);
        }
        let amount = event.credited();
        let (note, origin) = (event.note.invoice.clone(), event.origin);
        Handled::none()
            .about(event.note.invoice)
            .commit_with(move |tx| store::record_credit_note(tx, &note, &origin, amount))
    }

    fn titre_accepted(&self, event: TitreAccepted) -> Handled {
        if event.source != TitreSource::Retour {
            // An acquit says the file was read, not that the titre was taken in charge.
            return Handled::none().about(event.invoice);
        }
        let record = TitreRecord {
            invoice: event.invoice.clone(),
            taken_in_charge_on: event
                .accepted_at
                .with_timezone(&chrono_tz::Europe::Paris)
                .date_naive(),
            titre: event.titre,
        };
        Handled::none()
            .about(event.invoice)
            .commit_with(move |tx| store::upsert_titre(tx, &record))
    }

    fn payment(
        invoice: InvoiceRef,
        payment_id: String,
        amount: Money,
        fact: PaymentFact,
    ) -> Handled {
        let now = store::ts(Utc::now());
        let key = invoice.clone();
        Handled::none()
            .about(invoice)
            .commit_with(move |tx| store::record_payment(tx, &key, &payment_id, amount, fact, &now))
    }

    /// A PES Retour émargement of an online payment: recorded like any payment, then the
    /// invoice's classic claims it covers are confirmed, each with a journal fact.
    fn emargement(e: PaymentReceived) -> Handled {
        let now = store::ts(Utc::now());
        let key = e.invoice.clone();
        Handled::none().about(e.invoice).commit_with(move |tx| {
            for op in store::record_emargement(tx, &key, &e.payment_id, e.amount, &now)? {
                tx.record_fact(&claim_confirmed(&op, &e.payment_id, &now))?;
                metrics::counter!(CLAIMS, "tenant" => key.tenant.to_string(), "outcome" => "confirmed")
                    .increment(1);
                tracing::info!(invoice = %key.key(), refdet = %op.refdet, confirmed_by = %e.payment_id, "Classic PayFiP claim confirmed by the PES Retour.");
            }
            Ok(())
        })
    }

    fn handle_message(&self, message: &Incoming) -> Result<Handled, StageError> {
        let kind = message
            .message_type
            .clone()
            .unwrap_or_else(|| message.routing_key.clone());
        if kind == InvoiceIssued::TYPE || kind.starts_with("invoice.issued.") {
            Ok(self.invoice_issued(message.decode()?))
        } else if kind == CreditNoteIssued::TYPE || kind.starts_with("credit_note.issued.") {
            Ok(self.credit_note_issued(message.decode()?))
        } else if kind == TitreAccepted::TYPE {
            Ok(self.titre_accepted(message.decode()?))
        } else if kind == PaymentReceived::TYPE {
            let e: PaymentReceived = message.decode()?;
            if confirms_claims(&e) {
                return Ok(Self::emargement(e));
            }
            Ok(Self::payment(
                e.invoice,
                e.payment_id,
                e.amount,
                PaymentFact::Received,
            ))
        } else if kind == PaymentReversed::TYPE {
            let e: PaymentReversed = message.decode()?;
            Ok(Self::payment(
                e.invoice,
                e.payment_id,
                e.amount,
                PaymentFact::Reversed,
            ))
        } else {
            Err(StageError::permanent(
                "unexpected_message",
                format!("payfip.register does not handle {kind:?} messages"),
            ))
        }
    }
}

/// Whether a payment can confirm a classic claim: reported by Hélios (the PES Retour
/// émargement — `OrgEma` 10 — is the Trésorerie's own record of the card or one-off debit),
/// through an online means.
fn confirms_claims(e: &PaymentReceived) -> bool {
    e.source == PaymentSource::Helios
        && matches!(e.channel, Channel::Cb | Channel::PrelevementUnique)
}

fn claim_confirmed(op: &Operation, confirmed_by: &str, now: &str) -> InvoiceFact {
    InvoiceFact {
        invoice_key: op.invoice.key(),
        tenant: op.invoice.tenant.to_string(),
        at: now.to_string(),
        kind: "payfip_claim_confirmed".into(),
        detail: serde_json::json!({
            "payment_id": op.payment_id,
            "confirmed_by": confirmed_by,
            "amount": op.amount.to_dot_string(),
        })
        .to_string(),
        dedupe_key: Some(format!("payfip.claim#{}#confirmed", op.op_id)),
    }
}

impl Stage for RegisterStage {
    fn name(&self) -> &str {
        REGISTER_STAGE
    }

    fn bindings(&self) -> Vec<String> {
        vec![
            "invoice.issued.#".into(),
            "credit_note.issued.#".into(),
            TitreAccepted::TYPE.into(),
            PaymentReceived::TYPE.into(),
            PaymentReversed::TYPE.into(),
        ]
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Handled, StageError>> {
        Box::pin(async move { self.handle_message(message) })
    }
}
