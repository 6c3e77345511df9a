//! Two sources for one commune, through the real daemon (`encaisse run`), the real stages and
//! the shared RabbitMQ (its own prefix and data directory): Vitry receives Polyfac exports in
//! `polyfac/inbox` and a crèche tool's exports (`extra_sources = ["creche"]`, a mapping) in
//! `sources/creche/inbox`. Every invoice of both files ends in a PES Aller titre (valid
//! against the official XSD when it is present), and a payment of one invoice of each source
//! comes back to that source only: Polyfac's in `polyfac/outbox` in the Polyfac dialect, the
//! crèche tool's in `sources/creche/outbox` in its own columns, separator, decimals, dates
//! and line endings. An invoice of the crèche file rejected at validation is traced by its
//! number and by its file and line.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    BROKER_URL, Daemon, Topology, command, publish_event, unique_prefix, wait_for_status,
    write_config,
};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);
const STOP: Duration = Duration::from_secs(40);

/// The crèche tool's mapping as shipped with the samples, under `[sources.creche]`, with
/// its own REGLEMENTS dialect (column names, LF).
fn creche_source() -> String {
    let mapping = std::fs::read_to_string(sample("creche-mapping.toml")).unwrap();
    let mut text = String::from("\n[sources.creche]\nline_ending = \"lf\"\n");
    for line in mapping.lines() {
        match line.strip_prefix('[') {
            Some(table) => text.push_str(&format!("[sources.creche.{table}\n")),
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text.push_str(
        "[sources.creche.reglements_columns]\nNumFacture = \"facture\"\nMontant = \"montant\"\n",
    );
    text
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("adapters/polyfac/samples")
        .join(name)
}

/// The example configuration where Vitry also receives the crèche tool, with inboxes and
/// REGLEMENTS flushed quickly.
fn config(dir: &Path, prefix: &str) -> PathBuf {
    let path = write_config(dir, prefix, BROKER_URL);
    let text = std::fs::read_to_string(&path).unwrap();
    let vitry = "source = \"polyfac\"\n";
    assert!(text.contains(vitry), "the example's shape changed");
    let mut text = text.replacen(
        vitry,
        "source = \"polyfac\"\nextra_sources = [\"creche\"]\n",
        1,
    );
    text.push_str(
        "\n[polyfac]\ninbox_poll_interval_ms = 200\ninbox_settle_ms = 0\nflush_interval_secs = 1\n",
    );
    text.push_str(&creche_source());
    std::fs::write(&path, text).unwrap();
    path
}

fn cli_json(config: &Path, args: &[&str]) -> Option<Value> {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = command(&all).output().unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// Polls `check` every 300 ms until it returns `Some`, within `timeout`; `None` when it
/// did not (the caller says what it saw).
fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn wait_for<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    poll(timeout, check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// `bytes` with every `from` replaced by `to`.
fn replace_bytes(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Drops `bytes` into `inbox` as `name`, renamed in whole (the inbox settles at once).
fn drop_file(inbox: &Path, name: &str, bytes: &[u8]) {
    let tmp = inbox.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

/// The visible files of `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                })
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn payment(number: &str, amount: &str, id: &str) -> Value {
    serde_json::json!({
        "schema_version": 1,
        "invoice": {"tenant": "vitry", "exercice": 2026, "number": number},
        "payment_id": format!("payfip:{id}"),
        "amount": amount,
        "channel": "CB",
        "source": "payfip",
        "paid_at": "2026-03-02T10:15:00+01:00",
        "reference": format!("numauto {id}"),
    })
}

/// The one REGLEMENTS file of `outbox` that names `number`, as text.
fn reglements_naming(outbox: &Path, number: &str) -> Option<String> {
    files(outbox)
        .into_iter()
        .map(|p| String::from_utf8(std::fs::read(p).unwrap()).unwrap())
        .find(|text| text.contains(number))
}

#[tokio::test]
async fn a_commune_with_two_sources_gets_both_files_titred_and_each_payment_back_to_its_source() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("two-sources");
    let _cleanup = Topology(prefix.clone());
    let config = config(tmp.path(), &prefix);
    let check = command(&["--config", config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;

    let data = tmp.path().join("data/vitry");
    let creche_inbox = data.join("sources/creche/inbox");
    wait_for("the crèche inbox", START, || {
        creche_inbox.is_dir().then_some(())
    });
    // The samples' due dates moved to a month from now: a debit date must follow the
    // bordereau's (Hélios' `debit.min_lead_days`).
    let due = chrono::Local::now().date_naive() + chrono::Days::new(30);
    let french = due.format("%d/%m/%Y").to_string();
    // The sample is Windows-1252: its bytes are kept, only the ASCII dates change.
    let mut polyfac = std::fs::read(sample("polyfac-2-invoices.csv")).unwrap();
    for old in ["10/02/2026", "28/02/2026"] {
        polyfac = replace_bytes(&polyfac, old.as_bytes(), french.as_bytes());
    }
    drop_file(&data.join("polyfac/inbox"), "FACT_202601.csv", &polyfac);
    let creche = std::fs::read_to_string(sample("creche-2-invoices.csv"))
        .unwrap()
        .replace("2026-02-10", &due.to_string())
        .replace("2026-02-28", &due.to_string());
    // A third crèche invoice whose line amount is wrong (line 5): rejected at validation.
    let bad = creche
        .lines()
        .find(|l| l.starts_with("CR-2026-0008,"))
        .unwrap()
        .replace("CR-2026-0008,", "CR-2026-0009,")
        .replace(",224.40,224.40,", ",224.41,224.41,");
    let creche = format!("{}\n{bad}\n", creche.trim_end_matches('\n'));
    drop_file(&creche_inbox, "creche-2026-01.csv", creche.as_bytes());

    // Every invoice of both files is titred.
    for number in [
        "F2026-000101",
        "F2026-000102",
        "CR-2026-0007",
        "CR-2026-0008",
    ] {
        let mut last = Value::Null;
        let trace = poll(START, || {
            let t = cli_json(&config, &["trace", number, "--json"])?;
            let titred = t["steps"]
                .as_array()?
                .iter()
                .any(|s| s["kind"] == "titre_emitted");
            last = t.clone();
            titred.then_some(t)
        })
        .unwrap_or_else(|| panic!("no titre for {number}: {last:#}"));
        let issued = trace["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == "issued")
            .cloned()
            .unwrap_or_else(|| panic!("{number} issued: {trace:#}"));
        let file = if number.starts_with("CR-") {
            "creche-2026-01.csv"
        } else {
            "FACT_202601.csv"
        };
        assert_eq!(issued["detail"]["file"], file, "{number}: {issued:#}");
    }
    let pes = files(&data.join("helios/outbox"));
    assert!(pes.len() >= 2, "a PES Aller per run and budget: {pes:?}");
    for file in &pes {
        if let Err(e) =
            encaisse_xml::specs::validate_file_or_skip(&encaisse_helios::schemas::pes_aller(), file)
        {
            panic!("{} is not a valid PES Aller: {e}", file.display());
        }
    }

    // One payment per source comes back, each to its own source in its own dialect.
    publish_event::<encaisse_schemas::PaymentReceived>(
        &prefix,
        &payment("F2026-000101", "62.95", "PF-1"),
    )
    .await;
    publish_event::<encaisse_schemas::PaymentReceived>(
        &prefix,
        &payment("CR-2026-0007", "100.33", "CR-1"),
    )
    .await;
    let polyfac_outbox = data.join("polyfac/outbox");
    let creche_outbox = data.join("sources/creche/outbox");
    let polyfac = wait_for("Polyfac's REGLEMENTS", START, || {
        reglements_naming(&polyfac_outbox, "F2026-000101")
    });
    let creche = wait_for("the crèche tool's REGLEMENTS", START, || {
        reglements_naming(&creche_outbox, "CR-2026-0007")
    });
    assert!(
        polyfac.starts_with(
            "NumFacture;CodeFamille;DateEvenement;Montant;Canal;Statut;Reference;Motif;Frais\r\n"
        ),
        "{polyfac}"
    );
    assert!(
        polyfac.contains("F2026-000101;FAM000123;02/03/2026;62,95;CB;PAYE;numauto PF-1;"),
        "{polyfac}"
    );
    assert!(
        creche.starts_with(
            "facture,CodeFamille,DateEvenement,montant,Canal,Statut,Reference,Motif,Frais\n"
        ),
        "{creche}"
    );
    assert!(
        creche.contains("CR-2026-0007,FAM000456,2026-03-02,100.33,CB,PAYE,numauto CR-1,"),
        "{creche}"
    );
    // Neither source hears of the other's invoices.
    for text in files(&polyfac_outbox)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
    {
        assert!(!text.contains("CR-2026-"), "{text}");
    }
    for text in files(&creche_outbox)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
    {
        assert!(!text.contains("F2026-"), "{text}");
    }

    // The rejected invoice is traced (exit 0) by its number, and by its file and line.
    let trace = wait_for("the rejected crèche invoice in the ledger", START, || {
        cli_json(&config, &["trace", "CR-2026-0009", "--json"])
    });
    let rejected = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "rejected")
        .cloned()
        .unwrap_or_else(|| panic!("{trace:#}"));
    assert_eq!(rejected["detail"]["file"], "creche-2026-01.csv");
    assert_eq!(rejected["detail"]["rule"], "line_amount_mismatch");
    let by_line = cli_json(
        &config,
        &[
            "trace",
            "--file",
            "creche-2026-01.csv",
            "--line",
            "5",
            "--json",
        ],
    )
    .expect("trace --file exits 0");
    assert_eq!(by_line[0]["number"], "CR-2026-0009", "{by_line:#}");
    assert_eq!(by_line[0]["application"], "creche");
    assert_eq!(daemon.terminate(STOP).code(), Some(0));
}
