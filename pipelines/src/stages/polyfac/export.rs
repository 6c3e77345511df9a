//! `polyfac.export`: payment and titre events → REGLEMENTS lines in the ledger, each recorded
//! exactly once (`Handled::commit_with`), later written to files by
//! [`super::flush::ReglementsFlusher`] (docs/polyfac.md, "Export").
//!
//! * `invoice.issued.#` teaches the stage each invoice's family code and total (the events
//!   carry neither); it writes no line. `credit_note.issued.#` does the same for a credit
//!   note (what it takes off, and its original): its `titre.accepted` (PES Retour) becomes
//!   `TITRE_REDUIT`, its local `titre.rejected` (`LOCAL-AVOIR`) `AVOIR_REJETE`.
//! * `payment.received` → `PAYE`, unless it confirms an earlier sighting of the same
//!   payment ([`super::reconcile`]): then a journal fact, no line — Polyfac is told once.
//! * `payment.reversed` → `ANNULE` with the original payment's channel and reference, once
//!   per payment (reversing either sighting of a reconciled pair cancels the payment).
//! * `payment.failed`, `payment.rejected` → `REJETE`; `titre.rejected` → `TITRE_REJETE`
//!   (from the acquit — the guichet refused the bordereau —, from the PES Retour, or
//!   `source: local` — `helios.titres` refused the invoice before any PES file: no titre, an
//!   empty `Reference`, motif `LOCAL-MANDATE|RULES|SETUP <text>`).
//! * `titre.accepted` from the **PES Retour** (`source: retour`) → `TITRE_PRIS_EN_CHARGE`,
//!   once per titre (a later PES Retour saying it again confirms it). Prise en charge is the
//!   comptable's decision, which only the PES Retour reports; a `titre.accepted` from the
//!   **acquit** (`source: acquit`) only says that the guichet integrated the file — a titre
//!   it accepted may still be rejected by the comptable — so it writes no line (it is in the
//!   invoice's journal, recorded by `helios.returns`, for `encaisse trace`).
//!
//! An event about an invoice the stage has not seen yet (queues are not ordered with each
//! other), or reversing a payment not seen yet, is a transient failure: retried through the
//! delay tiers, then parked (`invoice_not_seen`, `payment_not_seen`).

use std::sync::Arc;

use encaisse_ledger::{CoreStore, InvoiceFact, Ledger, LedgerError, Tx};
use encaisse_polyfac::reglements::{OriginalPayment, RowContext, StatusEvent, reglement_row};
use encaisse_schemas::{
    CreditNoteIssued, Event, InvoiceIssued, InvoiceRef, PaymentFailed, PaymentReceived,
    PaymentRejected, PaymentReversed, TitreAccepted, TitreRejected, TitreSource,
};
use futures::future::BoxFuture;

use super::export_store::{self, InvoiceSeen, NewLine, Sighting};
use super::tenants::PolyfacTenants;
use super::{ledger_now, paris_today, reconcile};
use crate::stage::{Handled, Incoming, Stage, StageError};

/// Stage name: its queue is `<prefix>.polyfac.export`.
pub const NAME: &str = "polyfac.export";

/// The `polyfac.export` stage.
pub struct PolyfacExport {
    /// Each tenant's sources: which outbox and dialect an invoice's lines get.
    tenants: Arc<PolyfacTenants>,
    /// Read before a line is recorded: is the invoice (the payment) known yet?
    ledger: Ledger,
}

impl PolyfacExport {
    pub fn new(tenants: PolyfacTenants, ledger: Ledger) -> Self {
        PolyfacExport {
            tenants: Arc::new(tenants),
            ledger,
        }
    }
}

/// An event that becomes (at most) one REGLEMENTS line.
#[derive(Debug, Clone)]
enum LineEvent {
    Received(PaymentReceived),
    Failed(PaymentFailed),
    Rejected(PaymentRejected),
    Reversed(PaymentReversed),
    TitreAccepted(TitreAccepted),
    TitreRejected(TitreRejected),
}

