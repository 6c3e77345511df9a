//! `polyfac.ingest` against the real broker: export files in the inbox → `invoice.issued` and
//! `billing_run.closed` on the exchange (collected by test queues), files archived or
//! rejected, reports, never a second publish.

#[path = "runtime_support/mod.rs"]
mod support;

#[path = "polyfac_support/mod.rs"]
mod polyfac;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use encaisse_pipelines::runtime::SourceContext;
use encaisse_pipelines::stages::ops::trace;
use encaisse_pipelines::stages::polyfac::{
    PolyfacStagesConfig, PolyfacTenants, ingest_source, ingest_sources, ingest_store,
};
use encaisse_polyfac::SourceMapping;
use encaisse_polyfac::generate::{ExportSpec, write_export};
use encaisse_schemas::{BillingRunClosed, CollectionPath, InvoiceIssued, SequenceType};
use polyfac::{Harness, count, sample, vitry};

const ISSUED: &str = "issued";
const CLOSED: &str = "closed";

async fn harness() -> Harness {
    Harness::start(
        |_| Vec::new(),
        &[(ISSUED, "invoice.issued.#"), (CLOSED, "billing_run.closed")],
    )
    .await
}

/// One message per invoice: most tests here read each `invoice.issued` as published. Those
/// about bundles set `bundle_size` themselves.
fn settings(batch: usize) -> PolyfacStagesConfig {
    PolyfacStagesConfig {
        inbox_settle_ms: 0,
        publish_batch_size: batch,
        bundle_size: 1,
        ..PolyfacStagesConfig::default()
    }
}

/// The invoices a delivery carries, as (message id, body): itself, or a bundle's items.
fn carried(d: &lapin::message::Delivery) -> Vec<(String, Vec<u8>)> {
    let message = encaisse_pipelines::runtime::handling::incoming(d, d.data.clone().into());
    if encaisse_pipelines::bundle::is_bundle(&message) {
        encaisse_pipelines::bundle::unpack(&message)
            .unwrap()
            .into_iter()
            .map(|item| (item.message_id.unwrap(), item.body.to_vec()))
            .collect()
    } else {
        vec![(message.message_id.unwrap(), d.data.clone())]
    }
}

