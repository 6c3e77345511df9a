//! `encaisse trace --file NAME [--line N]` through the real binary, on a ledger holding the
//! rejects of an export: an invoice without number (no journal can key it) is found by its
//! file and line, numbered ones beside it; an unknown file or line exits 66.

mod common;

use common::{run_with, text, write_config};

/// A broker nobody listens on: `trace` reads the ledger only.
const NO_BROKER: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

#[test]
fn rejects_without_number_are_found_by_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "unused", NO_BROKER);
    let ledger_path = tmp.path().join("data").join("ledger.sqlite");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = encaisse_ledger::Ledger::open(&ledger_path).unwrap();
        ledger
            .transact(|tx| {
                for (first, last, number, rule, column) in [
                    (2, 2, "", "missing_field", "NumFacture"),
                    (3, 5, "F2026-000101", "line_amount_mismatch", "MontantLigne"),
                ] {
                    encaisse_pipelines::stages::polyfac::ingest_store::record_reject(
                        tx,
                        &encaisse_pipelines::stages::polyfac::ingest_store::FileReject {
                            tenant: "vitry".into(),
                            run_id: "run-1".into(),
                            file: "FACT_202601.csv".into(),
                            application: "polyfac".into(),
                            lines: (first, last),
                            number: number.into(),
                            exercice: (!number.is_empty()).then_some(2026),
                            rule: rule.into(),
                            column: column.into(),
                            message: format!("{column} is wrong"),
                            rules: rule.into(),
                            recorded_at: "2026-02-01T08:00:00.000Z".into(),
                        },
                    )?;
                }
                Ok::<_, encaisse_ledger::LedgerError>(())
            })
            .await
            .unwrap();
    });
    drop(runtime);

    let output = run_with(&config, &["trace", "--file", "FACT_202601.csv"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(stdout.contains("(no number)"), "{stdout}");
    assert!(stdout.contains("2026/F2026-000101"), "{stdout}");
    assert!(stdout.contains("3–5"), "{stdout}");

    let output = run_with(
        &config,
        &[
            "trace",
            "--file",
            "FACT_202601.csv",
            "--line",
            "2",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows:#}");
    assert_eq!(rows[0]["number"], "");
    assert_eq!(rows[0]["rule"], "missing_field");
    assert_eq!(rows[0]["lines"], serde_json::json!([2, 2]));

    let output = run_with(
        &config,
        &["trace", "--file", "FACT_202601.csv", "--line", "9"],
    );
    assert_eq!(output.status.code(), Some(66), "{}", text(&output.stdout));
    let output = run_with(&config, &["trace", "--file", "NOPE.csv"]);
    assert_eq!(output.status.code(), Some(66));
    // An invoice or a file, not both.
    let output = run_with(&config, &["trace", "F1", "--file", "NOPE.csv"]);
    assert_eq!(output.status.code(), Some(2));
}
