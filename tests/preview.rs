//! `encaisse preview` run as an integrator would, through the real binary, with the broker
//! unreachable: what it prints, its exit codes, and that it leaves nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::Datelike;
use common::{run_with, text, write_config};

/// A broker nobody listens on: `preview` must not need one.
const NO_BROKER: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

const HEADER: &str = "NumFacture;DateFacture;Exercice;Periode;Activite;CodeFamille;Civilite;Nom;Prenom;Adresse1;Adresse2;Adresse3;CodePostal;Ville;Email;CodeProduit;Libelle;Quantite;PrixUnitaire;MontantLigne;ModeReglement;RUM;DateSignatureMandat;SequencePrelevement;IBAN;BIC;TitulaireCompte;DateEcheance";

/// One crèche invoice of this year (paid online, collected by titre) with its number,
/// postal code and line amount.
fn creche_line(number: &str, postal_code: &str, amount: &str) -> String {
    let year = chrono::Utc::now().year();
    format!(
        "{number};02/01/{year};{year};1;CRECHE;FAM000456;M;N'Diaye;François;;3 bis avenue Paul Vaillant-Couturier;;{postal_code};Vitry-sur-Seine;;CRECHE_HEURE;Accueil crèche (heures);37,5;1,87;{amount};TIPI;;;;;;;28/02/{year}"
    )
}

fn export(lines: &[String]) -> String {
    let mut text = format!("{HEADER}\r\n");
    for line in lines {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text
}

/// Every file under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            found.push(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    found.sort();
    found
}

fn preview(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["preview"];
    all.extend_from_slice(args);
    run_with(config, &all)
}

