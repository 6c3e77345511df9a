//! The internal model of a direct-debit message, common to pain.008.001.02 and .08
//! (spec §2.1: everything SEPA uses is the same in both, only the agent BIC element and
//! the BIC pattern differ).
//!
//! These are the writer's *inputs*; they may still break an EPC rule (a 71-character name,
//! a signature date in the future). [`crate::build`] checks every rule and gives a
//! [`crate::Pain008`] that can only be written.

use chrono::{NaiveDate, NaiveDateTime};
use encaisse_schemas::identifiers::{Bic, BicFlavour, Iban, Ics, Rum};
use encaisse_schemas::{InvoiceRef, Money, SequenceType};
use serde::{Deserialize, Serialize};

/// The pain.008 version written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Pain008Version {
    /// CustomerDirectDebitInitiationV02 (ISO 2009).
    #[default]
    #[serde(rename = "pain.008.001.02")]
    V02,
    /// CustomerDirectDebitInitiationV08 (ISO 2019, EPC 2023 rulebooks).
    #[serde(rename = "pain.008.001.08")]
    V08,
}

impl Pain008Version {
    /// `pain.008.001.02`.
    pub fn name(self) -> &'static str {
        match self {
            Pain008Version::V02 => "pain.008.001.02",
            Pain008Version::V08 => "pain.008.001.08",
        }
    }

    /// The XML namespace of the `Document`.
    pub fn namespace(self) -> String {
        format!("urn:iso:std:iso:20022:tech:xsd:{}", self.name())
    }

    /// The BIC pattern of this version's schema (`Bic::satisfies`).
    pub fn bic_flavour(self) -> BicFlavour {
        match self {
            Pain008Version::V02 => BicFlavour::Iso2009,
            Pain008Version::V08 => BicFlavour::Iso2014,
        }
    }

    /// Element holding an agent's BIC: `BIC` (.02) or `BICFI` (.08).
    pub fn bic_element(self) -> &'static str {
        match self {
            Pain008Version::V02 => "BIC",
            Pain008Version::V08 => "BICFI",
        }
    }
}

/// A structured postal address (`PstlAdr`), mandatory for debtors whose bank is outside the
/// EEA (spec §3.5); fully unstructured addresses are refused from Nov 2026, so none is
/// offered here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    /// `StrtNm` (≤ 70).
    pub street: Option<String>,
    /// `BldgNb` (≤ 16).
    pub building_number: Option<String>,
    /// `PstCd` (≤ 16).
    pub postal_code: Option<String>,
    /// `TwnNm` (≤ 35), mandatory.
    pub town: String,
    /// `Ctry`, ISO 3166 alpha-2, mandatory.
    pub country: String,
}

/// The debtor of one collection (the mandate's account holder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debtor {
    /// `Dbtr/Nm`: transliterated to the SEPA set by the writer; ≤ 70 after that.
    pub name: String,
    pub iban: Iban,
    /// `DbtrAgt`; `None` writes `FinInstnId/Othr/Id = NOTPROVIDED` (IBAN-only).
    pub bic: Option<Bic>,
    pub address: Option<PostalAddress>,
}

/// What the debtor account was before an amendment (spec §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginalDebtorAccount {
    /// Same bank, other account: `OrgnlDbtrAcct/Id/IBAN` = the old IBAN.
    Iban(Iban),
    /// The debtor moved to another bank: `OrgnlDbtrAcct/Id/Othr/Id = SMNDA` ("same mandate,
    /// new debtor account", IG 9.0).
    SameMandateNewDebtorAccount,
}

/// The previous values of a mandate whose data changed since the last collection: the next
/// collection carries `AmdmntInd = true` and these in `AmdmntInfDtls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Amendment {
    /// The RUM changed: `OrgnlMndtId`.
    pub original_rum: Option<Rum>,
    /// The creditor's name changed: `OrgnlCdtrSchmeId/Nm`.
    pub original_creditor_name: Option<String>,
    /// The creditor's ICS changed: `OrgnlCdtrSchmeId/Id/PrvtId/Othr/Id`.
    pub original_ics: Option<Ics>,
    /// The debtor's account changed: `OrgnlDbtrAcct`.
    pub original_debtor_account: Option<OriginalDebtorAccount>,
}

impl Amendment {
    /// Whether nothing is amended (such an amendment is refused by the writer).
    pub fn is_empty(&self) -> bool {
        self.original_rum.is_none()
            && self.original_creditor_name.is_none()
            && self.original_ics.is_none()
            && self.original_debtor_account.is_none()
    }

