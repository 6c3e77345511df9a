//! The EPC rules the ISO XSD does not check (spec §2.2, §3), one function per concern.
//! A broken rule is a [`RuleViolation`] naming the collection (end-to-end id and invoice),
//! the XML field and the rule.

use std::fmt;

use chrono::NaiveDate;
use encaisse_schemas::identifiers::check_sepa_identifier;
use encaisse_schemas::text::to_sepa;

use crate::calendar::{earliest_due_date, is_target_day};
use crate::model::{
    Amendment, Collection, Creditor, OriginalDebtorAccount, Pain008Version, PostalAddress,
};

/// Smallest and largest amount of one collection, in cents (EPC: 0.01 … 999 999 999.99).
pub const MIN_AMOUNT_CENTS: i64 = 1;
pub const MAX_AMOUNT_CENTS: i64 = 99_999_999_999;

/// Countries in SEPA but outside the EEA, whose debtors need a postal address (spec §3.5).
const NON_EEA_SEPA: [&str; 7] = ["CH", "GB", "GI", "MC", "SM", "VA", "AD"];

/// Whether a debtor whose account is in `country` needs a postal address (SEPA country
/// outside the EEA: CH, GB, GI, MC, SM, VA, AD).
pub fn needs_postal_address(country: &str) -> bool {
    NON_EEA_SEPA.contains(&country)
}

/// Which rule was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// EPC230-15 identifiers: SEPA set without space, ≤ 35, no leading/trailing `/`, no `//`.
    Identifier,
    /// A text is empty once transliterated to the SEPA set.
    Empty,
    /// A text is longer than SEPA allows once transliterated.
    Length,
    /// Amount outside 0.01 … 999 999 999.99.
    Amount,
    /// BIC not matching the pattern of the written version.
    Bic,
    /// Mandate signature date after the file's creation date.
    SignatureDate,
    /// Due date not a TARGET day, or earlier than the bank's lead time allows.
    DueDate,
    /// An id used twice in one message.
    Duplicate,
    /// Amendment empty or identical to the current data (banks reject it: MD02).
    Amendment,
    /// Postal address missing or malformed.
    Address,
    /// A message needs at least one collection.
    NoCollection,
}

/// What a violation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// The message header, creditor or initiating party.
    Message { message_id: String },
    /// One collection.
    Collection {
        end_to_end_id: String,
        invoice: String,
    },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Message { message_id } => write!(f, "message {message_id:?}"),
            Subject::Collection {
                end_to_end_id,
                invoice,
            } => write!(f, "collection {end_to_end_id:?} (invoice {invoice})"),
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{subject}: {field}: {detail}")]
pub struct RuleViolation {
    pub subject: Subject,
    /// The pain.008 element concerned (`Dbtr/Nm`).
    pub field: &'static str,
    pub rule: Rule,
    pub detail: String,
}

/// Several violations as one line for people: `a; b; c`.
pub fn describe_all(violations: &[RuleViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a text cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("empty once transliterated to the SEPA character set")]
    Empty,
    #[error("{len} characters once transliterated, at most {max}")]
    TooLong { len: usize, max: usize },
}

/// Transliterates `input` to the SEPA set (EPC217-08 table, [`to_sepa`]) and checks it is
/// not empty and at most `max` characters. Never truncates: a name cut by the machine would
/// be a different name.
pub fn sepa_text(input: &str, max: usize) -> Result<String, TextError> {
    let text = to_sepa(input);
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    let len = text.chars().count();
    if len > max {
        return Err(TextError::TooLong { len, max });
    }
    Ok(text)
}

