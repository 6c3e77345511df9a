//! `encaisse mandates import` through the real binary: a mandate migrated from another tool,
//! seen as lapsed before the import, goes out `RCUR` after it (read by `preview`, which
//! decides with the ingest's own code), the import is idempotent and `trace` shows it.

mod common;

use std::path::Path;

use chrono::{Datelike, Duration};
use common::{run_with as run, text, write_config};

const NO_BROKER: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

const HEADER: &str = "NumFacture;DateFacture;Exercice;Periode;Activite;CodeFamille;Civilite;Nom;Prenom;Adresse1;Adresse2;Adresse3;CodePostal;Ville;Email;CodeProduit;Libelle;Quantite;PrixUnitaire;MontantLigne;ModeReglement;RUM;DateSignatureMandat;SequencePrelevement;IBAN;BIC;TitulaireCompte;DateEcheance";

const RUM: &str = "OLD-TOOL-000789";

#[test]
fn imported_mandates_go_out_rcur_idempotently_and_are_traced() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "unused", NO_BROKER);
    let today = chrono::Utc::now().date_naive();
    let fmt = |d: chrono::NaiveDate| d.format("%d/%m/%Y").to_string();
    // A crèche debit of Ivry's régie on a mandate signed in 2021 by the previous tool,
    // without sequence: the ledger must decide it.
    let export = tmp.path().join("CRECHE.csv");
    std::fs::write(
        &export,
        format!(
            "{HEADER}\r\nF2026-000900;{issued};{year};1;CRECHE;FAM000789;MME;Lefèvre;Zoé;;45 boulevard de Stalingrad;;94200;Ivry-sur-Seine;;CRECHE_HEURE;Accueil crèche (heures);120;1,87;224,40;PRELEVEMENT;{RUM};01/03/2021;;FR1420041010050500013M02606;AGRIFRPP882;Zoé Lefèvre;{due}\r\n",
            issued = fmt(today),
            year = today.year(),
            due = fmt(today + Duration::days(30)),
        ),
    )
    .unwrap();
    let preview = |config: &Path| {
        run(
            config,
            &[
                "preview",
                "--tenant",
                "ivry",
                "--json",
                export.to_str().unwrap(),
            ],
        )
    };

    // Before the import: never used since 2021, the mandate looks lapsed.
    let output = preview(&config);
    assert_eq!(output.status.code(), Some(65), "{}", text(&output.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["rejects"][0]["rule"], "mandate_unusable", "{doc}");

    // The previous tool's history: last collected two months ago, RCUR; and a bad row.
    let mandates = tmp.path().join("mandates.csv");
    std::fs::write(
        &mandates,
        format!(
            "rum;iban;bic;signed_on;last_collection_on;sequence;one_off\n\
             {RUM};FR1420041010050500013M02606;AGRIFRPP882;2021-03-01;{last};RCUR;non\n\
             OLD-TOOL-000790;FR00BAD;;2021-03-01;;;\n",
            last = today - Duration::days(60),
        ),
    )
    .unwrap();
    for _ in 0..2 {
        let output = run(
            &config,
            &[
                "mandates",
                "import",
                "--tenant",
                "ivry",
                mandates.to_str().unwrap(),
            ],
        );
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(65), "{stderr}");
        assert!(stderr.contains("line 3, column iban:"), "{stderr}");
        assert!(!stderr.contains("FR00BAD"), "no IBAN in messages: {stderr}");
        assert!(
            text(&output.stdout)
                .contains("1 mandate(s) imported for tenant ivry, 1 row(s) refused")
        );
    }

    // After it: the debit continues the mandate, RCUR.
    let output = preview(&config);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["invoices"][0]["number"], "F2026-000900");
    assert_eq!(doc["invoices"][0]["sequence"], "RCUR", "{doc}");
    assert_eq!(doc["invoices"][0]["collection"], "regie");

    // Visible in trace, once although imported twice.
    let key = format!("mandate/{RUM}");
    let output = run(&config, &["trace", "--tenant", "ivry", &key]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        stdout.matches("Mandate history imported").count(),
        1,
        "{stdout}"
    );
    assert!(!stdout.contains("FR1420041010050500013M02606"), "{stdout}");
}
