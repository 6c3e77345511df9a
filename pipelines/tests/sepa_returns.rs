//! The `sepa.returns` source on the real broker: the bank's pain.002 and camt.054 (simulated
//! as the spec describes them, validated against the ISO schemas) become `payment.rejected`;
//! AM04 is re-presented once with a new end-to-end id, then final; MD01 and AC04 stop the
//! mandate for the next invoice; the same return twice yields nothing new; unreadable files
//! are set aside with their reason; records matching nothing are reported, not lost.

#[path = "sepa_support/mod.rs"]
mod sepa;
#[path = "runtime_support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use encaisse_schemas::{PaymentRejected, SequenceType, TenantId};
use encaisse_sepa::read::pain008::SentFile;
use sepa::*;
use support::{counter, install_metrics};

async fn settle() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}

/// Publishes a run of `invoices` and waits for its pain.008; returns it, read back.
async fn present(flow: &Flow, t: &TenantId, run: &str, invoices: &[Inv]) -> (PathBuf, SentFile) {
    let before = flow.files(t, "outbox").len();
    let events: Vec<_> = invoices.iter().map(|i| invoice(t, run, i)).collect();
    for e in &events {
        flow.publish(e).await;
    }
    flow.publish(&run_closed(t, run, &events)).await;
    let files = flow.wait_files(t, "outbox", before + 1).await;
    let path = files
        .iter()
        .find(|p| !flow.files(t, "outbox")[..before].contains(p))
        .unwrap()
        .clone();
    let sent = check_pain008(&path);
    (path, sent)
}

fn block_of(sent: &SentFile, e2e: &str) -> String {
    sent.blocks
        .iter()
        .find(|b| b.collections.iter().any(|c| c.end_to_end_id == e2e))
        .unwrap()
        .payment_info_id
        .clone()
}

fn reason(flow: &Flow, t: &TenantId, name: &str) -> String {
    let path = flow
        .bank_dir(t, "rejected")
        .join(format!("{name}.reason.txt"));
    std::fs::read_to_string(path).unwrap()
}