/// Collects violations for one subject.
pub(crate) struct Checker<'a> {
    subject: Subject,
    out: &'a mut Vec<RuleViolation>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(subject: Subject, out: &'a mut Vec<RuleViolation>) -> Self {
        Checker { subject, out }
    }

    pub(crate) fn fail(&mut self, field: &'static str, rule: Rule, detail: impl Into<String>) {
        self.out.push(RuleViolation {
            subject: self.subject.clone(),
            field,
            rule,
            detail: detail.into(),
        });
    }

    /// A transliterated text, or `None` after recording why it cannot be written.
    pub(crate) fn text(&mut self, field: &'static str, input: &str, max: usize) -> Option<String> {
        match sepa_text(input, max) {
            Ok(text) => Some(text),
            Err(e) => {
                let rule = match e {
                    TextError::Empty => Rule::Empty,
                    TextError::TooLong { .. } => Rule::Length,
                };
                self.fail(field, rule, e.to_string());
                None
            }
        }
    }

    pub(crate) fn identifier(&mut self, field: &'static str, value: &str) {
        if let Err(e) = check_sepa_identifier(field, value) {
            self.fail(field, Rule::Identifier, e.to_string());
        }
    }

    pub(crate) fn bic(
        &mut self,
        field: &'static str,
        bic: Option<&encaisse_schemas::identifiers::Bic>,
        version: Pain008Version,
    ) {
        if let Some(bic) = bic
            && !bic.satisfies(version.bic_flavour())
        {
            self.fail(
                field,
                Rule::Bic,
                format!("BIC {bic} does not match the {} pattern", version.name()),
            );
        }
    }
}

/// Checks one collection and returns it with its texts transliterated, or `None` when a
/// rule is broken (the violations are appended to `out`).
pub fn check_collection(
    collection: &Collection,
    creditor: &Creditor,
    version: Pain008Version,
    created_on: NaiveDate,
    lead_days: u32,
    out: &mut Vec<RuleViolation>,
) -> Option<Collection> {
    let before = out.len();
    let mut check = Checker::new(
        Subject::Collection {
            end_to_end_id: collection.end_to_end_id.clone(),
            invoice: collection.invoice.key(),
        },
        out,
    );
    check.identifier("PmtId/EndToEndId", &collection.end_to_end_id);
    let cents = collection.amount.cents();
    if !(MIN_AMOUNT_CENTS..=MAX_AMOUNT_CENTS).contains(&cents) {
        check.fail(
            "InstdAmt",
            Rule::Amount,
            format!("{} EUR is outside 0.01 … 999999999.99", collection.amount),
        );
    }
    if collection.mandate.signed_on > created_on {
        check.fail(
            "MndtRltdInf/DtOfSgntr",
            Rule::SignatureDate,
            format!(
                "signature date {} is after the file's creation date {created_on}",
                collection.mandate.signed_on
            ),
        );
    }
    check_due_date(&mut check, collection.due_date, created_on, lead_days);
    let name = check.text("Dbtr/Nm", &collection.debtor.name, 70);
    let ultimate = collection
        .ultimate_debtor
        .as_deref()
        .map(|u| check.text("UltmtDbtr/Nm", u, 70));
    let remittance = to_sepa(&collection.remittance);
    if remittance.chars().count() > 140 {
        check.fail(
            "RmtInf/Ustrd",
            Rule::Length,
            format!(
                "{} characters once transliterated, at most 140",
                remittance.chars().count()
            ),
        );
    }
    check.bic(
        "DbtrAgt/FinInstnId",
        collection.debtor.bic.as_ref(),
        version,
    );
    let address = check_debtor_address(&mut check, collection);
    if let Some(amendment) = &collection.mandate.amendment {
        check_amendment(&mut check, amendment, collection, creditor);
    }
    if out.len() > before {
        return None;
    }
    let mut normalised = collection.clone();
    normalised.debtor.name = name?;
    normalised.ultimate_debtor = ultimate.flatten();
    normalised.remittance = remittance;
    normalised.debtor.address = address;
    Some(normalised)
}

