//! The REGLEMENTS file written back to Polyfac (`../shared/specs/polyfac.md` §2): one line
//! per payment or titre status event, in the export's dialect (Windows-1252 by default, `;`,
//! decimal comma, `JJ/MM/AAAA`, a header line).
//!
//! Pure functions: [`reglement_row`] turns a canonical event into a row, [`ReglementsFormat`]
//! turns rows into bytes (the header once, then rows), [`file_name`] names the file. The
//! `polyfac.export` stage owns appending, daily rolling, atomic publication and
//! deduplication.
//!
//! Choices the spec leaves open (our contract, documented in `docs/adding-a-source.md`):
//! * `DateEvenement` is the event's date in Europe/Paris.
//! * Titre events (`TITRE_PRIS_EN_CHARGE`, `TITRE_REJETE`) have an empty `Canal`, and a
//!   `Montant` only when the caller passes the invoice total.
//! * A failed PayFiP payment has `Canal` `CB` for `R` (card refused), `PRELEVEMENT_UNIQUE`
//!   for `Z` (one-off debit refused), `AUTRE` for `A` (abandoned) and an expired operation:
//!   the means the family would have used is unknown.
//! * A reversal carries the original payment's `Canal` and `Reference` when the caller
//!   passes them (from the ledger), so Polyfac can match it with the `PAYE` line.

use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Europe::Paris;
use encaisse_schemas::{
    Channel, Money, PayfipFailure, PaymentFailed, PaymentReceived, PaymentRejected,
    PaymentReversed, TenantId, TitreAccepted, TitreRejected, TitreSource,
};
use encoding_rs::WINDOWS_1252;

use crate::cell::neutralise_formula;
use crate::config::{LineEnding, SourceEncoding, SourceMapping};

/// Columns of a REGLEMENTS file, in order.
pub const COLUMNS: [&str; 9] = [
    "NumFacture",
    "CodeFamille",
    "DateEvenement",
    "Montant",
    "Canal",
    "Statut",
    "Reference",
    "Motif",
    "Frais",
];

/// A status event that Polyfac must learn about.
#[derive(Debug, Clone, Copy)]
pub enum StatusEvent<'a> {
    Received(&'a PaymentReceived),
    Failed(&'a PaymentFailed),
    Rejected(&'a PaymentRejected),
    Reversed(&'a PaymentReversed),
    TitreAccepted(&'a TitreAccepted),
    TitreRejected(&'a TitreRejected),
}

/// `Statut` of a REGLEMENTS line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statut {
    Paye,
    Rejete,
    Annule,
    TitrePrisEnCharge,
    TitreRejete,
    /// A credit note was taken in charge against its original's titre.
    TitreReduit,
    /// A credit note could not be applied (refused before any PES file).
    AvoirRejete,
}

impl Statut {
    pub fn as_str(self) -> &'static str {
        match self {
            Statut::Paye => "PAYE",
            Statut::Rejete => "REJETE",
            Statut::Annule => "ANNULE",
            Statut::TitrePrisEnCharge => "TITRE_PRIS_EN_CHARGE",
            Statut::TitreRejete => "TITRE_REJETE",
            Statut::TitreReduit => "TITRE_REDUIT",
            Statut::AvoirRejete => "AVOIR_REJETE",
        }
    }
}

/// `Canal` of a REGLEMENTS line.
pub fn canal(channel: Channel) -> &'static str {
    match channel {
        Channel::Cb => "CB",
        Channel::PrelevementUnique => "PRELEVEMENT_UNIQUE",
        Channel::Prelevement => "PRELEVEMENT",
        Channel::Tip => "TIP",
        Channel::Guichet => "GUICHET",
        Channel::Autre => "AUTRE",
    }
}

/// The payment a reversal cancels, as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalPayment {
    pub channel: Channel,
    pub reference: String,
}

/// What the stage looks up for a row (the events do not carry it).
#[derive(Debug, Clone, Default)]
pub struct RowContext {
    /// `CodeFamille` of the invoice (from the invoice journal).
    pub family_code: String,
    /// The invoice total, written as `Montant` on titre lines when known.
    pub invoice_total: Option<Money>,
    /// For a reversal: the payment it cancels, when known.
    pub reversed_payment: Option<OriginalPayment>,
    /// When the event is about a credit note: the number of the invoice it reduces (the
    /// credit note's `invoice_total` is then what it takes off).
    pub credit_note_of: Option<String>,
}

/// One REGLEMENTS line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReglementRow {
    pub invoice_number: String,
    pub family_code: String,
    pub date: NaiveDate,
    pub amount: Option<Money>,
    /// Empty for titre events.
    pub canal: Option<&'static str>,
    pub statut: Statut,
    pub reference: String,
    pub motif: String,
    pub fees: Option<Money>,
}

