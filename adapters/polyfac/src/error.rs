//! What can go wrong reading an export: a whole file that cannot be read ([`FileError`]), or
//! one invoice that breaks a rule ([`ValidationError`], typed by [`Rule`]).

use serde::{Deserialize, Serialize};

use crate::field::Field;

/// The whole file cannot be read: nothing in it can be trusted. The stage moves it to
/// `polyfac/rejected` with this message as the reason.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading the bytes failed (disk, NFS). May succeed later.
    #[error("{file}: read error: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is empty or has no header line.
    #[error("{file}: no header line: {reason}")]
    NoHeader { file: String, reason: String },
    /// The header lacks columns of required fields.
    #[error("{file}: line 1: missing required columns: {}", columns.join(", "))]
    MissingColumns { file: String, columns: Vec<String> },
    /// A column mapped to a field appears twice in the header.
    #[error("{file}: line 1: column {column:?} appears twice in the header")]
    DuplicateColumn { file: String, column: String },
    /// The bytes are not text in the configured encoding.
    #[error("{file}: line {line}: not decodable as {encoding}: {reason}")]
    NotDecodable {
        file: String,
        line: u64,
        encoding: &'static str,
        reason: String,
    },
    /// A line (record) is longer than `max_line_bytes`.
    #[error(
        "{file}: line {line}: longer than {max_bytes} bytes (unterminated quote or not a text export?)"
    )]
    LineTooLong {
        file: String,
        line: u64,
        max_bytes: usize,
    },
}

impl FileError {
    /// Whether retrying later may help (an I/O error); every other error is in the file.
    pub fn is_transient(&self) -> bool {
        matches!(self, FileError::Io { .. })
    }

    /// Short machine kind, for metrics and parked-message grouping (`missing_columns`).
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::Io { .. } => "io",
            FileError::NoHeader { .. } => "no_header",
            FileError::MissingColumns { .. } => "missing_columns",
            FileError::DuplicateColumn { .. } => "duplicate_column",
            FileError::NotDecodable { .. } => "not_decodable",
            FileError::LineTooLong { .. } => "line_too_long",
        }
    }
}

/// The rule an invoice broke. Serialised in snake case in reports (`line_amount_mismatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A required field is empty.
    MissingField,
    /// The line has a different number of fields than the header.
    ColumnCount,
    /// A value is longer than its field allows.
    TooLong,
    /// A date does not match the configured format or does not exist.
    InvalidDate,
    /// A quantity or amount is not a number, or an amount has more than two decimals.
    InvalidNumber,
    /// `MontantLigne` ≠ `Quantite × PrixUnitaire` rounded to the cent.
    LineAmountMismatch,
    /// The invoice total (sum of the lines) is not > 0.
    TotalNotPositive,
    /// A credit note (`FactureOrigine` set) whose total is not < 0.
    CreditNoteNotNegative,
    /// `FactureOrigine` / `ExerciceOrigine` unusable: exercice without invoice, not a year,
    /// or the credit note naming itself.
    InvalidOrigin,
    /// The invoice total given by the source ≠ the sum of the lines.
    TotalMismatch,
    /// A header column differs between lines of one invoice.
    HeaderMismatch,
    /// `Periode` is not 1–12.
    InvalidPeriod,
    /// `Exercice` is not 4 digits.
    InvalidExercice,
    /// The invoice's exercice differs from the run's (one export = one run = one exercice).
    ExerciceMismatch,
    /// The activity is not configured for the tenant.
    UnknownActivity,
    /// The product is not configured for the tenant.
    UnknownProduct,
    /// The product belongs to another activity than the invoice's.
    ProductActivityMismatch,
    /// A value has no entry in its value map (civilité, payment mode, sequence).
    UnknownValue,
    /// The postal code is not 5 digits.
    InvalidPostalCode,
    /// The e-mail address is not syntactically valid.
    InvalidEmail,
    /// IBAN: format, length, MOD 97 or clé RIB.
    InvalidIban,
    /// BIC: format.
    InvalidBic,
    /// RUM: length, SEPA characters, slashes.
    InvalidRum,
    /// The mandate signature date is after today.
    MandateSignedInFuture,
    /// The invoice number appears again after other invoices (lines must be contiguous).
    InvoiceNotContiguous,
    /// The invoice has more lines than `max_invoice_lines`.
    TooManyLines,
    /// Checked by the ingest stage against the ledger: this invoice number was already
    /// issued (published) with other content. A correction needs a new invoice number.
    InvoiceNumberReused,
    /// Checked by the ingest stage against the ledger: the same invoice (same content) was
    /// already issued by another billing run (another file); it is not issued twice.
    AlreadyIssued,
    /// Checked by the ingest stage against the mandate history: the direct-debit mandate
    /// cannot carry a new collection (closed, suspended, lapsed, one-off already used…).
    MandateUnusable,
}

impl Rule {
    /// The snake-case code written in reports.
    pub fn code(self) -> &'static str {
        match self {
            Rule::MissingField => "missing_field",
            Rule::ColumnCount => "column_count",
            Rule::TooLong => "too_long",
            Rule::InvalidDate => "invalid_date",
            Rule::InvalidNumber => "invalid_number",
            Rule::LineAmountMismatch => "line_amount_mismatch",
            Rule::TotalNotPositive => "total_not_positive",
            Rule::CreditNoteNotNegative => "credit_note_not_negative",
            Rule::InvalidOrigin => "invalid_origin",
            Rule::TotalMismatch => "total_mismatch",
            Rule::HeaderMismatch => "header_mismatch",
            Rule::InvalidPeriod => "invalid_period",
            Rule::InvalidExercice => "invalid_exercice",
            Rule::ExerciceMismatch => "exercice_mismatch",
            Rule::UnknownActivity => "unknown_activity",
            Rule::UnknownProduct => "unknown_product",
            Rule::ProductActivityMismatch => "product_activity_mismatch",
            Rule::UnknownValue => "unknown_value",
            Rule::InvalidPostalCode => "invalid_postal_code",
            Rule::InvalidEmail => "invalid_email",
            Rule::InvalidIban => "invalid_iban",
            Rule::InvalidBic => "invalid_bic",
            Rule::InvalidRum => "invalid_rum",
            Rule::MandateSignedInFuture => "mandate_signed_in_future",
            Rule::InvoiceNotContiguous => "invoice_not_contiguous",
            Rule::TooManyLines => "too_many_lines",
            Rule::InvoiceNumberReused => "invoice_number_reused",
            Rule::AlreadyIssued => "already_issued",
            Rule::MandateUnusable => "mandate_unusable",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// One broken rule, located in the export. The message never contains personal data
/// (IBAN, names, e-mail): it names the rule and, for codes, dates and amounts, the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Export file name.
    pub file: String,
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// Column name in the source (`MontantLigne`), `(fixed)` for a configured constant,
    /// empty when the rule concerns the whole invoice.
    pub column: String,
    /// The canonical field, when the rule concerns one.
    pub field: Option<Field>,
    pub rule: Rule,
    pub message: String,
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: line {}", self.file, self.line)?;
        if !self.column.is_empty() {
            write!(f, ", column {}", self.column)?;
        }
        write!(f, ": {}: {}", self.rule, self.message)
    }
}