#[test]
fn bad_invoices_are_named_with_their_rule_exit_65_and_nothing_is_left_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "unused", NO_BROKER);
    let file = tmp.path().join("CRECHE_2026.csv");
    std::fs::write(
        &file,
        export(&[
            creche_line("F2026-000102", "94400", "70,14"),
            creche_line("F2026-000103", "94400", "70,13"),
            creche_line("F2026-000104", "9440", "70,13"),
        ]),
    )
    .unwrap();
    let before = listing(tmp.path());

    let output = preview(
        &config,
        &["--tenant", "vitry", "--json", file.to_str().unwrap()],
    );
    assert_eq!(
        output.status.code(),
        Some(65),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["status"], "read");
    let published: Vec<&str> = doc["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    assert_eq!(published, ["F2026-000103"]);
    assert_eq!(doc["groups"][0]["budget"], "principal");
    assert_eq!(doc["groups"][0]["collection"], "titres");
    assert_eq!(doc["groups"][0]["total"], "70.13");
    let rejects: Vec<(String, u64, String, String, String)> = doc["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["number"].as_str().unwrap().to_string(),
                r["line"].as_u64().unwrap(),
                r["column"].as_str().unwrap().to_string(),
                r["field"].as_str().unwrap().to_string(),
                r["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejects,
        [
            (
                "F2026-000102".to_string(),
                2,
                "MontantLigne".to_string(),
                "line_amount".to_string(),
                "line_amount_mismatch".to_string()
            ),
            (
                "F2026-000104".to_string(),
                4,
                "CodePostal".to_string(),
                "postal_code".to_string(),
                "invalid_postal_code".to_string()
            ),
        ]
    );
    assert_eq!(doc["rejects"][0]["file"], "CRECHE_2026.csv");
    assert_eq!(doc["summary"]["valid_invoices"], 1);
    assert_eq!(doc["summary"]["rejected_invoices"], 2);

    // No ledger, no data directory, no report: the directory is as it was.
    assert_eq!(listing(tmp.path()), before);
    assert!(!tmp.path().join("data").exists());

    // The human form says the same.
    let output = preview(&config, &["--tenant", "vitry", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(65));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("would publish 1 invoice(s); rejected 2"),
        "{stdout}"
    );
    assert!(stdout.contains("line_amount_mismatch"), "{stdout}");
    assert!(stdout.contains("invalid_postal_code"), "{stdout}");
}

#[test]
fn a_valid_export_exits_0_and_an_existing_ledger_is_read_not_written() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "unused", NO_BROKER);
    let file = tmp.path().join("OK.csv");
    std::fs::write(
        &file,
        export(&[
            creche_line("F2026-000201", "94400", "70,13"),
            creche_line("F2026-000202", "94400", "70,13"),
        ]),
    )
    .unwrap();
    let output = preview(&config, &["--tenant", "vitry", file.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("principal  titres  2         140.26"),
        "{stdout}"
    );

    // A ledger where F2026-000202 was issued before with other content: the preview reads
    // it (the number is reused) and leaves it byte for byte as it was.
    let year = chrono::Utc::now().year();
    let ledger_path = tmp.path().join("data").join("ledger.sqlite");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = encaisse_ledger::Ledger::open(&ledger_path).unwrap();
        let key = format!("vitry/{year}/F2026-000202");
        ledger
            .write(move |c| {
                c.execute(
                    "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id, file,
                         first_line, last_line, budget, collection, total_cents, message_id, published_at)
                     VALUES ('vitry', ?1, 'another-content', 'run-earlier', 'EARLIER.csv', 2, 2,
                             'principal', 'titres', 7013, 'm', '2026-01-01T00:00:00Z')",
                    [key],
                )?;
                Ok(())
            })
            .await
            .unwrap();
    });
    drop(runtime);
    let wal = tmp.path().join("data").join("ledger.sqlite-wal");
    for _ in 0..100 {
        if !wal.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = listing(tmp.path());
    let bytes = std::fs::read(&ledger_path).unwrap();

    let output = preview(
        &config,
        &["--tenant", "vitry", "--json", file.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(65), "{}", text(&output.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["rejects"][0]["number"], "F2026-000202");
    assert_eq!(doc["rejects"][0]["rule"], "invoice_number_reused");
    assert_eq!(doc["rejects"][0]["stage"], "ingest");
    assert_eq!(listing(tmp.path()), before);
    assert_eq!(std::fs::read(&ledger_path).unwrap(), bytes);
}

#[test]
fn unreadable_or_missing_files_get_their_codes_and_hints() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "unused", NO_BROKER);
    let missing = tmp.path().join("NOPE.csv");
    let output = preview(&config, &["--tenant", "vitry", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(66));

    // Tab-separated, and a column renamed: the hint names the separator.
    let file = tmp.path().join("TABS.csv");
    let tabbed = export(&[creche_line("F2026-000301", "94400", "70,13")]).replace(';', "\t");
    std::fs::write(&file, tabbed).unwrap();
    let output = preview(&config, &["--tenant", "vitry", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(65));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("whole file would be rejected"), "{stdout}");
    assert!(stdout.contains("separator = \"\\t\""), "{stdout}");

    let file = tmp.path().join("RENAMED.csv");
    let renamed = export(&[creche_line("F2026-000302", "94400", "70,13")]).replacen(
        "NumFacture",
        "Num_Facture",
        1,
    );
    std::fs::write(&file, renamed).unwrap();
    let output = preview(
        &config,
        &["--tenant", "vitry", "--json", file.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(65));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["status"], "unreadable");
    assert_eq!(doc["kind"], "missing_columns");
    let hints = doc["hints"].to_string();
    assert!(
        hints.contains("invoice_number = \\\"Num_Facture\\\""),
        "{hints}"
    );

    let output = preview(&config, &["--tenant", "nowhere", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_credit_note_is_listed_against_its_original_not_refused_for_its_negative_total() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "unused", NO_BROKER);
    let year = chrono::Utc::now().year();
    let invoice = creche_line("F2026-000301", "94400", "70,13");
    // Two hours credited on F2026-000301: same columns, negative price and amount.
    let credit_note =
        creche_line("AV2026-000301", "94400", "-3,74").replace(";37,5;1,87;", ";2;-1,87;");
    let file = tmp.path().join("AVOIRS.csv");
    std::fs::write(
        &file,
        format!(
            "{HEADER};FactureOrigine;ExerciceOrigine\r\n{invoice};;\r\n{credit_note};F2026-000301;{year}\r\n"
        ),
    )
    .unwrap();
    let output = preview(
        &config,
        &["--tenant", "vitry", "--json", file.to_str().unwrap()],
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["rejects"], serde_json::json!([]), "{stdout}");
    assert_eq!(doc["invoices"][0]["number"], "F2026-000301");
    assert_eq!(doc["credit_notes"][0]["number"], "AV2026-000301");
    assert_eq!(doc["credit_notes"][0]["origin"], "F2026-000301");
    assert_eq!(doc["credit_notes"][0]["credited"], "3.74", "{stdout}");
}

/// The mandate columns of Ivry's direct debits (`RUM` to `TitulaireCompte`).
const IVRY_MANDATE: &str =
    "CRECHE-000789;30/08/2025;;FR1420041010050500013M02606;PSSTFRPPPAR;Zoé Lefèvre";

/// One invoice of Ivry (no ASAP; the crèche collected by its régie, with its own pain.008)
/// of this year: `activity`, `product`, payment `mode`, due on `due` (`dd/mm/yyyy`).
fn ivry_line(number: &str, activity: &str, product: &str, mode: &str, due: &str) -> String {
    let mandate = if mode == "PRELEVEMENT" {
        IVRY_MANDATE
    } else {
        ";;;;;"
    };
    ivry_line_with(number, activity, product, mode, mandate, due)
}

/// [`ivry_line`] with its own mandate columns.
fn ivry_line_with(
    number: &str,
    activity: &str,
    product: &str,
    mode: &str,
    mandate: &str,
    due: &str,
) -> String {
    let year = chrono::Utc::now().year();
    format!(
        "{number};02/01/{year};{year};1;{activity};FAM000789;MME;Lefèvre;Zoé;;45 boulevard de Stalingrad;;94200;Ivry-sur-Seine;;{product};Prestation;10;3,35;33,50;{mode};{mandate};{due}"
    )
}

/// The rejects of a preview document, as (number, stage, field, rule).
fn rejects_of(doc: &serde_json::Value) -> Vec<(String, String, String, String)> {
    doc["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("number"), s("stage"), s("field"), s("rule"))
        })
        .collect()
}

fn preview_json(config: &Path, tenant: &str, file: &Path) -> serde_json::Value {
    let output = preview(
        config,
        &["--tenant", tenant, "--json", file.to_str().unwrap()],
    );
    assert_eq!(
        output.status.code(),
        Some(65),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `helios.titres` and `sepa.batch` refuse by their own planning, which the preview runs on
/// its in-memory ledger: a TIP titre without ASAP, a direct debit due before the EPC lead
/// time; the invoice beside them passes.
#[test]
fn the_collection_paths_refusals_are_named_by_the_daemons_own_planning() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "unused", NO_BROKER);
    let year = chrono::Utc::now().year();
    let today = chrono::Utc::now()
        .date_naive()
        .format("%d/%m/%Y")
        .to_string();
    let file = tmp.path().join("IVRY.csv");
    std::fs::write(
        &file,
        export(&[
            ivry_line(
                "I2026-000001",
                "PERISCOLAIRE",
                "CANTINE",
                "TIPI",
                &format!("28/02/{year}"),
            ),
            ivry_line(
                "I2026-000002",
                "PERISCOLAIRE",
                "CANTINE",
                "TIP",
                &format!("28/02/{year}"),
            ),
            ivry_line(
                "I2026-000003",
                "CRECHE",
                "CRECHE_HEURE",
                "PRELEVEMENT",
                &today,
            ),
        ]),
    )
    .unwrap();
    let doc = preview_json(&config, "ivry", &file);
    let published: Vec<&str> = doc["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    assert_eq!(published, ["I2026-000001"], "{doc:#}");
    let rejects = rejects_of(&doc);
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    let (number, stage, field, rule) = &rejects[0];
    assert_eq!(
        (number.as_str(), stage.as_str(), rule.as_str()),
        ("I2026-000002", "helios", "LOCAL-SETUP"),
        "a TIP titre needs ASAP: {rejects:?}"
    );
    assert!(!field.is_empty());
    assert_eq!(
        rejects[1],
        (
            "I2026-000003".to_string(),
            "sepa".to_string(),
            "collection".to_string(),
            "LOCAL-RULES".to_string()
        ),
        "a debit due today is before the EPC lead time"
    );
    assert!(
        doc["rejects"][1]["message"]
            .as_str()
            .unwrap()
            .contains("earliest due date"),
        "{doc:#}"
    );
}

/// Vitry's configuration in `dir`, sending ORMC bordereaux it prints itself (an ORMC article
/// printed by the DGFiP needs the invoice's PDF).
fn ormc_config(dir: &Path) -> PathBuf {
    let config = write_config(dir, "unused", NO_BROKER);
    let text = std::fs::read_to_string(&config).unwrap();
    let ordinaire = "bordereau_kind = \"ordinaire\"";
    assert!(text.contains(ordinaire), "the example's shape changed");
    let asap = "mode = \"tip_and_online\"";
    assert!(text.contains(asap), "the example's shape changed");
    std::fs::write(
        &config,
        text.replacen(ordinaire, "bordereau_kind = \"ormc\"", 1)
            .replacen(asap, "mode = \"none\"", 1),
    )
    .unwrap();
    config
}

/// An ORMC article number (`NumDette`, from the invoice's digits) taken twice in one run is
/// refused by `helios.titres`' own check, which the preview runs.
#[test]
fn an_ormc_debt_number_taken_twice_is_refused_in_the_preview() {
    let tmp = tempfile::tempdir().unwrap();
    let config = ormc_config(tmp.path());
    let file = tmp.path().join("ORMC.csv");
    std::fs::write(
        &file,
        export(&[
            creche_line("F2026-000401", "94400", "70,13"),
            creche_line("G2026-000401", "94400", "70,13"),
        ]),
    )
    .unwrap();
    let doc = preview_json(&config, "vitry", &file);
    assert_eq!(doc["invoices"][0]["number"], "F2026-000401", "{doc:#}");
    assert_eq!(
        rejects_of(&doc),
        [(
            "G2026-000401".to_string(),
            "helios".to_string(),
            "NumDette".to_string(),
            "LOCAL-RULES".to_string()
        )]
    );
    assert!(
        doc["rejects"][0]["message"]
            .as_str()
            .unwrap()
            .contains("shared with another invoice of the same run"),
        "{doc:#}"
    );
}

/// A one-off mandate carries one collection: `sepa.batch`'s planning refuses the second
/// (`LOCAL-MANDATE`), and so does the preview, which plans on its in-memory ledger.
#[test]
fn a_one_off_mandate_used_twice_is_refused_by_the_debit_planning() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "unused", NO_BROKER);
    let month = |n: u64| {
        (chrono::Utc::now().date_naive() + chrono::Days::new(n * 30))
            .format("%d/%m/%Y")
            .to_string()
    };
    let one_off = IVRY_MANDATE.replacen(";;", ";OOFF;", 1);
    let file = tmp.path().join("OOFF.csv");
    std::fs::write(
        &file,
        export(&[
            ivry_line_with(
                "I2026-000011",
                "CRECHE",
                "CRECHE_HEURE",
                "PRELEVEMENT",
                &one_off,
                &month(1),
            ),
            ivry_line_with(
                "I2026-000012",
                "CRECHE",
                "CRECHE_HEURE",
                "PRELEVEMENT",
                &one_off,
                &month(2),
            ),
        ]),
    )
    .unwrap();
    let doc = preview_json(&config, "ivry", &file);
    assert_eq!(doc["invoices"][0]["number"], "I2026-000011", "{doc:#}");
    assert_eq!(
        rejects_of(&doc),
        [(
            "I2026-000012".to_string(),
            "sepa".to_string(),
            "mandate".to_string(),
            "LOCAL-MANDATE".to_string()
        )]
    );
    assert!(
        doc["rejects"][0]["message"]
            .as_str()
            .unwrap()
            .contains("one-off mandate already used"),
        "{doc:#}"
    );
}

/// An ORMC article number already sent in the exercice (a titre in the existing ledger) is
/// refused as `helios.titres` would: the preview copies the tenant's titres read-only.
#[test]
fn an_ormc_debt_number_already_in_the_ledger_is_refused_in_the_preview() {
    let tmp = tempfile::tempdir().unwrap();
    let config = ormc_config(tmp.path());
    let year = chrono::Utc::now().year();
    let ledger_path = tmp.path().join("data").join("ledger.sqlite");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ledger = encaisse_ledger::Ledger::open(&ledger_path).unwrap();
        ledger
            .write(move |c| {
                c.execute(
                    "INSERT INTO helios_titre (tenant, cod_col, cod_bud, exercice, id_pce, typ_bord,
                         id_bord, position, invoice_key, invoice_exercice, invoice_number, budget,
                         payment_mode, num_dette, per, total_cents)
                     VALUES ('vitry', '081', '00', ?1, 7, '06', 1, 0, ?2, ?1, 'E2026-000401',
                             'principal', 'TIPI', '2026000401', '1', 7013)",
                    (year, format!("vitry/{year}/E2026-000401")),
                )?;
                Ok(())
            })
            .await
            .unwrap();
    });
    drop(runtime);
    let file = tmp.path().join("ORMC.csv");
    std::fs::write(
        &file,
        export(&[creche_line("F2026-000401", "94400", "70,13")]),
    )
    .unwrap();
    let doc = preview_json(&config, "vitry", &file);
    assert_eq!(
        rejects_of(&doc),
        [(
            "F2026-000401".to_string(),
            "helios".to_string(),
            "NumDette".to_string(),
            "LOCAL-RULES".to_string()
        )]
    );
    assert!(
        doc["rejects"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already the article of invoice"),
        "{doc:#}"
    );
}
