//! A dry run of `polyfac.ingest` on one export (`encaisse preview`): the same reading passes
//! ([`prescan`], [`ExportReader`]), the same decisions against the ledger ([`decide`]: an
//! invoice number reused, an invoice already issued, a direct-debit mandate that cannot be
//! used), then the refusals the collection paths would make before sending anything, by
//! their own code: `helios.titres`' planning ([`DryRun`]: budget, bordereau, numbers, mandate,
//! PES rules, an ORMC article taken twice) with the tenant's `[tenants.helios]`, and
//! `sepa.batch`'s ([`plan_regie`]: régie, creditor, mandate, end-to-end id, EPC rules) with
//! `[tenants.sepa]`.
//!
//! Nothing is published and nothing is written: the decisions run on a connection the caller
//! gives, normally [`encaisse_ledger::sandbox::sandbox`] (an in-memory SQLite copy of the
//! tenant's rows of an existing ledger, whichever its backend, or an empty one), so a
//! mandate's planned use stays in memory. The ingest's decisions take it as a [`Tx`], as they
//! take the daemon's ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use chrono::NaiveDate;
use encaisse_ledger::rusqlite::Connection;
use encaisse_ledger::{LedgerError, Tx};
use encaisse_polyfac::config::SourceEncoding;
use encaisse_polyfac::records::DetectedEncoding;
use encaisse_polyfac::{
    ExportItem, ExportReader, ExportSummary, Field, FileError, ReadOptions, RejectedInvoice,
    RunContext, SourceMapping, prescan,
};
use encaisse_schemas::{CollectionPath, InvoiceIssued, Money, PaymentMode, SequenceType};
use serde::Serialize;

use super::ingest::{Decision, Issued, adjusted_summary, decide, is_duplicate};
use super::ingest_store::collection_text;
use super::tenants::PolyfacTenant;
use crate::stages::helios::TenantHelios;
use crate::stages::helios::plan::DryRun;
use crate::stages::sepa::TenantSepa;
use crate::stages::sepa::batch::without_sepa_reason;
use crate::stages::sepa::plan::{Candidate, PlanContext, PlanError, plan_regie};
use crate::stages::sepa::refusal::RefusalCode;

/// Tables whose rows of the tenant the decisions read: what was issued, and the mandates'
/// histories. Seed [`encaisse_ledger::sandbox::sandbox`] with them.
pub const LEDGER_TABLES: &[&str] = &[
    "polyfac_issued",
    "polyfac_run",
    "sepa_mandate",
    "sepa_collection",
    // The titres sent: an ORMC article already taken, the next IdPce. Not their bordereaux
    // (they need their PES files): the preview numbers bordereaux from 1, so it cannot see
    // an exercice running out of IdBord.
    "helios_titre",
];

/// What the preview knows of the tenant.
pub struct PreviewTenant<'a> {
    pub polyfac: &'a PolyfacTenant,
    /// `[tenants.helios]`, when the tenant has it (else its titres invoices would wait).
    pub helios: Option<&'a TenantHelios>,
    /// `[tenants.sepa]` with the tenant's régies, when the tenant has it (else its régies'
    /// direct debits are refused).
    pub sepa: Option<&'a TenantSepa>,
    /// The commune's day (Europe/Paris): mandate signature, bordereau date, debit lead time.
    pub today: NaiveDate,
}

/// The whole file could not be read, or the ledger copy failed.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// A collection path's planning failed on the in-memory ledger.
    #[error("planning: {0}")]
    Plan(String),
}

/// What the daemon would do with the file.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PreviewOutcome {
    /// Read: invoices it would publish, and the rest.
    Read(Box<Preview>),
    /// The file would be rejected whole (`polyfac/rejected`): why, and what may fix it.
    Unreadable {
        file: String,
        kind: &'static str,
        reason: String,
        hints: Vec<String>,
    },
}

