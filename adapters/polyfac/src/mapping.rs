//! A [`SourceMapping`] resolved against one file's header: where each canonical field comes
//! from (a column index, a fixed value, or nowhere), and the value maps ready for lookups.

use std::collections::HashMap;

use encaisse_schemas::{Civilite, PaymentMode, SequenceType};

use crate::config::{LineRounding, SourceMapping};
use crate::error::FileError;
use crate::field::{Field, Requirement};
use crate::records::RawLine;

/// Where a field's value comes from in this file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSource {
    Column { index: usize, name: String },
    Fixed(String),
    Absent,
}

/// The mapping, resolved for one file.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    sources: Vec<FieldSource>,
    pub header_len: usize,
    pub decimal_separator: char,
    pub date_format: String,
    pub line_rounding: LineRounding,
    pub bic_required: bool,
    pub max_invoice_lines: usize,
    activity_values: HashMap<String, String>,
    product_values: HashMap<String, String>,
    payment_mode_values: HashMap<String, PaymentMode>,
    civilite_values: HashMap<String, Civilite>,
    sequence_values: HashMap<String, SequenceType>,
}

fn upper_keys<V: Clone>(map: &std::collections::BTreeMap<String, V>) -> HashMap<String, V> {
    map.iter()
        .map(|(k, v)| (k.trim().to_uppercase(), v.clone()))
        .collect()
}

impl CompiledMapping {
    /// Resolves `mapping` against the header line. Fails when a required column is missing,
    /// when no expected column is there at all (no header line), or when a mapped column
    /// appears twice.
    pub fn resolve(
        mapping: &SourceMapping,
        header: &RawLine,
        file: &str,
    ) -> Result<Self, FileError> {
        let mut positions: HashMap<String, usize> = HashMap::new();
        let mut duplicates = Vec::new();
        for i in 0..header.len() {
            let name = header.raw(i).unwrap_or_default().trim().to_uppercase();
            if positions.insert(name.clone(), i).is_some() {
                duplicates.push(name);
            }
        }
        let mut sources = Vec::with_capacity(Field::COUNT);
        let mut missing = Vec::new();
        let mut found_any = false;
        for field in Field::ALL {
            if let Some(value) = mapping.fixed.get(&field) {
                sources.push(FieldSource::Fixed(value.trim().to_string()));
                continue;
            }
            let name = mapping.column(field).trim();
            let key = name.to_uppercase();
            match positions.get(&key) {
                Some(&index) => {
                    if duplicates.contains(&key) {
                        return Err(FileError::DuplicateColumn {
                            file: file.to_string(),
                            column: name.to_string(),
                        });
                    }
                    found_any = true;
                    sources.push(FieldSource::Column {
                        index,
                        name: header.raw(index).unwrap_or(name).trim().to_string(),
                    });
                }
                None => {
                    if field.requirement() == Requirement::Always {
                        missing.push(name.to_string());
                    }
                    sources.push(FieldSource::Absent);
                }
            }
        }
        if !found_any {
            return Err(FileError::NoHeader {
                file: file.to_string(),
                reason: format!(
                    "line {} has none of the expected columns ({}, …)",
                    header.line,
                    mapping.column(Field::InvoiceNumber)
                ),
            });
        }
        if !missing.is_empty() {
            return Err(FileError::MissingColumns {
                file: file.to_string(),
                columns: missing,
            });
        }
        Ok(CompiledMapping {
            sources,
            header_len: header.len(),
            decimal_separator: mapping.decimal_separator,
            date_format: mapping.date_format.clone(),
            line_rounding: mapping.line_rounding,
            bic_required: mapping.bic_required,
            max_invoice_lines: mapping.max_invoice_lines.max(1),
            activity_values: upper_keys(&mapping.activity_values),
            product_values: upper_keys(&mapping.product_values),
            payment_mode_values: upper_keys(&mapping.payment_mode_values),
            civilite_values: upper_keys(&mapping.civilite_values),
            sequence_values: upper_keys(&mapping.sequence_values),
        })
    }

