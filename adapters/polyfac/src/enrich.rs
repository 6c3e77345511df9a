//! Enrichment: a valid [`Invoice`] becomes the canonical `invoice.issued`, and a file's
//! [`ExportSummary`] becomes `billing_run.closed`.
//!
//! * `content_hash`: SHA-256 over a canonical JSON form of the invoice's *typed* content
//!   (dates in ISO form, amounts with a decimal point, normalised quantities, canonical
//!   codes after the value maps). The same invoice therefore has the same hash whatever the
//!   file's encoding, separator, column order or date format — and any change to it changes
//!   the hash, hence the message id.
//! * `run_id`: deterministic from tenant, file name and the file's SHA-256: dropping the same
//!   file twice is the same run; the same name with other bytes is another run.
//! * Mandate sequence: when the export gives none, the caller's closure decides (the stage
//!   looks at the ledger's mandate history); this module never guesses.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use encaisse_schemas::identifiers::Rum;
use encaisse_schemas::{
    BillingRunClosed, CollectionPath, CreditNoteIssued, Event, InvoiceIssued, InvoiceLine,
    InvoiceRef, Money, PaymentMode, RunBudgetCount, SequenceType, SourceRef, TenantId,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalogue::TenantCatalogue;
use crate::reader::ExportSummary;
use crate::validate::{Invoice, civilite_code};

/// Where the invoices of one run come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunContext {
    pub tenant: TenantId,
    /// Source application (`polyfac`, or the `[sources.<name>]` key).
    pub application: String,
    pub run_id: String,
    /// Export file name.
    pub file: Option<String>,
}

impl RunContext {
    /// The context of an export file; `file_sha256` is the hex SHA-256 of its bytes (from
    /// [`crate::reader::prescan`]).
    pub fn for_file(
        tenant: TenantId,
        application: impl Into<String>,
        file_name: &str,
        file_sha256: &str,
    ) -> Self {
        RunContext {
            run_id: run_id(&tenant, file_name, file_sha256),
            tenant,
            application: application.into(),
            file: Some(file_name.to_string()),
        }
    }
}

/// Deterministic run id: `run-` + the first 24 hex digits of SHA-256(tenant, file name,
/// file hash).
pub fn run_id(tenant: &TenantId, file_name: &str, file_sha256: &str) -> String {
    let digest = Sha256::digest(format!("{tenant}\n{file_name}\n{file_sha256}").as_bytes());
    format!("run-{}", &hex::encode(digest)[..24])
}

#[derive(Serialize)]
struct CanonicalLine<'a> {
    product: &'a str,
    label: &'a str,
    quantity: String,
    unit_price: String,
    amount: String,
}

#[derive(Serialize)]
struct CanonicalMandate<'a> {
    rum: &'a str,
    signed_on: NaiveDate,
    iban: &'a str,
    bic: Option<&'a str>,
    holder: &'a str,
    sequence: Option<&'static str>,
}

/// The canonical form hashed into `content_hash`. Field order is the serialisation order:
/// never reorder, or every hash changes.
#[derive(Serialize)]
struct CanonicalInvoice<'a> {
    form: &'static str,
    number: &'a str,
    exercice: u16,
    issued_on: NaiveDate,
    period: u8,
    activity: &'a str,
    family_code: &'a str,
    civilite: &'static str,
    last_name: &'a str,
    first_name: &'a str,
    address_complement: Option<&'a str>,
    street: &'a str,
    locality: Option<&'a str>,
    postal_code: &'a str,
    city: &'a str,
    email: Option<&'a str>,
    payment_mode: PaymentMode,
    due_date: NaiveDate,
    mandate: Option<CanonicalMandate<'a>>,
    lines: Vec<CanonicalLine<'a>>,
    total: String,
    /// A credit note's original (`exercice/number`); absent for an invoice, so invoices
    /// keep the hash they always had.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
}

