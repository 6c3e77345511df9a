//! Invoices that cannot be put in a pain.008 (the adapter's EPC rules, an unusable mandate, a
//! due date too close, an invoice without mandate…). They never block the valid rest: the
//! file is written without them and each one is reported where people see it —
//!
//! * a `payment.rejected` with a **local** reason code (never an ISO one: the bank never saw
//!   it), so the REGLEMENTS file tells Polyfac the debit did not happen;
//! * a `sepa_refused` fact in the invoice's journal (`encaisse trace`);
//! * a row of `<tenant>/bank/rejected/<run>-<budget>-refused.csv` for ops;
//! * the counter `encaisse_sepa_invoices_refused_total{tenant,reason_code}` and a warning.

use chrono::{DateTime, FixedOffset};
use encaisse_ledger::{LedgerError, Tx};
use encaisse_schemas::{Event, InvoiceIssued, PaymentRejected};
use encaisse_sepa::report::RefusedRow;

use super::{metrics, store};

/// Why an invoice was not sent (the `reason_code` of its `payment.rejected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    /// The mandate cannot be used: closed (MD01, MD07), suspended (AC04…), lapsed, one-off
    /// already used, signed after the due date.
    Mandate,
    /// An EPC rule the XSD does not check: name or remittance too long once transliterated,
    /// amount out of range, due date too close for the bank's lead time, BIC shape, missing
    /// address outside the EEA…
    Rules,
    /// The invoice lacks what a direct debit needs: no mandate, no régie, no usable
    /// end-to-end id (invoice number).
    Setup,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::Mandate => "LOCAL-MANDATE",
            RefusalCode::Rules => "LOCAL-RULES",
            RefusalCode::Setup => "LOCAL-SETUP",
        }
    }
}

/// One refused presentation of an invoice.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub invoice: InvoiceIssued,
    pub attempt: u32,
    /// The end-to-end id the collection would have had, when one could be made.
    pub end_to_end_id: Option<String>,
    pub code: RefusalCode,
    /// For people; names fields and rules, never the debtor's name or IBAN.
    pub reason: String,
}

impl Refusal {
    /// The `payment.rejected` telling Polyfac the debit will not happen.
    pub fn event(&self, at: DateTime<FixedOffset>) -> PaymentRejected {
        let payment_id = match &self.end_to_end_id {
            Some(e2e) => format!("sepa:{e2e}"),
            None => format!("sepa:{}#{}", self.invoice.invoice.key(), self.attempt),
        };
        PaymentRejected {
            schema_version: PaymentRejected::SCHEMA_VERSION,
            invoice: self.invoice.invoice.clone(),
            payment_id,
            end_to_end_id: self
                .end_to_end_id
                .clone()
                .unwrap_or_else(|| "NOTPROVIDED".to_string()),
            amount: self.invoice.total,
            reason_code: self.code.as_str().to_string(),
            reason_text: format!("Not sent to the bank: {}", self.reason),
            rejected_at: at,
            will_represent: false,
            file: None,
        }
    }

    /// Its row in the refused report.
    pub fn row(&self) -> RefusedRow {
        RefusedRow {
            invoice: self.invoice.invoice.key(),
            family_code: self.invoice.family_code.clone(),
            amount: self.invoice.total,
            due_date: self.invoice.due_date,
            attempt: self.attempt,
            end_to_end_id: self.end_to_end_id.clone(),
            reason_code: self.code.as_str().to_string(),
            reason: self.reason.clone(),
        }
    }
}

/// Queues the events and records the journal facts of refused invoices.
pub fn record(
    tx: &mut Tx<'_>,
    origin: &str,
    refusals: &[Refusal],
    at: DateTime<FixedOffset>,
    cause: &str,
) -> Result<(), LedgerError> {
    for refusal in refusals {
        store::insert_event(
            tx,
            refusal.invoice.invoice.tenant.as_str(),
            origin,
            &refusal.event(at),
        )?;
    }
    record_facts(tx, refusals, cause)
}

/// Records a `sepa_refused` fact in each refused invoice's journal.
pub fn record_facts(tx: &mut Tx<'_>, refusals: &[Refusal], cause: &str) -> Result<(), LedgerError> {
    for refusal in refusals {
        let key = refusal.invoice.invoice.key();
        store::fact(
            tx,
            &key,
            refusal.invoice.invoice.tenant.as_str(),
            "sepa_refused",
            serde_json::json!({
                "reason_code": refusal.code.as_str(),
                "reason": refusal.reason,
                "attempt": refusal.attempt,
                "end_to_end_id": refusal.end_to_end_id,
                "cause": cause,
            }),
            &format!("sepa:refused:{key}:{}", refusal.attempt),
        )?;
    }
    Ok(())
}

/// Tells ops (a warning and `encaisse_sepa_invoices_refused_total`), once committed.
pub fn log(refusals: &[Refusal]) {
    for refusal in refusals {
        let tenant = refusal.invoice.invoice.tenant.as_str();
        metrics::refused(tenant, refusal.code.as_str());
        tracing::warn!(
            tenant,
            invoice = %refusal.invoice.invoice.key(),
            attempt = refusal.attempt,
            reason_code = refusal.code.as_str(),
            reason = %refusal.reason,
            "Invoice not sent by direct debit."
        );
    }
}
