//! SDD reason codes: ISO name, meaning, suggested handling and effect on the mandate.
//!
//! Source: `shared/specs/sepa/reason-codes-sdd.csv` (ISO 20022 external code sets
//! `ExternalReturnReason1Code` / `ExternalStatusReason1Code`; R-types per EPC173-14 as
//! summarised by PSP documentation; the handling column is the spec's recommendation, §6.4).
//! The table is authored here from that file (code, ISO name, meaning, handling); a test
//! reads the CSV from the specs directory and fails if they drift apart. The file-level
//! codes after the CSV rows (AM10 … FF05) come from the note under the table of spec §6.4.
//!
//! The mandate effect is ours, from spec §5 ("`MD01`/`MD07`/`AC04` returns close or suspend
//! it") and the CSV's next steps: `Close` needs a new signed mandate, `Suspend` needs new
//! debtor data (an amendment) or the debtor's confirmation before the next collection.

/// What the spec suggests doing with a collection rejected with this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handling {
    /// May be re-presented on a new date (AM04).
    Retry,
    /// At most one re-presentation (MS03).
    RetryOnce,
    /// Correct the data or the file, then resubmit (manual).
    FixAndResubmit,
    /// Contact the family; no automatic re-presentation.
    ContactDebtor,
    /// Check for a duplicate before anything else.
    Investigate,
    /// Do not re-present.
    Final,
}

impl Handling {
    /// The CSV's spelling (`retry_once`).
    pub fn as_str(self) -> &'static str {
        match self {
            Handling::Retry => "retry",
            Handling::RetryOnce => "retry_once",
            Handling::FixAndResubmit => "fix_and_resubmit",
            Handling::ContactDebtor => "contact_debtor",
            Handling::Investigate => "investigate",
            Handling::Final => "final",
        }
    }
}

/// What a reject does to the mandate it was presented under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MandateEffect {
    /// The mandate stays usable.
    Keep,
    /// Unusable until its data is amended (new IBAN) or the debtor confirms.
    Suspend,
    /// Unusable for ever: a new mandate (new RUM) must be signed.
    Close,
}

/// One reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonInfo {
    pub code: &'static str,
    pub iso_name: &'static str,
    pub meaning: &'static str,
    pub handling: Handling,
    pub mandate: MandateEffect,
}

const fn r(
    code: &'static str,
    iso_name: &'static str,
    meaning: &'static str,
    handling: Handling,
    mandate: MandateEffect,
) -> ReasonInfo {
    ReasonInfo {
        code,
        iso_name,
        meaning,
        handling,
        mandate,
    }
}

use Handling::*;
use MandateEffect::*;