/// The commune's local date of an instant.
fn paris_date(at: &DateTime<FixedOffset>) -> NaiveDate {
    at.with_timezone(&Paris).date_naive()
}

/// `payfip:123` → `123`: Polyfac wants the gateway's own reference.
fn strip_source_prefix(payment_id: &str) -> &str {
    payment_id
        .split_once(':')
        .map_or(payment_id, |(_, rest)| rest)
}

/// The channel a payment id implies when nothing better is known.
fn channel_of_payment_id(payment_id: &str) -> &'static str {
    match payment_id.split_once(':').map(|(p, _)| p) {
        Some("sepa") => "PRELEVEMENT",
        Some("helios") => "GUICHET",
        _ => "AUTRE",
    }
}

/// `<code> <text>` without doubled spaces.
fn motif(code: &str, text: &str) -> String {
    format!("{code} {text}").trim().to_string()
}

/// The REGLEMENTS line of an event.
pub fn reglement_row(event: StatusEvent<'_>, ctx: &RowContext) -> ReglementRow {
    let base = |invoice: &encaisse_schemas::InvoiceRef, at: &DateTime<FixedOffset>| ReglementRow {
        invoice_number: invoice.number.clone(),
        family_code: ctx.family_code.clone(),
        date: paris_date(at),
        amount: None,
        canal: None,
        statut: Statut::Paye,
        reference: String::new(),
        motif: String::new(),
        fees: None,
    };
    match event {
        StatusEvent::Received(e) => ReglementRow {
            amount: Some(e.amount),
            canal: Some(canal(e.channel)),
            statut: Statut::Paye,
            reference: e.reference.clone(),
            fees: e.commission,
            ..base(&e.invoice, &e.paid_at)
        },
        StatusEvent::Failed(e) => {
            let (code, channel) = match e.result {
                PayfipFailure::R => ("R", "CB"),
                PayfipFailure::Z => ("Z", "PRELEVEMENT_UNIQUE"),
                PayfipFailure::A => ("A", "AUTRE"),
                PayfipFailure::Expired => ("EXPIRE", "AUTRE"),
            };
            ReglementRow {
                amount: Some(e.amount),
                canal: Some(channel),
                statut: Statut::Rejete,
                reference: strip_source_prefix(&e.payment_id).to_string(),
                motif: motif(code, &e.reason),
                ..base(&e.invoice, &e.failed_at)
            }
        }
        StatusEvent::Rejected(e) => ReglementRow {
            amount: Some(e.amount),
            canal: Some("PRELEVEMENT"),
            statut: Statut::Rejete,
            reference: e.end_to_end_id.clone(),
            motif: motif(&e.reason_code, &e.reason_text),
            ..base(&e.invoice, &e.rejected_at)
        },
        StatusEvent::Reversed(e) => {
            let (channel, reference) = match &ctx.reversed_payment {
                Some(original) => (canal(original.channel), original.reference.clone()),
                None => (
                    channel_of_payment_id(&e.payment_id),
                    strip_source_prefix(&e.payment_id).to_string(),
                ),
            };
            ReglementRow {
                amount: Some(e.amount),
                canal: Some(channel),
                statut: Statut::Annule,
                reference,
                motif: e.reason.clone(),
                ..base(&e.invoice, &e.reversed_at)
            }
        }
        // A credit note's réduction titre taken in charge: the reduction, naming the
        // original in `Motif`.
        StatusEvent::TitreAccepted(e) => ReglementRow {
            amount: ctx.invoice_total,
            statut: match ctx.credit_note_of {
                Some(_) => Statut::TitreReduit,
                None => Statut::TitrePrisEnCharge,
            },
            reference: e.titre.reference(),
            motif: ctx
                .credit_note_of
                .as_ref()
                .map(|origin| format!("FactureOrigine {origin}"))
                .unwrap_or_default(),
            ..base(&e.invoice, &e.accepted_at)
        },
        StatusEvent::TitreRejected(e) => ReglementRow {
            amount: ctx.invoice_total,
            // A credit note refused before any PES file is an AVOIR_REJETE; one whose
            // réduction titre the Trésorerie rejected is a TITRE_REJETE like any titre.
            statut: match (&ctx.credit_note_of, e.source) {
                (Some(_), TitreSource::Local) => Statut::AvoirRejete,
                _ => Statut::TitreRejete,
            },
            // Empty for a local refusal: the invoice never had a titre number.
            reference: e.titre.as_ref().map(|t| t.reference()).unwrap_or_default(),
            motif: motif(&e.code, &e.text),
            ..base(&e.invoice, &e.rejected_at)
        },
    }
}

