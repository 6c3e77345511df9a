//! Configuration of the polyfac adapter (sections of `encaisse.toml`). Every field is documented; defaults live in functions.
//!
//! A [`SourceMapping`] (`[sources.<name>]`) says how to read one source application's export:
//! which column holds each canonical [`Field`], the text encoding, the CSV dialect, the number
//! and date formats and the value maps. Every setting has the default of the Polyfac contract
//! (`../shared/specs/polyfac.md` §1), so `[sources.polyfac]` may be empty; another source lists
//! only what differs (see `docs/adding-a-source.md`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use encaisse_schemas::tenant::ConfigIssue;
use encaisse_schemas::{Civilite, PaymentMode, SequenceType};
use serde::{Deserialize, Serialize};

pub use crate::field::{Field, Requirement};

/// `[sources.<name>]`: how to read one source application's export (columns, encoding, formats, value maps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMapping {
    /// Column name of each canonical field, when it differs from the Polyfac contract
    /// (`invoice_number = "num_facture"`). A field not listed keeps its Polyfac column name
    /// (`NumFacture`…). Header names are compared ignoring case and surrounding spaces.
    #[serde(default)]
    pub columns: BTreeMap<Field, String>,
    /// A constant value for a field the source has no column for (`activity = "CRECHE"` for an
    /// application that only bills the crèche). A fixed field ignores its column. Not allowed
    /// for `invoice_number`, which groups lines into invoices.
    #[serde(default)]
    pub fixed: BTreeMap<Field, String>,
    /// Text encoding: `windows-1252` (Polyfac's default), `utf-8`, or `auto`: UTF-8 when
    /// the first line holding a non-ASCII byte is valid UTF-8, Windows-1252 otherwise. A file
    /// starting with a UTF-8 byte-order mark is read as UTF-8 whatever this setting says.
    #[serde(default = "default_encoding")]
    pub encoding: SourceEncoding,
    /// Field separator, one ASCII character (`;`).
    #[serde(default = "default_separator")]
    pub separator: char,
    /// Quote character, one ASCII character (`"`); doubled inside a quoted field to escape it.
    #[serde(default = "default_quote")]
    pub quote: char,
    /// Decimal separator of quantities and amounts: `,` or `.`. Spaces (and non-breaking
    /// spaces) are accepted as thousands separators; the other punctuation mark is refused so
    /// that `1.500` is never silently read as one and a half.
    #[serde(default = "default_decimal_separator")]
    pub decimal_separator: char,
    /// Date format, in `strftime` notation (`%d/%m/%Y` = `JJ/MM/AAAA`, `%Y-%m-%d` = ISO).
    #[serde(default = "default_date_format")]
    pub date_format: String,
    /// How `Quantite × PrixUnitaire` is rounded to the cent before it is compared with
    /// `MontantLigne`. The Polyfac contract only says "rounded to the cent" (its rounding rule
    /// is not confirmed): `half_away_from_zero` (commercial rounding, the default),
    /// `half_even` (banker's rounding) or `toward_zero` (truncation).
    #[serde(default = "default_line_rounding")]
    pub line_rounding: LineRounding,
    /// Whether a direct-debit invoice must carry the debtor's BIC. The Polyfac contract
    /// requires it; SEPA has made it optional (IBAN only), so a source without BIC sets `false`.
    #[serde(default = "default_bic_required")]
    pub bic_required: bool,
    /// Source activity value → tenant activity code (`"Crèche" = "CRECHE"`). Values not listed
    /// pass through unchanged. Keys are compared ignoring case and surrounding spaces.
    #[serde(default)]
    pub activity_values: BTreeMap<String, String>,
    /// Source product value → tenant product code (`"HEURE" = "CRECHE_HEURE"`). Values not
    /// listed pass through unchanged. Keys are compared ignoring case.
    #[serde(default)]
    pub product_values: BTreeMap<String, String>,
    /// Source payment-mode value → `PRELEVEMENT`, `TIP`, `TIPI` or `AUTRE`. A table given here
    /// replaces the default one (the four canonical values, mapped to themselves). A value not
    /// listed rejects its invoice. Keys are compared ignoring case.
    #[serde(default = "default_payment_mode_values")]
    pub payment_mode_values: BTreeMap<String, PaymentMode>,
    /// Source civilité value → `M` or `MME`. Replaces the default table (`M`, `MME`).
    #[serde(default = "default_civilite_values")]
    pub civilite_values: BTreeMap<String, Civilite>,
    /// Source sequence value → `FRST`, `RCUR`, `FNAL` or `OOFF`. Replaces the default table
    /// (the four codes mapped to themselves).
    #[serde(default = "default_sequence_values")]
    pub sequence_values: BTreeMap<String, SequenceType>,
    /// Longest accepted line (a record, quoted line breaks included), in bytes. A longer one
    /// makes the whole file unreadable: it bounds the memory a malformed file can take.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Most lines one invoice may have. Lines past it are not kept and the invoice is
    /// rejected: it bounds the memory one (malformed) invoice can take.
    #[serde(default = "default_max_invoice_lines")]
    pub max_invoice_lines: usize,
    /// Line ending of the files written back to this source (REGLEMENTS): `crlf` (Windows
    /// applications, the default) or `lf`. Reading accepts both.
    #[serde(default = "default_line_ending")]
    pub line_ending: LineEnding,
    /// Column names of the REGLEMENTS files written back, when the source names them
    /// otherwise: Polyfac's name → the source's (`NumFacture = "facture"`). Columns not listed
    /// keep Polyfac's names (`NumFacture`, `CodeFamille`, `DateEvenement`, `Montant`, `Canal`,
    /// `Statut`, `Reference`, `Motif`, `Frais`); their order does not change.
    #[serde(default)]
    pub reglements_columns: BTreeMap<String, String>,
}