/// The preview of a readable file.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub tenant: String,
    pub source: String,
    pub file: String,
    pub run_id: String,
    /// Invoices that would be published and go through their collection path.
    pub invoices: Vec<PreviewInvoice>,
    /// Those invoices per budget and collection path.
    pub groups: Vec<PreviewGroup>,
    /// Credit notes that would be published: whether each can reduce its original is decided
    /// downstream (`helios.titres`, `sepa.batch`) against what was sent, so none is refused
    /// here for its negative total.
    pub credit_notes: Vec<PreviewCreditNote>,
    /// Every broken rule, one row each (an invoice may have several).
    pub rejects: Vec<PreviewReject>,
    /// Invoices already issued unchanged (by an earlier run, or by this same file already
    /// ingested): not published again, not rejected either.
    pub duplicates: Vec<PreviewDuplicate>,
    /// Things that do not reject an invoice but delay it (a missing `[tenants.helios]`).
    pub warnings: Vec<String>,
    /// The file's counts, as the report's `summary.json` would give them.
    pub summary: ExportSummary,
}

impl Preview {
    /// Invoices rejected (at validation, by the ingest, or by their collection path).
    pub fn rejected_invoices(&self) -> usize {
        let mut seen = BTreeSet::new();
        self.rejects
            .iter()
            .filter(|r| seen.insert((r.number.as_str(), r.line)))
            .count()
    }
}

#[derive(Debug, Serialize)]
pub struct PreviewInvoice {
    pub number: String,
    pub exercice: u16,
    pub lines: (u64, u64),
    pub activity: String,
    pub budget: String,
    pub collection: &'static str,
    pub payment_mode: PaymentMode,
    /// The direct-debit sequence the mandate history gives (`FRST`, `RCUR`…).
    pub sequence: Option<SequenceType>,
    pub total: Money,
}

/// A credit note (`FactureOrigine` set) and the invoice it reduces.
#[derive(Debug, Serialize)]
pub struct PreviewCreditNote {
    pub number: String,
    pub lines: (u64, u64),
    pub origin: String,
    pub origin_exercice: u16,
    /// What it takes off the original, > 0.
    pub credited: Money,
}

#[derive(Debug, Serialize)]
pub struct PreviewGroup {
    pub budget: String,
    pub collection: &'static str,
    pub invoices: u64,
    pub total: Money,
}

/// One broken rule. `stage` says who would refuse it: `validation` (the export's rules),
/// `ingest` (the ledger: number reused, mandate unusable), `helios` or `sepa` (refused
/// before sending, told to the source as `TITRE_REJETE` or `REJETE`).
#[derive(Debug, Serialize)]
pub struct PreviewReject {
    pub number: String,
    pub file: String,
    pub line: u64,
    pub column: String,
    pub field: String,
    pub rule: String,
    pub message: String,
    pub stage: &'static str,
}

#[derive(Debug, Serialize)]
pub struct PreviewDuplicate {
    pub number: String,
    pub lines: (u64, u64),
    pub message: String,
}

