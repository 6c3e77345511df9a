//! Invoices `helios.titres` refuses before numbering (the PES writer's rules, an unusable
//! mandate, a budget or bordereau that cannot be sent, no number left). They never block
//! the rest of their run: the PES Aller file is written without them, and each one is told
//! where people see it —
//!
//! * a `titre.rejected` with `source: local`, no `titre` and a **local** code
//!   (`LOCAL-MANDATE`, `LOCAL-RULES`, `LOCAL-SETUP`: the Trésorerie never saw the invoice),
//!   so that `polyfac.export` writes a `TITRE_REJETE` line and finance can trace the euro.
//!   It is queued (`helios_event`) in the transaction that plans the run and records the
//!   refusal, then handed to the runtime by [`hand_over`] and marked handed atomically with
//!   the message's dedupe record: no refusal without its event, never two events for one;
//! * a `titre_refused` fact in the invoice's journal (`encaisse trace`), a `helios_refused`
//!   row and a line of `<tenant>/helios/rejected/<run>-<budget>.refused.txt` (`plan`);
//! * the counter `encaisse_helios_invoices_refused_total{tenant}` and a warning.

use chrono::{DateTime, FixedOffset};
use encaisse_ledger::{Ledger, Tx};
use encaisse_schemas::{Event, InvoiceRef, TitreRejected, TitreSource};

use super::error::{HeliosError, read_tx};
use super::outputs::events_flag;
use super::settings::TenantHelios;
use super::store;
use crate::stage::{Handled, Outgoing, StageError};

/// Why an invoice was not sent (the `code` of its `titre.rejected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalCode {
    /// The direct-debit mandate cannot be used (none, unknown sequence, signed after the
    /// bordereau date, BIC, holder, or its history says it is closed or used up).
    Mandate,
    /// The invoice breaks a PES rule the XSD does not check: a text or identifier that
    /// cannot be normalised, the payer's address, amounts, lines, a debt number taken twice…
    Rules,
    /// The tenant cannot send it as configured: budget unknown, bordereau refused (date,
    /// codes, codique), no number left in the exercice, ASAP or template settings.
    Setup,
    /// A credit note that cannot be applied to its original (unknown, not sent, already
    /// reduced below what it takes off): Polyfac sees `AVOIR_REJETE`.
    CreditNote,
}

impl LocalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalCode::Mandate => "LOCAL-MANDATE",
            LocalCode::Rules => "LOCAL-RULES",
            LocalCode::Setup => "LOCAL-SETUP",
            LocalCode::CreditNote => "LOCAL-AVOIR",
        }
    }

    /// The code of a refusal, from the field at fault: the stage's own (`budget`,
    /// `bordereau`, `numbering`, `mandate`, `NumDette`) or the PES writer's
    /// (`encaisse_helios::aller::InvoiceError::field`).
    pub fn of(field: &str) -> Self {
        const SETUP: [&str; 8] = [
            "budget",
            "bordereau",
            "numbering",
            "IdPce",
            "payment_mode",
            "asap_pdf",
            "piece_object",
            "debit.label",
        ];
        if field == "credit_note" {
            LocalCode::CreditNote
        } else if field == "mandate" || field.starts_with("mandate.") {
            LocalCode::Mandate
        } else if SETUP.contains(&field)
            || field.starts_with("asap.")
            || field.starts_with("budget.")
        {
            LocalCode::Setup
        } else {
            LocalCode::Rules
        }
    }
}

/// The `titre.rejected` telling Polyfac that `invoice` will not become a titre: `field` and
/// `rule` say why, `report` is the refused-invoices report of its run.
pub fn event(
    invoice: &InvoiceRef,
    field: &str,
    rule: &str,
    report: &str,
    at: DateTime<FixedOffset>,
) -> TitreRejected {
    TitreRejected {
        schema_version: TitreRejected::SCHEMA_VERSION,
        invoice: invoice.clone(),
        titre: None,
        source: TitreSource::Local,
        code: LocalCode::of(field).as_str().to_string(),
        text: format!(
            "Not sent to Hélios: {field}: {}",
            rule.replace(['\n', '\r', '\t'], " ")
        ),
        rejected_at: at,
        file: report.to_string(),
    }
}

/// Queues `event` for publication, in the caller's (planning) transaction.
pub fn queue(tx: &mut Tx<'_>, event: &TitreRejected) -> Result<(), HeliosError> {
    store::insert_event(
        tx,
        event.invoice.tenant.as_str(),
        TitreRejected::TYPE,
        &event.message_id(),
        &encaisse_schemas::encode(event),
    )
}

/// The tenant's queued events as the outputs of the message being handled, marked handed in
/// the runtime's dedupe transaction (`Handled::commit_with`). Reads the ledger only when
/// this process may have queued or left some (see `outputs::events_flag`); while events
/// were found the next call looks again, so a dedupe record that failed to commit never
/// loses them (republishing one is harmless: the same message id).
pub async fn hand_over(
    ledger: &Ledger,
    data_dir: &std::path::Path,
    tenant: &TenantHelios,
) -> Result<Handled, StageError> {
    let flag = events_flag(data_dir, tenant);
    if !flag.swap(false, std::sync::atomic::Ordering::SeqCst) {
        return Ok(Handled::none());
    }
    let id = tenant.id.to_string();
    let events = match read_tx(ledger, move |tx| store::pending_events(tx, &id)).await {
        Ok(events) => events,
        Err(e) => {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(e.into());
        }
    };
    if events.is_empty() {
        return Ok(Handled::none());
    }
    flag.store(true, std::sync::atomic::Ordering::SeqCst);
    let ids: Vec<String> = events.iter().map(Event::message_id).collect();
    Ok(
        Handled::publish(events.iter().map(Outgoing::event).collect())
            .commit_with(move |tx| store::mark_events_handed(tx, &ids)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_field_at_fault() {
        assert_eq!(LocalCode::of("mandate"), LocalCode::Mandate);
        assert_eq!(LocalCode::of("mandate.bic"), LocalCode::Mandate);
        assert_eq!(LocalCode::of("payer.address.postal_code"), LocalCode::Rules);
        assert_eq!(LocalCode::of("NumDette"), LocalCode::Rules);
        assert_eq!(LocalCode::of("bordereau"), LocalCode::Setup);
        assert_eq!(LocalCode::of("asap.ics"), LocalCode::Setup);
        assert_eq!(LocalCode::of("budget.payfip_numcli"), LocalCode::Setup);
        assert_eq!(LocalCode::of("credit_note"), LocalCode::CreditNote);
    }
}