/// Text encoding of a source's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceEncoding {
    /// Windows-1252 (a superset of Latin-1 with `€`, `œ`, curly quotes).
    #[serde(rename = "windows-1252")]
    Windows1252,
    /// UTF-8, with or without a byte-order mark.
    #[serde(rename = "utf-8")]
    Utf8,
    /// UTF-8 when a BOM is present or the first non-ASCII line is valid UTF-8, Windows-1252
    /// otherwise. Files written back use Windows-1252.
    #[serde(rename = "auto")]
    Auto,
}

/// Rounding of a computed line amount to the cent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineRounding {
    /// 0.005 → 0.01, −0.005 → −0.01.
    HalfAwayFromZero,
    /// 0.005 → 0.00, 0.015 → 0.02.
    HalfEven,
    /// 0.019 → 0.01.
    TowardZero,
}

/// Line terminator of written files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineEnding {
    Crlf,
    Lf,
}

fn default_encoding() -> SourceEncoding {
    SourceEncoding::Auto
}

fn default_separator() -> char {
    ';'
}

fn default_quote() -> char {
    '"'
}

fn default_decimal_separator() -> char {
    ','
}

fn default_date_format() -> String {
    "%d/%m/%Y".to_string()
}

fn default_line_rounding() -> LineRounding {
    LineRounding::HalfAwayFromZero
}

fn default_bic_required() -> bool {
    true
}

fn default_payment_mode_values() -> BTreeMap<String, PaymentMode> {
    BTreeMap::from([
        ("PRELEVEMENT".to_string(), PaymentMode::Prelevement),
        ("TIP".to_string(), PaymentMode::Tip),
        ("TIPI".to_string(), PaymentMode::Tipi),
        ("AUTRE".to_string(), PaymentMode::Autre),
    ])
}

fn default_civilite_values() -> BTreeMap<String, Civilite> {
    BTreeMap::from([
        ("M".to_string(), Civilite::M),
        ("MME".to_string(), Civilite::Mme),
    ])
}

fn default_sequence_values() -> BTreeMap<String, SequenceType> {
    BTreeMap::from([
        ("FRST".to_string(), SequenceType::Frst),
        ("RCUR".to_string(), SequenceType::Rcur),
        ("FNAL".to_string(), SequenceType::Fnal),
        ("OOFF".to_string(), SequenceType::Ooff),
    ])
}

fn default_max_line_bytes() -> usize {
    64 * 1024
}

fn default_max_invoice_lines() -> usize {
    1000
}

fn default_line_ending() -> LineEnding {
    LineEnding::Crlf
}

/// Bounds of `max_line_bytes`: below, a legitimate Polyfac line (≈ 400 bytes) may not fit;
/// above, one bad file could take too much memory.
const MIN_LINE_BYTES: usize = 1024;
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

