//! `encaisse demo` as a newcomer runs it (the README's first command, after set-up): the
//! real binary, the real RabbitMQ, the shipped configuration and demo files, to its report.
//! Its own data directory and broker prefix, so it runs in parallel with other tests.

mod common;

use std::path::Path;
use std::process::Output;

use common::{BROKER_URL, command};
use serde_json::Value;

/// Runs `encaisse --config config/encaisse.toml demo` with these extra arguments.
fn demo(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/encaisse.toml");
    let mut all = vec!["--config", config.to_str().unwrap(), "demo"];
    all.extend_from_slice(args);
    let mut cmd = command(&all);
    // The demo has its own tokens when the variables are not set.
    cmd.env_remove("ENCAISSE_TOKEN_VITRY")
        .env_remove("ENCAISSE_TOKEN_IVRY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

async fn queue_exists(name: &str) -> bool {
    let conn = lapin::Connection::connect(BROKER_URL, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let exists = channel
        .queue_declare(
            name.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .is_ok();
    let _ = conn.close(200, "OK".into()).await;
    exists
}

/// `encaisse trace <key> --json` on the demo's data directory.
fn trace_json(data: &Path, key: &str) -> Value {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/encaisse.toml");
    let output = command(&["--config", config.to_str().unwrap(), "trace", key, "--json"])
        .env("ENCAISSE_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(output.status.success(), "trace {key}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn count(lines: &[Value], invoice: &str, statut: &str) -> usize {
    lines
        .iter()
        .filter(|l| l["invoice"] == invoice && l["statut"] == statut)
        .count()
}

#[tokio::test]
async fn the_demo_runs_end_to_end_to_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    // A previous run's leftovers are wiped, with a message.
    std::fs::create_dir_all(data.join("vitry/polyfac/outbox")).unwrap();
    std::fs::write(data.join("vitry/polyfac/outbox/old.csv"), "old").unwrap();
    std::fs::write(data.join("encaisse-demo.log"), "previous run").unwrap();
    let prefix = format!("test-demo-{}", std::process::id());
    let (code, out, err) = demo(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--broker-prefix",
            &prefix,
        ],
        &[],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("wiped (it held a previous demo run)"), "{out}");
    assert!(!data.join("vitry/polyfac/outbox/old.csv").exists());
    // One progress line per step, then the report.
    for step in 1..=13 {
        assert!(
            out.contains(&format!("[{step:>2}/13]")),
            "step {step}:\n{out}"
        );
    }
    assert!(out.contains("Result: every expectation held"), "{out}");

    let report: Value =
        serde_json::from_slice(&std::fs::read(data.join("demo-report.json")).unwrap()).unwrap();
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{report:#}"
    );
    // Invoices read and rejected, with their reasons.
    let exports = report["exports"].as_array().unwrap();
    let figures: Vec<(&str, u64, u64)> = exports
        .iter()
        .map(|e| {
            (
                e["tenant"].as_str().unwrap(),
                e["valid"].as_u64().unwrap(),
                e["rejected"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(figures, [("vitry", 6, 3), ("ivry", 8, 2), ("vitry", 1, 0)]);
    let rules: Vec<&str> = exports[0]["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["line_amount_mismatch", "invalid_iban", "unknown_product"]
    );

    // Files for the Trésorerie and the bank, valid against the official schemas.
    let files = report["files"].as_array().unwrap();
    let kinds: Vec<&str> = files.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "PES Aller",
            "PES Aller",
            "PES_ACQUIT_RETOUR",
            "PES_ACQUIT_RETOUR",
            "PES_ACQUIT_RETOUR",
            "pain.008",
            "pain.008"
        ]
    );
    assert!(
        files[0]["content"]
            .as_str()
            .unwrap()
            .starts_with("6 titres")
    );
    assert!(
        files[0]["content"]
            .as_str()
            .unwrap()
            .ends_with("240.25 EUR")
    );
    // The credit note's réduction titre (bordereau type 02).
    assert!(
        files[1]["path"]
            .as_str()
            .unwrap()
            .contains("_02_0000001.xml")
            && files[1]["content"]
                .as_str()
                .unwrap()
                .starts_with("1 titres in 1 bordereau(x), 6.70 EUR"),
        "{}",
        files[1]
    );
    assert!(
        files[5]["content"]
            .as_str()
            .unwrap()
            .starts_with("3 direct debit(s), 345.60 EUR")
    );
    assert!(
        files[6]["content"]
            .as_str()
            .unwrap()
            .starts_with("1 direct debit(s) (re-presentation)")
    );
    // Without the official schemas the demo says so for each file; CI requires them.
    let validated = encaisse::demo::files::Validation::schemas()
        .iter()
        .all(|schema| {
            encaisse_xml::specs::schema_or_skip(schema, "validation of the demo's files")
        });
    for f in files {
        let verdict = f["schema"].as_str().unwrap();
        if validated {
            assert_eq!(verdict, "valid", "{f}");
        } else {
            assert_eq!(verdict, "not validated", "{f}");
        }
        assert!(data.join(f["path"].as_str().unwrap()).is_file(), "{f}");
    }

    // Online payments: four through the web service, the titre through the classic URL.
    let channels: Vec<&str> = report["online"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["channel"].as_str().unwrap())
        .collect();
    assert_eq!(
        channels,
        [
            "web_service",
            "web_service",
            "web_service",
            "web_service",
            "classic"
        ]
    );

    // What Polyfac got back: 13 lines for Vitry (one the credit note's TITRE_REDUIT), 6 for
    // Ivry; the titre paid online and
    // reported again by Hélios is paid once; a titre is taken in charge only by the PES
    // Retour (the acquit before it writes no line).
    let lines = |tenant: &str| -> Vec<Value> {
        report["reglements"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["tenant"] == tenant)
            .flat_map(|f| f["lines"].as_array().unwrap().clone())
            .collect()
    };
    let (vitry, ivry) = (lines("vitry"), lines("ivry"));
    assert_eq!((vitry.len(), ivry.len()), (13, 6));
    assert_eq!(count(&vitry, "AV-000101", "TITRE_REDUIT"), 1);
    assert_eq!(count(&vitry, "PERI-000104", "PAYE"), 1);
    assert_eq!(count(&vitry, "PERI-000101", "PAYE"), 2);
    assert_eq!(count(&vitry, "PERI-000105", "TITRE_REJETE"), 1);
    assert_eq!(count(&vitry, "PERI-000105", "TITRE_PRIS_EN_CHARGE"), 0);
    assert_eq!(count(&vitry, "PERI-000104", "TITRE_PRIS_EN_CHARGE"), 1);
    assert_eq!(count(&ivry, "CRE-000201", "REJETE"), 1);
    let am04 = ivry.iter().find(|l| l["invoice"] == "CRE-000201").unwrap();
    assert!(
        am04["motif"].as_str().unwrap().starts_with("AM04"),
        "{am04}"
    );
    assert_eq!(count(&ivry, "CRE-000208", "PAYE"), 0);

    // The journal tells finance staff how each online payment was made (encaisse trace).
    let year = {
        use chrono::Datelike;
        chrono::Utc::now()
            .with_timezone(&chrono_tz::Europe::Paris)
            .year()
    };
    for (invoice, channel) in [
        ("ivry/{year}/CRE-000204", "CB"),
        ("ivry/{year}/CRE-000205", "PRELEVEMENT_UNIQUE"),
    ] {
        let key = invoice.replace("{year}", &year.to_string());
        let trace = trace_json(&data, &key);
        let steps = trace["steps"].as_array().unwrap();
        let paid = steps
            .iter()
            .find(|s| s["kind"] == "payfip_paid")
            .unwrap_or_else(|| panic!("{key}: no payfip_paid in {trace:#}"));
        assert_eq!(paid["detail"]["channel"], channel, "{key}");
        assert!(
            !paid["detail"]["reference"].as_str().unwrap().is_empty(),
            "{key}"
        );
    }
    // The titre paid through the classic URL: the unsigned result is only an announcement,
    // which the PES Retour émargement confirms; the payment itself comes from Hélios.
    let key = format!("vitry/{year}/PERI-000104");
    let trace = trace_json(&data, &key);
    let kinds: Vec<&str> = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["kind"].as_str())
        .collect();
    for kind in ["payfip_announced", "payfip_claim_confirmed"] {
        assert!(kinds.contains(&kind), "{key}: no {kind} in {kinds:?}");
    }
    assert!(!kinds.contains(&"payfip_paid"), "{key}: {kinds:?}");

    // The rejected titre's journal keeps what the acquit said (accepted by the guichet),
    // then the comptable's rejection.
    let trace = trace_json(&data, &format!("vitry/{year}/PERI-000105"));
    let titre_facts: Vec<(&str, &str)> = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "titre_accepted" || s["kind"] == "titre_rejected")
        .map(|s| {
            (
                s["kind"].as_str().unwrap(),
                s["detail"]["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        titre_facts,
        [("titre_accepted", "acquit"), ("titre_rejected", "retour")],
        "{trace:#}"
    );

    // Each planned direct debit names its pain.008: the first file, then the re-presentation.
    let trace = trace_json(&data, &format!("ivry/{year}/CRE-000201"));
    let planned: Vec<&str> = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "collection_planned")
        .map(|s| s["detail"]["file"].as_str().unwrap())
        .collect();
    let pain008: Vec<&str> = files[5..]
        .iter()
        .map(|f| f["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(planned, pain008, "{trace:#}");

    assert_eq!(report["parked"].as_array().unwrap().len(), 0);
    assert!(report["seconds"].as_f64().unwrap() < 180.0);
    // The demo removed its broker topology.
    assert!(!queue_exists(&format!("{prefix}.polyfac.export")).await);
}

#[test]
fn an_unreachable_broker_is_exit_69_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = demo(
        &["--data-dir", dir.path().join("d").to_str().unwrap()],
        &[("ENCAISSE_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")],
    );
    assert_eq!(code, 69, "{out}");
    assert!(out.contains("RabbitMQ is not reachable"), "{out}");
    assert!(out.contains("scripts/setup.sh"), "{out}");
}

#[test]
fn a_directory_that_is_not_a_demo_s_is_never_wiped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ledger.sqlite"), "a deployment's ledger").unwrap();
    let (code, out, _) = demo(&[], &[("ENCAISSE_DATA_DIR", dir.path().to_str().unwrap())]);
    assert_eq!(code, 74, "{out}");
    assert!(out.contains("not a demo data directory"), "{out}");
    assert!(dir.path().join("ledger.sqlite").exists());
}