/// Previews `path` (named `file_name`, as in the inbox) for `setup`, deciding on `ledger`.
pub fn preview_file(
    path: &Path,
    file_name: &str,
    setup: &PreviewTenant<'_>,
    ledger: &Connection,
) -> Result<PreviewOutcome, PreviewError> {
    let tenant = setup.polyfac;
    let open = || {
        File::open(path).map_err(|source| PreviewError::Io {
            file: file_name.to_string(),
            source,
        })
    };
    let scan = match prescan(open()?, &tenant.mapping, file_name) {
        Ok(scan) => scan,
        Err(FileError::Io { source, .. }) => {
            return Err(PreviewError::Io {
                file: file_name.to_string(),
                source,
            });
        }
        Err(e) => {
            let head = read_head(path, tenant.mapping.max_line_bytes);
            return Ok(PreviewOutcome::Unreadable {
                file: file_name.to_string(),
                kind: e.kind(),
                reason: e.to_string(),
                hints: hints(&e, &tenant.mapping, &head),
            });
        }
    };
    let run = RunContext::for_file(
        tenant.tenant.clone(),
        tenant.application.clone(),
        file_name,
        &scan.file_sha256,
    );
    let options = ReadOptions {
        file_name: file_name.to_string(),
        today: setup.today,
        prescan: Some(scan),
    };
    let mut preview = Preview {
        tenant: tenant.tenant.as_str().to_string(),
        source: tenant.application.clone(),
        file: file_name.to_string(),
        run_id: run.run_id.clone(),
        invoices: Vec::new(),
        groups: Vec::new(),
        credit_notes: Vec::new(),
        rejects: Vec::new(),
        duplicates: Vec::new(),
        warnings: Vec::new(),
        summary: ExportSummary::empty(file_name, DetectedEncoding::Ascii),
    };
    let mut refused = Vec::new();
    let mut warnings = BTreeSet::new();
    let mut titres = setup.helios.map(|h| DryRun::new(h, setup.today));
    let mut groups: BTreeMap<(String, &'static str), (u64, Money)> = BTreeMap::new();
    let mut tx = Tx::sqlite(ledger);
    for item in ExportReader::new(open()?, &tenant.mapping, tenant.catalogue.clone(), options) {
        match item.map_err(|e| match e {
            FileError::Io { source, .. } => PreviewError::Io {
                file: file_name.to_string(),
                source,
            },
            other => PreviewError::Io {
                file: file_name.to_string(),
                source: std::io::Error::other(other.to_string()),
            },
        })? {
            ExportItem::Valid(invoice) => match decide(&mut tx, tenant, &run, &invoice)? {
                Decision::Publish(issued) => match *issued {
                    Issued::CreditNote(note) => preview.credit_notes.push(PreviewCreditNote {
                        number: note.note.invoice.number.clone(),
                        lines: note.note.source.lines.unwrap_or((0, 0)),
                        origin: note.origin.number.clone(),
                        origin_exercice: note.origin.exercice,
                        credited: note.credited(),
                    }),
                    Issued::Invoice(event) => {
                        match downstream(setup, ledger, titres.as_mut(), &event, &mut warnings)? {
                            Some(reject) => preview.rejects.push(reject),
                            None => {
                                let collection = collection_text(event.collection);
                                let group = groups
                                    .entry((event.budget.clone(), collection))
                                    .or_insert((0, Money::ZERO));
                                group.0 += 1;
                                group.1 = group.1.checked_add(event.total).unwrap_or(group.1);
                                preview.invoices.push(listed(&event));
                            }
                        }
                    }
                },
                Decision::Skip => preview.duplicates.push(PreviewDuplicate {
                    number: invoice.number.clone(),
                    lines: invoice.file_lines,
                    message: "already published by this same file (it was ingested before)".into(),
                }),
                Decision::Refuse(refusal) => {
                    if is_duplicate(&refusal.rejected) {
                        preview.duplicates.push(PreviewDuplicate {
                            number: refusal.rejected.number.clone(),
                            lines: refusal.rejected.file_lines,
                            message: refusal
                                .rejected
                                .errors
                                .first()
                                .map(|e| e.message.clone())
                                .unwrap_or_default(),
                        });
                    } else {
                        push_rejects(&mut preview.rejects, &refusal.rejected, "ingest");
                    }
                    refused.push((refusal.rejected, refusal.activity, refusal.total));
                }
            },
            ExportItem::Invalid(rejected) => {
                push_rejects(&mut preview.rejects, &rejected, "validation");
            }
            ExportItem::Summary(summary) => {
                preview.summary = adjusted_summary(&summary, &refused);
                break;
            }
        }
    }
    preview.groups = groups
        .into_iter()
        .map(|((budget, collection), (invoices, total))| PreviewGroup {
            budget,
            collection,
            invoices,
            total,
        })
        .collect();
    preview.warnings = warnings.into_iter().collect();
    Ok(PreviewOutcome::Read(Box::new(preview)))
}

fn listed(event: &InvoiceIssued) -> PreviewInvoice {
    PreviewInvoice {
        number: event.invoice.number.clone(),
        exercice: event.invoice.exercice,
        lines: event.source.lines.unwrap_or((0, 0)),
        activity: event.activity.clone(),
        budget: event.budget.clone(),
        collection: collection_text(event.collection),
        payment_mode: event.payment_mode,
        sequence: event.mandate.as_ref().and_then(|m| m.sequence),
        total: event.total,
    }
}

fn push_rejects(out: &mut Vec<PreviewReject>, rejected: &RejectedInvoice, stage: &'static str) {
    for e in &rejected.errors {
        out.push(PreviewReject {
            number: rejected.number.clone(),
            file: e.file.clone(),
            line: e.line,
            column: e.column.clone(),
            field: e.field.map(|f| f.to_string()).unwrap_or_default(),
            rule: e.rule.code().to_string(),
            message: e.message.clone(),
            stage,
        });
    }
}

/// What the invoice's collection path would refuse before sending it, if anything: the
/// stages' own planning, run on the in-memory ledger.
fn downstream(
    setup: &PreviewTenant<'_>,
    ledger: &Connection,
    titres: Option<&mut DryRun<'_>>,
    event: &InvoiceIssued,
    warnings: &mut BTreeSet<String>,
) -> Result<Option<PreviewReject>, PreviewError> {
    let reject = |stage, field: &str, rule: &str, message: String| PreviewReject {
        number: event.invoice.number.clone(),
        file: event.source.file.clone().unwrap_or_default(),
        line: event.source.lines.map_or(0, |l| l.0),
        column: String::new(),
        field: field.to_string(),
        rule: rule.to_string(),
        message,
        stage,
    };
    match event.collection {
        CollectionPath::Titres => {
            let Some(titres) = titres else {
                warnings.insert(format!(
                    "no [tenants.helios] section: titres invoices of activity {} would wait (parked as helios.titres/no_helios_config) until it is added and they are replayed",
                    event.activity
                ));
                return Ok(None);
            };
            let refused = titres
                .consider(&mut encaisse_ledger::Tx::sqlite(ledger), event.clone())
                .map_err(|e| PreviewError::Plan(e.to_string()))?;
            Ok(refused.map(|r| reject("helios", &r.field, r.code().as_str(), r.rule.clone())))
        }
        CollectionPath::Regie if event.payment_mode == PaymentMode::Prelevement => {
            Ok(sepa_refusal(setup, ledger, event)?
                .map(|(field, code, message)| reject("sepa", field, code, message)))
        }
        CollectionPath::Regie => Ok(None),
    }
}

/// Why `sepa.batch` would refuse a régie's direct debit: (field, local code, message). Its
/// planning of the régie's file, for this invoice alone, on the in-memory ledger.
fn sepa_refusal(
    setup: &PreviewTenant<'_>,
    ledger: &Connection,
    event: &InvoiceIssued,
) -> Result<Option<(&'static str, &'static str, String)>, PreviewError> {
    let setup_code = RefusalCode::Setup.as_str();
    let Some(sepa) = setup.sepa else {
        return Ok(Some((
            "payment_mode",
            setup_code,
            without_sepa_reason(&event.invoice.tenant),
        )));
    };
    let ctx = PlanContext {
        tenant: sepa,
        now: setup.today.and_time(chrono::NaiveTime::MIN),
        origin: "preview",
        cause: &event.source.run_id,
    };
    let candidate = Candidate {
        invoice: event.clone(),
        attempt: 1,
        due_date: event.due_date,
        previous_sequence: None,
    };
    match plan_regie(
        &mut encaisse_ledger::Tx::sqlite(ledger),
        ctx,
        event.regie.as_deref(),
        vec![candidate],
    ) {
        Ok(plan) => Ok(plan.refused.into_iter().next().map(|r| {
            let field = match r.code {
                RefusalCode::Mandate => "mandate",
                _ => "collection",
            };
            (field, r.code.as_str(), r.reason)
        })),
        // The daemon parks the run until the configuration is fixed: nothing is sent.
        Err(PlanError::Setup(message)) => Ok(Some(("regie", setup_code, message))),
        Err(e) => Err(PreviewError::Plan(e.to_string())),
    }
}

/// The beginning of the file (at most one record), for hints.
fn read_head(path: &Path, max: usize) -> Vec<u8> {
    let mut head = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(max as u64).read_to_end(&mut head);
    }
    head
}

