//! The export reader: a streaming iterator over one export file that yields each invoice —
//! valid and typed, or rejected with its errors — then a summary.
//!
//! Memory is bounded whatever the file size: one record (`max_line_bytes`) and one invoice
//! (`max_invoice_lines`) at a time, plus what finds an invoice whose lines are not
//! contiguous (below).
//!
//! A stage normally reads a file twice: [`prescan`] first (cheap: it hashes the file for the
//! run id, finds every file-level problem before anything is published, and lists the
//! invoice numbers whose lines may be split), then [`ExportReader`] with that [`Prescan`] so
//! that *every* part of a split invoice is rejected, the first one included. Without a
//! prescan, the reader still rejects the later parts, but the first part has already been
//! yielded.
//!
//! Finding split invoices: the prescan asks a [`SeenFilter`] (2 to 4 bytes per invoice
//! number) whether each run of lines starts a number already met. "Certainly not" is
//! exact; "maybe" is kept as a suspect, with the run's first line — the later runs of every
//! split invoice, and, for well under 1 % of the numbers, a first run the filter took for a
//! repeat. The reader settles the suspects exactly as it meets them, holding the first line
//! of the suspects only: a suspect number met for the first time is in its first run (a
//! number's later runs are always suspects), and it is split if and only if the prescan saw
//! another run of it. A single pass keeps 16 bytes per invoice number (a 64-bit hash and a
//! line) instead.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::sync::Arc;

use chrono::NaiveDate;
use encaisse_schemas::Money;
use encaisse_schemas::seen::SeenFilter;
use serde::Serialize;

use crate::catalogue::TenantCatalogue;
use crate::config::SourceMapping;
use crate::error::{FileError, Rule, ValidationError};
use crate::field::Field;
use crate::mapping::CompiledMapping;
use crate::records::{DetectedEncoding, RawLine, RecordReader};
use crate::validate::{Invoice, InvoiceGroup, Validator};

/// What the reader yields, in file order; [`ExportItem::Summary`] comes last.
#[derive(Debug, Clone)]
pub enum ExportItem {
    /// A valid invoice, ready for enrichment ([`crate::enrich::enrich`]).
    Valid(Box<Invoice>),
    /// An invoice that breaks at least one rule; the rest of the file proceeds.
    Invalid(RejectedInvoice),
    /// Counts and totals of the whole file.
    Summary(ExportSummary),
}

/// A rejected invoice and every rule it broke.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedInvoice {
    /// Invoice number as read (empty when missing).
    pub number: String,
    /// Family code as read, when present.
    pub family_code: Option<String>,
    /// First and last line numbers in the file.
    pub file_lines: (u64, u64),
    /// Number of lines of the invoice.
    pub line_count: u64,
    /// The exercice its first line gives, when readable (4 digits): with the number, the
    /// invoice's key in the ledger's journal, so a rejected invoice can be traced.
    pub exercice: Option<u16>,
    pub errors: Vec<ValidationError>,
}

/// Valid invoices of one activity in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActivityCount {
    pub invoices: u32,
    pub total: Money,
}

/// What a file contained, for the report, the metrics and `billing_run.closed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub file: String,
    /// SHA-256 (hex) of the file's bytes, as read by this pass.
    pub file_sha256: String,
    pub bytes: u64,
    /// Encoding used (`ascii` when the file had no non-ASCII byte).
    #[serde(serialize_with = "serialize_encoding")]
    pub encoding: DetectedEncoding,
    /// Data lines (header and blank lines excluded).
    pub lines: u64,
    pub valid_invoices: u64,
    pub rejected_invoices: u64,
    /// Invoices already issued, unchanged, by an earlier run (a renamed export dropped
    /// again): neither published nor rejected. The reader never sees the ledger, so it
    /// leaves this at 0; the ingest stage counts them.
    pub duplicate_invoices: u64,
    /// Lines of the rejected invoices.
    pub rejected_lines: u64,
    /// Sum of the valid invoices' totals.
    pub valid_total: Money,
    /// The run's exercice: that of the first valid invoice (or, when none is valid, the
    /// first readable one).
    pub exercice: Option<u16>,
    /// Valid invoices per tenant activity code.
    pub activities: BTreeMap<String, ActivityCount>,
    /// How many times each rule was broken.
    pub rules: BTreeMap<Rule, u64>,
}