    /// The amendment between the mandate data of the last presented collection and the
    /// current one, `None` when nothing the bank compares changed. An IBAN change within
    /// the same bank gives the old IBAN; a change of bank gives `SMNDA`. "Same bank" is
    /// decided on the bank code for FR/MC IBANs (positions 5–9) and otherwise on the first
    /// 8 characters of both BICs (unknown BIC → other bank, i.e. `SMNDA`).
    pub fn between(
        previous: &encaisse_schemas::Mandate,
        current: &encaisse_schemas::Mandate,
    ) -> Option<Amendment> {
        let mut amendment = Amendment::default();
        if previous.rum.key() != current.rum.key() {
            amendment.original_rum = Some(previous.rum.clone());
        }
        if previous.iban != current.iban {
            amendment.original_debtor_account = Some(if same_bank(previous, current) {
                OriginalDebtorAccount::Iban(previous.iban.clone())
            } else {
                OriginalDebtorAccount::SameMandateNewDebtorAccount
            });
        }
        (!amendment.is_empty()).then_some(amendment)
    }
}

fn same_bank(a: &encaisse_schemas::Mandate, b: &encaisse_schemas::Mandate) -> bool {
    let (ia, ib) = (a.iban.as_str(), b.iban.as_str());
    let french = |c: &str| c == "FR" || c == "MC";
    if french(a.iban.country()) && a.iban.country() == b.iban.country() {
        return ia[4..9] == ib[4..9];
    }
    match (&a.bic, &b.bic) {
        (Some(x), Some(y)) => x.as_str()[..8] == y.as_str()[..8],
        _ => false,
    }
}

/// The mandate data a collection carries (`DrctDbtTx/MndtRltdInf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MandateInfo {
    pub rum: Rum,
    /// `DtOfSgntr`: not after the file's creation date.
    pub signed_on: NaiveDate,
    pub amendment: Option<Amendment>,
}

/// One collection (`DrctDbtTxInf`): one invoice presented once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    /// The invoice collected (not written; names the collection in errors).
    pub invoice: InvoiceRef,
    /// `PmtId/EndToEndId`: a new one for each presentation ([`crate::ids::end_to_end_id`]).
    pub end_to_end_id: String,
    /// `InstdAmt` in EUR, 0.01 … 999 999 999.99.
    pub amount: Money,
    /// `PmtInf/ReqdColltnDt`: a TARGET business day, at least `lead_days` after creation.
    pub due_date: NaiveDate,
    /// `PmtInf/PmtTpInf/SeqTp` ([`crate::mandate::next_sequence`]).
    pub sequence: SequenceType,
    pub mandate: MandateInfo,
    pub debtor: Debtor,
    /// `UltmtDbtr/Nm` (e.g. the child when a parent pays), ≤ 70 after transliteration.
    pub ultimate_debtor: Option<String>,
    /// `RmtInf/Ustrd`: ≤ 140 after transliteration (single occurrence).
    pub remittance: String,
}

/// How `InitgPty` identifies the régie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartyId {
    /// `OrgId/Othr/Id` = SIRET, `SchmeNm/Prtry` = `SIRET`.
    Siret(String),
    /// `OrgId/Othr/Id` = ICS.
    Ics(Ics),
}

/// `GrpHdr/InitgPty`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiatingParty {
    pub name: String,
    pub id: Option<PartyId>,
}

/// `PmtInf/UltmtCdtr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UltimateCreditor {
    pub name: String,
    pub id: Option<String>,
}

/// The régie as creditor (from [`encaisse_schemas::tenant::Regie`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creditor {
    /// `Cdtr/Nm`, ≤ 70 after transliteration.
    pub name: String,
    pub iban: Iban,
    /// `CdtrAgt`; `None` writes `NOTPROVIDED`.
    pub bic: Option<Bic>,
    /// `CdtrSchmeId` (check digits already verified by [`Ics`]).
    pub ics: Ics,
    pub ultimate: Option<UltimateCreditor>,
}

/// `GrpHdr` values chosen by the caller. Nothing in the writer reads a clock: the same
/// header and collections always give the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// `MsgId` (≤ 35, SEPA identifier rules), unique per creditor.
    pub message_id: String,
    /// `CreDtTm`, written `YYYY-MM-DDThh:mm:ss` (local time, no fraction, no offset).
    pub created_at: NaiveDateTime,
}

/// Writer settings taken from [`crate::config::SepaTenantConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteSettings {
    pub version: Pain008Version,
    pub batch_booking: bool,
    /// Minimum TARGET days between `created_at` and a due date.
    pub lead_days: u32,
}
