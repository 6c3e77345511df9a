//! From the canonical vocabulary (régie configuration, `invoice.issued`) to the writer's
//! model, so that the `sepa.batch` stage stays thin: it picks the invoices of a run, asks
//! the ledger for attempts and mandate histories, and calls these.

use chrono::NaiveDate;
use encaisse_schemas::tenant::Regie;
use encaisse_schemas::text::to_sepa_max;
use encaisse_schemas::{InvoiceIssued, SequenceType};

use crate::config::{InitiatingPartyIdKind, SepaTenantConfig};
use crate::error::ErrorClass;
use crate::ids::{EndToEndIdError, end_to_end_id};
use crate::model::{
    Amendment, Collection, Creditor, Debtor, InitiatingParty, MandateInfo, PartyId, PostalAddress,
    UltimateCreditor, WriteSettings,
};
use crate::rules::needs_postal_address;

/// The régie or the invoice lacks what a direct debit needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error(
        "régie {regie:?} has no {field}: set it in [[tenants.regies]] to collect by direct debit"
    )]
    MissingRegieField { regie: String, field: &'static str },
    #[error("tenants.sepa.siret is required when initiating_party_id = \"siret\"")]
    MissingSiret,
    #[error("invoice {invoice} is not paid by direct debit (no mandate)")]
    NoMandate { invoice: String },
    #[error(transparent)]
    EndToEndId(#[from] EndToEndIdError),
}

impl SetupError {
    /// Always bad data or configuration: park, fix, replay.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

impl SepaTenantConfig {
    /// The writer settings of this tenant.
    pub fn write_settings(&self) -> WriteSettings {
        WriteSettings {
            version: self.pain008_version,
            batch_booking: self.batch_booking,
            lead_days: self.lead_days,
        }
    }

    /// The régie as creditor, with the configured ultimate creditor.
    pub fn creditor(&self, regie: &Regie) -> Result<Creditor, SetupError> {
        let missing = |field| SetupError::MissingRegieField {
            regie: regie.code.clone(),
            field,
        };
        Ok(Creditor {
            name: regie
                .creditor_name
                .clone()
                .ok_or_else(|| missing("creditor_name"))?,
            iban: regie
                .creditor_iban
                .clone()
                .ok_or_else(|| missing("creditor_iban"))?,
            bic: regie.creditor_bic.clone(),
            ics: regie.ics.clone().ok_or_else(|| missing("ics"))?,
            ultimate: self
                .ultimate_creditor_name
                .as_ref()
                .map(|name| UltimateCreditor {
                    name: name.clone(),
                    id: self.ultimate_creditor_id.clone(),
                }),
        })
    }

    /// `GrpHdr/InitgPty` for a régie, as configured.
    pub fn initiating_party(&self, creditor: &Creditor) -> Result<InitiatingParty, SetupError> {
        let id = match self.initiating_party_id {
            InitiatingPartyIdKind::None => None,
            InitiatingPartyIdKind::Ics => Some(PartyId::Ics(creditor.ics.clone())),
            InitiatingPartyIdKind::Siret => Some(PartyId::Siret(
                self.siret.clone().ok_or(SetupError::MissingSiret)?,
            )),
        };
        Ok(InitiatingParty {
            name: self
                .initiating_party_name
                .clone()
                .unwrap_or_else(|| creditor.name.clone()),
            id,
        })
    }

    /// `{service}` for file names: `service_id`, else the régie code in upper case.
    pub fn service_for(&self, regie: &Regie) -> String {
        self.service_id
            .clone()
            .unwrap_or_else(|| regie.code.to_ascii_uppercase())
    }
}

/// What the stage decided for one presentation of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    /// 1 for the first presentation, 2 for a re-presentation…
    pub attempt: u32,
    pub due_date: NaiveDate,
    pub sequence: SequenceType,
    /// From [`Amendment::between`] the mandate of the last presented collection and this one.
    pub amendment: Option<Amendment>,
}

/// `RmtInf/Ustrd` of an invoice: `FACTURE <number> <activity> <MM/YYYY>`, cut to 140.
pub fn remittance_for(invoice: &InvoiceIssued) -> String {
    let text = format!(
        "Facture {} {} {:02}/{}",
        invoice.invoice.number, invoice.activity, invoice.period, invoice.invoice.exercice
    );
    to_sepa_max(&text, 140)
}

/// The collection of one presentation of an invoice paid by direct debit: the debtor is
/// the mandate's account holder, the amount the invoice total, the end-to-end id derived
/// from the invoice and the attempt; the payer's address is added (country FR) only when
/// the account is outside the EEA, where SEPA requires it. Rules are checked later by [`crate::build`].
pub fn collection_for(
    invoice: &InvoiceIssued,
    presentation: &Presentation,
) -> Result<Collection, SetupError> {
    let mandate = invoice
        .mandate
        .as_ref()
        .ok_or_else(|| SetupError::NoMandate {
            invoice: invoice.invoice.key(),
        })?;
    Ok(Collection {
        invoice: invoice.invoice.clone(),
        end_to_end_id: end_to_end_id(&invoice.invoice, presentation.attempt)?,
        amount: invoice.total,
        due_date: presentation.due_date,
        sequence: presentation.sequence,
        mandate: MandateInfo {
            rum: mandate.rum.clone(),
            signed_on: mandate.signed_on,
            amendment: presentation.amendment.clone(),
        },
        debtor: Debtor {
            name: mandate.holder.clone(),
            iban: mandate.iban.clone(),
            bic: mandate.bic.clone(),
            address: needs_postal_address(mandate.iban.country()).then(|| {
                let address = &invoice.payer.address;
                PostalAddress {
                    street: Some(address.street.clone()),
                    building_number: None,
                    postal_code: Some(address.postal_code.clone()),
                    town: address.city.clone(),
                    // The payer's address is French (the canonical event has no country).
                    country: "FR".to_string(),
                }
            }),
        },
        ultimate_debtor: None,
        remittance: remittance_for(invoice),
    })
}