impl Default for SourceMapping {
    fn default() -> Self {
        Self::polyfac_default()
    }
}

impl SourceMapping {
    /// The default contract of `../shared/specs/polyfac.md` §1: Polyfac column names, `;`,
    /// `"`, decimal comma, `JJ/MM/AAAA`, Windows-1252 or UTF-8 (detected), canonical values.
    pub fn polyfac_default() -> Self {
        SourceMapping {
            columns: BTreeMap::new(),
            fixed: BTreeMap::new(),
            encoding: default_encoding(),
            separator: default_separator(),
            quote: default_quote(),
            decimal_separator: default_decimal_separator(),
            date_format: default_date_format(),
            line_rounding: default_line_rounding(),
            bic_required: default_bic_required(),
            activity_values: BTreeMap::new(),
            product_values: BTreeMap::new(),
            payment_mode_values: default_payment_mode_values(),
            civilite_values: default_civilite_values(),
            sequence_values: default_sequence_values(),
            max_line_bytes: default_max_line_bytes(),
            max_invoice_lines: default_max_invoice_lines(),
            line_ending: default_line_ending(),
            reglements_columns: BTreeMap::new(),
        }
    }

    /// The column name of `field` in this source (configured, or the Polyfac name).
    pub fn column(&self, field: Field) -> &str {
        self.columns
            .get(&field)
            .map(String::as_str)
            .unwrap_or_else(|| field.polyfac_column())
    }

    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let at = |name: &str| format!("{prefix}.{name}");
        for (field, column) in &self.columns {
            if column.trim().is_empty() {
                issues.push(ConfigIssue::new(
                    at(&format!("columns.{field}")),
                    "column name must not be empty",
                ));
            }
            if self.fixed.contains_key(field) {
                issues.push(ConfigIssue::new(
                    at(&format!("columns.{field}")),
                    "field is both mapped to a column and fixed; keep one",
                ));
            }
        }
        for (field, value) in &self.fixed {
            if *field == Field::InvoiceNumber {
                issues.push(ConfigIssue::new(
                    at("fixed.invoice_number"),
                    "the invoice number groups lines into invoices and cannot be fixed",
                ));
            }
            if value.trim().is_empty() {
                issues.push(ConfigIssue::new(
                    at(&format!("fixed.{field}")),
                    "fixed value must not be empty",
                ));
            }
        }
        for (name, c) in [("separator", self.separator), ("quote", self.quote)] {
            if !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, '\r' | '\n') {
                issues.push(ConfigIssue::new(
                    at(name),
                    format!("{c:?} must be one ASCII punctuation or whitespace character"),
                ));
            }
        }
        if self.separator == self.quote {
            issues.push(ConfigIssue::new(
                at("quote"),
                "quote and separator must differ",
            ));
        }
        if !matches!(self.decimal_separator, ',' | '.') {
            issues.push(ConfigIssue::new(
                at("decimal_separator"),
                format!("{:?}: must be ',' or '.'", self.decimal_separator),
            ));
        }
        if let Some(reason) = check_date_format(&self.date_format) {
            issues.push(ConfigIssue::new(at("date_format"), reason));
        }
        if !(MIN_LINE_BYTES..=MAX_LINE_BYTES).contains(&self.max_line_bytes) {
            issues.push(ConfigIssue::new(
                at("max_line_bytes"),
                format!("must be between {MIN_LINE_BYTES} and {MAX_LINE_BYTES}"),
            ));
        }
        if self.max_invoice_lines == 0 {
            issues.push(ConfigIssue::new(
                at("max_invoice_lines"),
                "must be at least 1",
            ));
        }
        let mut renamed = std::collections::HashSet::new();
        for (polyfac, name) in &self.reglements_columns {
            let field = at(&format!("reglements_columns.{polyfac}"));
            if !crate::reglements::COLUMNS.contains(&polyfac.as_str()) {
                issues.push(ConfigIssue::new(
                    field,
                    format!(
                        "not a REGLEMENTS column (one of {})",
                        crate::reglements::COLUMNS.join(", ")
                    ),
                ));
            } else if name.trim().is_empty() {
                issues.push(ConfigIssue::new(field, "column name must not be empty"));
            } else if !renamed.insert(name.trim().to_uppercase()) {
                issues.push(ConfigIssue::new(
                    field,
                    format!("{name:?} names two columns"),
                ));
            }
        }
        check_value_keys(&mut issues, &at("activity_values"), &self.activity_values);
        check_value_keys(&mut issues, &at("product_values"), &self.product_values);
        check_value_keys(
            &mut issues,
            &at("payment_mode_values"),
            &self.payment_mode_values,
        );
        check_value_keys(&mut issues, &at("civilite_values"), &self.civilite_values);
        check_value_keys(&mut issues, &at("sequence_values"), &self.sequence_values);
        for (map, values) in [
            ("activity_values", &self.activity_values),
            ("product_values", &self.product_values),
        ] {
            for (key, value) in values {
                if value.trim().is_empty() {
                    issues.push(ConfigIssue::new(
                        at(&format!("{map}.{key}")),
                        "target code must not be empty",
                    ));
                }
            }
        }
        issues
    }
}