fn by_e2e<'a>(events: &'a [PaymentRejected], e2e: &str) -> &'a PaymentRejected {
    events
        .iter()
        .find(|e| e.end_to_end_id == e2e)
        .unwrap_or_else(|| panic!("no event for {e2e}: {events:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn am04_is_represented_once_then_final() {
    install_metrics();
    let t = tenant_id("r1");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let (_, sent) = present(
        &flow,
        &t,
        "run-r1",
        &[
            Inv::debit("C1", "RUM-C1", "45.60"),
            Inv::debit("C2", "RUM-C2", "20.00"),
        ],
    )
    .await;
    assert_eq!(sent.message_id, "REGIE-CRECHE-DFT-SDD-26335-001");

    let status = pain002(
        "BANK-R1-0001",
        &sent.message_id,
        None,
        &[TxReject {
            block: &block_of(&sent, "2026-C1-1"),
            end_to_end_id: "2026-C1-1",
            code: "AM04",
            amount: "45.60",
            due: d(2026, 12, 10),
        }],
    );
    flow.drop_bank_file(&t, "sts-0001.xml", &status);
    assert_eq!(flow.wait_handled(&t, "sts-0001.xml").await, "archive");
    let events = flow.wait_events(1).await;
    let first = &events[0];
    assert_eq!(first.end_to_end_id, "2026-C1-1");
    assert_eq!(first.payment_id, "sepa:2026-C1-1");
    assert_eq!(first.reason_code, "AM04");
    assert!(first.will_represent);
    assert_eq!(first.amount.to_dot_string(), "45.60");
    assert_eq!(first.file.as_deref(), Some("sts-0001.xml"));
    assert_eq!(first.rejected_at.to_rfc3339(), "2026-12-09T00:00:00+01:00");

    // The re-presentation: a new end-to-end id, ten days after the due date (Sunday 20 →
    // Monday 21 December), FRST again (the FRST was rejected before settlement).
    let files = flow.wait_files(&t, "outbox", 2).await;
    assert_eq!(name(&files[1]), "REGIE-CRECHE-DFT-SDD-26335-002.xml");
    let again = check_pain008(&files[1]);
    assert_eq!(e2e_ids(&again), ["2026-C1-2"]);
    assert_eq!(again.blocks[0].due_date, d(2026, 12, 21));
    assert_eq!(again.blocks[0].sequence, Some(SequenceType::Frst));
    assert_eq!(again.declared_cents, Some(4_560));
    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/C1"))
        .await
        .unwrap();
    let kinds: Vec<&str> = facts.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "collection_planned",
            "pain008_emitted",
            "payment_rejected",
            "collection_planned",
            "pain008_emitted"
        ]
    );
    assert_eq!(
        counter(
            "encaisse_sepa_rejects_total",
            &[
                ("tenant", t.as_str()),
                ("reason_code", "AM04"),
                ("will_represent", "true")
            ]
        ),
        1
    );
    assert_eq!(
        counter(
            "encaisse_sepa_files_emitted_total",
            &[
                ("tenant", t.as_str()),
                ("regie", "regie-creche"),
                ("origin", "sepa.returns")
            ]
        ),
        1
    );

    // The re-presentation is rejected for the same reason: final, no third file.
    let status = pain002(
        "BANK-R1-0002",
        &again.message_id,
        None,
        &[TxReject {
            block: &again.blocks[0].payment_info_id,
            end_to_end_id: "2026-C1-2",
            code: "AM04",
            amount: "45.60",
            due: d(2026, 12, 21),
        }],
    );
    flow.drop_bank_file(&t, "sts-0002.xml", &status);
    assert_eq!(flow.wait_handled(&t, "sts-0002.xml").await, "archive");
    let events = flow.wait_events(2).await;
    let second = by_e2e(&events, "2026-C1-2");
    assert_eq!(second.reason_code, "AM04");
    assert!(!second.will_represent);
    settle().await;
    assert_eq!(
        flow.files(&t, "outbox").len(),
        2,
        "re-presented at most once"
    );
    assert_eq!(flow.events().await.len(), 2);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md01_makes_the_mandate_unusable_for_the_next_invoice() {
    let t = tenant_id("r2");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let (_, sent) = present(&flow, &t, "run-r2a", &[Inv::debit("M1", "RUM-M", "50.00")]).await;
    let status = pain002(
        "BANK-R2-0001",
        &sent.message_id,
        None,
        &[TxReject {
            block: &block_of(&sent, "2026-M1-1"),
            end_to_end_id: "2026-M1-1",
            code: "MD01",
            amount: "50.00",
            due: d(2026, 12, 10),
        }],
    );
    flow.drop_bank_file(&t, "sts.xml", &status);
    assert_eq!(flow.wait_handled(&t, "sts.xml").await, "archive");
    let events = flow.wait_events(1).await;
    assert_eq!(events[0].reason_code, "MD01");
    assert!(!events[0].will_represent);
    assert!(events[0].reason_text.starts_with("MD01 (NoMandate)"));

    // The next run: the mandate's invoice is refused, the other one is sent.
    let (_, next) = present(
        &flow,
        &t,
        "run-r2b",
        &[
            Inv {
                due: d(2027, 1, 8),
                ..Inv::debit("M2", "RUM-M", "50.00")
            },
            Inv {
                due: d(2027, 1, 8),
                ..Inv::debit("V1", "RUM-V", "10.00")
            },
        ],
    )
    .await;
    assert_eq!(e2e_ids(&next), ["2026-V1-1"]);
    let events = flow.wait_events(2).await;
    let refused = by_e2e(&events, "2026-M2-1");
    assert_eq!(refused.reason_code, "LOCAL-MANDATE");
    assert!(
        refused.reason_text.contains("closed by reject MD01"),
        "{}",
        refused.reason_text
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_return_twice_yields_nothing_new() {
    install_metrics();
    let t = tenant_id("r3");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let (_, sent) = present(
        &flow,
        &t,
        "run-r3",
        &[
            Inv::debit("S1", "RUM-S1", "61.00"),
            Inv::debit("S2", "RUM-S2", "62.00"),
        ],
    )
    .await;
    let status = pain002(
        "BANK-R3-0001",
        &sent.message_id,
        None,
        &[TxReject {
            block: &block_of(&sent, "2026-S1-1"),
            end_to_end_id: "2026-S1-1",
            code: "AM04",
            amount: "61.00",
            due: d(2026, 12, 10),
        }],
    );
    flow.drop_bank_file(&t, "a.xml", &status);
    assert_eq!(flow.wait_handled(&t, "a.xml").await, "archive");
    flow.wait_events(1).await;
    flow.wait_files(&t, "outbox", 2).await;

    // The same file again, under another name.
    flow.drop_bank_file(&t, "b.xml", &status);
    assert_eq!(flow.wait_handled(&t, "b.xml").await, "archive");
    // The same R-transaction reported again after settlement, in a camt.054.
    let notification = camt054("NTF-R3", &[("2026-S1-1", "RUM-S1", "61.00", "AM04")]);
    flow.drop_bank_file(&t, "camt.xml", &notification);
    assert_eq!(flow.wait_handled(&t, "camt.xml").await, "archive");
    settle().await;
    assert_eq!(flow.events().await.len(), 1, "nothing new");
    assert_eq!(flow.files(&t, "outbox").len(), 2, "one re-presentation");
    assert_eq!(
        counter(
            "encaisse_sepa_duplicate_records_total",
            &[("tenant", t.as_str())]
        ),
        2
    );
    assert_eq!(
        flow.count("SELECT count(*) FROM sepa_return_record WHERE outcome = 'duplicate'")
            .await,
        1
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_files_are_set_aside_with_their_reason() {
    let t = tenant_id("r4");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>&lol2;</CstmrPmtStsRpt></Document>"#;
    let statement =
        br#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt/></Document>"#;
    let no_message_id =
        br#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
<GrpHdr><CreDtTm>2026-12-09T07:00:00</CreDtTm></GrpHdr>
<OrgnlGrpInfAndSts><OrgnlMsgId>X</OrgnlMsgId></OrgnlGrpInfAndSts></CstmrPmtStsRpt></Document>"#;
    let mut huge = b"<Document>".to_vec();
    huge.resize(70_000, b' ');
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "garbage.xml",
            b"%PDF-1.4 not a bank file <<<",
            "unreadable_bank_file",
        ),
        ("laughs.xml", laughs, "unreadable_bank_file"),
        ("statement.xml", statement, "not a pain.002, camt.054"),
        ("incomplete.xml", no_message_id, "missing GrpHdr/MsgId"),
        ("huge.xml", &huge, "bank_file_too_large"),
    ];
    for (file, bytes, _) in &cases {
        flow.drop_bank_file(&t, file, bytes);
    }
    for (file, _, expected) in &cases {
        assert_eq!(flow.wait_handled(&t, file).await, "rejected", "{file}");
        let why = reason(&flow, &t, file);
        assert!(why.contains(expected), "{file}: {why}");
    }
    assert!(
        reason(&flow, &t, "laughs.xml")
            .to_lowercase()
            .contains("dtd")
    );
    assert!(reason(&flow, &t, "incomplete.xml").contains("line"));
    settle().await;
    assert!(flow.events().await.is_empty());
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camt054_return_is_rejected_and_a_new_account_amends_the_mandate() {
    let t = tenant_id("r5");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let (_, sent) = present(
        &flow,
        &t,
        "run-r5a",
        &[
            Inv::debit("A1", "RUM-A", "33.00"),
            Inv::debit("B1", "RUM-B", "44.00"),
        ],
    )
    .await;
    assert_eq!(e2e_ids(&sent), ["2026-A1-1", "2026-B1-1"]);
    let notification = camt054("NTF-R5", &[("2026-A1-1", "RUM-A", "33.00", "AC04")]);
    flow.drop_bank_file(&t, "camt-0001.xml", &notification);
    assert_eq!(flow.wait_handled(&t, "camt-0001.xml").await, "archive");
    let events = flow.wait_events(1).await;
    assert_eq!(events[0].end_to_end_id, "2026-A1-1");
    assert_eq!(events[0].reason_code, "AC04");
    assert!(!events[0].will_represent, "closed account: final");
    assert!(events[0].reason_text.contains("/RTYP/RTRN"));
    assert_eq!(
        events[0].rejected_at.to_rfc3339(),
        "2026-12-14T00:00:00+01:00"
    );

    // Two weeks later: the account is closed, the mandate suspended.
    flow.set_now(d(2026, 12, 15).and_hms_opt(9, 0, 0).unwrap());
    let next = |number: &'static str, iban: &'static str| Inv {
        iban,
        due: d(2027, 1, 8),
        ..Inv::debit(number, "RUM-A", "33.00")
    };
    let (_, sent) = present(
        &flow,
        &t,
        "run-r5b",
        &[
            next("A2", "FR7630006000011234567890189"),
            Inv {
                due: d(2027, 1, 8),
                ..Inv::debit("B2", "RUM-B", "44.00")
            },
        ],
    )
    .await;
    assert_eq!(e2e_ids(&sent), ["2026-B2-1"]);
    let events = flow.wait_events(2).await;
    let refused = by_e2e(&events, "2026-A2-1");
    assert_eq!(refused.reason_code, "LOCAL-MANDATE");
    assert!(refused.reason_text.contains("suspended by reject AC04"));

    // The family gives a new account (another bank): the mandate is amended (SMNDA).
    let (path, sent) = present(
        &flow,
        &t,
        "run-r5c",
        &[next("A3", "FR1420041010050500013M02606")],
    )
    .await;
    assert_eq!(e2e_ids(&sent), ["2026-A3-1"]);
    assert_eq!(sent.blocks[0].sequence, Some(SequenceType::Rcur));
    assert!(sent.blocks[0].collections[0].amended);
    let xml = std::fs::read_to_string(path).unwrap();
    assert!(
        xml.contains("<AmdmntInd>true</AmdmntInd>") && xml.contains("<Id>SMNDA</Id>"),
        "{xml}"
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_record_is_reported_not_lost() {
    install_metrics();
    let t = tenant_id("r6");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let (_, sent) = present(&flow, &t, "run-r6", &[Inv::debit("U1", "RUM-U", "15.00")]).await;
    let block = block_of(&sent, "2026-U1-1");
    let status = pain002(
        "BANK-R6-0001",
        &sent.message_id,
        None,
        &[
            TxReject {
                block: &block,
                end_to_end_id: "2026-U1-1",
                code: "MS02",
                amount: "15.00",
                due: d(2026, 12, 10),
            },
            TxReject {
                block: "SOMEONE-ELSES-BLOCK",
                end_to_end_id: "2026-ZZ9-1",
                code: "AC01",
                amount: "99.00",
                due: d(2026, 12, 10),
            },
        ],
    );
    flow.drop_bank_file(&t, "sts-u.xml", &status);
    assert_eq!(flow.wait_handled(&t, "sts-u.xml").await, "archive");
    let events = flow.wait_events(1).await;
    assert_eq!(events[0].end_to_end_id, "2026-U1-1");
    assert_eq!(events[0].reason_code, "MS02");
    let reports = flow.wait_files(&t, "rejected", 1).await;
    assert_eq!(name(&reports[0]), "BANK-R6-0001-unmatched.csv");
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(report.contains("sts-u.xml;"), "{report}");
    assert!(report.contains("2026-ZZ9-1"), "{report}");
    assert!(report.contains("AC01"), "{report}");
    assert!(report.contains("no collection found"), "{report}");
    assert_eq!(
        counter(
            "encaisse_sepa_unmatched_records_total",
            &[("tenant", t.as_str())]
        ),
        1
    );
    // Read again: already handled, no second report.
    flow.drop_bank_file(&t, "sts-u-again.xml", &status);
    assert_eq!(flow.wait_handled(&t, "sts-u-again.xml").await, "archive");
    settle().await;
    assert_eq!(flow.files(&t, "rejected").len(), 1);
    assert_eq!(flow.events().await.len(), 1);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_reject_rejects_every_collection_of_the_file() {
    let t = tenant_id("r7");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let (_, sent) = present(
        &flow,
        &t,
        "run-r7",
        &[
            Inv::debit("G1", "RUM-G1", "10.00"),
            Inv::debit("G2", "RUM-G2", "20.00"),
            Inv::debit("G3", "RUM-G3", "30.00"),
        ],
    )
    .await;
    let status = pain002("BANK-R7-0001", &sent.message_id, Some("FF01"), &[]);
    flow.drop_bank_file(&t, "sts-g.xml", &status);
    assert_eq!(flow.wait_handled(&t, "sts-g.xml").await, "archive");
    let events = flow.wait_events(3).await;
    let mut e2e: Vec<&str> = events.iter().map(|e| e.end_to_end_id.as_str()).collect();
    e2e.sort_unstable();
    assert_eq!(e2e, ["2026-G1-1", "2026-G2-1", "2026-G3-1"]);
    assert!(
        events
            .iter()
            .all(|e| e.reason_code == "FF01" && !e.will_represent)
    );
    let amounts: i64 = events.iter().map(|e| e.amount.cents()).sum();
    assert_eq!(amounts, 6_000);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_planning_is_completed_by_the_next_scan() {
    let t = tenant_id("r8");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let (_, sent) = present(&flow, &t, "run-r8", &[Inv::debit("F1", "RUM-F", "25.00")]).await;
    // The re-presentation cannot be written: a directory stands at its name.
    let blocker = flow
        .bank_dir(&t, "outbox")
        .join("REGIE-CRECHE-DFT-SDD-26335-002.xml");
    std::fs::create_dir(&blocker).unwrap();
    let status = pain002(
        "BANK-R8-0001",
        &sent.message_id,
        None,
        &[TxReject {
            block: &block_of(&sent, "2026-F1-1"),
            end_to_end_id: "2026-F1-1",
            code: "AM04",
            amount: "25.00",
            due: d(2026, 12, 10),
        }],
    );
    flow.drop_bank_file(&t, "sts-f.xml", &status);
    support::wait_until("the plan committed", Duration::from_secs(30), || async {
        flow.count("SELECT count(*) FROM sepa_file WHERE written_at IS NULL")
            .await
            == 1
    })
    .await;
    settle().await;
    assert!(
        flow.bank_dir(&t, "inbox").join("sts-f.xml").exists(),
        "left in the inbox until its effects are complete"
    );
    assert!(
        flow.events().await.is_empty(),
        "published only after the file"
    );

    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(flow.wait_handled(&t, "sts-f.xml").await, "archive");
    let events = flow.wait_events(1).await;
    assert!(events[0].will_represent);
    let files = flow.wait_files(&t, "outbox", 2).await;
    let again = check_pain008(&files[1]);
    assert_eq!(e2e_ids(&again), ["2026-F1-2"]);
    settle().await;
    assert_eq!(flow.events().await.len(), 1);
    assert_eq!(flow.count("SELECT count(*) FROM sepa_file").await, 2);
    assert_eq!(
        flow.count("SELECT count(*) FROM sepa_event WHERE handed_at IS NULL")
            .await,
        0
    );
    assert_eq!(
        flow.count("SELECT count(*) FROM sepa_collection WHERE attempt = 2")
            .await,
        1
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_are_set_aside_and_the_next_real_return_is_read() {
    let t = tenant_id("r9");
    let mut flow = Flow::start(vec![tenant(&t)]).await;
    let (_, sent) = present(&flow, &t, "run-r9", &[Inv::debit("H1", "RUM-H1", "12.00")]).await;
    // Non-ASCII bytes right after `encoding=`: once a string slice inside a character.
    flow.drop_bank_file(
        &t,
        "a-declaration.xml",
        b"<?xml version=\"1.0\" encoding=\xC3\xA9\xC3\xA9\"UTF-8\"?><Document/>",
    );
    // A link to the ledger: never followed.
    let inbox = flow.bank_dir(&t, "inbox");
    std::os::unix::fs::symlink(
        flow.dir.path().join("ledger.sqlite"),
        inbox.join("b-link.xml"),
    )
    .unwrap();
    let status = pain002(
        "BANK-R9-0001",
        &sent.message_id,
        None,
        &[TxReject {
            block: &block_of(&sent, "2026-H1-1"),
            end_to_end_id: "2026-H1-1",
            code: "MS03",
            amount: "12.00",
            due: d(2026, 12, 10),
        }],
    );
    flow.drop_bank_file(&t, "c-status.xml", &status);
    assert_eq!(flow.wait_handled(&t, "c-status.xml").await, "archive");
    let events = flow.wait_events(1).await;
    assert_eq!(by_e2e(&events, "2026-H1-1").reason_code, "MS03");
    assert_eq!(flow.wait_handled(&t, "a-declaration.xml").await, "rejected");
    let why = reason(&flow, &t, "a-declaration.xml");
    assert!(why.contains("unreadable_bank_file"), "{why}");
    // The link is not listed as a file; it stays where it is, unread.
    assert!(inbox.join("b-link.xml").is_symlink());
    flow.stop().await;
}