impl LineEvent {
    fn status(&self) -> StatusEvent<'_> {
        match self {
            LineEvent::Received(e) => StatusEvent::Received(e),
            LineEvent::Failed(e) => StatusEvent::Failed(e),
            LineEvent::Rejected(e) => StatusEvent::Rejected(e),
            LineEvent::Reversed(e) => StatusEvent::Reversed(e),
            LineEvent::TitreAccepted(e) => StatusEvent::TitreAccepted(e),
            LineEvent::TitreRejected(e) => StatusEvent::TitreRejected(e),
        }
    }

    fn invoice(&self) -> &InvoiceRef {
        match self {
            LineEvent::Received(e) => &e.invoice,
            LineEvent::Failed(e) => &e.invoice,
            LineEvent::Rejected(e) => &e.invoice,
            LineEvent::Reversed(e) => &e.invoice,
            LineEvent::TitreAccepted(e) => &e.invoice,
            LineEvent::TitreRejected(e) => &e.invoice,
        }
    }

    /// The message id of the event (deterministic from its business key).
    fn message_id(&self) -> String {
        match self {
            LineEvent::Received(e) => e.message_id(),
            LineEvent::Failed(e) => e.message_id(),
            LineEvent::Rejected(e) => e.message_id(),
            LineEvent::Reversed(e) => e.message_id(),
            LineEvent::TitreAccepted(e) => e.message_id(),
            LineEvent::TitreRejected(e) => e.message_id(),
        }
    }

    fn decode(kind: &str, message: &Incoming) -> Result<Option<Self>, StageError> {
        Ok(Some(match kind {
            PaymentReceived::TYPE => LineEvent::Received(message.decode()?),
            PaymentFailed::TYPE => LineEvent::Failed(message.decode()?),
            PaymentRejected::TYPE => LineEvent::Rejected(message.decode()?),
            PaymentReversed::TYPE => LineEvent::Reversed(message.decode()?),
            TitreAccepted::TYPE => LineEvent::TitreAccepted(message.decode()?),
            TitreRejected::TYPE => LineEvent::TitreRejected(message.decode()?),
            _ => return Ok(None),
        }))
    }
}

/// The event type: the AMQP `type`, else the routing key (`invoice.issued.titres` →
/// `invoice.issued`).
fn event_type(message: &Incoming) -> String {
    match &message.message_type {
        Some(t) if !t.is_empty() => t.clone(),
        _ if message.routing_key.starts_with("invoice.issued") => InvoiceIssued::TYPE.to_string(),
        _ if message.routing_key.starts_with("credit_note.issued") => {
            CreditNoteIssued::TYPE.to_string()
        }
        _ => message.routing_key.clone(),
    }
}

impl Stage for PolyfacExport {
    fn name(&self) -> &str {
        NAME
    }

    fn bindings(&self) -> Vec<String> {
        vec![
            "invoice.issued.#".to_string(),
            "credit_note.issued.#".to_string(),
            "payment.#".to_string(),
            "titre.#".to_string(),
        ]
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Handled, StageError>> {
        Box::pin(self.handle_message(message))
    }
}

impl PolyfacExport {
    fn known_tenant(&self, invoice: &InvoiceRef) -> Result<(), StageError> {
        match self.tenants.get(invoice.tenant.as_str()) {
            Some(_) => Ok(()),
            None => Err(StageError::permanent(
                "unknown_tenant",
                format!("tenant {} has no Polyfac settings", invoice.tenant),
            )),
        }
    }

    async fn handle_message(&self, message: &Incoming) -> Result<Handled, StageError> {
        let kind = event_type(message);
        if kind == InvoiceIssued::TYPE {
            let invoice: InvoiceIssued = message.decode()?;
            self.known_tenant(&invoice.invoice)?;
            return Ok(learn(invoice, None));
        }
        if kind == CreditNoteIssued::TYPE {
            let note: CreditNoteIssued = message.decode()?;
            self.known_tenant(&note.note.invoice)?;
            let credited = note.credited();
            let mut invoice = note.note;
            invoice.total = credited;
            return Ok(learn(invoice, Some(note.origin.number)));
        }
        let Some(event) = LineEvent::decode(&kind, message)? else {
            tracing::debug!(stage = NAME, event_type = %kind, "Event of no concern to Polyfac ignored.");
            return Ok(Handled::none());
        };
        let invoice = event.invoice().clone();
        self.known_tenant(&invoice)?;
        if let LineEvent::TitreAccepted(accepted) = &event
            && accepted.source == TitreSource::Acquit
        {
            tracing::debug!(stage = NAME, invoice = %invoice.key(), file = %accepted.file, "Titre accepted by the Hélios guichet; Polyfac is told when the PES Retour reports its prise en charge.");
            return Ok(Handled::none().about(invoice));
        }
        self.check_known(&event).await?;
        let tenants = self.tenants.clone();
        Ok(Handled::none()
            .about(invoice)
            .commit_with(move |tx| record_event(tx, &tenants, &event)))
    }

