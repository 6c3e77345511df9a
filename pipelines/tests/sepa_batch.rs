//! The `sepa.batch` stage on the real broker: a billing run's régie invoices become one
//! pain.008 per régie in `<tenant>/bank/outbox`, valid against the ISO schema with the right
//! totals, whatever the order of the messages; a crash between planning and writing writes
//! the same file once; redeliveries add nothing; refused invoices never block the others.

#[path = "sepa_support/mod.rs"]
mod sepa;
#[path = "runtime_support/mod.rs"]
mod support;

use std::time::Duration;

use encaisse_ledger::Ledger;
use encaisse_pipelines::Stage;
use encaisse_pipelines::stages::sepa::SepaBatch;
use encaisse_schemas::{Event, SequenceType};
use sepa::*;
use support::{counter, install_metrics, wait_until};

/// Lets in-flight handlers finish before asserting that nothing more happened.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_becomes_one_valid_pain008_per_regie() {
    install_metrics();
    let t = tenant_id("t1");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let run = "run-t1";
    let invoices = vec![
        invoice(&t, run, &Inv::debit("C1", "RUM-C1", "45.60")),
        invoice(&t, run, &Inv::debit("C2", "RUM-C2", "120.00")),
        invoice(&t, run, &Inv::debit("C3", "RUM-C3", "7.05")),
        invoice(
            &t,
            run,
            &Inv::debit("K1", "RUM-K1", "33.30").regie("regie-cantine"),
        ),
        invoice(
            &t,
            run,
            &Inv::debit("K2", "RUM-K2", "16.70").regie("regie-cantine"),
        ),
        // Paid online: collected with the run, not debited.
        invoice(
            &t,
            run,
            &Inv {
                mode: "TIPI",
                rum: None,
                ..Inv::debit("C4", "-", "10.00")
            },
        ),
    ];
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(&t, run, &invoices)).await;
    let files = flow.wait_files(&t, "outbox", 2).await;
    settle().await;
    let names: Vec<String> = flow.files(&t, "outbox").iter().map(|p| name(p)).collect();
    assert_eq!(
        names,
        [
            "REGIE-CANTINE-DFT-SDD-26335-001.xml",
            "REGIE-CRECHE-DFT-SDD-26335-002.xml"
        ],
        "one file per régie, numbered in the day"
    );

    let cantine = check_pain008(&files[0]);
    assert_eq!(cantine.message_id, "REGIE-CANTINE-DFT-SDD-26335-001");
    assert_eq!(cantine.creditor_scheme_id.as_deref(), Some("FR72ZZZ123456"));
    assert_eq!(cantine.declared_count, 2);
    assert_eq!(cantine.declared_cents, Some(5_000));
    assert_eq!(e2e_ids(&cantine), ["2026-K1-1", "2026-K2-1"]);

    let creche = check_pain008(&files[1]);
    assert_eq!(creche.creditor_scheme_id.as_deref(), Some("FR55ZZZ947001"));
    assert_eq!(creche.declared_count, 3);
    assert_eq!(creche.declared_cents, Some(4_560 + 12_000 + 705));
    assert_eq!(e2e_ids(&creche), ["2026-C1-1", "2026-C2-1", "2026-C3-1"]);
    assert_eq!(creche.blocks.len(), 1);
    assert_eq!(creche.blocks[0].sequence, Some(SequenceType::Frst));
    assert_eq!(creche.blocks[0].due_date, d(2026, 12, 10));
    let xml = std::fs::read_to_string(&files[1]).unwrap();
    assert!(xml.contains("<CreDtTm>2026-12-01T09:30:00</CreDtTm>"));
    assert!(xml.contains("<Nm>Mme Helene Ouvray</Nm>"), "transliterated");

    assert!(flow.events().await.is_empty(), "nothing refused");
    assert_eq!(
        flow.count("SELECT count(*) FROM sepa_collection WHERE status = 'presented'")
            .await,
        5
    );
    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/C1"))
        .await
        .unwrap();
    let kinds: Vec<&str> = facts.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["collection_planned", "pain008_emitted"]);
    assert!(
        facts[1]
            .detail
            .contains("REGIE-CRECHE-DFT-SDD-26335-002.xml")
    );
    assert!(facts[1].detail.contains("2026-C1-1"));
    assert!(!facts[0].detail.contains("FR76"), "no IBAN in the journal");

    let labels = [
        ("tenant", t.as_str()),
        ("regie", "regie-creche"),
        ("origin", "sepa.batch"),
    ];
    assert_eq!(counter("encaisse_sepa_files_emitted_total", &labels), 1);
    assert_eq!(counter("encaisse_sepa_collections_total", &labels), 3);
    assert_eq!(counter("encaisse_sepa_amount_cents_total", &labels), 17_265);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_may_close_before_its_invoices() {
    let t = tenant_id("t2");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    // Run A: announced first, invoices later.
    let a: Vec<_> = ["A1", "A2"]
        .iter()
        .map(|n| invoice(&t, "run-a", &Inv::debit(n, "RUM-A", "20.00")))
        .collect();
    flow.publish(&run_closed(&t, "run-a", &a)).await;
    settle().await;
    assert!(
        flow.files(&t, "outbox").is_empty(),
        "the run is not complete"
    );
    for i in &a {
        flow.publish(i).await;
    }
    let files = flow.wait_files(&t, "outbox", 1).await;
    let sent = check_pain008(&files[0]);
    assert_eq!(e2e_ids(&sent), ["2026-A1-1", "2026-A2-1"]);
    // Two invoices of one mandate in one run: the first is FRST, the second RCUR.
    let sequences: Vec<_> = sent.blocks.iter().map(|b| b.sequence).collect();
    assert_eq!(
        sequences,
        [Some(SequenceType::Frst), Some(SequenceType::Rcur)]
    );
    // Run B, in the usual order, the same day: the next number, and RCUR for the mandate.
    let b = vec![invoice(&t, "run-b", &Inv::debit("B1", "RUM-A", "30.00"))];
    flow.publish(&b[0]).await;
    flow.publish(&run_closed(&t, "run-b", &b)).await;
    let files = flow.wait_files(&t, "outbox", 2).await;
    assert_eq!(name(&files[1]), "REGIE-CRECHE-DFT-SDD-26335-002.xml");
    let second = check_pain008(&files[1]);
    assert_eq!(second.blocks[0].sequence, Some(SequenceType::Rcur));
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_planning_and_writing_writes_the_same_file_once() {
    let t = tenant_id("t3");
    let run = "run-t3";
    let invoices: Vec<_> = [("X1", "12.50"), ("X2", "80.00")]
        .iter()
        .map(|(n, a)| invoice(&t, run, &Inv::debit(n, "RUM-X", a)))
        .collect();
    let closed = run_closed(&t, run, &invoices);

    // The same run without any crash, elsewhere: the file it gives.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = {
        let ledger = Ledger::open(reference_dir.path().join("ledger.sqlite")).unwrap();
        let stage = SepaBatch::new(settings(reference_dir.path(), vec![tenant(&t)]), ledger);
        for i in &invoices {
            stage.handle(&incoming(i)).await.unwrap();
        }
        stage.handle(&incoming(&closed)).await.unwrap();
        let files = list(&reference_dir.path().join(t.as_str()).join("bank/outbox"));
        assert_eq!(files.len(), 1);
        (name(&files[0]), std::fs::read(&files[0]).unwrap())
    };

    // Planning commits, then writing fails: a file stands where the outbox directory goes.
    let dir = tempfile::tempdir().unwrap();
    let bank = dir.path().join(t.as_str()).join("bank");
    std::fs::create_dir_all(&bank).unwrap();
    std::fs::write(bank.join("outbox"), b"not a directory").unwrap();
    {
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let stage = SepaBatch::new(settings(dir.path(), vec![tenant(&t)]), ledger.clone());
        for i in &invoices {
            stage.handle(&incoming(i)).await.unwrap();
        }
        let error = stage.handle(&incoming(&closed)).await.unwrap_err();
        assert_eq!(
            error.class,
            encaisse_pipelines::ErrorClass::Transient,
            "{error}"
        );
        let planned: i64 = ledger
            .read(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM sepa_file WHERE written_at IS NULL",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(planned, 1, "the plan is committed before the write");
        // The process dies here: stage and ledger dropped, the message never acked.
    }
    std::fs::remove_file(bank.join("outbox")).unwrap();

    // Restart: the broker redelivers the run's message to a fresh stage.
    let mut flow = Flow::start_in(dir, vec![tenant(&t)]).await;
    flow.publish(&closed).await;
    let files = flow.wait_files(&t, "outbox", 1).await;
    settle().await;
    assert_eq!(flow.files(&t, "outbox").len(), 1, "no second file");
    assert_eq!(name(&files[0]), reference.0, "same name, same {{seq}}");
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        reference.1,
        "byte-identical to the file written without a crash"
    );
    check_pain008(&files[0]);
    assert_eq!(flow.count("SELECT count(*) FROM sepa_file").await, 1);
    assert_eq!(
        flow.count("SELECT count(*) FROM sepa_file WHERE written_at IS NULL")
            .await,
        0
    );
    assert_eq!(
        flow.count("SELECT count(*) FROM emitted_file WHERE kind = 'pain008'")
            .await,
        1
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_and_republications_add_nothing() {
    let t = tenant_id("t4");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let run = "run-t4";
    let invoices: Vec<_> = ["R1", "R2", "R3"]
        .iter()
        .map(|n| invoice(&t, run, &Inv::debit(n, "RUM-R", "9.99")))
        .collect();
    let closed = run_closed(&t, run, &invoices);
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&closed).await;
    let files = flow.wait_files(&t, "outbox", 1).await;
    let first = std::fs::read(&files[0]).unwrap();
    let processed = "SELECT count(*) FROM processed_message WHERE stage = 'sepa.batch'";
    wait_until("4 messages processed", Duration::from_secs(30), || async {
        flow.count(processed).await == 4
    })
    .await;

    // The same messages again (a lost ack): deduplicated by the runtime.
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&closed).await;
    // The same facts under new message ids (a producer re-publishing): the stage itself
    // finds the invoices collected and the run closed.
    for i in &invoices {
        flow.publish_as(i, &format!("{}-again", i.message_id()))
            .await;
    }
    flow.publish_as(&closed, &format!("{}-again", closed.message_id()))
        .await;
    wait_until("8 messages processed", Duration::from_secs(30), || async {
        flow.count(processed).await == 8
    })
    .await;
    // And a handler call outside the runtime (no dedupe at all).
    let stage = SepaBatch::new(
        settings(flow.dir.path(), vec![tenant(&t)]),
        flow.ledger.clone(),
    );
    let handled = stage.handle(&incoming(&closed)).await.unwrap();
    assert!(handled.outputs.is_empty());
    settle().await;

    let files = flow.files(&t, "outbox");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), first);
    assert_eq!(flow.count("SELECT count(*) FROM sepa_file").await, 1);
    assert_eq!(flow.count("SELECT count(*) FROM sepa_collection").await, 3);
    assert!(flow.events().await.is_empty());
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_invoices_do_not_block_the_valid_ones() {
    install_metrics();
    let t = tenant_id("t5");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let run = "run-t5";
    let long_name: &'static str = Box::leak(format!("Mme {}", "A".repeat(76)).into_boxed_str());
    let invoices = vec![
        invoice(&t, run, &Inv::debit("V1", "RUM-V1", "45.60")),
        invoice(&t, run, &Inv::debit("V2", "RUM-V2", "12.00")),
        // Due Saturday 12 December: moved to Monday 14 (TARGET day), still valid.
        invoice(
            &t,
            run,
            &Inv {
                due: d(2026, 12, 12),
                ..Inv::debit("V3", "RUM-V3", "30.00")
            },
        ),
        // Due the day after the file's creation: the bank needs 2 TARGET days.
        invoice(
            &t,
            run,
            &Inv {
                due: d(2026, 12, 2),
                ..Inv::debit("N1", "RUM-N1", "10.00")
            },
        ),
        // A holder name longer than SEPA allows.
        invoice(
            &t,
            run,
            &Inv {
                holder: long_name,
                ..Inv::debit("N2", "RUM-N2", "11.00")
            },
        ),
        // A direct-debit invoice without mandate.
        invoice(
            &t,
            run,
            &Inv {
                rum: None,
                ..Inv::debit("N3", "-", "12.00")
            },
        ),
    ];
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(&t, run, &invoices)).await;

    let files = flow.wait_files(&t, "outbox", 1).await;
    let sent = check_pain008(&files[0]);
    assert_eq!(e2e_ids(&sent), ["2026-V1-1", "2026-V2-1", "2026-V3-1"]);
    let dues: Vec<_> = sent.blocks.iter().map(|b| b.due_date).collect();
    assert_eq!(dues, [d(2026, 12, 10), d(2026, 12, 14)]);

    // Publishing is at least once: when the last invoice and the run's announcement are
    // handled at the same moment, both may hand over the queued refusals. A copy carries the
    // same message id and the same body (consumers keep one); what must hold is one distinct
    // event per refused invoice.
    let mut events = flow.wait_events(3).await;
    events.sort_by(|a, b| a.invoice.number.cmp(&b.invoice.number));
    let published = events.len();
    events.dedup_by(|a, b| a.message_id() == b.message_id() && a == b);
    assert!(
        published <= 2 * events.len(),
        "{published} copies of {events:?}"
    );
    let summary: Vec<(&str, &str, bool)> = events
        .iter()
        .map(|e| {
            (
                e.invoice.number.as_str(),
                e.reason_code.as_str(),
                e.will_represent,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("N1", "LOCAL-RULES", false),
            ("N2", "LOCAL-RULES", false),
            ("N3", "LOCAL-SETUP", false)
        ]
    );
    assert!(
        events[0].reason_text.contains("ReqdColltnDt"),
        "{}",
        events[0].reason_text
    );
    assert!(
        events[1].reason_text.contains("Dbtr/Nm"),
        "{}",
        events[1].reason_text
    );
    assert_eq!(events[0].end_to_end_id, "2026-N1-1");
    assert_eq!(events[0].amount.to_dot_string(), "10.00");

    let reports = flow.wait_files(&t, "rejected", 1).await;
    assert_eq!(name(&reports[0]), "run-t5-principal-refused.csv");
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    assert_eq!(report.lines().count(), 4, "{report}");
    assert!(report.contains(&format!(
        "{t}/2026/N1;FAM-N1;10.00;2026-12-02;1;2026-N1-1;LOCAL-RULES"
    )));
    assert!(
        !report.contains("AAAAAAAAAA"),
        "no debtor name in the report"
    );

    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/N3"))
        .await
        .unwrap();
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].kind, "sepa_refused");
    assert_eq!(
        counter(
            "encaisse_sepa_invoices_refused_total",
            &[("tenant", t.as_str()), ("reason_code", "LOCAL-RULES")]
        ),
        2
    );
    settle().await;
    assert_eq!(flow.events().await.len(), 3, "each refusal told once");
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_without_direct_debit_refuses_its_debit_invoices_at_once() {
    let t = tenant_id("t6");
    let other = tenant_id("t6-nosepa");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let debit = invoice(&other, "run-t6", &Inv::debit("D1", "RUM-D", "18.00"));
    let online = invoice(
        &other,
        "run-t6",
        &Inv {
            mode: "TIPI",
            rum: None,
            ..Inv::debit("D2", "-", "5.00")
        },
    );
    flow.publish(&debit).await;
    flow.publish(&online).await;
    flow.publish(&run_closed(
        &other,
        "run-t6",
        &[debit.clone(), online.clone()],
    ))
    .await;
    let events = flow.wait_events(1).await;
    assert_eq!(events[0].invoice.number, "D1");
    assert_eq!(events[0].reason_code, "LOCAL-SETUP");
    assert!(events[0].reason_text.contains("[tenants.sepa]"));
    let facts = flow
        .ledger
        .invoice_facts(&format!("{other}/2026/D1"))
        .await
        .unwrap();
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].kind, "sepa_refused");
    settle().await;
    assert_eq!(
        flow.events().await.len(),
        1,
        "the online invoice is not refused"
    );
    assert!(flow.files(&other, "outbox").is_empty());
    assert_eq!(flow.count("SELECT count(*) FROM batch_item").await, 0);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_run_is_one_valid_file_with_exact_totals() {
    let t = tenant_id("t7");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let run = "run-t7";
    let count = 1_000usize;
    let numbers: Vec<&'static str> = (0..count)
        .map(|i| &*Box::leak(format!("L{i:05}").into_boxed_str()))
        .collect();
    let amounts: Vec<&'static str> = (0..count)
        .map(|i| &*Box::leak(format!("{}.{:02}", 1 + i % 300, (i * 37) % 100).into_boxed_str()))
        .collect();
    let invoices: Vec<_> = (0..count)
        .map(|i| {
            let rum: &'static str = Box::leak(format!("RUM-L{i:05}").into_boxed_str());
            invoice(&t, run, &Inv::debit(numbers[i], rum, amounts[i]))
        })
        .collect();
    let expected_cents: i64 = invoices.iter().map(|i| i.total.cents()).sum();
    let started = std::time::Instant::now();
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(&t, run, &invoices)).await;
    let files = flow.wait_files(&t, "outbox", 1).await;
    let elapsed = started.elapsed();
    let sent = check_pain008(&files[0]);
    assert_eq!(sent.declared_count, count as u64);
    assert_eq!(sent.declared_cents, Some(expected_cents as u64));
    assert_eq!(e2e_ids(&sent).len(), count);
    eprintln!("{count} invoices → one pain.008 in {elapsed:?}");
    flow.stop().await;
}

