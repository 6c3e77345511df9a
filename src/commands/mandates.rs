//! `encaisse mandates import --tenant T FILE`: brings the history of direct-debit mandates
//! migrated from another tool into the ledger, so their next debit continues as `RCUR` and
//! they lapse only by the real rule (`encaisse_pipelines::stages::sepa::mandate_import`).
//!
//! The file is a CSV (`;` or `,`, UTF-8 or Windows-1252) with a header naming, in any order
//! and case: `rum`, `iban`, `bic` (may be empty), `signed_on`, `last_collection_on` (empty:
//! never used), `sequence` (of that last collection: `FRST`, `RCUR`, `FNAL`, `OOFF`; empty:
//! `RCUR`), `one_off` (`true`/`false`, `oui`/`non`, `1`/`0`, empty: false). Dates are
//! `AAAA-MM-JJ` or `JJ/MM/AAAA`. A bad row is reported with its line and column (never its
//! IBAN) and the valid rows are imported all the same. Importing again changes nothing.
//!
//! Exit codes: 0 every row imported; 65 some rows refused (the others imported); 66 no such
//! file; 74 the file or the ledger cannot be read or written; 78 configuration unusable;
//! 2 unknown tenant.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Args, Subcommand};
use encaisse_ledger::Ledger;
use encaisse_pipelines::stages::polyfac::paris_today;
use encaisse_pipelines::stages::sepa::mandate_import::{ImportedMandate, import_mandate};
use encaisse_schemas::SequenceType;
use encaisse_schemas::identifiers::{Bic, Iban, Rum};

use crate::exit;

/// `encaisse mandates …`
#[derive(Debug, Args)]
pub struct MandatesArgs {
    #[command(subcommand)]
    pub command: MandatesCommand,
}

#[derive(Debug, Subcommand)]
pub enum MandatesCommand {
    /// Import mandates migrated from another tool (CSV: rum, iban, bic, signed_on,
    /// last_collection_on, sequence, one_off); idempotent.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tenant the mandates belong to.
    #[arg(long)]
    pub tenant: String,
    /// The CSV file.
    pub file: PathBuf,
}

/// Largest accepted file: a commune has thousands of mandates, not millions.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

const COLUMNS: [&str; 7] = [
    "rum",
    "iban",
    "bic",
    "signed_on",
    "last_collection_on",
    "sequence",
    "one_off",
];

/// Runs `encaisse mandates …`; returns the exit code.
pub async fn run(
    config_path: &Path,
    args: &MandatesArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    match &args.command {
        MandatesCommand::Import(import) => run_import(config_path, import, out, err).await,
    }
}

async fn run_import(
    config_path: &Path,
    args: &ImportArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let loaded = match super::check::load_or_report(config_path, err) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(tenant) = loaded.config.tenant(&args.tenant) else {
        let _ = writeln!(
            err,
            "encaisse mandates import: unknown tenant {:?}",
            args.tenant
        );
        return exit::USAGE;
    };
    let file_name = args.file.display().to_string();
    let bytes = match read_bounded(&args.file) {
        Ok(bytes) => bytes,
        Err((code, message)) => {
            let _ = writeln!(err, "{file_name}: {message}");
            return code;
        }
    };
    let (rows, problems) = match parse(&bytes) {
        Ok(parsed) => parsed,
        Err(message) => {
            let _ = writeln!(err, "{file_name}: {message}");
            return exit::DATA_ERROR;
        }
    };
    let url = match loaded.config.usable_ledger_url() {
        Ok(url) => url,
        Err(message) => {
            let _ = writeln!(err, "ledger.url: {message}");
            return exit::CONFIG;
        }
    };
    let ledger = match Ledger::open_url(&url) {
        Ok(ledger) => ledger,
        Err(e) => {
            let _ = writeln!(err, "encaisse mandates import: ledger: {e}");
            return exit::IO_ERROR;
        }
    };
    let imported = rows.len();
    let (tenant_id, source) = (tenant.id.as_str().to_string(), file_name.clone());
    let today = paris_today();
    let written = ledger
        .transact(move |tx| {
            for (line, mandate) in &rows {
                import_mandate(tx, &tenant_id, mandate, &format!("{source}:{line}"), today)?;
            }
            Ok::<_, encaisse_ledger::LedgerError>(())
        })
        .await;
    if let Err(e) = written {
        let _ = writeln!(err, "encaisse mandates import: ledger: {e}");
        return exit::IO_ERROR;
    }
    for problem in &problems {
        let _ = writeln!(err, "{file_name}: {problem}");
    }
    let _ = writeln!(
        out,
        "{file_name}: {imported} mandate(s) imported for tenant {}, {} row(s) refused",
        tenant.id,
        problems.len()
    );
    if problems.is_empty() {
        exit::OK
    } else {
        exit::DATA_ERROR
    }
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, (u8, String)> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => (exit::NOT_FOUND, "no such file".to_string()),
        _ => (exit::IO_ERROR, e.to_string()),
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err((
            exit::DATA_ERROR,
            format!("larger than {MAX_FILE_BYTES} bytes: not a mandate list"),
        ));
    }
    std::fs::read(path).map_err(|e| (exit::IO_ERROR, e.to_string()))
}

