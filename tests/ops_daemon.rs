//! Ops tooling as ops use it: the real daemon (`encaisse run`) with the real stages and the
//! real RabbitMQ, and the real CLI (`encaisse dlq`, `encaisse trace`) on its ledger.
//!
//! - A source publishes an invoice for Ivry while Ivry is missing from the configuration:
//!   `polyfac.export` parks it (`unknown_tenant`); ops see it in `dlq list` (and in
//!   `/metrics`), inspect it, stop the daemon, fix the configuration, replay (no daemon
//!   needed), restart: it is handled exactly once, and a second replay does nothing.
//! - A Polyfac export for Vitry goes through the real stages to a PES Aller titre, then a
//!   payment arrives: `trace` shows export, titre, file and payment in time order.
//! - `/readyz` turns 503 while the broker is unreachable, and 200 again once it is back.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{
    BROKER_URL, Daemon, Topology, command, get, publish_event, unique_prefix, wait_for_status,
    write_config,
};
use serde_json::Value;

const START: Duration = Duration::from_secs(60);
const STOP: Duration = Duration::from_secs(40);
const INVOICE: &str = "vitry/2026/F2026-000102";
const IVRY_INVOICE: &str = "ivry/2026/I2026-000001";

/// Runs the CLI; returns exit code, standard output, standard error.
fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--config", config.to_str().unwrap()];
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

fn cli_json(config: &Path, args: &[&str]) -> Value {
    let (code, out, err) = cli(config, args);
    assert_eq!(code, 0, "encaisse {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Polls `check` every 300 ms until it returns `Some`, within `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Where the second tenant (Ivry) starts in the example configuration.
fn second_tenant(text: &str) -> usize {
    text.match_indices("[[tenants]]").nth(1).unwrap().0
}

/// The configuration without Ivry, next to it.
fn without_ivry(config: &Path) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let path = config.with_file_name("encaisse-vitry-only.toml");
    std::fs::write(&path, &text[..second_tenant(&text)]).unwrap();
    path
}

/// The payment `payfip.confirm` publishes once the gateway says the invoice is paid.
fn payment() -> Value {
    serde_json::json!({
        "schema_version": 1,
        "invoice": {"tenant": "vitry", "exercice": 2026, "number": "F2026-000102"},
        "payment_id": "payfip:OPS-TEST-1",
        "amount": "70.13",
        "channel": "CB",
        "source": "payfip",
        "paid_at": "2026-03-02T10:15:00+01:00",
        "reference": "numauto 123456",
    })
}

/// An invoice of Ivry as a source application publishes it (docs/adding-a-source.md).
fn ivry_invoice() -> Value {
    serde_json::json!({
        "schema_version": 1,
        "invoice": {"tenant": "ivry", "exercice": 2026, "number": "I2026-000001"},
        "source": {"application": "kiosque-ivry", "run_id": "run-ops-test", "file": "IVRY_202601.csv", "lines": [2, 2]},
        "content_hash": "0f3c9a",
        "issued_on": "2026-01-31",
        "period": 1,
        "activity": "PERISCOLAIRE",
        "budget": "principal",
        "collection": "titres",
        "family_code": "FAM000789",
        "payer": {
            "civilite": "M", "last_name": "Martin-Garnier", "first_name": "Paul",
            "address": {"street": "5 rue Danton", "postal_code": "94200", "city": "Ivry-sur-Seine"},
            "email": "paul.martin@example.org"
        },
        "lines": [{"number": 1, "product": "CANTINE", "cod_prod_loc": "CANT", "nature": "7067",
                   "label": "Restauration scolaire", "quantity": "10", "unit_price": "3.35", "amount": "33.50"}],
        "total": "33.50",
        "due_date": "2026-02-28",
        "payment_mode": "TIPI",
        "online_payable": true
    })
}

fn kinds(trace: &Value) -> Vec<String> {
    trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_string())
        .collect()
}

fn position(kinds: &[String], kind: &str) -> usize {
    kinds
        .iter()
        .position(|k| k == kind)
        .unwrap_or_else(|| panic!("no {kind} step in {kinds:?}"))
}