fn check_due_date(check: &mut Checker<'_>, due: NaiveDate, created_on: NaiveDate, lead: u32) {
    if !is_target_day(due) {
        check.fail(
            "ReqdColltnDt",
            Rule::DueDate,
            format!("{due} is not a TARGET business day"),
        );
    }
    let earliest = earliest_due_date(created_on, lead);
    if due < earliest {
        check.fail(
            "ReqdColltnDt",
            Rule::DueDate,
            format!(
                "{due} is before {earliest}, the earliest due date for a file created on {created_on} with {lead} TARGET days of lead time"
            ),
        );
    }
}

fn check_debtor_address(check: &mut Checker<'_>, collection: &Collection) -> Option<PostalAddress> {
    let country = collection.debtor.iban.country();
    let Some(address) = &collection.debtor.address else {
        if needs_postal_address(country) {
            check.fail(
                "Dbtr/PstlAdr",
                Rule::Address,
                format!("a debtor whose account is in {country} (outside the EEA) needs a postal address"),
            );
        }
        return None;
    };
    let mut optional = |field: &'static str, value: &Option<String>, max: usize| {
        value.as_deref().and_then(|v| check.text(field, v, max))
    };
    let street = optional("Dbtr/PstlAdr/StrtNm", &address.street, 70);
    let building_number = optional("Dbtr/PstlAdr/BldgNb", &address.building_number, 16);
    let postal_code = optional("Dbtr/PstlAdr/PstCd", &address.postal_code, 16);
    let town = check.text("Dbtr/PstlAdr/TwnNm", &address.town, 35);
    let ctry = &address.country;
    if ctry.len() != 2 || !ctry.bytes().all(|b| b.is_ascii_uppercase()) {
        check.fail(
            "Dbtr/PstlAdr/Ctry",
            Rule::Address,
            format!("{ctry:?} is not an ISO 3166 alpha-2 country code"),
        );
    }
    Some(PostalAddress {
        street,
        building_number,
        postal_code,
        town: town?,
        country: ctry.clone(),
    })
}

fn check_amendment(
    check: &mut Checker<'_>,
    amendment: &Amendment,
    collection: &Collection,
    creditor: &Creditor,
) {
    const FIELD: &str = "MndtRltdInf/AmdmntInfDtls";
    if amendment.is_empty() {
        check.fail(
            FIELD,
            Rule::Amendment,
            "an amendment must name what changed",
        );
    }
    if amendment
        .original_rum
        .as_ref()
        .is_some_and(|rum| rum.key() == collection.mandate.rum.key())
    {
        check.fail(
            "AmdmntInfDtls/OrgnlMndtId",
            Rule::Amendment,
            "the original RUM is the current RUM",
        );
    }
    if amendment.original_ics.as_ref() == Some(&creditor.ics) {
        check.fail(
            "AmdmntInfDtls/OrgnlCdtrSchmeId/Id",
            Rule::Amendment,
            "the original ICS is the current ICS",
        );
    }
    if let Some(name) = &amendment.original_creditor_name
        && let Some(text) = check.text("AmdmntInfDtls/OrgnlCdtrSchmeId/Nm", name, 70)
        && text == to_sepa(&creditor.name)
    {
        check.fail(
            "AmdmntInfDtls/OrgnlCdtrSchmeId/Nm",
            Rule::Amendment,
            "the original creditor name is the current name",
        );
    }
    if let Some(OriginalDebtorAccount::Iban(iban)) = &amendment.original_debtor_account
        && iban == &collection.debtor.iban
    {
        check.fail(
            "AmdmntInfDtls/OrgnlDbtrAcct",
            Rule::Amendment,
            "the original IBAN is the current IBAN",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_transliterated_never_cut() {
        assert_eq!(
            sepa_text("Mme Hélène Œuvray", 70).unwrap(),
            "Mme Helene Ouvray"
        );
        assert_eq!(sepa_text("中文", 70), Err(TextError::Empty));
        assert_eq!(
            sepa_text(&"é".repeat(71), 70),
            Err(TextError::TooLong { len: 71, max: 70 })
        );
    }
}
