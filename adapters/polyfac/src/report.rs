//! The rejection report of one export, for `<tenant>/polyfac/rejected`: a CSV that finance
//! staff open in a spreadsheet (one row per broken rule: file, line, column, invoice,
//! field, rule, message), and a JSON summary of the whole file.
//!
//! The CSV is UTF-8 with a byte-order mark (so that spreadsheet software shows accents),
//! `;`-separated, CRLF; text cells a spreadsheet would read as formulas are quoted
//! ([`crate::cell`]). Messages never carry bank details, names or e-mail addresses (the
//! validator writes them that way); the report adds nothing else from the file.

use serde::Serialize;

use crate::cell::neutralise_formula;
use crate::error::FileError;
use crate::reader::{ExportSummary, RejectedInvoice};

/// Columns of the report CSV.
pub const REPORT_COLUMNS: [&str; 7] = [
    "file", "line", "column", "invoice", "field", "rule", "message",
];

/// The bytes to write for one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `<export>.rejected.csv`: one row per broken rule.
    pub rejected_csv: Vec<u8>,
    /// `<export>.summary.json`: counts of the whole file.
    pub summary_json: Vec<u8>,
}

/// File names of the report of `export_file` (`FACT_202601.csv` →
/// `FACT_202601.csv.rejected.csv`, `FACT_202601.csv.summary.json`).
pub fn report_file_names(export_file: &str) -> (String, String) {
    (
        format!("{export_file}.rejected.csv"),
        format!("{export_file}.summary.json"),
    )
}

/// Accumulates the rejected invoices of one export as the reader yields them.
#[derive(Debug)]
pub struct RejectionReport {
    csv: csv::Writer<Vec<u8>>,
    rows: u64,
}

impl Default for RejectionReport {
    fn default() -> Self {
        Self::new()
    }
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
    csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .from_writer(buf)
}

impl RejectionReport {
    pub fn new() -> Self {
        let mut csv = csv_writer();
        // Writing to a Vec cannot fail.
        let _ = csv.write_record(REPORT_COLUMNS);
        RejectionReport { csv, rows: 0 }
    }

    /// Adds every error of a rejected invoice.
    pub fn add(&mut self, invoice: &RejectedInvoice) {
        for e in &invoice.errors {
            let line = e.line.to_string();
            let record: [std::borrow::Cow<'_, str>; 7] = [
                neutralise_formula(&e.file),
                line.as_str().into(),
                neutralise_formula(&e.column),
                neutralise_formula(&invoice.number),
                e.field.map_or("", |f| f.name()).into(),
                e.rule.code().into(),
                neutralise_formula(&e.message),
            ];
            let record = record.each_ref().map(|c| c.as_bytes());
            let _ = self.csv.write_record(record);
            self.rows += 1;
        }
    }

    /// Rows written so far (one per broken rule).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The report's bytes, with the file's summary.
    pub fn finish(self, summary: &ExportSummary) -> ReportFiles {
        #[derive(Serialize)]
        struct Processed<'a> {
            status: &'static str,
            #[serde(flatten)]
            summary: &'a ExportSummary,
        }
        ReportFiles {
            rejected_csv: self.csv.into_inner().unwrap_or_default(),
            summary_json: to_json(&Processed {
                status: "processed",
                summary,
            }),
        }
    }
}

/// The report of a file that could not be read at all (it goes to `rejected` whole).
pub fn unreadable_file_report(file: &str, error: &FileError) -> ReportFiles {
    #[derive(Serialize)]
    struct Unreadable<'a> {
        status: &'static str,
        file: &'a str,
        kind: &'static str,
        reason: String,
    }
    let mut csv = csv_writer();
    let _ = csv.write_record(REPORT_COLUMNS);
    let line = match error {
        FileError::NotDecodable { line, .. } | FileError::LineTooLong { line, .. } => *line,
        FileError::MissingColumns { .. } | FileError::DuplicateColumn { .. } => 1,
        FileError::NoHeader { .. } | FileError::Io { .. } => 0,
    }
    .to_string();
    let reason = error.to_string();
    let _ = csv.write_record([
        neutralise_formula(file).as_ref(),
        &line,
        "",
        "",
        "",
        error.kind(),
        neutralise_formula(&reason).as_ref(),
    ]);
    ReportFiles {
        rejected_csv: csv.into_inner().unwrap_or_default(),
        summary_json: to_json(&Unreadable {
            status: "unreadable",
            file,
            kind: error.kind(),
            reason,
        }),
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Our own plain structs: serialisation cannot fail.
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