fn handled_by(trace: &Value, stage: &str) -> usize {
    trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "handled" && s["stage"] == stage)
        .count()
}

#[tokio::test]
async fn a_parked_message_is_listed_then_replayed_once_after_the_configuration_is_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("ops-dlq");
    let _cleanup = Topology(prefix.clone());
    let full = write_config(tmp.path(), &prefix, BROKER_URL);
    let vitry_only = without_ivry(&full);

    // Before the daemon ever ran: no ledger, said so (74).
    let (code, _, err) = cli(&vitry_only, &["dlq", "list"]);
    assert_eq!(code, 74, "{err}");
    assert!(err.contains("no ledger"), "{err}");

    let mut daemon = Daemon::start(&vitry_only, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;
    publish_event::<encaisse_schemas::InvoiceIssued>(&prefix, &ivry_invoice()).await;

    let rows = wait_for("the parked invoice", START, || {
        let rows = cli_json(
            &vitry_only,
            &["dlq", "list", "--stage", "polyfac.export", "--json"],
        );
        (!rows.as_array().unwrap().is_empty()).then_some(rows)
    });
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    for field in [
        "id",
        "tenant",
        "stage",
        "error_class",
        "error",
        "attempts",
        "parked_at",
    ] {
        assert!(!row[field].is_null(), "{field} missing in {row}");
    }
    assert_eq!(row["tenant"], "ivry");
    assert_eq!(row["stage"], "polyfac.export");
    assert_eq!(row["error_class"], "permanent");
    assert_eq!(row["error_kind"], "unknown_tenant");
    assert_eq!(row["error"], "tenant ivry has no Polyfac settings");
    assert_eq!(row["attempts"], 1);
    assert_eq!(row["invoice"], IVRY_INVOICE);
    let id = row["id"].as_i64().unwrap().to_string();
    let (code, table, _) = cli(&vitry_only, &["dlq", "list"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("unknown_tenant") && table.contains("tenant ivry has no Polyfac settings"),
        "{table}"
    );
    let groups = cli_json(&vitry_only, &["dlq", "list", "--group", "--json"]);
    let group = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "polyfac.export/unknown_tenant")
        .unwrap_or_else(|| panic!("{groups:#}"));
    assert_eq!(group["count"], 1);
    assert!(
        cli_json(&vitry_only, &["dlq", "list", "--tenant", "vitry", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        cli_json(
            &vitry_only,
            &["dlq", "list", "--class", "transient", "--json"]
        )
        .as_array()
        .unwrap()
        .is_empty()
    );
    let all = cli_json(&vitry_only, &["dlq", "list", "--json"]);
    let recent = cli_json(&vitry_only, &["dlq", "list", "--since", "1h", "--json"]);
    assert_eq!(recent, all, "everything was parked within the hour");
    let future = cli_json(
        &vitry_only,
        &["dlq", "list", "--since", "2099-01-01", "--json"],
    );
    assert!(future.as_array().unwrap().is_empty());
    let (code, _, err) = cli(&vitry_only, &["dlq", "list", "--since", "yesterday"]);
    assert_eq!(code, 2, "{err}");

    // The gauge ops alert on: the drain refreshes it at most once a second, the last of a
    // burst within the second after.
    let find_gauge = |metrics: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("encaisse_parked_messages{")
                    && l.contains("stage=\"polyfac.export\"")
                    && l.contains("kind=\"unknown_tenant\"")
            })
            .map(str::to_string)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let gauge = loop {
        let (_, metrics) = get(&format!("{base}/metrics")).await;
        match find_gauge(&metrics) {
            Some(gauge) => break gauge,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => panic!("no parked gauge in:\n{metrics}"),
        }
    };
    assert!(gauge.ends_with(" 1"), "{gauge}");

    // In domain terms, personal data masked unless revealed.
    let shown = cli_json(&vitry_only, &["dlq", "show", &id, "--json"]);
    assert_eq!(shown["domain"]["family_code"], "FAM000789");
    assert_eq!(shown["domain"]["amount"], "33.50");
    assert_eq!(shown["domain"]["channel"], "TIPI");
    assert_eq!(shown["origin"]["queue"], format!("{prefix}.polyfac.export"));
    assert_eq!(shown["headers"]["encaisse-error-kind"], "unknown_tenant");
    let text = shown.to_string();
    assert!(
        !text.contains("Martin-Garnier") && !text.contains("paul.martin"),
        "{text}"
    );
    let (code, human, _) = cli(&vitry_only, &["dlq", "show", &id]);
    assert_eq!(code, 0);
    assert!(
        human.contains("FAM000789") && human.contains("33.50 €"),
        "{human}"
    );
    let (code, revealed, _) = cli(&vitry_only, &["dlq", "show", &id, "--reveal", "--json"]);
    assert_eq!(code, 0);
    assert!(revealed.contains("Martin-Garnier"), "{revealed}");

    // A discard needs a reason; unknown IDs are said so.
    let (code, _, err) = cli(&vitry_only, &["dlq", "discard", &id]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--reason"), "{err}");
    let (code, _, _) = cli(&vitry_only, &["dlq", "discard", &id, "--reason", "  "]);
    assert_eq!(code, 2);
    let (code, out, _) = cli(
        &vitry_only,
        &["dlq", "discard", "999999", "--reason", "typo"],
    );
    assert_eq!(code, 66, "{out}");
    let (code, _, _) = cli(&vitry_only, &["dlq", "show", "999999"]);
    assert_eq!(code, 66);
    let (code, _, _) = cli(&vitry_only, &["dlq", "replay"]);
    assert_eq!(code, 2, "replay needs IDs, --group or --all");

    // The daemon is stopped to fix its configuration (Ivry back); the CLI needs no daemon:
    // the group is replayed to the stage's durable work queue meanwhile.
    assert_eq!(daemon.terminate(STOP).code(), Some(0));
    let stopped = cli_json(&full, &["dlq", "list", "--json"]);
    assert_eq!(
        stopped.as_array().unwrap().len(),
        all.as_array().unwrap().len()
    );
    let planned = cli_json(
        &full,
        &[
            "dlq",
            "replay",
            "--group",
            "polyfac.export/unknown_tenant",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(planned.as_array().unwrap().len(), 1);
    assert_eq!(planned[0]["outcome"], "would_replay");
    assert_eq!(planned[0]["queue"], format!("{prefix}.polyfac.export"));
    let replayed = cli_json(
        &full,
        &[
            "dlq",
            "replay",
            "--group",
            "polyfac.export/unknown_tenant",
            "--by",
            "ops-test",
            "--json",
        ],
    );
    assert_eq!(replayed.as_array().unwrap().len(), 1, "{replayed:#}");
    assert_eq!(replayed[0]["outcome"], "replayed");
    let mut daemon = Daemon::start(&full, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;
    let trace = wait_for("polyfac.export handling the replay", START, || {
        let t = cli_json(&full, &["trace", IVRY_INVOICE, "--json"]);
        (handled_by(&t, "polyfac.export") > 0).then_some(t)
    });
    assert_eq!(handled_by(&trace, "polyfac.export"), 1);

    // Replaying twice is harmless.
    let (code, out, _) = cli(&full, &["dlq", "replay", &id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("already replayed") && out.contains("ops-test"),
        "{out}"
    );
    let again = cli_json(&full, &["dlq", "replay", &id, "--json"]);
    assert_eq!(again[0]["outcome"], "already_resolved");
    assert_eq!(again[0]["state"], "replayed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let trace = cli_json(&full, &["trace", IVRY_INVOICE, "--json"]);
    assert_eq!(
        handled_by(&trace, "polyfac.export"),
        1,
        "handled exactly once"
    );
    let k = kinds(&trace);
    assert!(position(&k, "parked") < position(&k, "replayed"), "{k:?}");
    assert!(
        cli_json(
            &full,
            &["dlq", "list", "--stage", "polyfac.export", "--json"]
        )
        .as_array()
        .unwrap()
        .is_empty()
    );
    let done = cli_json(&full, &["dlq", "list", "--state", "replayed", "--json"]);
    assert_eq!(done[0]["resolved_by"], "ops-test");
    assert_eq!(daemon.terminate(STOP).code(), Some(0));
}

#[tokio::test]
async fn trace_follows_an_invoice_from_the_export_through_its_titre_to_its_payment() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("ops-trace");
    let _cleanup = Topology(prefix.clone());
    // The example configuration sends Vitry's titres to its Trésorerie ([tenants.helios]).
    let config = write_config(tmp.path(), &prefix, BROKER_URL);
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;

    let inbox = tmp.path().join("data/vitry/polyfac/inbox");
    let sample = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("adapters/polyfac/samples/polyfac-2-invoices.csv"),
    )
    .unwrap();
    std::fs::write(inbox.join("FACT_202601.csv"), sample).unwrap();
    let outbox = tmp.path().join("data/vitry/helios/outbox");
    let pes = wait_for("the PES Aller file", START, || {
        let files: Vec<_> = std::fs::read_dir(&outbox)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        (!files.is_empty()).then_some(files)
    });
    assert_eq!(pes.len(), 1, "{pes:?}");

    publish_event::<encaisse_schemas::PaymentReceived>(&prefix, &payment()).await;
    let trace = wait_for("the payment in the trace", START, || {
        let t = cli_json(&config, &["trace", INVOICE, "--json"]);
        kinds(&t)
            .contains(&"reglement_recorded".to_string())
            .then_some(t)
    });
    assert_eq!(trace["invoice"], INVOICE);
    assert_eq!(trace["tenant"], "vitry");
    let k = kinds(&trace);
    let (issued, titre, file, payment) = (
        position(&k, "issued"),
        position(&k, "titre_emitted"),
        position(&k, "file_emitted"),
        position(&k, "reglement_recorded"),
    );
    assert!(issued < titre && titre < payment && issued < file, "{k:?}");
    let steps = trace["steps"].as_array().unwrap();
    assert_eq!(steps[issued]["detail"]["file"], "FACT_202601.csv");
    assert_eq!(steps[issued]["detail"]["lines"], serde_json::json!([5, 5]));
    assert_eq!(steps[titre]["detail"]["exercice"], 2026);
    assert!(
        steps[titre]["summary"]
            .as_str()
            .unwrap()
            .contains("titre 2026/"),
        "{}",
        steps[titre]
    );
    let files = trace["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["kind"] == "pes_aller" && f["path"].as_str().unwrap().ends_with(&pes[0])),
        "{files:#?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s["kind"] == "handled" && s["detail"]["message_type"] == "payment.received"),
        "{k:?}"
    );
    assert_eq!(handled_by(&trace, "helios.titres"), 1, "{k:?}");
    assert!(trace["parked"].as_array().unwrap().is_empty());

    // The human timeline, and the short forms of the invoice.
    let (code, timeline, _) = cli(&config, &["trace", "F2026-000102"]);
    assert_eq!(code, 0);
    for label in [
        "Invoice read from the export",
        "Titre emitted to the Trésorerie",
        "Payment line prepared for Polyfac",
        "File written:",
    ] {
        assert!(timeline.contains(label), "{label} missing:\n{timeline}");
    }
    let (code, _, _) = cli(
        &config,
        &["trace", "2026/F2026-000102", "--tenant", "vitry"],
    );
    assert_eq!(code, 0);
    let (code, _, err) = cli(&config, &["trace", "F-NOPE"]);
    assert_eq!(code, 66, "{err}");
    assert_eq!(daemon.terminate(STOP).code(), Some(0));
}

/// A TCP relay to the broker that can be cut (connections dropped, new ones refused) and
/// restored on the same port.
struct Relay {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut open = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                open.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5672").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Relay {
            port,
            task: Some(task),
        }
    }

    /// Drops the listener and every relayed connection (the JoinSet aborts them).
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[tokio::test]
async fn readyz_is_503_while_the_broker_is_unreachable_and_200_once_it_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("ops-ready");
    let _cleanup = Topology(prefix.clone());
    let mut relay = Relay::start(0).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", relay.port);
    let config = write_config(tmp.path(), &prefix, &url);
    let mut daemon = Daemon::start(&config, &["--log-format", "json"]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;

    relay.cut();
    let body = wait_for_status(&format!("{base}/readyz"), 503, START).await;
    let readiness: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(readiness["ready"], false);
    assert_eq!(readiness["checks"]["broker"]["ok"], false, "{readiness}");
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    assert!(
        metrics.lines().any(|l| l == "encaisse_broker_connected 0"),
        "{metrics}"
    );

    let _relay = Relay::start(relay.port).await;
    wait_for_status(&format!("{base}/readyz"), 200, START).await;
    assert_eq!(daemon.terminate(STOP).code(), Some(0));
}

/// Every file and directory under `root`, with its permission bits.
fn modes(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut all = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            all.push((
                entry.path(),
                meta.is_dir(),
                meta.permissions().mode() & 0o777,
            ));
            if meta.is_dir() {
                todo.push(entry.path());
            }
        }
    }
    all
}

/// Waits until a file whose name contains `part` is in `dir`.
fn wait_for_file(dir: &Path, part: &str) -> PathBuf {
    wait_for(&format!("{part} in {}", dir.display()), START, || {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().contains(part))
    })
}