/// Every code encaisse knows, in the CSV's order, then the file-level codes.
#[rustfmt::skip]
pub const REASONS: &[ReasonInfo] = &[
    r("AC01", "IncorrectAccountNumber", "Debtor IBAN wrong/invalid format or unknown at the debtor bank", Final, Suspend),
    r("AC04", "ClosedAccountNumber", "Debtor account closed", Final, Suspend),
    r("AC06", "BlockedAccount", "Account blocked (also used when the debtor blocked direct debits or this creditor)", Final, Suspend),
    r("AC13", "InvalidDebtorAccountType", "Debtor account type invalid (mainly B2B on a consumer account)", Final, Suspend),
    r("AG01", "TransactionForbidden", "Direct debit not allowed on this type of account (e.g. savings account)", Final, Suspend),
    r("AG02", "InvalidBankOperationCode", "Operation code/format not valid for the receiver (historically wrong sequence type)", FixAndResubmit, Keep),
    r("AM04", "InsufficientFunds", "Not enough funds on the debtor account", Retry, Keep),
    r("AM05", "Duplication", "Collection considered a duplicate", Investigate, Keep),
    r("BE05", "UnrecognisedInitiatingParty", "Creditor identifier (ICS) incorrect or unknown", FixAndResubmit, Keep),
    r("CNOR", "CreditorBankIsNotRegistered", "Creditor bank not reachable/registered under this BIC in the clearing system", FixAndResubmit, Keep),
    r("DNOR", "DebtorBankIsNotRegistered", "Debtor bank not reachable for SDD (or not registered under this BIC)", Final, Suspend),
    r("FF01", "InvalidFileFormat", "File or transaction format invalid", FixAndResubmit, Keep),
    r("MD01", "NoMandate", "No valid mandate (revoked/expired/unknown) or unauthorised-transaction refund (up to 13 months)", Final, Close),
    r("MD02", "MissingMandatoryInformationInMandate", "Mandate data in the collection missing or inconsistent (incl. wrong amendment)", FixAndResubmit, Keep),
    r("MD06", "RefundRequestByEndCustomer", "Debtor asked for a refund of an authorised collection (CORE: within 8 weeks)", Final, Keep),
    r("MD07", "EndCustomerDeceased", "Debtor deceased", Final, Close),
    r("MS02", "NotSpecifiedReasonCustomerGenerated", "Refused by the debtor without stated reason (refusal) or other debtor-initiated reason", ContactDebtor, Keep),
    r("MS03", "NotSpecifiedReasonAgentGenerated", "Reason not given by the bank (may hide AM04 or AC04 where local data-protection rules apply)", RetryOnce, Keep),
    r("RC01", "BankIdentifierIncorrect", "BIC format/value incorrect", FixAndResubmit, Keep),
    r("RR01", "MissingDebtorAccountOrIdentification", "Regulatory: debtor account or identification insufficient", FixAndResubmit, Keep),
    r("RR02", "MissingDebtorNameOrAddress", "Regulatory: debtor name/address insufficient (also invalid address format under the 2025+ address rules)", FixAndResubmit, Keep),
    r("RR03", "MissingCreditorNameOrAddress", "Regulatory: creditor name/address insufficient or invalid format", FixAndResubmit, Keep),
    r("RR04", "RegulatoryReason", "Other regulatory reason (e.g. sanctions)", Final, Keep),
    r("SL01", "SpecificServiceOfferedByDebtorAgent", "Debtor bank service on the debtor's request (creditor blacklisted/not whitelisted or amount/frequency limit)", ContactDebtor, Keep),
    // File-level codes seen in status reports (spec §6.4, note under the table).
    r("AM10", "InvalidControlSum", "Sum of instructed amounts does not equal the control sum", FixAndResubmit, Keep),
    r("AM16", "InvalidGroupControlSum", "Control sum at the group level is invalid", FixAndResubmit, Keep),
    r("AM17", "InvalidPaymentInfoControlSum", "Control sum at the payment information level is invalid", FixAndResubmit, Keep),
    r("AM18", "InvalidNumberOfTransactions", "Number of transactions is invalid", FixAndResubmit, Keep),
    r("DU01", "DuplicateMessageID", "Message identification is not unique", Investigate, Keep),
    r("DU02", "DuplicatePaymentInformationID", "Payment information identification is not unique", Investigate, Keep),
    r("DT01", "InvalidDate", "Invalid date (e.g. wrong or missing settlement date)", FixAndResubmit, Keep),
    r("CH03", "RequestedExecutionDateOrRequestedCollectionDateTooFarInFuture", "Requested collection date too far in the future", FixAndResubmit, Keep),
    r("CH04", "RequestedExecutionDateOrRequestedCollectionDateTooFarInPast", "Requested collection date too far in the past", FixAndResubmit, Keep),
    r("FF05", "InvalidLocalInstrumentCode", "Local instrument code missing or invalid", FixAndResubmit, Keep),
];

/// The entry of `code` (case-insensitive), `None` for a code encaisse does not know.
pub fn lookup(code: &str) -> Option<&'static ReasonInfo> {
    let code = code.trim();
    REASONS.iter().find(|r| r.code.eq_ignore_ascii_case(code))
}

/// A sentence for people and for `payment.rejected.reason_text`: the meaning of a known
/// code, or a plain statement for an unknown or missing one; the bank's additional
/// information is appended.
pub fn describe(code: Option<&str>, additional_info: &[String]) -> String {
    let base = match code {
        Some(code) => match lookup(code) {
            Some(info) => format!("{} ({}): {}", info.code, info.iso_name, info.meaning),
            None => format!("{code}: reason code not in encaisse's SDD table"),
        },
        None => "No reason code given by the bank".to_string(),
    };
    let extra: Vec<&str> = additional_info
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if extra.is_empty() {
        base
    } else {
        format!("{base} — {}", extra.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_codes_unique() {
        assert_eq!(lookup("am04").map(|r| r.handling), Some(Retry));
        assert_eq!(lookup("MD01").map(|r| r.mandate), Some(Close));
        assert!(lookup("ZZ99").is_none());
        let mut codes: Vec<&str> = REASONS.iter().map(|r| r.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), REASONS.len());
    }

    #[test]
    fn descriptions() {
        assert_eq!(
            describe(Some("AC01"), &["ACC NUMBER INVALID".into()]),
            "AC01 (IncorrectAccountNumber): Debtor IBAN wrong/invalid format or unknown at the debtor bank — ACC NUMBER INVALID"
        );
        assert!(describe(Some("XX12"), &[]).starts_with("XX12: reason code not"));
        assert_eq!(describe(None, &[]), "No reason code given by the bank");
    }
}
