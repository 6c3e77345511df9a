//! The reports the régie path leaves in `<tenant>/bank/rejected/` for ops and finance staff:
//! invoices that could not be put in a pain.008 (refused before sending), and bank records
//! that name no collection encaisse knows (unmatched). CSV with `;` (what French office
//! software opens), UTF-8, one header line. No debtor name nor IBAN: the invoice key and
//! the end-to-end id are enough to find the family in Polyfac.

use chrono::NaiveDate;
use encaisse_schemas::Money;

use crate::error::ErrorClass;
use crate::read::{RTransaction, RejectLevel, RejectRecord};

/// The report could not be produced (only an I/O failure of the in-memory sink can cause it).
#[derive(Debug, thiserror::Error)]
#[error("cannot write report: {0}")]
pub struct ReportError(#[from] csv::Error);

impl ReportError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Transient
    }
}

/// An invoice refused before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    /// `tenant/exercice/number`.
    pub invoice: String,
    pub family_code: String,
    pub amount: Money,
    pub due_date: NaiveDate,
    /// Presentation number (1 = first).
    pub attempt: u32,
    /// The end-to-end id the collection would have had, when one could be made.
    pub end_to_end_id: Option<String>,
    /// The local reason code carried by `payment.rejected` (`LOCAL-MANDATE`…).
    pub reason_code: String,
    pub reason: String,
}

/// `invoice;family_code;amount;due_date;attempt;end_to_end_id;reason_code;reason`.
pub fn refused_report(rows: &[RefusedRow]) -> Result<Vec<u8>, ReportError> {
    let mut out = writer();
    out.write_record([
        "invoice",
        "family_code",
        "amount",
        "due_date",
        "attempt",
        "end_to_end_id",
        "reason_code",
        "reason",
    ])?;
    for row in rows {
        out.write_record([
            row.invoice.as_str(),
            &row.family_code,
            &row.amount.to_dot_string(),
            &row.due_date.to_string(),
            &row.attempt.to_string(),
            row.end_to_end_id.as_deref().unwrap_or(""),
            &row.reason_code,
            &row.reason,
        ])?;
    }
    finish(out)
}

/// A bank record that matched no collection, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedRow<'a> {
    pub record: &'a RejectRecord,
    pub file: &'a str,
    pub why: String,
}

fn level(level: RejectLevel) -> &'static str {
    match level {
        RejectLevel::Group => "group",
        RejectLevel::Block => "block",
        RejectLevel::Transaction => "transaction",
    }
}

fn r_type(r: RTransaction) -> &'static str {
    match r {
        RTransaction::Reject => "reject",
        RTransaction::Return => "return",
        RTransaction::Refund => "refund",
    }
}

/// `file;line;level;r_type;end_to_end_id;mandate_id;amount;collection_date;original_message_id;original_payment_info_id;reason_code;reason;bank_reference;why_unmatched`.
pub fn unmatched_report(rows: &[UnmatchedRow<'_>]) -> Result<Vec<u8>, ReportError> {
    let mut out = writer();
    out.write_record([
        "file",
        "line",
        "level",
        "r_type",
        "end_to_end_id",
        "mandate_id",
        "amount",
        "collection_date",
        "original_message_id",
        "original_payment_info_id",
        "reason_code",
        "reason",
        "bank_reference",
        "why_unmatched",
    ])?;
    for row in rows {
        let r = row.record;
        let keys = &r.keys;
        out.write_record([
            row.file,
            &r.line.to_string(),
            level(r.level),
            r_type(r.r_type),
            keys.end_to_end_id.as_deref().unwrap_or(""),
            keys.mandate_id.as_deref().unwrap_or(""),
            &keys.amount.map(Money::to_dot_string).unwrap_or_default(),
            &keys
                .collection_date
                .map(|d| d.to_string())
                .unwrap_or_default(),
            keys.original_message_id.as_deref().unwrap_or(""),
            keys.original_payment_info_id.as_deref().unwrap_or(""),
            r.reason_code_or_narrative(),
            &r.reason_text,
            r.bank_reference.as_deref().unwrap_or(""),
            &row.why,
        ])?;
    }
    finish(out)
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

fn finish(out: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, ReportError> {
    out.into_inner()
        .map_err(|e| ReportError(csv::Error::from(e.into_error())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_rows_are_quoted_when_needed() {
        let bytes = refused_report(&[RefusedRow {
            invoice: "ivry/2026/F1".into(),
            family_code: "FAM1".into(),
            amount: Money::parse("45.60").unwrap(),
            due_date: NaiveDate::from_ymd_opt(2026, 12, 10).unwrap(),
            attempt: 1,
            end_to_end_id: Some("2026-F1-1".into()),
            reason_code: "LOCAL-RULES".into(),
            reason: "Dbtr/Nm: 75 characters; at most 70".into(),
        }])
        .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "invoice;family_code;amount;due_date;attempt;end_to_end_id;reason_code;reason\r\n\
             ivry/2026/F1;FAM1;45.60;2026-12-10;1;2026-F1-1;LOCAL-RULES;\"Dbtr/Nm: 75 characters; at most 70\"\r\n"
        );
    }
}