#[tokio::test]
async fn files_written_are_private_by_default_and_group_readable_when_configured() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("ops-modes");
    let _cleanup = Topology(prefix.clone());
    let config = write_config(tmp.path(), &prefix, BROKER_URL);
    let text = std::fs::read_to_string(&config).unwrap();
    // REGLEMENTS written every second instead of every minute.
    std::fs::write(
        &config,
        format!("{text}\n[polyfac]\nflush_interval_secs = 1\n"),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;

    // The partner's files arrive world-readable.
    let drop_file = |area: &str, name: &str, bytes: &[u8]| {
        let path = data.join("vitry").join(area).join("inbox").join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    let sample = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("adapters/polyfac/samples/polyfac-2-invoices.csv"),
    )
    .unwrap();
    drop_file("polyfac", "FACT_202601.csv", &sample);
    drop_file("helios", "garbage.xml", b"%PDF-1.4 not a bank file");
    wait_for_file(&data.join("vitry/helios/outbox"), "PES");
    publish_event::<encaisse_schemas::PaymentReceived>(&prefix, &payment()).await;
    wait_for_file(&data.join("vitry/polyfac/outbox"), "REGLEMENTS");
    wait_for_file(&data.join("vitry/polyfac/archive"), "FACT_202601.csv");
    wait_for_file(
        &data.join("vitry/helios/rejected"),
        "garbage.xml.reason.txt",
    );
    assert_eq!(daemon.terminate(STOP).code(), Some(0));

    let written = modes(&data);
    let names: Vec<String> = written
        .iter()
        .filter(|(_, dir, _)| !dir)
        .map(|(p, _, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "ledger.sqlite",
        "FACT_202601.csv",
        "garbage.xml",
        "garbage.xml.reason.txt",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    for part in ["PES", "REGLEMENTS"] {
        assert!(names.iter().any(|n| n.contains(part)), "{part}: {names:?}");
    }
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for (path, dir, mode) in &written {
        let expected = if *dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, expected, "{} is {mode:o}", path.display());
    }

    // A transfer tool under another account of the group: read access for the group.
    std::fs::write(
        &config,
        format!("file_access = \"group\"\n{text}\n[polyfac]\nflush_interval_secs = 1\n"),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/readyz"), 200, START).await;
    drop_file("helios", "garbage-2.xml", b"%PDF-1.4 not a bank file");
    wait_for_file(
        &data.join("vitry/helios/rejected"),
        "garbage-2.xml.reason.txt",
    );
    assert_eq!(daemon.terminate(STOP).code(), Some(0));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("ledger.sqlite")), 0o640);
    assert_eq!(mode(&data.join("vitry/helios/rejected")), 0o750);
    // The group's transfer tool drops the Trésorerie's and the bank's files itself.
    assert_eq!(mode(&data.join("vitry/helios/inbox")), 0o770);
    assert_eq!(
        mode(&data.join("vitry/helios/rejected/garbage-2.xml")),
        0o640
    );
    for (path, dir, mode) in modes(&data) {
        let widest = match (dir, path.ends_with("inbox")) {
            (true, true) => 0o770,
            (true, false) => 0o750,
            (false, _) => 0o640,
        };
        assert_eq!(mode & !widest, 0, "{} is {mode:o}", path.display());
    }
}