/// How REGLEMENTS bytes are written: the source's dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReglementsFormat {
    pub separator: u8,
    pub quote: u8,
    /// Windows-1252, or UTF-8 (no BOM) for a source configured as `utf-8`.
    pub utf8: bool,
    pub decimal_separator: char,
    /// strftime format of `DateEvenement`.
    pub date_format: String,
    pub line_ending: LineEnding,
    /// The header's names, in [`COLUMNS`] order (Polyfac's, or the source's own).
    pub column_names: Vec<String>,
}

impl Default for ReglementsFormat {
    fn default() -> Self {
        Self::from_mapping(&SourceMapping::polyfac_default())
    }
}

impl ReglementsFormat {
    /// The dialect of a source (`auto` writes Windows-1252, Polyfac's default).
    pub fn from_mapping(mapping: &SourceMapping) -> Self {
        let ascii = |c: char, default: u8| if c.is_ascii() { c as u8 } else { default };
        ReglementsFormat {
            separator: ascii(mapping.separator, b';'),
            quote: ascii(mapping.quote, b'"'),
            utf8: mapping.encoding == SourceEncoding::Utf8,
            decimal_separator: mapping.decimal_separator,
            date_format: mapping.date_format.clone(),
            line_ending: mapping.line_ending,
            column_names: COLUMNS
                .iter()
                .map(|c| {
                    mapping
                        .reglements_columns
                        .get(*c)
                        .map_or_else(|| c.to_string(), |name| name.trim().to_string())
                })
                .collect(),
        }
    }

    fn write(&self, records: &[Vec<String>]) -> Vec<u8> {
        let mut csv = csv::WriterBuilder::new()
            .delimiter(self.separator)
            .quote(self.quote)
            .terminator(match self.line_ending {
                LineEnding::Crlf => csv::Terminator::CRLF,
                LineEnding::Lf => csv::Terminator::Any(b'\n'),
            })
            .from_writer(Vec::new());
        for record in records {
            // Writing to a Vec cannot fail.
            let _ = csv.write_record(record);
        }
        let utf8 = String::from_utf8(csv.into_inner().unwrap_or_default()).unwrap_or_default();
        if self.utf8 {
            utf8.into_bytes()
        } else {
            encode_1252(&utf8)
        }
    }

    /// The header line.
    pub fn header(&self) -> Vec<u8> {
        self.write(std::slice::from_ref(&self.column_names))
    }

    /// Rows, without header (to append to the day's file).
    pub fn rows(&self, rows: &[ReglementRow]) -> Vec<u8> {
        let records: Vec<Vec<String>> = rows.iter().map(|r| self.record(r)).collect();
        self.write(&records)
    }

    /// A whole file: header then rows.
    pub fn file(&self, rows: &[ReglementRow]) -> Vec<u8> {
        let mut bytes = self.header();
        bytes.extend(self.rows(rows));
        bytes
    }

    fn amount(&self, m: Option<Money>) -> String {
        m.map_or(String::new(), |m| {
            let dot = m.to_dot_string();
            if self.decimal_separator == ',' {
                dot.replace('.', ",")
            } else {
                dot
            }
        })
    }

    /// The date in the source's format (`JJ/MM/AAAA` when the format is unusable: a
    /// strftime error must not abort a file).
    fn date(&self, date: NaiveDate) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        if write!(text, "{}", date.format(&self.date_format)).is_err() {
            text = date.format("%d/%m/%Y").to_string();
        }
        text
    }

    fn record(&self, row: &ReglementRow) -> Vec<String> {
        vec![
            one_line(&row.invoice_number),
            one_line(&row.family_code),
            self.date(row.date),
            self.amount(row.amount),
            row.canal.unwrap_or("").to_string(),
            row.statut.as_str().to_string(),
            one_line(&row.reference),
            one_line(&row.motif),
            self.amount(row.fees),
        ]
    }
}

/// Line breaks and tabs become spaces: Polyfac's importer is line-based. A cell that a
/// spreadsheet would read as a formula is quoted ([`neutralise_formula`]).
fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    neutralise_formula(&line).into_owned()
}

/// Windows-1252, with `?` for a character it cannot represent (encoding_rs would write an
/// HTML numeric reference, meaningless to Polyfac).
fn encode_1252(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c as u8);
            continue;
        }
        let s = c.encode_utf8(&mut buf);
        let (bytes, _, unmappable) = WINDOWS_1252.encode(s);
        if unmappable {
            out.push(b'?');
        } else {
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// `REGLEMENTS_<tenant>_<AAAAMMJJ>_<seq>.csv`, `seq` on three digits (001, 002…) so that
/// files sort in emission order.
pub fn file_name(tenant: &TenantId, date: NaiveDate, seq: u32) -> String {
    format!("REGLEMENTS_{tenant}_{}_{seq:03}.csv", date.format("%Y%m%d"))
}