/// Drops `bytes` as `name` in the tenant's inbox and runs one scan; returns how many files
/// the scan handled.
async fn drop_and_scan(
    h: &Harness,
    tenants: PolyfacTenants,
    name: &str,
    bytes: &[u8],
    batch: usize,
) -> usize {
    let inbox = h.area("vitry", "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join(name), bytes).unwrap();
    let watcher = ingest_source(tenants, h.data_dir(), &settings(batch));
    watcher.scan_once(&h.ctx, &mut HashMap::new()).await
}

fn decode<E: encaisse_schemas::Event>(d: &lapin::message::Delivery) -> E {
    encaisse_schemas::decode::<E>(&d.data).unwrap()
}

#[tokio::test]
async fn two_invoices_are_published_closed_and_the_file_archived() {
    let h = harness().await;
    let handled = drop_and_scan(
        &h,
        vitry(),
        "FACT_202601.csv",
        &sample("polyfac-2-invoices.csv"),
        500,
    )
    .await;
    assert_eq!(handled, 1);

    let issued = h.client.drain(&h.queue(ISSUED)).await;
    assert_eq!(issued.len(), 2, "one invoice.issued per invoice");
    let mut by_number = BTreeMap::new();
    for d in &issued {
        assert_eq!(
            d.properties.kind().as_ref().unwrap().as_str(),
            "invoice.issued"
        );
        let event: InvoiceIssued = decode(d);
        assert_eq!(
            d.properties.message_id().as_ref().unwrap().as_str(),
            encaisse_schemas::Event::message_id(&event),
            "deterministic message id"
        );
        assert_eq!(
            support::text_header(&d.properties, "encaisse-invoice").as_deref(),
            Some(event.invoice.key().as_str())
        );
        assert_eq!(
            d.routing_key.as_str(),
            encaisse_schemas::Event::routing_key(&event)
        );
        by_number.insert(event.invoice.number.clone(), event);
    }
    let debit = &by_number["F2026-000101"];
    assert_eq!(debit.collection, CollectionPath::Titres);
    assert_eq!(debit.total.to_dot_string(), "62.95");
    assert_eq!(debit.source.lines, Some((2, 4)));
    assert_eq!(
        debit.mandate.as_ref().unwrap().sequence,
        Some(SequenceType::Frst),
        "no sequence in the export: the mandate history says first use"
    );
    let creche = &by_number["F2026-000102"];
    assert_eq!(creche.collection, CollectionPath::Regie);
    assert_eq!(creche.source.run_id, debit.source.run_id);

    let closed = h.client.drain(&h.queue(CLOSED)).await;
    assert_eq!(closed.len(), 1);
    let run: BillingRunClosed = decode(&closed[0]);
    assert_eq!(run.run_id, debit.source.run_id);
    assert_eq!(run.exercice, 2026);
    assert_eq!(run.rejected_invoices, 0);
    let budgets: Vec<(String, CollectionPath, u32, String)> = run
        .budgets
        .iter()
        .map(|b| {
            (
                b.budget.clone(),
                b.collection,
                b.invoices,
                b.total.to_dot_string(),
            )
        })
        .collect();
    assert_eq!(
        budgets,
        [
            ("principal".into(), CollectionPath::Regie, 1, "70.13".into()),
            (
                "principal".into(),
                CollectionPath::Titres,
                1,
                "62.95".into()
            ),
        ]
    );

    assert!(h.files(&h.area("vitry", "inbox")).is_empty());
    assert_eq!(h.files(&h.area("vitry", "archive")), ["FACT_202601.csv"]);
    assert!(
        h.files(&h.area("vitry", "rejected")).is_empty(),
        "no report when nothing is refused"
    );
    let facts = h
        .ledger
        .invoice_facts("vitry/2026/F2026-000101")
        .await
        .unwrap();
    let issued_fact = facts
        .iter()
        .find(|f| f.kind == "issued")
        .expect("issued fact");
    let detail: serde_json::Value = serde_json::from_str(&issued_fact.detail).unwrap();
    assert_eq!(detail["file"], "FACT_202601.csv");
    assert_eq!(detail["lines"], serde_json::json!([2, 4]));
    h.stop().await;
}

#[tokio::test]
async fn the_same_file_twice_publishes_nothing_more_and_a_changed_invoice_is_refused() {
    let h = harness().await;
    let bytes = sample("polyfac-2-invoices.csv");
    drop_and_scan(&h, vitry(), "FACT_202601.csv", &bytes, 500).await;
    assert_eq!(h.client.drain(&h.queue(ISSUED)).await.len(), 2);
    assert_eq!(h.client.drain(&h.queue(CLOSED)).await.len(), 1);

    // Same bytes, same name: the same run, already published and closed.
    assert_eq!(
        drop_and_scan(&h, vitry(), "FACT_202601.csv", &bytes, 500).await,
        1
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.client.count(&h.queue(ISSUED)).await,
        0,
        "no second invoice.issued"
    );
    assert_eq!(
        h.client.count(&h.queue(CLOSED)).await,
        0,
        "no second billing_run.closed"
    );
    assert_eq!(
        h.files(&h.area("vitry", "archive")).len(),
        2,
        "both drops archived"
    );

    // F2026-000102 changed (one more hour), F2026-000101 unchanged, in a file of another name.
    let text = bytes.clone();
    let changed = replace(&text, b"37,5;1,87;70,13", b"38,5;1,87;72,00");
    assert_ne!(changed, text);
    drop_and_scan(&h, vitry(), "FACT_202601_bis.csv", &changed, 500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.client.count(&h.queue(ISSUED)).await,
        0,
        "neither is issued again"
    );
    let closed = h.client.drain(&h.queue(CLOSED)).await;
    assert_eq!(closed.len(), 1, "the new run is closed");
    let run: BillingRunClosed = decode(&closed[0]);
    assert!(
        run.budgets.is_empty(),
        "it published nothing: {:?}",
        run.budgets
    );
    assert_eq!(
        run.rejected_invoices, 1,
        "the reused number is rejected; the unchanged invoice is a duplicate, not a rejection"
    );
    let report = std::fs::read_to_string(
        h.area("vitry", "rejected")
            .join("FACT_202601_bis.csv.rejected.csv"),
    )
    .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            h.area("vitry", "rejected")
                .join("FACT_202601_bis.csv.summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            &summary["valid_invoices"],
            &summary["rejected_invoices"],
            &summary["duplicate_invoices"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{summary}"
    );
    assert!(
        report.lines().any(|l| l
            .contains(";5;NumFacture;F2026-000102;invoice_number;invoice_number_reused;")
            && l.contains("a correction needs a new invoice number")),
        "{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.contains(";2;NumFacture;F2026-000101;invoice_number;already_issued;")),
        "{report}"
    );
    let facts = h
        .ledger
        .invoice_facts("vitry/2026/F2026-000102")
        .await
        .unwrap();
    assert!(facts.iter().any(|f| f.kind == "refused"));
    h.stop().await;
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in the sample");
    let mut out = haystack[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&haystack[at + from.len()..]);
    out
}

#[tokio::test]
async fn a_crash_between_publishes_loses_nothing_and_duplicates_nothing() {
    let h = harness().await;
    let mut export = Vec::new();
    let generated = write_export(&ExportSpec::new(10_000), &mut export).unwrap();
    let expected = generated.invoices as i64;
    assert!(expected > 100, "{expected} invoices");
    let inbox = h.area("vitry", "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("FACT_BIG.csv"), &export).unwrap();

    // First process: killed (its future dropped, like a crash) once 3 batches are recorded.
    // Batches go out in bundles of 7 (three per batch, the last one short).
    let batch = 20;
    let bundled = PolyfacStagesConfig {
        bundle_size: 7,
        ..settings(batch)
    };
    let watcher = ingest_source(vitry(), h.data_dir(), &bundled);
    let ctx = h.ctx.clone();
    let task = tokio::spawn(async move { watcher.scan_once(&ctx, &mut HashMap::new()).await });
    h.wait_count(
        "three batches recorded",
        "SELECT count(*) FROM polyfac_issued",
        3 * batch as i64,
    )
    .await;
    task.abort();
    let _ = task.await;
    let recorded = count(&h.ledger, "SELECT count(*) FROM polyfac_issued").await;
    assert!(
        recorded < expected,
        "the crash came before the end ({recorded}/{expected})"
    );
    assert_eq!(
        h.files(&inbox),
        ["FACT_BIG.csv"],
        "the file stays in the inbox"
    );
    assert_eq!(
        h.client.count(&h.queue(CLOSED)).await,
        0,
        "the run is not closed"
    );

    // Restart: a new watcher reads the file again.
    let watcher = ingest_source(vitry(), h.data_dir(), &bundled);
    assert_eq!(watcher.scan_once(&h.ctx, &mut HashMap::new()).await, 1);
    assert_eq!(
        count(&h.ledger, "SELECT count(*) FROM polyfac_issued").await,
        expected
    );

    let deliveries = h.client.drain(&h.queue(ISSUED)).await;
    assert!(
        deliveries.len() * 5 < expected as usize,
        "bundles: {} messages for {expected} invoices",
        deliveries.len()
    );
    let issued: Vec<(String, Vec<u8>)> = deliveries.iter().flat_map(carried).collect();
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    for (id, body) in &issued {
        let _: InvoiceIssued = encaisse_schemas::decode(body).unwrap();
        if let Some(before) = bodies.insert(id.clone(), body.clone()) {
            assert_eq!(
                &before, body,
                "a re-sent message is the same message ({id})"
            );
        }
    }
    assert_eq!(
        bodies.len() as i64,
        expected,
        "every invoice published: nothing lost"
    );
    assert!(
        issued.len() <= expected as usize + 2 * batch,
        "at most the two batches in flight at the crash are sent again ({} for {expected})",
        issued.len()
    );
    let closed = h.client.drain(&h.queue(CLOSED)).await;
    assert_eq!(closed.len(), 1);
    let run: BillingRunClosed = decode(&closed[0]);
    let total: u32 = run.budgets.iter().map(|b| b.invoices).sum();
    assert_eq!(
        i64::from(total),
        expected,
        "the run counts every invoice, published before the crash or after"
    );
    h.stop().await;
}

/// Back-pressure against the real broker: with nobody consuming, the ingest stops once the
/// downstream queue holds more than `max_downstream_backlog`, and goes on as it drains.
#[tokio::test]
async fn the_ingest_waits_while_a_downstream_queue_is_over_its_bound_and_resumes() {
    backlog_holds(1).await;
}

/// The same with bundles of 10: the bound counts invoices, so the queue holds at most
/// 60 ÷ 10 messages plus one batch's bundles.
#[tokio::test]
async fn with_bundles_the_backlog_bound_counts_invoices() {
    backlog_holds(10).await;
}

async fn backlog_holds(bundle_size: usize) {
    let h = Harness::start_watching_sinks(
        |_| Vec::new(),
        &[(ISSUED, "invoice.issued.#"), (CLOSED, "billing_run.closed")],
    )
    .await;
    let mut export = Vec::new();
    let expected = write_export(&ExportSpec::with_invoices(400), &mut export)
        .unwrap()
        .invoices;
    let inbox = h.area("vitry", "inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("FACT_BACKLOG.csv"), &export).unwrap();
    let (batch, bound) = (20, 60);
    let settings = PolyfacStagesConfig {
        max_downstream_backlog: bound,
        bundle_size,
        ..settings(batch)
    };
    // In queue messages: what the ingest waits on, and what one batch adds (its titres and
    // its régie invoices go in bundles of their own: one short bundle more at most).
    let per = bundle_size as u64;
    let extra = u64::from(per > 1);
    let (bound, batch) = (bound / per, (batch as u64).div_ceil(per) + extra);
    let watcher = ingest_source(vitry(), h.data_dir(), &settings);
    let ctx = h.ctx.clone();
    let scan = tokio::spawn(async move { watcher.scan_once(&ctx, &mut HashMap::new()).await });
    let queue = h.queue(ISSUED);

    // Paused: the queue fills past the bound, then nothing more comes while nobody drains.
    support::wait_until("the queue over its bound", Duration::from_secs(30), || {
        let (client, queue) = (&h.client, queue.clone());
        async move { u64::from(client.count(&queue).await) > bound }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = u64::from(h.client.count(&queue).await);
    let recorded = count(&h.ledger, "SELECT count(*) FROM polyfac_issued").await;
    assert!(
        held <= bound + batch,
        "at most one batch over the bound: {held}"
    );
    assert!(!scan.is_finished(), "the ingest waits");
    assert!(
        (recorded as u64) < expected,
        "paused before the end: {recorded}/{expected}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        u64::from(h.client.count(&queue).await),
        held,
        "nothing published while paused"
    );

    // Resumed: draining the queue lets the ingest finish; the bound holds throughout.
    let mut taken = 0u64;
    let mut deepest = held;
    let invoices = |deliveries: Vec<lapin::message::Delivery>| {
        deliveries
            .iter()
            .map(|d| carried(d).len() as u64)
            .sum::<u64>()
    };
    while !scan.is_finished() {
        deepest = deepest.max(u64::from(h.client.count(&queue).await));
        taken += invoices(h.client.drain(&queue).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scan.await.unwrap(), 1, "the file was handled");
    taken += invoices(h.client.drain(&queue).await);
    assert_eq!(taken, expected, "every invoice published once");
    assert!(deepest <= bound + batch, "deepest {deepest}");
    assert_eq!(h.client.drain(&h.queue(CLOSED)).await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_bad_invoice_is_reported_and_the_good_ones_published() {
    let h = harness().await;
    let mut bytes = sample("polyfac-2-invoices.csv");
    // A third invoice (a copy of the crèche one under a new number), then a wrong line
    // amount on the second invoice (line 5).
    let creche_line = bytes
        .split(|b| *b == b'\n')
        .find(|l| l.starts_with(b"F2026-000102"))
        .unwrap()
        .to_vec();
    let third = replace(&creche_line, b"F2026-000102", b"F2026-000103");
    if !bytes.ends_with(b"\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(&third);
    let bytes = replace(&bytes, b"37,5;1,87;70,13", b"37,5;1,87;70,14");
    drop_and_scan(&h, vitry(), "FACT_BAD.csv", &bytes, 500).await;

    let issued = h.client.drain(&h.queue(ISSUED)).await;
    let mut numbers: Vec<String> = issued
        .iter()
        .map(|d| decode::<InvoiceIssued>(d).invoice.number)
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["F2026-000101", "F2026-000103"]);
    let closed = h.client.drain(&h.queue(CLOSED)).await;
    let run: BillingRunClosed = decode(&closed[0]);
    assert_eq!(run.rejected_invoices, 1);
    assert_eq!(h.files(&h.area("vitry", "archive")), ["FACT_BAD.csv"]);
    let rejected = h.area("vitry", "rejected");
    assert_eq!(
        h.files(&rejected),
        ["FACT_BAD.csv.rejected.csv", "FACT_BAD.csv.summary.json"]
    );
    let report = std::fs::read_to_string(rejected.join("FACT_BAD.csv.rejected.csv")).unwrap();
    assert!(
        report.lines().any(
            |l| l.starts_with("FACT_BAD.csv;5;MontantLigne;F2026-000102;")
                && l.contains(";line_amount_mismatch;")
        ),
        "{report}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rejected.join("FACT_BAD.csv.summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["valid_invoices"], 2);
    assert_eq!(summary["rejected_invoices"], 1);

    // The rejected invoice is in its journal: `encaisse trace` finds it, with file, lines
    // and rule.
    let key = "vitry/2026/F2026-000102";
    let facts = h.ledger.invoice_facts(key).await.unwrap();
    let rejected = facts
        .iter()
        .find(|f| f.kind == "rejected")
        .expect("a rejected fact");
    let detail: serde_json::Value = serde_json::from_str(&rejected.detail).unwrap();
    assert_eq!(detail["file"], "FACT_BAD.csv");
    assert_eq!(detail["lines"], serde_json::json!([5, 5]));
    assert_eq!(detail["rule"], "line_amount_mismatch");
    assert_eq!(detail["column"], "MontantLigne");
    // What `encaisse trace F2026-000102` reads: found by its number alone, the rejection
    // in its timeline.
    let timeline = h
        .ledger
        .inspect(|tx| {
            let key = trace::resolve(tx, "F2026-000102", None).unwrap();
            trace::trace(tx, &key)
        })
        .await
        .unwrap();
    assert_eq!(timeline.invoice, key);
    assert!(
        timeline
            .steps
            .iter()
            .any(|s| s.summary.starts_with("Invoice rejected at validation")
                && s.summary.contains("line_amount_mismatch")),
        "{:?}",
        timeline.steps
    );

    // Corrected and sent again under another file name: the corrected invoice is issued
    // (its journal now tells both), the two others are duplicates of the first run — not
    // rejections.
    let fixed = replace(&bytes, b"37,5;1,87;70,14", b"37,5;1,87;70,13");
    drop_and_scan(&h, vitry(), "FACT_FIXED.csv", &fixed, 500).await;
    let issued = h.client.drain(&h.queue(ISSUED)).await;
    assert_eq!(issued.len(), 1);
    assert_eq!(
        decode::<InvoiceIssued>(&issued[0]).invoice.number,
        "F2026-000102"
    );
    let closed = h.client.drain(&h.queue(CLOSED)).await;
    let run: BillingRunClosed = decode(&closed[0]);
    assert_eq!(run.rejected_invoices, 0);
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rejected_dir_file(&h, "FACT_FIXED.csv.summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["valid_invoices"], 1);
    assert_eq!(summary["rejected_invoices"], 0);
    assert_eq!(summary["duplicate_invoices"], 2);
    let kinds: Vec<String> = h
        .ledger
        .invoice_facts(key)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.kind)
        .collect();
    assert_eq!(kinds, ["rejected", "issued"]);
    h.stop().await;
}

/// An invoice without number has no key in any journal: it is recorded by file and line,
/// where `encaisse trace --file NAME --line N` finds it, beside the numbered rejects.
#[tokio::test]
async fn an_invoice_without_number_is_recorded_by_file_and_line() {
    let h = harness().await;
    let bytes = sample("polyfac-2-invoices.csv");
    let creche_line = bytes
        .split(|b| *b == b'\n')
        .find(|l| l.starts_with(b"F2026-000102"))
        .unwrap()
        .to_vec();
    // The crèche invoice's line without its number, right after the header (line 2).
    let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut file = bytes[..header_end].to_vec();
    file.extend_from_slice(&replace(&creche_line, b"F2026-000102", b""));
    file.extend_from_slice(b"\n");
    file.extend_from_slice(&bytes[header_end..]);
    drop_and_scan(&h, vitry(), "FACT_NONUM.csv", &file, 500).await;

    let issued = h.client.drain(&h.queue(ISSUED)).await;
    assert_eq!(issued.len(), 2, "the numbered invoices are published");
    let rows = h
        .ledger
        .inspect(|tx| ingest_store::file_rejects(tx, "FACT_NONUM.csv", None, None))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(
        (row.tenant.as_str(), row.number.as_str(), row.lines),
        ("vitry", "", (2, 2))
    );
    assert_eq!(row.rule, "missing_field");
    assert_eq!(row.column, "NumFacture");
    assert_eq!(row.application, "polyfac");
    // By line: the line it covers finds it, another does not; another tenant neither.
    let at = |line: u64, tenant: Option<&'static str>| {
        let ledger = h.ledger.clone();
        async move {
            ledger
                .inspect(move |tx| {
                    ingest_store::file_rejects(tx, "FACT_NONUM.csv", tenant, Some(line))
                })
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(at(2, Some("vitry")).await, 1);
    assert_eq!(at(3, None).await, 0);
    assert_eq!(at(2, Some("ivry")).await, 0);

    // Read again (a crash before the file was archived): recorded once.
    drop_and_scan(&h, vitry(), "FACT_NONUM.csv", &file, 500).await;
    assert_eq!(
        count(&h.ledger, "SELECT count(*) FROM polyfac_rejected").await,
        1
    );
    h.stop().await;
}

fn rejected_dir_file(h: &Harness, name: &str) -> std::path::PathBuf {
    h.area("vitry", "rejected").join(name)
}

#[tokio::test]
async fn an_unreadable_file_is_rejected_whole_with_its_reason() {
    let h = harness().await;
    drop_and_scan(
        &h,
        vitry(),
        "NOT_AN_EXPORT.csv",
        b"NumFacture;DateFacture;Montant\r\nF1;31/01/2026;12,00\r\n",
        500,
    )
    .await;
    let rejected = h.area("vitry", "rejected");
    assert_eq!(
        h.files(&rejected),
        [
            "NOT_AN_EXPORT.csv",
            "NOT_AN_EXPORT.csv.reason.txt",
            "NOT_AN_EXPORT.csv.rejected.csv",
            "NOT_AN_EXPORT.csv.summary.json"
        ]
    );
    let reason = std::fs::read_to_string(rejected.join("NOT_AN_EXPORT.csv.reason.txt")).unwrap();
    assert!(
        reason.contains("missing required columns") && reason.contains("CodeFamille"),
        "{reason}"
    );
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rejected.join("NOT_AN_EXPORT.csv.summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["status"], "unreadable");
    assert_eq!(summary["kind"], "missing_columns");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.client.count(&h.queue(ISSUED)).await, 0);
    assert_eq!(h.client.count(&h.queue(CLOSED)).await, 0);
    h.stop().await;
}

#[tokio::test]
async fn the_creche_source_is_read_by_mapping_end_to_end() {
    let h = harness().await;
    let mapping: SourceMapping =
        toml::from_str(std::str::from_utf8(&sample("creche-mapping.toml")).unwrap()).unwrap();
    assert!(mapping.validate("sources.creche").is_empty());
    let tenants = PolyfacTenants::new([polyfac::tenant("vitry", "creche", mapping)]);
    drop_and_scan(
        &h,
        tenants,
        "creche-2026-01.csv",
        &sample("creche-2-invoices.csv"),
        500,
    )
    .await;

    let issued = h.client.drain(&h.queue(ISSUED)).await;
    let mut events: Vec<InvoiceIssued> = issued.iter().map(decode).collect();
    events.sort_by(|a, b| a.invoice.number.cmp(&b.invoice.number));
    let summary: Vec<(String, String, String, Option<SequenceType>)> = events
        .iter()
        .map(|e| {
            (
                e.invoice.number.clone(),
                e.source.application.clone(),
                e.total.to_dot_string(),
                e.mandate.as_ref().and_then(|m| m.sequence),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "CR-2026-0007".into(),
                "creche".into(),
                "100.33".into(),
                None
            ),
            (
                "CR-2026-0008".into(),
                "creche".into(),
                "224.40".into(),
                Some(SequenceType::Frst)
            ),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.collection == CollectionPath::Regie && e.activity == "CRECHE")
    );
    let closed = h.client.drain(&h.queue(CLOSED)).await;
    let run: BillingRunClosed = decode(&closed[0]);
    assert_eq!(run.application, "creche");
    assert_eq!(run.budgets.len(), 1);
    assert_eq!(run.budgets[0].invoices, 2);
    assert_eq!(h.files(&h.area("vitry", "archive")), ["creche-2026-01.csv"]);
    h.stop().await;
}

#[tokio::test]
async fn a_mandate_closed_by_the_bank_refuses_the_next_direct_debit() {
    use encaisse_ledger::Tx;
    use encaisse_pipelines::mandates::{BankOutcome, Recorded, record_outcome, uses_of_mandate};
    let h = harness().await;
    let bytes = sample("polyfac-2-invoices.csv");
    drop_and_scan(&h, vitry(), "FACT_202601.csv", &bytes, 500).await;
    assert_eq!(h.client.drain(&h.queue(ISSUED)).await.len(), 2);
    h.client.drain(&h.queue(CLOSED)).await;

    // The bank rejects the first collection with MD01 (no valid mandate): the mandate is
    // closed for good.
    h.ledger
        .write(|c| {
            let uses = uses_of_mandate(&mut Tx::sqlite(c), "vitry", "VITRY-CANT-000123")?;
            assert_eq!(
                uses.len(),
                1,
                "the ingest recorded the planned use: {uses:?}"
            );
            let e2e = uses[0].end_to_end_id.clone().expect("an end-to-end id");
            // What sepa.batch does when it writes the pain.008: the use is presented in a file.
            c.execute(
                "INSERT INTO sepa_file (tenant, origin, kind, path, bytes, cause, planned_at)
                 VALUES ('vitry', 'sepa.batch', 'pain008', 'vitry/bank/outbox/test.xml', x'', 'run',
                         '2026-02-01T00:00:00Z')",
                [],
            )?;
            c.execute(
                "UPDATE sepa_collection SET status = 'presented', file_id = ?2
                 WHERE tenant = 'vitry' AND end_to_end_id = ?1",
                (&e2e, c.last_insert_rowid()),
            )?;
            let recorded = record_outcome(
                &mut encaisse_ledger::Tx::sqlite(c),
                "vitry",
                &e2e,
                &BankOutcome::Rejected {
                    code: Some("MD01".into()),
                },
                chrono::NaiveDate::from_ymd_opt(2026, 2, 9).unwrap(),
            )?;
            assert!(matches!(recorded, Recorded::New(_)), "{recorded:?}");
            Ok(())
        })
        .await
        .unwrap();

    // February's invoice of the same family, same mandate, no sequence given.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut next: Vec<u8> = text.lines().next().unwrap().as_bytes().to_vec();
    next.extend_from_slice(b"\r\n");
    for line in bytes
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"F2026-000101"))
    {
        next.extend_from_slice(&replace(line, b"F2026-000101", b"F2026-000201"));
        next.push(b'\n');
    }
    drop_and_scan(&h, vitry(), "FACT_202602.csv", &next, 500).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.client.count(&h.queue(ISSUED)).await, 0, "not issued");
    let closed = h.client.drain(&h.queue(CLOSED)).await;
    let run: BillingRunClosed = decode(&closed[0]);
    assert_eq!(run.rejected_invoices, 1);
    let report = std::fs::read_to_string(
        h.area("vitry", "rejected")
            .join("FACT_202602.csv.rejected.csv"),
    )
    .unwrap();
    assert!(
        report.lines().any(|l| l
            .starts_with("FACT_202602.csv;2;RUM;F2026-000201;rum;mandate_unusable;")
            && l.contains("mandate_closed")),
        "{report}"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_tenant_with_two_sources_gets_both_files_published() {
    let h = harness().await;
    let creche: SourceMapping =
        toml::from_str(std::str::from_utf8(&sample("creche-mapping.toml")).unwrap()).unwrap();
    let source = ingest_sources(
        vitry(),
        vec![(
            "creche".to_string(),
            PolyfacTenants::new([polyfac::tenant("vitry", "creche", creche)]),
        )],
        h.data_dir(),
        &settings(500),
    );
    // Polyfac's export in the default inbox, the crèche tool's in its own.
    let polyfac_inbox = h.area("vitry", "inbox");
    let creche_area = h.data_dir().join("vitry").join("sources").join("creche");
    for dir in [&polyfac_inbox, &creche_area.join("inbox")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(
        polyfac_inbox.join("FACT_202601.csv"),
        sample("polyfac-2-invoices.csv"),
    )
    .unwrap();
    std::fs::write(
        creche_area.join("inbox").join("creche-2026-01.csv"),
        sample("creche-2-invoices.csv"),
    )
    .unwrap();
    let ctx = SourceContext {
        shutdown: tokio_util::sync::CancellationToken::new(),
        ..h.ctx.clone()
    };
    let stop = ctx.shutdown.clone();
    let running = tokio::spawn(source.run(ctx));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.client.count(&h.queue(CLOSED)).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both runs closed within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    running.await.unwrap().unwrap();

    let issued = h.client.drain(&h.queue(ISSUED)).await;
    let mut published: Vec<(String, String)> = issued
        .iter()
        .map(|d| {
            let e: InvoiceIssued = decode(d);
            (e.source.application, e.invoice.number)
        })
        .collect();
    published.sort();
    assert_eq!(
        published,
        [
            ("creche".to_string(), "CR-2026-0007".to_string()),
            ("creche".to_string(), "CR-2026-0008".to_string()),
            ("polyfac".to_string(), "F2026-000101".to_string()),
            ("polyfac".to_string(), "F2026-000102".to_string()),
        ]
    );
    assert_eq!(h.files(&h.area("vitry", "archive")), ["FACT_202601.csv"]);
    assert_eq!(
        h.files(&creche_area.join("archive")),
        ["creche-2026-01.csv"]
    );
    h.stop().await;
}