/// SHA-256 (hex) of the invoice's canonical content (see the module doc).
pub fn content_hash(invoice: &Invoice) -> String {
    let payer = &invoice.payer;
    let canonical = CanonicalInvoice {
        form: "encaisse.invoice.content.v1",
        number: &invoice.number,
        exercice: invoice.exercice,
        issued_on: invoice.issued_on,
        period: invoice.period,
        activity: &invoice.activity.code,
        family_code: &invoice.family_code,
        civilite: civilite_code(payer.civilite),
        last_name: &payer.last_name,
        first_name: &payer.first_name,
        address_complement: payer.address.complement.as_deref(),
        street: &payer.address.street,
        locality: payer.address.locality.as_deref(),
        postal_code: &payer.address.postal_code,
        city: &payer.address.city,
        email: payer.email.as_deref(),
        payment_mode: invoice.payment_mode,
        due_date: invoice.due_date,
        mandate: invoice.mandate.as_ref().map(|m| CanonicalMandate {
            rum: m.rum.as_str(),
            signed_on: m.signed_on,
            iban: m.iban.as_str(),
            bic: m.bic.as_ref().map(|b| b.as_str()),
            holder: &m.holder,
            sequence: m.sequence.map(SequenceType::as_str),
        }),
        lines: invoice
            .lines
            .iter()
            .map(|l| CanonicalLine {
                product: &l.product.code,
                label: &l.label,
                quantity: l.quantity.normalize().to_string(),
                unit_price: l.unit_price.to_dot_string(),
                amount: l.amount.to_dot_string(),
            })
            .collect(),
        total: invoice.total.to_dot_string(),
        origin: invoice
            .origin
            .as_ref()
            .map(|o| format!("{}/{}", o.exercice, o.number)),
    };
    // Serialising borrowed strings, dates and unit enums to JSON cannot fail.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Builds `invoice.issued` from a valid invoice. `derive_sequence` is called only for a
/// direct-debit invoice whose export gave no sequence type; its error (a ledger failure)
/// is returned as is.
pub fn enrich<E>(
    invoice: &Invoice,
    ctx: &RunContext,
    mut derive_sequence: impl FnMut(&Rum) -> Result<SequenceType, E>,
) -> Result<InvoiceIssued, E> {
    let activity = &invoice.activity;
    let mut mandate = invoice.mandate.clone();
    if let Some(m) = &mut mandate
        && m.sequence.is_none()
    {
        m.sequence = Some(derive_sequence(&m.rum)?);
    }
    let lines = invoice
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| InvoiceLine {
            number: i as u32 + 1,
            product: l.product.code.clone(),
            cod_prod_loc: l.product.cod_prod_loc.clone(),
            nature: l.product.nature.clone(),
            fonction: l.product.fonction.clone(),
            label: l.label.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            amount: l.amount,
        })
        .collect();
    Ok(InvoiceIssued {
        schema_version: InvoiceIssued::SCHEMA_VERSION,
        invoice: InvoiceRef {
            tenant: ctx.tenant.clone(),
            exercice: invoice.exercice,
            number: invoice.number.clone(),
        },
        source: SourceRef {
            application: ctx.application.clone(),
            run_id: ctx.run_id.clone(),
            file: ctx.file.clone(),
            lines: Some(invoice.file_lines),
        },
        content_hash: content_hash(invoice),
        issued_on: invoice.issued_on,
        period: invoice.period,
        activity: activity.code.clone(),
        budget: activity.budget.clone(),
        collection: activity.collection,
        regie: match activity.collection {
            CollectionPath::Regie => activity.regie.clone(),
            CollectionPath::Titres => None,
        },
        family_code: invoice.family_code.clone(),
        payer: invoice.payer.clone(),
        lines,
        total: invoice.total,
        due_date: invoice.due_date,
        payment_mode: invoice.payment_mode,
        mandate,
        // A direct-debit invoice is collected by the debit: offering it online as well
        // would let a family pay twice.
        online_payable: activity.online_payment && invoice.payment_mode != PaymentMode::Prelevement,
    })
}

/// Builds `credit_note.issued` from a valid credit note (an invoice with an origin);
/// `None` for an ordinary invoice. A credit note debits nothing and is not paid: it carries
/// no mandate (so no mandate use is derived for it) and is not payable online.
pub fn enrich_credit_note(invoice: &Invoice, ctx: &RunContext) -> Option<CreditNoteIssued> {
    let origin = invoice.origin.as_ref()?;
    let note = Invoice {
        mandate: None,
        ..invoice.clone()
    };
    let mut issued = match enrich(&note, ctx, |_| Err::<SequenceType, ()>(())) {
        Ok(issued) => issued,
        // Unreachable: no mandate, no sequence asked.
        Err(()) => return None,
    };
    issued.online_payable = false;
    Some(CreditNoteIssued {
        schema_version: CreditNoteIssued::SCHEMA_VERSION,
        origin: InvoiceRef {
            tenant: ctx.tenant.clone(),
            exercice: origin.exercice,
            number: origin.number.clone(),
        },
        note: issued,
    })
}

fn collection_key(c: CollectionPath) -> u8 {
    match c {
        CollectionPath::Titres => 0,
        CollectionPath::Regie => 1,
    }
}

/// `billing_run.closed` for a file: valid invoices and totals per (budget, collection path),
/// and the rejected count. `None` when no line of the file had a readable exercice (then
/// nothing was published either).
pub fn billing_run_closed(
    summary: &ExportSummary,
    catalogue: &TenantCatalogue,
    ctx: &RunContext,
) -> Option<BillingRunClosed> {
    let exercice = summary.exercice?;
    let mut budgets: BTreeMap<(String, u8), RunBudgetCount> = BTreeMap::new();
    for (code, count) in &summary.activities {
        // Activities in the summary come from the same catalogue; an unknown one (another
        // catalogue passed by mistake) is left out rather than guessed.
        let Some(activity) = catalogue.activity(code) else {
            tracing::warn!(activity = %code, "Activity of a summary is not in the catalogue.");
            continue;
        };
        let entry = budgets
            .entry((activity.budget.clone(), collection_key(activity.collection)))
            .or_insert_with(|| RunBudgetCount {
                budget: activity.budget.clone(),
                collection: activity.collection,
                invoices: 0,
                total: Money::ZERO,
            });
        entry.invoices += count.invoices;
        entry.total = entry.total.checked_add(count.total).unwrap_or(entry.total);
    }
    Some(BillingRunClosed {
        schema_version: BillingRunClosed::SCHEMA_VERSION,
        tenant: ctx.tenant.clone(),
        run_id: ctx.run_id.clone(),
        application: ctx.application.clone(),
        file: ctx.file.clone(),
        exercice,
        budgets: budgets.into_values().collect(),
        rejected_invoices: u32::try_from(summary.rejected_invoices).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_deterministic_and_depends_on_every_input() {
        let t = TenantId::new("vitry").unwrap();
        let a = run_id(&t, "export.csv", "abc");
        assert_eq!(a, run_id(&t, "export.csv", "abc"));
        assert_eq!(a.len(), 4 + 24);
        assert_ne!(a, run_id(&t, "export.csv", "abd"));
        assert_ne!(a, run_id(&t, "export2.csv", "abc"));
        assert_ne!(
            a,
            run_id(&TenantId::new("ivry").unwrap(), "export.csv", "abc")
        );
    }
}