    /// The invoice (and, for a reversal, the payment) must be known: otherwise the event
    /// overtook them through another queue — transient, retried later, then parked.
    async fn check_known(&self, event: &LineEvent) -> Result<(), StageError> {
        let invoice = event.invoice();
        let (tenant, key) = (invoice.tenant.as_str().to_string(), invoice.key());
        let payment = match event {
            LineEvent::Reversed(r) => Some(r.payment_id.clone()),
            _ => None,
        };
        let (invoice_known, payment_known) = {
            let (tenant, key, payment) = (tenant.clone(), key.clone(), payment.clone());
            self.ledger
                .inspect(move |tx| {
                    let invoice = export_store::invoice(tx, &tenant, &key)?.is_some();
                    let payment = match &payment {
                        Some(id) => export_store::sighting(tx, &tenant, id)?.is_some(),
                        None => true,
                    };
                    Ok::<_, LedgerError>((invoice, payment))
                })
                .await?
        };
        if !invoice_known {
            return Err(StageError::transient(
                "invoice_not_seen",
                format!(
                    "invoice {key} has not reached {NAME} yet (events may overtake each other across queues)"
                ),
            ));
        }
        if !payment_known {
            return Err(StageError::transient(
                "payment_not_seen",
                format!(
                    "payment {} of invoice {key} has not reached {NAME} yet: a reversal needs it",
                    payment.unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }
}

/// `invoice.issued` (or `credit_note.issued`, with the original's number and the amount it
/// takes off as total): remember it for its later lines.
fn learn(invoice: InvoiceIssued, origin_number: Option<String>) -> Handled {
    let seen = InvoiceSeen {
        tenant: invoice.invoice.tenant.as_str().to_string(),
        invoice_key: invoice.invoice.key(),
        family_code: invoice.family_code.clone(),
        total: invoice.total,
        payment_mode: serde_json::to_value(invoice.payment_mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        application: invoice.source.application.clone(),
        content_hash: invoice.content_hash.clone(),
        origin_number,
    };
    Handled::none()
        .about(invoice.invoice)
        .commit_with(move |tx| {
            if let Some(before) = export_store::learn_invoice(tx, &seen, &ledger_now())? {
                tracing::warn!(stage = NAME, invoice = %seen.invoice_key, recorded = %before, received = %seen.content_hash, "Invoice issued again with other content; the first one is kept.");
            }
            Ok(())
        })
}

/// Why an event cannot be recorded yet (mapped to a transient failure by the runtime).
fn not_seen(what: &str, key: &str) -> LedgerError {
    LedgerError::Commit(format!(
        "{what} {key} not seen yet by {NAME} (events may overtake each other across queues); retried later"
    ))
}

/// Records the event's line (or its confirmation) inside the dedupe transaction, rendered
/// in the return dialect of the source that issued the invoice, for that source's outbox.
fn record_event(
    tx: &mut Tx<'_>,
    tenants: &PolyfacTenants,
    event: &LineEvent,
) -> Result<(), LedgerError> {
    let invoice = event.invoice();
    let tenant = invoice.tenant.as_str();
    let invoice_key = invoice.key();
    // Locked on PostgreSQL: the invoice's events are decided one transaction at a time (a
    // payment is matched against the sightings committed before it).
    let known = export_store::lock_invoice(tx, tenant, &invoice_key)?
        .ok_or_else(|| not_seen("invoice", &invoice_key))?;
    let outbox = tenants
        .outbox_for(tenant, &known.application)
        .ok_or_else(|| LedgerError::Conflict(format!("tenant {tenant} has no Polyfac settings")))?;
    let format = outbox.setup.reglements_format();
    let mut ctx = RowContext {
        family_code: known.family_code.clone(),
        invoice_total: Some(known.total),
        reversed_payment: None,
        credit_note_of: known.origin_number.clone(),
    };
    let now = ledger_now();
    let event_key = match event {
        LineEvent::Received(p) => {
            if export_store::sighting(tx, tenant, &p.payment_id)?.is_some() {
                return Ok(()); // this very sighting was recorded (a replay after pruning)
            }
            let mut new = Sighting {
                payment_id: p.payment_id.clone(),
                invoice_key: invoice_key.clone(),
                amount_cents: p.amount.cents(),
                channel: p.channel,
                source: p.source,
                reference: p.reference.clone(),
                confirms: None,
                confirmed_by: None,
                reversed: false,
            };
            let candidates = export_store::open_primaries(tx, tenant, &invoice_key)?;
            if let Some(primary) = reconcile::confirmed_by(&new, &candidates) {
                new.confirms = Some(primary.payment_id.clone());
                export_store::record_sighting(tx, tenant, &new, &now)?;
                fact(
                    tx,
                    invoice,
                    "payment_confirmed",
                    serde_json::json!({
                        "stage": NAME,
                        "payment_id": p.payment_id,
                        "confirms": primary.payment_id,
                        "source": export_store::source_text(p.source),
                        "amount": p.amount.to_dot_string(),
                    }),
                    &format!("{NAME}/confirmed/{}", p.payment_id),
                )?;
                return Ok(());
            }
            if !export_store::record_sighting(tx, tenant, &new, &now)? {
                return Ok(()); // recorded meanwhile by another transaction of this payment
            }
            format!("{}#{}", PaymentReceived::TYPE, p.payment_id)
        }
        LineEvent::Reversed(r) => {
            let sighting = export_store::sighting(tx, tenant, &r.payment_id)?
                .ok_or_else(|| not_seen("payment", &r.payment_id))?;
            let primary_id = sighting
                .confirms
                .clone()
                .unwrap_or_else(|| sighting.payment_id.clone());
            let primary = export_store::sighting(tx, tenant, &primary_id)?
                .ok_or_else(|| not_seen("payment", &primary_id))?;
            if primary.reversed {
                fact(
                    tx,
                    invoice,
                    "payment_reversal_confirmed",
                    serde_json::json!({"stage": NAME, "payment_id": r.payment_id, "primary": primary_id}),
                    &format!("{NAME}/reversal-confirmed/{}", r.payment_id),
                )?;
                return Ok(());
            }
            export_store::mark_reversed(tx, tenant, &primary_id, &now)?;
            ctx.reversed_payment = Some(OriginalPayment {
                channel: primary.channel,
                reference: primary.reference.clone(),
            });
            format!("{}#{primary_id}", PaymentReversed::TYPE)
        }
        LineEvent::TitreAccepted(t) => format!(
            "{}#{invoice_key}#{}",
            TitreAccepted::TYPE,
            t.titre.reference()
        ),
        other => other.message_id(),
    };
    let row = reglement_row(event.status(), &ctx);
    let bytes = format.rows(std::slice::from_ref(&row));
    let day = paris_today().to_string();
    let statut = row.statut.as_str();
    let inserted = export_store::record_line(
        tx,
        &NewLine {
            tenant,
            source: &outbox.source,
            event_key: &event_key,
            invoice_key: &invoice_key,
            statut,
            day: &day,
            bytes: &bytes,
        },
        &now,
    )?;
    if inserted {
        metrics::counter!("encaisse_polyfac_reglements_lines_total", "tenant" => tenant.to_string(), "statut" => statut).increment(1);
        fact(
            tx,
            invoice,
            "reglement_recorded",
            serde_json::json!({"stage": NAME, "statut": statut, "event": event_key}),
            &format!("{NAME}/line/{event_key}"),
        )?;
    } else {
        fact(
            tx,
            invoice,
            "reglement_confirmed",
            serde_json::json!({"stage": NAME, "statut": statut, "event": event.message_id()}),
            &format!("{NAME}/line-confirmed/{}", event.message_id()),
        )?;
    }
    Ok(())
}

fn fact(
    tx: &mut Tx<'_>,
    invoice: &InvoiceRef,
    kind: &str,
    detail: serde_json::Value,
    dedupe_key: &str,
) -> Result<(), LedgerError> {
    tx.record_fact(&InvoiceFact {
        invoice_key: invoice.key(),
        tenant: invoice.tenant.as_str().to_string(),
        at: ledger_now(),
        kind: kind.to_string(),
        detail: detail.to_string(),
        dedupe_key: Some(dedupe_key.to_string()),
    })
}