/// A date format must round-trip a date with distinct day, month and year.
fn check_date_format(format: &str) -> Option<String> {
    let sample = NaiveDate::from_ymd_opt(2026, 11, 23)?;
    let mut text = String::new();
    if std::fmt::write(&mut text, format_args!("{}", sample.format(format))).is_err() {
        return Some(format!("{format:?} is not a valid strftime format"));
    }
    match NaiveDate::parse_from_str(&text, format) {
        Ok(back) if back == sample => None,
        _ => Some(format!(
            "{format:?} must contain a day, a month and a four-digit year (e.g. %d/%m/%Y)"
        )),
    }
}

/// Keys compare ignoring case: two keys equal but for case would be ambiguous.
fn check_value_keys<V>(issues: &mut Vec<ConfigIssue>, field: &str, map: &BTreeMap<String, V>) {
    let mut seen = std::collections::HashSet::new();
    for key in map.keys() {
        let norm = key.trim().to_uppercase();
        if norm.is_empty() {
            issues.push(ConfigIssue::new(field, "empty key"));
        } else if !seen.insert(norm) {
            issues.push(ConfigIssue::new(
                field,
                format!("key {key:?} is listed twice (keys ignore case)"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_uses_polyfac_names() {
        let mapping = SourceMapping::polyfac_default();
        assert!(mapping.validate("sources.polyfac").is_empty());
        assert_eq!(mapping.column(Field::InvoiceNumber), "NumFacture");
        assert_eq!(mapping, SourceMapping::default());
    }

    #[test]
    fn empty_toml_section_is_the_default() {
        let mapping: SourceMapping = toml::from_str("").unwrap();
        assert_eq!(mapping, SourceMapping::polyfac_default());
    }

    #[test]
    fn unknown_fields_and_columns_are_refused() {
        assert!(toml::from_str::<SourceMapping>("separatr = ','").is_err());
        assert!(toml::from_str::<SourceMapping>("[columns]\nnot_a_field = 'X'").is_err());
    }

    #[test]
    fn bad_settings_are_reported_with_their_field() {
        let mut mapping = SourceMapping::polyfac_default();
        mapping.separator = 'x';
        mapping.decimal_separator = ';';
        mapping.date_format = "%d/%m".into();
        mapping.max_line_bytes = 10;
        mapping.max_invoice_lines = 0;
        mapping.fixed.insert(Field::InvoiceNumber, "F1".to_string());
        mapping
            .payment_mode_values
            .insert("tipi".into(), PaymentMode::Tipi);
        let fields: Vec<String> = mapping
            .validate("sources.x")
            .into_iter()
            .map(|i| i.field)
            .collect();
        for expected in [
            "sources.x.separator",
            "sources.x.decimal_separator",
            "sources.x.date_format",
            "sources.x.max_line_bytes",
            "sources.x.max_invoice_lines",
            "sources.x.fixed.invoice_number",
            "sources.x.payment_mode_values",
        ] {
            assert!(
                fields.iter().any(|f| f == expected),
                "{expected} in {fields:?}"
            );
        }
    }

    #[test]
    fn iso_date_format_is_accepted() {
        assert_eq!(check_date_format("%Y-%m-%d"), None);
        assert!(check_date_format("%Y").is_some());
    }
}