/// The valid rows (with their line) and a message per refused row.
type Parsed = (Vec<(u64, ImportedMandate)>, Vec<String>);

/// Reads the CSV; `Err` when the file as a whole is unusable (no header, a column missing).
fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => encoding_rs::WINDOWS_1252.decode(bytes).0,
    };
    let header = text.lines().next().ok_or("empty file: no header line")?;
    let separator = if header.contains(';') { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .flexible(true)
        .from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let position = |name: &str| names.iter().position(|n| n == name);
    let missing: Vec<&str> = ["rum", "iban", "signed_on"]
        .into_iter()
        .filter(|c| position(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "line 1: missing columns {} (expected {})",
            missing.join(", "),
            COLUMNS.join(", ")
        ));
    }
    let index: Vec<Option<usize>> = COLUMNS.iter().map(|c| position(c)).collect();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        if record.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let get = |column: usize| {
            index[column]
                .and_then(|i| record.get(i))
                .map(str::trim)
                .unwrap_or("")
        };
        match row(&get) {
            Ok(mandate) => rows.push((line, mandate)),
            Err((column, message)) => {
                problems.push(format!("line {line}, column {column}: {message}"));
            }
        }
    }
    Ok((rows, problems))
}

/// One row, or the column at fault and why (never repeating an IBAN).
fn row<'a>(get: &dyn Fn(usize) -> &'a str) -> Result<ImportedMandate, (&'static str, String)> {
    let rum = Rum::parse(get(0)).map_err(|e| ("rum", e.to_string()))?;
    let iban = Iban::parse(get(1)).map_err(|_| {
        (
            "iban",
            "not a valid IBAN (format, length or check digits)".to_string(),
        )
    })?;
    let bic = match get(2) {
        "" => None,
        text => Some(Bic::parse(text).map_err(|e| ("bic", e.to_string()))?),
    };
    let signed_on = date(get(3)).ok_or(("signed_on", format!("{:?} is not a date", get(3))))?;
    let last_collection_on = match get(4) {
        "" => None,
        text => Some(date(text).ok_or(("last_collection_on", format!("{text:?} is not a date")))?),
    };
    if last_collection_on.is_some_and(|last| last < signed_on) {
        return Err((
            "last_collection_on",
            "before the mandate's signature date".into(),
        ));
    }
    let last_sequence = match get(5).to_uppercase().as_str() {
        "" => None,
        "FRST" => Some(SequenceType::Frst),
        "RCUR" => Some(SequenceType::Rcur),
        "FNAL" => Some(SequenceType::Fnal),
        "OOFF" => Some(SequenceType::Ooff),
        other => {
            return Err((
                "sequence",
                format!("{other:?} is not FRST, RCUR, FNAL or OOFF"),
            ));
        }
    };
    let one_off = match get(6).to_lowercase().as_str() {
        "" | "false" | "non" | "no" | "0" => false,
        "true" | "oui" | "yes" | "1" => true,
        other => return Err(("one_off", format!("{other:?} is not true or false"))),
    };
    Ok(ImportedMandate {
        rum,
        iban,
        bic,
        signed_on,
        last_collection_on,
        last_sequence,
        one_off,
    })
}

fn date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%d/%m/%Y"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_and_bad_ones_named_without_their_iban() {
        let text = "RUM;IBAN;BIC;signed_on;last_collection_on;sequence;one_off\n\
            OLD-1;FR1420041010050500013M02606;;2021-03-01;05/04/2026;RCUR;non\n\
            OLD-2;FR1420041010050500013M02607;;2021-03-01;;;\n\
            OLD-3;FR1420041010050500013M02606;;2021-03-01;2020-01-01;;\n";
        let (rows, problems) = parse(text.as_bytes()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, 2);
        assert_eq!(
            rows[0].1.last_collection_on,
            NaiveDate::from_ymd_opt(2026, 4, 5)
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("line 3, column iban:"),
            "{problems:?}"
        );
        assert!(!problems[0].contains("FR14"), "{problems:?}");
        assert!(
            problems[1].starts_with("line 4, column last_collection_on:"),
            "{problems:?}"
        );
        assert!(parse(b"rum,iban\n").unwrap_err().contains("signed_on"));
    }
}
