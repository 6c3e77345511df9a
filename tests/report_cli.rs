//! `encaisse report reconciliation`: the month's figures from the ledger of a configuration,
//! as a table or CSV, with the usual exit codes.

mod common;

use std::process::Output;

use common::{BROKER_URL, command, write_config};
use encaisse_ledger::Ledger;

fn run(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec![
        "--config",
        config.to_str().unwrap(),
        "report",
        "reconciliation",
    ];
    all.extend_from_slice(args);
    let Output {
        status,
        stdout,
        stderr,
    } = command(&all).output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_month_as_a_table_and_as_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "report-cli", BROKER_URL);
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let ledger = Ledger::open(tmp.path().join("data/ledger.sqlite")).unwrap();
    ledger
        .write(|c| {
            c.execute_batch(
                "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id, file,
                     first_line, last_line, budget, collection, total_cents, message_id, published_at)
                 VALUES ('vitry', 'vitry/2026/A1', 'h', 'r', 'f', 2, 2, 'principal', 'titres', 7013, 'm1', '2026-03-05T08:00:00Z'),
                        ('vitry', 'vitry/2026/A2', 'h', 'r', 'f', 3, 3, 'principal', 'titres', 3350, 'm2', '2026-03-07T08:00:00Z');
                 INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents, channel,
                     source, reference, seen_at)
                 VALUES ('vitry', 'payfip:1', 'vitry/2026/A1', 7013, 'CB', 'payfip', 'x', '2026-03-06T10:00:00Z');",
            )?;
            Ok(())
        })
        .await
        .unwrap();
    drop(ledger);

    let (code, csv, err) = run(
        &config,
        &["--tenant", "vitry", "--month", "2026-03", "--csv"],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("tenant,month,budget,activity,invoices,invoiced,collected_card,"));
    // Invoices recorded without their activity: an empty activity.
    assert!(lines[1].starts_with("vitry,2026-03,principal,,2,"), "{csv}");
    assert_eq!(
        lines[2],
        "vitry,2026-03,TOTAL,,2,103.63,70.13,0.00,0.00,0.00,0.00,0.00,70.13,0.00,0,0.00,0.00,33.50"
    );
    let (code, table, _) = run(&config, &["--tenant", "vitry", "--month", "2026-03"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("TOTAL") && table.contains("103.63") && table.contains("33.50"),
        "{table}"
    );

    let (code, _, err) = run(&config, &["--tenant", "vitry", "--month", "2026-13"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("YYYY-MM"), "{err}");
    let (code, _, err) = run(&config, &["--tenant", "nowhere", "--month", "2026-03"]);
    assert_eq!(code, 66, "{err}");
}