/// Separators a CSV export commonly uses.
const SEPARATORS: [char; 4] = [';', ',', '\t', '|'];

/// What may fix an unreadable file: the separator the header seems to use, `encoding =
/// "auto"`, the header's names closest to each missing column.
pub fn hints(error: &FileError, mapping: &SourceMapping, head: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(head);
    let header = text
        .trim_start_matches('\u{feff}')
        .lines()
        .next()
        .unwrap_or("");
    let mut hints = Vec::new();
    let count = |c: char| header.chars().filter(|&h| h == c).count();
    let (guess, guessed) = SEPARATORS
        .iter()
        .map(|&c| (c, count(c)))
        .max_by_key(|&(_, n)| n)
        .unwrap_or((mapping.separator, 0));
    let separator = if guess != mapping.separator && guessed > count(mapping.separator) {
        hints.push(format!(
            "the header line has {guessed} {guess:?} and {} {:?}: the file seems separated by {guess:?} — set separator = {:?} in the source's table",
            count(mapping.separator),
            mapping.separator,
            guess.to_string()
        ));
        guess
    } else {
        mapping.separator
    };
    if matches!(error, FileError::NotDecodable { .. }) && mapping.encoding != SourceEncoding::Auto {
        hints.push(
            "the bytes are not in the configured encoding: try encoding = \"auto\" (UTF-8 when valid, Windows-1252 otherwise)".into(),
        );
    }
    if let FileError::MissingColumns { columns, .. } = error {
        let names: Vec<&str> = header
            .split(separator)
            .map(|n| n.trim().trim_matches(mapping.quote).trim())
            .filter(|n| !n.is_empty())
            .collect();
        for missing in columns {
            let field = Field::ALL.into_iter().find(|f| {
                mapping
                    .column(*f)
                    .trim()
                    .eq_ignore_ascii_case(missing.trim())
            });
            let closest = names
                .iter()
                .map(|n| {
                    (
                        edit_distance(&n.to_lowercase(), &missing.to_lowercase()),
                        *n,
                    )
                })
                .min_by_key(|&(d, _)| d)
                .filter(|&(d, _)| d <= missing.chars().count().div_ceil(2));
            match (field, closest) {
                (Some(field), Some((_, name))) => hints.push(format!(
                    "column {missing:?} ({field}) is missing; the closest in the header is {name:?}: [sources.<name>.columns] {field} = {name:?}"
                )),
                (Some(field), None) => hints.push(format!(
                    "column {missing:?} ({field}) is missing and nothing in the header is close: map it in [sources.<name>.columns] or give a [sources.<name>.fixed] value"
                )),
                (None, _) => {}
            }
        }
    }
    hints
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(edit_distance("numfacture", "num_facture"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("crèche", "creche"), 1);
    }

    #[test]
    fn a_tab_separated_header_suggests_the_tab() {
        let mapping = SourceMapping::polyfac_default();
        let head = b"NumFacture\tDateFacture\tExercice\r\nF1\t31/01/2026\t2026\r\n";
        let error = FileError::NoHeader {
            file: "x.csv".into(),
            reason: "no expected column".into(),
        };
        let hints = hints(&error, &mapping, head);
        assert!(
            hints.iter().any(|h| h.contains("separator = \"\\t\"")),
            "{hints:?}"
        );
    }

    #[test]
    fn missing_columns_name_the_closest_header_and_encoding_suggests_auto() {
        let mut mapping = SourceMapping::polyfac_default();
        mapping.encoding = SourceEncoding::Utf8;
        let head = "Num_Facture;DateFacture\r\n".as_bytes();
        let missing = FileError::MissingColumns {
            file: "x.csv".into(),
            columns: vec!["NumFacture".into()],
        };
        let hints = hints(&missing, &mapping, head);
        assert!(
            hints
                .iter()
                .any(|h| h.contains("invoice_number = \"Num_Facture\"")),
            "{hints:?}"
        );
        let undecodable = FileError::NotDecodable {
            file: "x.csv".into(),
            line: 2,
            encoding: "UTF-8",
            reason: "invalid byte".into(),
        };
        let hints = super::hints(&undecodable, &mapping, head);
        assert!(
            hints.iter().any(|h| h.contains("encoding = \"auto\"")),
            "{hints:?}"
        );
    }
}