    /// The value of `field` on `line`, trimmed; `None` when empty or not in this source.
    pub fn get<'a>(&'a self, line: &'a RawLine, field: Field) -> Option<&'a str> {
        match &self.sources[field.index()] {
            FieldSource::Column { index, .. } => line.get(*index),
            FieldSource::Fixed(value) => Some(value.as_str()).filter(|v| !v.is_empty()),
            FieldSource::Absent => None,
        }
    }

    /// The column name to put in an error about `field`.
    pub fn column_name(&self, field: Field) -> &str {
        match &self.sources[field.index()] {
            FieldSource::Column { name, .. } => name,
            FieldSource::Fixed(_) => "(fixed)",
            FieldSource::Absent => field.polyfac_column(),
        }
    }

    /// Source activity value → tenant activity code (unchanged when not mapped).
    pub fn activity<'a>(&'a self, value: &'a str) -> &'a str {
        lookup_or_same(&self.activity_values, value)
    }

    /// Source product value → tenant product code (unchanged when not mapped).
    pub fn product<'a>(&'a self, value: &'a str) -> &'a str {
        lookup_or_same(&self.product_values, value)
    }

    pub fn payment_mode(&self, value: &str) -> Option<PaymentMode> {
        lookup(&self.payment_mode_values, value)
    }

    pub fn civilite(&self, value: &str) -> Option<Civilite> {
        lookup(&self.civilite_values, value)
    }

    pub fn sequence(&self, value: &str) -> Option<SequenceType> {
        lookup(&self.sequence_values, value)
    }
}

fn lookup<V: Copy>(map: &HashMap<String, V>, value: &str) -> Option<V> {
    map.get(value)
        .or_else(|| map.get(&value.to_uppercase()))
        .copied()
}

fn lookup_or_same<'a>(map: &'a HashMap<String, String>, value: &'a str) -> &'a str {
    if map.is_empty() {
        return value;
    }
    map.get(value)
        .or_else(|| map.get(&value.to_uppercase()))
        .map_or(value, String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(columns: &[&str]) -> RawLine {
        RawLine::from_fields(1, columns)
    }

    fn polyfac_header() -> Vec<&'static str> {
        Field::ALL
            .iter()
            .filter(|f| **f != Field::InvoiceTotal)
            .map(|f| f.polyfac_column())
            .collect()
    }

    #[test]
    fn resolves_polyfac_header_ignoring_case() {
        let mut cols = polyfac_header();
        cols[0] = " numfacture ";
        let compiled =
            CompiledMapping::resolve(&SourceMapping::polyfac_default(), &header(&cols), "f")
                .unwrap();
        assert_eq!(compiled.column_name(Field::InvoiceNumber), "numfacture");
        assert_eq!(compiled.column_name(Field::InvoiceTotal), "MontantFacture");
        assert_eq!(compiled.payment_mode("tipi"), Some(PaymentMode::Tipi));
        assert_eq!(compiled.activity("CRECHE"), "CRECHE");
    }

    #[test]
    fn missing_and_duplicate_columns() {
        let mut cols = polyfac_header();
        cols.retain(|c| *c != "Periode" && *c != "Ville");
        let err = CompiledMapping::resolve(&SourceMapping::polyfac_default(), &header(&cols), "f")
            .unwrap_err();
        match err {
            FileError::MissingColumns { columns, .. } => assert_eq!(columns, ["Periode", "Ville"]),
            other => panic!("{other}"),
        }
        let mut cols = polyfac_header();
        cols.push("Nom");
        let err = CompiledMapping::resolve(&SourceMapping::polyfac_default(), &header(&cols), "f")
            .unwrap_err();
        assert_eq!(err.kind(), "duplicate_column");
    }

    #[test]
    fn data_line_instead_of_header_is_no_header() {
        let err = CompiledMapping::resolve(
            &SourceMapping::polyfac_default(),
            &header(&["F1", "01/01/2026", "2026"]),
            "f",
        )
        .unwrap_err();
        assert_eq!(err.kind(), "no_header");
    }
}
