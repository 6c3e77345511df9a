//! Helpers shared by the integration tests: the example tenant, reading a whole export,
//! and building exports line by line from a valid template.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use encaisse_polyfac::generate::example_catalogue;
use encaisse_polyfac::{
    ExportItem, ExportReader, ExportSummary, FileError, Invoice, ReadOptions, RejectedInvoice,
    SourceMapping, TenantCatalogue, prescan, prescan_with,
};
use encaisse_schemas::TenantId;
use encaisse_schemas::seen::SeenFilter;

pub fn tenant() -> TenantId {
    TenantId::new("vitry").unwrap()
}

pub fn catalogue() -> Arc<TenantCatalogue> {
    Arc::new(example_catalogue(tenant()).unwrap())
}

pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
}

pub fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Everything the reader yielded for one file.
#[derive(Debug)]
pub struct Read {
    pub valid: Vec<Invoice>,
    pub rejected: Vec<RejectedInvoice>,
    pub summary: ExportSummary,
}

impl Read {
    pub fn rejected(&self, number: &str) -> &RejectedInvoice {
        self.rejected
            .iter()
            .find(|r| r.number == number)
            .unwrap_or_else(|| panic!("{number} not rejected: {:#?}", self.rejected))
    }

    pub fn valid_numbers(&self) -> Vec<&str> {
        self.valid.iter().map(|i| i.number.as_str()).collect()
    }
}

/// Reads a whole export the way the stage does: prescan, then the reader with the prescan.
pub fn read_with(bytes: &[u8], mapping: &SourceMapping, file: &str) -> Result<Read, FileError> {
    let scan = prescan(bytes, mapping, file)?;
    read_inner(bytes, mapping, file, Some(scan))
}

/// Reads like [`read`], the prescan asking `filter` whether a number was met before.
pub fn read_with_filter(bytes: &[u8], filter: SeenFilter) -> Result<Read, FileError> {
    let mapping = SourceMapping::polyfac_default();
    let scan = prescan_with(bytes, &mapping, "export.csv", filter)?;
    read_inner(bytes, &mapping, "export.csv", Some(scan))
}

/// Reads without a prescan (single pass).
pub fn read_single_pass(
    bytes: &[u8],
    mapping: &SourceMapping,
    file: &str,
) -> Result<Read, FileError> {
    read_inner(bytes, mapping, file, None)
}

fn read_inner(
    bytes: &[u8],
    mapping: &SourceMapping,
    file: &str,
    scan: Option<encaisse_polyfac::Prescan>,
) -> Result<Read, FileError> {
    let options = ReadOptions {
        file_name: file.to_string(),
        today: today(),
        prescan: scan,
    };
    let mut valid = Vec::new();
    let mut rejected = Vec::new();
    let mut summary = None;
    let mut reader = ExportReader::new(bytes, mapping, catalogue(), options);
    for item in reader.by_ref() {
        match item? {
            ExportItem::Valid(i) => valid.push(*i),
            ExportItem::Invalid(r) => rejected.push(r),
            ExportItem::Summary(s) => {
                assert!(summary.is_none(), "one summary");
                summary = Some(s);
            }
        }
    }
    assert!(reader.next().is_none(), "nothing after the summary");
    Ok(Read {
        valid,
        rejected,
        summary: summary.expect("a summary at the end"),
    })
}

pub fn read(bytes: &[u8]) -> Result<Read, FileError> {
    read_with(bytes, &SourceMapping::polyfac_default(), "export.csv")
}

/// Polyfac header columns, in contract order.
pub const COLUMNS: [&str; 28] = [
    "NumFacture",
    "DateFacture",
    "Exercice",
    "Periode",
    "Activite",
    "CodeFamille",
    "Civilite",
    "Nom",
    "Prenom",
    "Adresse1",
    "Adresse2",
    "Adresse3",
    "CodePostal",
    "Ville",
    "Email",
    "CodeProduit",
    "Libelle",
    "Quantite",
    "PrixUnitaire",
    "MontantLigne",
    "ModeReglement",
    "RUM",
    "DateSignatureMandat",
    "SequencePrelevement",
    "IBAN",
    "BIC",
    "TitulaireCompte",
    "DateEcheance",
];

/// One export line as column → value.
pub type Row = BTreeMap<String, String>;

/// A valid direct-debit line of invoice `number`: 4 × 3,35 = 13,40 of CANTINE.
pub fn row(number: &str) -> Row {
    let values = [
        number,
        "31/01/2026",
        "2026",
        "1",
        "PERISCOLAIRE",
        "FAM000123",
        "MME",
        "Œuvray",
        "Hélène",
        "",
        "12 rue de la République",
        "",
        "94400",
        "Vitry-sur-Seine",
        "helene@exemple.fr",
        "CANTINE",
        "Restauration scolaire",
        "4",
        "3,35",
        "13,40",
        "PRELEVEMENT",
        "VITRY-CANT-000123",
        "15/09/2024",
        "",
        "FR7630006000011234567890189",
        "AGRIFRPP882",
        "Hélène Œuvray",
        "10/02/2026",
    ];
    COLUMNS
        .iter()
        .zip(values)
        .map(|(c, v)| (c.to_string(), v.to_string()))
        .collect()
}

fn quote(v: &str) -> String {
    if v.contains([';', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// An export (UTF-8 text) with `columns` as header and the rows' values in that order; a
/// row may carry extra or fewer values through the `__extra`/`__drop` conventions below.
pub fn export_with(columns: &[&str], rows: &[Row]) -> String {
    let mut text = columns.join(";");
    text.push_str("\r\n");
    for row in rows {
        let mut fields: Vec<String> = columns
            .iter()
            .map(|c| quote(row.get(*c).map(String::as_str).unwrap_or("")))
            .collect();
        if row.contains_key("__drop_last") {
            fields.pop();
        }
        text.push_str(&fields.join(";"));
        text.push_str("\r\n");
    }
    text
}

/// An export with the Polyfac header.
pub fn export(rows: &[Row]) -> String {
    export_with(&COLUMNS, rows)
}

/// Windows-1252 bytes of a text.
pub fn cp1252(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable);
    bytes.into_owned()
}