impl ExportSummary {
    /// The counts of a file before its first line is read.
    pub fn empty(file: &str, encoding: DetectedEncoding) -> Self {
        ExportSummary {
            file: file.to_string(),
            file_sha256: String::new(),
            bytes: 0,
            encoding,
            lines: 0,
            valid_invoices: 0,
            rejected_invoices: 0,
            duplicate_invoices: 0,
            rejected_lines: 0,
            valid_total: Money::ZERO,
            exercice: None,
            activities: BTreeMap::new(),
            rules: BTreeMap::new(),
        }
    }
}

fn serialize_encoding<S: serde::Serializer>(e: &DetectedEncoding, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(e.label())
}

/// Reading settings of one file.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// File name (no directory), for errors and `source.file`.
    pub file_name: String,
    /// Today, for the rule "mandate signature date not in the future".
    pub today: NaiveDate,
    /// Result of [`prescan`] on the same bytes, when the caller ran it.
    pub prescan: Option<Prescan>,
}

/// What a first pass learned about a file (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescan {
    pub file_sha256: String,
    pub bytes: u64,
    /// Data lines.
    pub lines: u64,
    /// Invoice numbers whose lines may come in several separate runs: for each, in file
    /// order, the first line of every run that started a number the prescan may have met
    /// before. Every run of a split invoice but its first is here; so are, rarely, the first
    /// runs of numbers the filter took for repeats (the reader tells them apart: see the
    /// module documentation).
    pub suspects: BTreeMap<String, Vec<u64>>,
}

fn number_hash(number: &str) -> u64 {
    let mut h = DefaultHasher::new();
    number.hash(&mut h);
    h.finish()
}

/// First pass over an export: checks that it can be read at all (encoding, header, record
/// sizes), hashes it, and lists invoices whose lines may not be contiguous. Memory: 2 to 4
/// bytes per invoice number, plus the suspects.
pub fn prescan<R: Read>(
    read: R,
    mapping: &SourceMapping,
    file_name: &str,
) -> Result<Prescan, FileError> {
    prescan_with(read, mapping, file_name, SeenFilter::new())
}

/// [`prescan`] with the filter given: tests pass [`SeenFilter::always_maybe`] to make every
/// run a suspect.
#[doc(hidden)]
pub fn prescan_with<R: Read>(
    read: R,
    mapping: &SourceMapping,
    file_name: &str,
    mut seen: SeenFilter,
) -> Result<Prescan, FileError> {
    let mut records = RecordReader::new(read, mapping, file_name);
    let mut line = RawLine::default();
    let compiled = read_header(&mut records, mapping, file_name, &mut line)?;
    let mut suspects: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut lines = 0u64;
    while records.next_into(&mut line)? {
        lines += 1;
        let Some(number) = compiled.get(&line, Field::InvoiceNumber) else {
            continue; // joins the current invoice
        };
        if current.as_deref() == Some(number) {
            continue;
        }
        let current = current.get_or_insert_with(String::new);
        current.clear();
        current.push_str(number);
        if seen.check_and_insert(number_hash(number)) {
            match suspects.get_mut(number) {
                Some(starts) => starts.push(line.line),
                None => {
                    suspects.insert(number.to_string(), vec![line.line]);
                }
            }
        }
    }
    Ok(Prescan {
        file_sha256: records.sha256_hex(),
        bytes: records.bytes_read(),
        lines,
        suspects,
    })
}

