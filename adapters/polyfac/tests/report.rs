//! The rejection report of an export: readable CSV rows naming line, column and rule, a
//! JSON summary, no bank details in clear.

mod common;

use common::*;
use encaisse_polyfac::report::{
    REPORT_COLUMNS, RejectionReport, report_file_names, unreadable_file_report,
};

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(
        bytes.starts_with(&[0xEF, 0xBB, 0xBF]),
        "UTF-8 BOM for spreadsheets"
    );
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(&bytes[3..]);
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[test]
fn report_lists_every_broken_rule_without_bank_details() {
    let mut bad = row("B");
    bad.insert("IBAN".into(), "FR0630006000011234567890188".into());
    bad.insert("CodePostal".into(), "944".into());
    let mut bad2 = row("B");
    bad2.insert("IBAN".into(), "FR0630006000011234567890188".into());
    bad2.insert("CodePostal".into(), "944".into());
    bad2.insert("MontantLigne".into(), "13,39".into());
    let read = read(export(&[row("G1"), bad, bad2, row("G2")]).as_bytes()).unwrap();

    let mut report = RejectionReport::new();
    for r in &read.rejected {
        report.add(r);
    }
    assert_eq!(report.rows(), 3);
    let files = report.finish(&read.summary);
    let rows = csv_rows(&files.rejected_csv);
    assert_eq!(rows[0], REPORT_COLUMNS);
    let body: Vec<(String, String, String, String, String)> = rows[1..]
        .iter()
        .map(|r| {
            (
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
                r[5].clone(),
            )
        })
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        body,
        [
            (
                s("3"),
                s("CodePostal"),
                s("B"),
                s("postal_code"),
                s("invalid_postal_code")
            ),
            (s("3"), s("IBAN"), s("B"), s("iban"), s("invalid_iban")),
            (
                s("4"),
                s("MontantLigne"),
                s("B"),
                s("line_amount"),
                s("line_amount_mismatch")
            ),
        ]
    );
    assert!(rows[2][6].contains("clé RIB"), "{}", rows[2][6]);
    let all = String::from_utf8_lossy(&files.rejected_csv);
    assert!(
        !all.contains("3000600001123456789018"),
        "IBAN in clear: {all}"
    );
    assert!(!all.contains("Œuvray"), "names stay out of the report");

    let summary: serde_json::Value = serde_json::from_slice(&files.summary_json).unwrap();
    assert_eq!(summary["status"], "processed");
    assert_eq!(summary["file"], "export.csv");
    assert_eq!(summary["valid_invoices"], 2);
    assert_eq!(summary["rejected_invoices"], 1);
    assert_eq!(summary["rejected_lines"], 2);
    assert_eq!(summary["valid_total"], "26.80");
    assert_eq!(summary["rules"]["invalid_iban"], 1);
    assert_eq!(summary["encoding"], "utf-8");
    assert_eq!(summary["file_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn unreadable_file_has_a_one_line_report() {
    let missing = export(&[row("F1")]).replacen("Periode", "Mois", 1);
    let err = read(missing.as_bytes()).unwrap_err();
    let files = unreadable_file_report("export.csv", &err);
    let rows = csv_rows(&files.rejected_csv);
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[1][..2], ["export.csv", "1"]);
    assert_eq!(rows[1][5], "missing_columns");
    assert!(rows[1][6].contains("Periode"));
    let summary: serde_json::Value = serde_json::from_slice(&files.summary_json).unwrap();
    assert_eq!(summary["status"], "unreadable");
    assert_eq!(summary["kind"], "missing_columns");
    assert_eq!(
        report_file_names("FACT_202601.csv"),
        (
            "FACT_202601.csv.rejected.csv".to_string(),
            "FACT_202601.csv.summary.json".to_string()
        )
    );
}

#[test]
fn cells_a_spreadsheet_would_evaluate_are_written_as_text() {
    let mut bad = row("=HYPERLINK(\"http://x.invalid\")");
    bad.insert("CodePostal".into(), "944".into());
    let read = read(export(&[bad]).as_bytes()).unwrap();
    let mut report = RejectionReport::new();
    for r in &read.rejected {
        report.add(r);
    }
    let rows = csv_rows(&report.finish(&read.summary).rejected_csv);
    assert!(rows.len() > 1, "{rows:?}");
    for row in &rows[1..] {
        assert_eq!(row[3], "'=HYPERLINK(\"http://x.invalid\")", "{row:?}");
    }
    let unreadable = unreadable_file_report(
        "+cmd.csv",
        &encaisse_polyfac::error::FileError::NoHeader {
            file: "+cmd.csv".into(),
            reason: "empty".into(),
        },
    );
    let rows = csv_rows(&unreadable.rejected_csv);
    assert_eq!(rows[1][0], "'+cmd.csv");
    assert!(rows[1][6].starts_with("'+cmd.csv: "), "{:?}", rows[1]);
}