/// `(end-to-end id, cents)` of every collection of a pain.008, in file order.
fn debited(sent: &encaisse_sepa::read::pain008::SentFile) -> Vec<(String, i64)> {
    sent.blocks
        .iter()
        .flat_map(|b| &b.collections)
        .map(|c| (c.end_to_end_id.clone(), c.amount.cents()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_with_reduction_lines_is_debited_for_its_total() {
    let t = tenant_id("reduced");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let run = "run-reduced";
    let mut reduced = invoice(&t, run, &Inv::debit("R1", "RUM-R1", "120.00"));
    let mut reduction = reduced.lines[0].clone();
    reduction.number = 2;
    reduction.label = "Réduction quotient familial".into();
    reduction.unit_price = encaisse_schemas::Money::parse("-35.50").unwrap();
    reduction.amount = reduction.unit_price;
    reduced.lines.push(reduction);
    reduced.total = encaisse_schemas::Money::parse("84.50").unwrap();
    let invoices = vec![
        reduced,
        invoice(&t, run, &Inv::debit("R2", "RUM-R2", "10.00")),
    ];
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(&t, run, &invoices)).await;
    let files = flow.wait_files(&t, "outbox", 1).await;
    let sent = check_pain008(&files[0]);
    let debited = debited(&sent);
    assert_eq!(
        debited,
        [
            ("2026-R1-1".to_string(), 8_450),
            ("2026-R2-1".to_string(), 1_000)
        ],
        "the invoice's total, never a line"
    );
    assert_eq!(sent.declared_cents, Some(9_450));
    settle().await;
    assert!(flow.events().await.is_empty(), "nothing refused");
    flow.stop().await;
}

/// A credit note `number` against `origin`, taking `amount` off.
fn regie_credit_note(
    t: &encaisse_schemas::TenantId,
    number: &'static str,
    origin: &encaisse_schemas::InvoiceIssued,
    amount: &str,
) -> encaisse_schemas::CreditNoteIssued {
    let mut note = invoice(t, "run-notes", &Inv::debit(number, "RUM-X", "1.00"));
    let minus = encaisse_schemas::Money::parse(amount).unwrap();
    note.lines[0].unit_price = minus;
    note.lines[0].amount = minus;
    note.total = minus;
    note.mandate = None;
    encaisse_schemas::CreditNoteIssued {
        schema_version: 1,
        origin: origin.invoice.clone(),
        note,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regie_credit_notes_lower_the_next_debit_or_are_refunds_to_make() {
    let t = tenant_id("avregie");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let told = flow.client.sink(&flow.ns, "told", "titre.rejected").await;
    let run = "run-avregie";
    let invoices = vec![
        invoice(&t, run, &Inv::debit("R1", "RUM-R1", "40.00")),
        invoice(&t, run, &Inv::debit("R2", "RUM-R2", "10.00")),
        invoice(&t, run, &Inv::debit("R3", "RUM-R3", "25.00")),
    ];
    for i in &invoices {
        flow.publish(i).await;
    }
    wait_until("the invoices received", Duration::from_secs(30), || async {
        flow.count("SELECT count(*) FROM batch_item WHERE stage = 'sepa.batch'")
            .await
            == 3
    })
    .await;
    // Before the run is planned: R1 lowered, R2 cancelled.
    let lower = regie_credit_note(&t, "AV1", &invoices[0], "-15.00");
    let cancel = regie_credit_note(&t, "AV2", &invoices[1], "-10.00");
    flow.publish(&lower).await;
    flow.publish(&cancel).await;
    wait_until(
        "two pending credit notes",
        Duration::from_secs(30),
        || async {
            flow.count("SELECT count(*) FROM sepa_credit_note WHERE state = 'pending'")
                .await
                == 2
        },
    )
    .await;
    flow.publish(&run_closed(&t, run, &invoices)).await;
    let files = flow.wait_files(&t, "outbox", 1).await;
    let sent = check_pain008(&files[0]);
    let debited = debited(&sent);
    assert_eq!(
        debited,
        [
            ("2026-R1-1".to_string(), 2_500),
            ("2026-R3-1".to_string(), 2_500)
        ],
        "R1 less its credit note, R2 cancelled: not debited"
    );
    // After the pain.008: a refund to make; an unknown original: refused. Each told once,
    // even when received twice.
    let refund = regie_credit_note(&t, "AV3", &invoices[2], "-5.00");
    let mut unknown = regie_credit_note(&t, "AV4", &invoices[2], "-1.00");
    unknown.origin.number = "R9".into();
    for n in [&refund, &unknown, &refund] {
        flow.publish(n).await;
    }
    let seen = std::sync::Mutex::new(Vec::<serde_json::Value>::new());
    let drain = || async {
        let fresh = flow.client.drain(&told).await;
        let mut seen = seen.lock().unwrap();
        seen.extend(
            fresh
                .iter()
                .map(|d| serde_json::from_slice(&d.data).unwrap()),
        );
        seen.len()
    };
    wait_until("two titre.rejected", Duration::from_secs(30), || async {
        drain().await >= 2
    })
    .await;
    settle().await;
    drain().await;
    let seen = seen.into_inner().unwrap();
    let mut codes: Vec<(String, String)> = seen
        .iter()
        .map(|e| {
            (
                e["invoice"]["number"].as_str().unwrap().to_string(),
                e["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    codes.sort();
    codes.dedup();
    assert_eq!(
        codes,
        [
            ("AV3".to_string(), "LOCAL-REMBOURSEMENT".to_string()),
            ("AV4".to_string(), "LOCAL-AVOIR".to_string()),
        ]
    );
    let refund_text = seen
        .iter()
        .find(|e| e["invoice"]["number"] == "AV3")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .unwrap();
    assert!(refund_text.contains("refunds 5,00"), "{refund_text}");
    assert_eq!(
        flow.count("SELECT count(*) FROM sepa_credit_note").await,
        4,
        "one row per credit note"
    );
    assert_eq!(flow.files(&t, "outbox").len(), 1, "no other debit");
    flow.stop().await;
}