/// Reads lines up to the header and resolves the mapping against it.
fn read_header<R: Read>(
    records: &mut RecordReader<R>,
    mapping: &SourceMapping,
    file_name: &str,
    line: &mut RawLine,
) -> Result<CompiledMapping, FileError> {
    if !records.next_into(line)? {
        return Err(FileError::NoHeader {
            file: file_name.to_string(),
            reason: "the file is empty".into(),
        });
    }
    CompiledMapping::resolve(mapping, line, file_name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Reading,
    Finished,
    Done,
}

/// Streaming reader of one export: an iterator of `Result<ExportItem, FileError>`. After a
/// `FileError` (the file cannot be read at all) or the summary, it yields nothing more.
pub struct ExportReader<R: Read> {
    records: RecordReader<R>,
    mapping: SourceMapping,
    compiled: Option<CompiledMapping>,
    catalogue: Arc<TenantCatalogue>,
    options: ReadOptions,
    state: State,
    scratch: RawLine,
    pending: Option<InvoiceGroup>,
    /// Without a prescan: the first line of every invoice number met (by hash).
    first_line_of: HashMap<u64, u64>,
    /// With a prescan: the first line of each suspect number met.
    suspect_first_line: HashMap<String, u64>,
    summary: ExportSummary,
    /// Exercice of the first readable rejected invoice, for a run with no valid one.
    fallback_exercice: Option<u16>,
}

impl<R: Read> ExportReader<R> {
    pub fn new(
        read: R,
        mapping: &SourceMapping,
        catalogue: Arc<TenantCatalogue>,
        options: ReadOptions,
    ) -> Self {
        let records = RecordReader::new(read, mapping, &options.file_name);
        let summary = ExportSummary::empty(&options.file_name, records.encoding());
        ExportReader {
            records,
            mapping: mapping.clone(),
            compiled: None,
            catalogue,
            options,
            state: State::Start,
            scratch: RawLine::default(),
            pending: None,
            first_line_of: HashMap::new(),
            suspect_first_line: HashMap::new(),
            summary,
            fallback_exercice: None,
        }
    }

    fn step(&mut self) -> Result<Option<ExportItem>, FileError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Finished => {
                    self.state = State::Done;
                    return Ok(Some(ExportItem::Summary(self.finish_summary())));
                }
                State::Start => {
                    let compiled = read_header(
                        &mut self.records,
                        &self.mapping,
                        &self.options.file_name,
                        &mut self.scratch,
                    )?;
                    self.compiled = Some(compiled);
                    self.state = State::Reading;
                }
                State::Reading => {
                    if !self.records.next_into(&mut self.scratch)? {
                        self.state = State::Finished;
                        if let Some(group) = self.pending.take() {
                            return Ok(Some(self.finish_group(group)));
                        }
                        continue;
                    }
                    self.summary.lines += 1;
                    if let Some(done) = self.push_line() {
                        return Ok(Some(self.finish_group(done)));
                    }
                }
            }
        }
    }

    /// Adds the scratch line to the current invoice, or starts a new one and returns the
    /// finished previous invoice. A line without invoice number joins the current invoice
    /// (it invalidates it rather than being attributed to nothing).
    fn push_line(&mut self) -> Option<InvoiceGroup> {
        let compiled = self.compiled.as_ref()?;
        let max_lines = compiled.max_invoice_lines;
        let number = compiled.get(&self.scratch, Field::InvoiceNumber);
        let line_no = self.scratch.line;
        if let Some(group) = &mut self.pending
            && number.is_none_or(|n| n == group.number)
        {
            group.last_line = line_no;
            if group.lines.len() < max_lines {
                group.lines.push(std::mem::take(&mut self.scratch));
            } else {
                group.dropped_lines += 1;
            }
            return None;
        }
        let group = InvoiceGroup {
            number: number.unwrap_or_default().to_string(),
            lines: vec![std::mem::take(&mut self.scratch)],
            dropped_lines: 0,
            last_line: line_no,
            not_contiguous_with: None,
        };
        self.pending.replace(group)
    }

    /// The first line of another run of lines of invoice `number`, whose run being
    /// finished starts at `first`: with a prescan, of its first run, or of its second when
    /// this is the first; without, of its first run when this is a later one.
    fn other_run(&mut self, number: &str, first: u64) -> Option<u64> {
        let Some(scan) = &self.options.prescan else {
            let h = number_hash(number);
            return match self.first_line_of.get(&h) {
                Some(&earlier) => Some(earlier),
                None => {
                    self.first_line_of.insert(h, first);
                    None
                }
            };
        };
        let later = scan.suspects.get(number)?;
        if let Some(&earlier) = self.suspect_first_line.get(number) {
            return Some(earlier);
        }
        // Met for the first time: its first run. Split if the prescan saw another run.
        self.suspect_first_line.insert(number.to_string(), first);
        later.iter().copied().find(|&s| s != first)
    }

    fn finish_group(&mut self, mut group: InvoiceGroup) -> ExportItem {
        let first = group.first_line();
        group.not_contiguous_with = self.other_run(&group.number, first);
        let Some(compiled) = self.compiled.as_ref() else {
            return ExportItem::Invalid(RejectedInvoice {
                number: group.number,
                family_code: None,
                file_lines: (first, group.last_line),
                line_count: 0,
                exercice: None,
                errors: Vec::new(),
            });
        };
        let validator = Validator {
            mapping: compiled,
            catalogue: &self.catalogue,
            today: self.options.today,
            file: &self.options.file_name,
        };
        let result = validator.validate(&group).and_then(|invoice| {
            match self.summary.exercice {
                Some(run) if run != invoice.exercice => Err(vec![ValidationError {
                    file: self.options.file_name.clone(),
                    line: first,
                    column: compiled.column_name(Field::Exercice).to_string(),
                    field: Some(Field::Exercice),
                    rule: Rule::ExerciceMismatch,
                    message: format!(
                        "exercice {} differs from the run's exercice {run} (one export is one billing run of one exercice)",
                        invoice.exercice
                    ),
                }]),
                _ => Ok(invoice),
            }
        });
        match result {
            Ok(invoice) => {
                let s = &mut self.summary;
                s.exercice = Some(invoice.exercice);
                s.valid_invoices += 1;
                s.valid_total = s
                    .valid_total
                    .checked_add(invoice.total)
                    .unwrap_or(s.valid_total);
                let code = invoice.activity.code.as_str();
                if !s.activities.contains_key(code) {
                    s.activities.insert(
                        code.to_string(),
                        ActivityCount {
                            invoices: 0,
                            total: Money::ZERO,
                        },
                    );
                }
                if let Some(count) = s.activities.get_mut(code) {
                    count.invoices += 1;
                    count.total = count
                        .total
                        .checked_add(invoice.total)
                        .unwrap_or(count.total);
                }
                ExportItem::Valid(Box::new(invoice))
            }
            Err(errors) => {
                let first_raw = group.lines.first();
                let s = &mut self.summary;
                s.rejected_invoices += 1;
                s.rejected_lines += group.line_count();
                for e in &errors {
                    *s.rules.entry(e.rule).or_insert(0) += 1;
                }
                let exercice = first_raw
                    .and_then(|l| compiled.get(l, Field::Exercice))
                    .and_then(|v| v.parse::<u16>().ok())
                    .filter(|y| (1000..=9999).contains(y));
                // Remember a readable exercice so that an all-rejected run still closes.
                if s.exercice.is_none()
                    && s.valid_invoices == 0
                    && exercice.is_some()
                    && self.fallback_exercice.is_none()
                {
                    self.fallback_exercice = exercice;
                }
                ExportItem::Invalid(RejectedInvoice {
                    family_code: first_raw
                        .and_then(|l| compiled.get(l, Field::FamilyCode))
                        .map(str::to_string),
                    line_count: group.line_count(),
                    number: group.number,
                    file_lines: (first, group.last_line),
                    exercice,
                    errors,
                })
            }
        }
    }

    fn finish_summary(&mut self) -> ExportSummary {
        let mut summary = self.summary.clone();
        summary.file_sha256 = self.records.sha256_hex();
        summary.bytes = self.records.bytes_read();
        summary.encoding = self.records.encoding();
        if summary.exercice.is_none() {
            summary.exercice = self.fallback_exercice;
        }
        tracing::info!(
            file = %summary.file,
            lines = summary.lines,
            valid_invoices = summary.valid_invoices,
            rejected_invoices = summary.rejected_invoices,
            encoding = summary.encoding.label(),
            "Export read."
        );
        summary
    }
}

impl<R: Read> Iterator for ExportReader<R> {
    type Item = Result<ExportItem, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.state = State::Done;
                tracing::warn!(kind = e.kind(), error = %e, "Export cannot be read.");
                Some(Err(e))
            }
        }
    }
}
