//! The `helios.returns` source on the real broker: the Trésorerie (simulated from the PES
//! Aller files the `helios.titres` stage wrote) answers with `PES_ACQUIT` and `PES_Retour`
//! files dropped in `<tenant>/helios/inbox`. Acquits OK / KO become `titre.accepted` /
//! `titre.rejected` (the KO bordereau flagged in the ledger); PES Retour émargements become
//! `payment.received` with their channel, a vanished one `payment.reversed`, the same file
//! twice nothing new, an older file read late nothing; each PES Retour is answered with a
//! `PES_ACQUIT_RETOUR` valid against its XSD; unknown, malformed, oversized and DTD files are
//! rejected with a reason; what matches nothing sent is reported.

#[path = "helios_support/mod.rs"]
mod helios;
#[path = "runtime_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use encaisse_helios::codes::BordereauKind;
use encaisse_schemas::TenantId;
use helios::*;
use support::{counter, install_metrics};

async fn settle() {
    tokio::time::sleep(Duration::from_millis(1000)).await;
}

/// Emits a run of `invoices` through `helios.titres` and returns what the Trésorerie reads.
async fn send_run(flow: &Flow, t: &TenantId, run: &str, invoices: &[Inv]) -> Sent {
    let before = flow.files(t, "outbox").len();
    let invoices: Vec<_> = invoices.iter().map(|i| invoice(t, run, i)).collect();
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(t, run, &invoices)).await;
    let files = flow.wait_files(t, "outbox", "PES", before + 1).await;
    let newest = files
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap())
        .unwrap();
    read_sent(&std::fs::read(newest).unwrap())
}

fn of_kind<'a>(events: &'a [Seen], kind: &str) -> Vec<&'a Seen> {
    events.iter().filter(|e| e.kind == kind).collect()
}

fn invoice_number(e: &Seen) -> String {
    e.body["invoice"]["number"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquits_accept_or_reject_the_titres_and_flag_the_bordereau() {
    install_metrics();
    let t = tenant_id("acq");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ordinaire)]).await;
    let sent = send_run(
        &flow,
        &t,
        "run-acq-1",
        &[
            Inv::new("F2026000101", "10.00"),
            Inv::debit("F2026000102", "20.00", Some("RCUR")),
            Inv::new("F2026000103", "30.00"),
        ],
    )
    .await;

    flow.drop_file(&t, "ACQUIT_OK_1.xml", &acquit(&sent, d(2026, 3, 11), &[]));
    assert_eq!(flow.wait_handled(&t, "ACQUIT_OK_1.xml").await, "archive");
    let events = flow.wait_events(3).await;
    let accepted = of_kind(&events, "titre.accepted");
    assert_eq!(accepted.len(), 3, "{events:#?}");
    assert!(accepted.iter().all(|e| e.body["source"] == "acquit"));
    assert!(accepted.iter().all(|e| e.body["file"] == "ACQUIT_OK_1.xml"));
    let refs: BTreeSet<String> = accepted
        .iter()
        .map(|e| {
            let titre = &e.body["titre"];
            format!(
                "{}:{}/{}/{}/{}",
                invoice_number(e),
                titre["exercice"],
                titre["bordereau_type"].as_str().unwrap(),
                titre["id_bord"],
                titre["id_pce"]
            )
        })
        .collect();
    assert_eq!(
        refs,
        BTreeSet::from([
            "F2026000101:2026/01/1/1".to_string(),
            "F2026000102:2026/01/1/2".to_string(),
            "F2026000103:2026/01/1/3".to_string(),
        ])
    );
    assert_eq!(
        flow.count(
            "SELECT count(*) FROM helios_bordereau WHERE ack_state = 'accepted' AND id_bord = 1"
        )
        .await,
        1
    );

    // The next run's bordereau is rejected: the guichet names pièce 4, line 1.
    let sent2 = send_run(
        &flow,
        &t,
        "run-acq-2",
        &[
            Inv::debit("F2026000104", "40.00", Some("RCUR")),
            Inv::new("F2026000105", "50.00"),
        ],
    )
    .await;
    assert_eq!(sent2.bordereaux[0].id_bord, 2);
    let ko = acquit(
        &sent2,
        d(2026, 3, 12),
        &[(
            2,
            vec![(4, 1, "ERREUR_AUTRE", "1963 - Domiciliation erronée")],
        )],
    );
    flow.drop_file(&t, "ACQUIT_KO_2.xml", &ko);
    assert_eq!(flow.wait_handled(&t, "ACQUIT_KO_2.xml").await, "archive");
    let events = flow.wait_events(5).await;
    let rejected = of_kind(&events, "titre.rejected");
    assert_eq!(rejected.len(), 2, "{events:#?}");
    let by_number = |n: &str| *rejected.iter().find(|e| invoice_number(e) == n).unwrap();
    let named = by_number("F2026000104");
    assert_eq!(named.body["code"], "ERREUR_AUTRE");
    assert!(
        named.body["text"]
            .as_str()
            .unwrap()
            .contains("ligne 1: 1963 - Domiciliation erronée"),
        "{}",
        named.body
    );
    assert_eq!(named.body["titre"]["id_pce"], 4);
    let other = by_number("F2026000105");
    assert_eq!(
        other.body["code"], "ACQUIT_KO",
        "a KO bordereau is not integrated"
    );
    let (state, errors): (String, Option<String>) = flow
        .ledger
        .read(|c| {
            Ok(c.query_row(
                "SELECT ack_state, ack_errors FROM helios_bordereau WHERE id_bord = 2",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(state, "rejected");
    assert_eq!(
        errors, None,
        "the errors were on the pièce, not the bordereau"
    );
    assert_eq!(
        counter(
            "encaisse_helios_bordereaux_rejected_total",
            &[("tenant", t.as_str())]
        ),
        1
    );
    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/F2026000104"))
        .await
        .unwrap();
    assert!(
        facts.iter().any(|f| f.kind == "titre_rejected"
            && f.detail.contains("ERREUR_AUTRE")
            && f.detail.contains("ACQUIT_KO_2.xml")),
        "{facts:?}"
    );

    // The same acquit again, under another name: nothing new.
    flow.drop_file(&t, "ACQUIT_KO_2_bis.xml", &ko);
    assert_eq!(
        flow.wait_handled(&t, "ACQUIT_KO_2_bis.xml").await,
        "archive"
    );
    settle().await;
    assert_eq!(flow.events().await.len(), 5);
    assert_eq!(
        counter(
            "encaisse_helios_bordereaux_rejected_total",
            &[("tenant", t.as_str())]
        ),
        1
    );
}

fn line(state: &'static str, emargements: Vec<(&'static str, &'static str, &str)>) -> RLine {
    RLine {
        id_ligne: 1,
        state,
        emargements: emargements
            .into_iter()
            .map(|(o, d, a)| (o, d, a.to_string()))
            .collect(),
    }
}

fn taken(id_pce: u32, line: RLine) -> RPiece {
    RPiece {
        id_pce,
        state: "02",
        obs: None,
        taken_on: Some("2026-03-16"),
        rejected_on: None,
        lines: vec![line],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pes_retour_payments_are_reconciled_by_state_and_answered() {
    install_metrics();
    let t = tenant_id("ret");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ormc)]).await;
    let sent = send_run(
        &flow,
        &t,
        "run-ret",
        &[
            Inv::new("F2026000201", "41.20"),
            Inv::debit("F2026000202", "57.30", Some("RCUR")),
            Inv::new("F2026000203", "12.00"),
        ],
    )
    .await;
    let b = &sent.bordereaux[0];

    // Periodic flow of 25 March: all taken in charge; paid online (OrgEma 10) and by the
    // debit Hélios sent (OrgEma 03).
    let name1 = "PES2R_RCE__PO_081_00_094000_20260325_20260325_20260325061502.xml";
    let p1 = retour(
        &sent,
        b,
        name1,
        "02",
        d(2026, 3, 25),
        &[
            taken(1, line("05", vec![("10", "2026-03-24", "41.20")])),
            taken(2, line("05", vec![("03", "2026-03-20", "57.30")])),
            taken(3, line("04", vec![])),
        ],
    );
    flow.drop_file(&t, name1, &p1);
    assert_eq!(flow.wait_handled(&t, name1).await, "archive");
    let events = flow.wait_events(5).await;
    assert_eq!(of_kind(&events, "titre.accepted").len(), 3, "{events:#?}");
    let paid = of_kind(&events, "payment.received");
    assert_eq!(paid.len(), 2, "{events:#?}");
    let channel = |n: &str| {
        paid.iter()
            .find(|e| invoice_number(e) == n)
            .map(|e| e.body["channel"].as_str().unwrap().to_string())
    };
    assert_eq!(channel("F2026000201").as_deref(), Some("CB"));
    assert_eq!(channel("F2026000202").as_deref(), Some("PRELEVEMENT"));
    let debit = paid
        .iter()
        .find(|e| invoice_number(e) == "F2026000202")
        .unwrap();
    assert_eq!(
        debit.body["payment_id"],
        "helios:081/00/2026/06/1/2/1/03-20260320-5730-1"
    );
    assert_eq!(debit.body["source"], "helios");
    assert_eq!(debit.body["amount"], "57.30");

    // The answer: a PES_ACQUIT_RETOUR valid against its XSD.
    let answers = flow.wait_files(&t, "outbox", "ACQUIT_", 1).await;
    let answer = std::fs::read(&answers[0]).unwrap();
    assert_valid(
        &encaisse_helios::schemas::acquit_retour(),
        &file_name(&answers[0]),
        &answer,
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains(&format!("<NomFichierRetour V=\"{name1}\"/>")),
        "{text}"
    );
    assert!(text.contains("<DomaineAckRetour V=\"14\"/>"), "{text}");
    assert!(text.contains("<DateAcquit V=\"2026-03-10\"/>"), "{text}");

    // The same file twice (another name): nothing new, the same answer.
    flow.drop_file(&t, "copy-of-p1.xml", &p1);
    assert_eq!(flow.wait_handled(&t, "copy-of-p1.xml").await, "archive");
    settle().await;
    assert_eq!(
        flow.events().await.len(),
        5,
        "the same file twice publishes nothing"
    );
    assert_eq!(
        flow.files(&t, "outbox")
            .iter()
            .filter(|p| file_name(p).starts_with("ACQUIT_"))
            .count(),
        1
    );
    assert_eq!(std::fs::read(&answers[0]).unwrap(), answer);

    // April: the direct debit was rejected by the bank — Hélios neutralised its émargement;
    // the third titre was paid at the Trésorerie's counter.
    let name2 = "PES2R_RCE__PO_081_00_094000_20260430_20260430_20260430061502.xml";
    let p2 = retour(
        &sent,
        b,
        name2,
        "02",
        d(2026, 4, 30),
        &[
            taken(1, line("05", vec![("10", "2026-03-24", "41.20")])),
            taken(2, line("04", vec![])),
            taken(3, line("05", vec![("02", "2026-04-15", "12.00")])),
        ],
    );
    flow.drop_file(&t, name2, &p2);
    assert_eq!(flow.wait_handled(&t, name2).await, "archive");
    let events = flow.wait_events(7).await;
    let reversed = of_kind(&events, "payment.reversed");
    assert_eq!(reversed.len(), 1, "{events:#?}");
    assert_eq!(invoice_number(reversed[0]), "F2026000202");
    assert_eq!(reversed[0].body["payment_id"], debit.body["payment_id"]);
    assert_eq!(reversed[0].body["amount"], "57.30");
    let paid = of_kind(&events, "payment.received");
    assert_eq!(
        paid.len(),
        3,
        "only the counter payment is new: {events:#?}"
    );
    assert!(
        paid.iter()
            .any(|e| invoice_number(e) == "F2026000203" && e.body["channel"] == "GUICHET")
    );
    // Titre events of the April file carry the same ids as March's: consumers deduplicate.
    let ids: BTreeSet<&str> = of_kind(&events, "titre.accepted")
        .iter()
        .map(|e| e.message_id.as_str())
        .collect();
    assert_eq!(ids.len(), 3);

    // A March file read late (dated before April's state): it undoes nothing.
    let name0 = "PES2R_RCE__PO_081_00_094000_20260322_20260322_20260322061502.xml";
    let p0 = retour(
        &sent,
        b,
        name0,
        "02",
        d(2026, 3, 22),
        &[taken(1, line("04", vec![])), taken(3, line("04", vec![]))],
    );
    flow.drop_file(&t, name0, &p0);
    assert_eq!(flow.wait_handled(&t, name0).await, "archive");
    settle().await;
    let events = flow.events().await;
    assert_eq!(of_kind(&events, "payment.reversed").len(), 1, "{events:#?}");
    assert_eq!(of_kind(&events, "payment.received").len(), 3);
    assert_eq!(
        counter(
            "encaisse_helios_payments_reversed_total",
            &[("tenant", t.as_str())]
        ),
        1
    );
    assert_eq!(
        counter(
            "encaisse_helios_payments_received_total",
            &[("tenant", t.as_str()), ("channel", "CB")]
        ),
        1
    );
    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/F2026000202"))
        .await
        .unwrap();
    let kinds: Vec<&str> = facts.iter().map(|f| f.kind.as_str()).collect();
    for kind in [
        "titre_emitted",
        "titre_accepted",
        "payment_received",
        "payment_reversed",
    ] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_flow_rejects_titres_with_the_comptables_reasons() {
    let t = tenant_id("rej");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ormc)]).await;
    let sent = send_run(
        &flow,
        &t,
        "run-rej",
        &[
            Inv::debit("F2026000301", "18.40", Some("RCUR")),
            Inv::new("F2026000302", "9.00"),
        ],
    )
    .await;
    let name = "PES2R_RCE__RO_081_00_094000_20260318_20260318_20260318061502.xml";
    let file = retour(
        &sent,
        &sent.bordereaux[0],
        name,
        "01",
        d(2026, 3, 18),
        &[RPiece {
            id_pce: 1,
            state: "04",
            obs: Some("17-35"),
            taken_on: None,
            rejected_on: Some("2026-03-17"),
            lines: vec![RLine {
                id_ligne: 1,
                state: "01",
                emargements: vec![],
            }],
        }],
    );
    flow.drop_file(&t, name, &file);
    assert_eq!(flow.wait_handled(&t, name).await, "archive");
    let events = flow.wait_events(1).await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, "titre.rejected");
    assert_eq!(events[0].body["code"], "17-35");
    assert_eq!(events[0].body["source"], "retour");
    assert!(
        events[0].body["text"]
            .as_str()
            .unwrap()
            .contains("domiciliation"),
        "{}",
        events[0].body
    );
    flow.wait_files(&t, "outbox", "ACQUIT_", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_rejected_with_a_reason_and_strangers_reported() {
    encaisse_xml::specs_or_skip!(
        "pes-v2/samples",
        "a real PES_ACQUIT of another collectivité is read"
    );
    install_metrics();
    let t = tenant_id("bad");
    let mut config = tenant(&t, BordereauKind::Ordinaire);
    config.config.max_input_bytes = 20_000;
    let flow = Flow::start(vec![config]).await;
    let sent = send_run(&flow, &t, "run-bad", &[Inv::new("F2026000401", "10.00")]).await;

    let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<n:PES_Retour xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour"><x V="&lol3;"/></n:PES_Retour>"#;
    let own_file = std::fs::read(&flow.files(&t, "outbox")[0]).unwrap();
    let mut foreign_budget = sent.clone();
    foreign_budget.cod_col = "999".into();
    let real_foreign = std::fs::read(
        encaisse_xml::specs::specs_dir().join(
            "pes-v2/samples/megalis-bretagne_pastell/test/PHPUnit/module/helios-generique/fixtures/pes_acquit_no_ack.xml",
        ),
    )
    .unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("laughs.xml", laughs.to_vec(), "dtd: "),
        ("our-own-aller.xml", own_file, "unknown_document: "),
        ("notes.txt", b"hello, Tresorerie".to_vec(), "malformed: "),
        ("huge.xml", vec![b' '; 20_001], "too_large: "),
        (
            "cut.xml",
            acquit(&sent, d(2026, 3, 11), &[])[..300].to_vec(),
            "malformed: ",
        ),
        (
            "other-budget.xml",
            acquit(&foreign_budget, d(2026, 3, 11), &[]),
            "unknown_budget: ",
        ),
        ("real-foreign-acquit.xml", real_foreign, "unknown_budget: "),
    ];
    for (name, bytes, _) in &cases {
        flow.drop_file(&t, name, bytes);
    }
    for (name, _, reason) in &cases {
        assert_eq!(flow.wait_handled(&t, name).await, "rejected", "{name}");
        let why = std::fs::read_to_string(
            flow.helios_dir(&t, "rejected")
                .join(format!("{name}.reason.txt")),
        )
        .unwrap();
        assert!(why.starts_with(reason), "{name}: {why}");
    }
    assert_eq!(
        counter(
            "encaisse_helios_return_files_rejected_total",
            &[("tenant", t.as_str()), ("reason", "dtd")]
        ),
        1
    );

    // An acquit naming our bordereau and one we never sent; a PES Retour naming a pièce
    // that is not ours: what matches is handled, the rest reported.
    let mut stranger = sent.clone();
    let mut extra = stranger.bordereaux[0].clone();
    extra.id_bord = 77;
    stranger.bordereaux.push(extra);
    flow.drop_file(
        &t,
        "ACQUIT_MIXED.xml",
        &acquit(&stranger, d(2026, 3, 11), &[]),
    );
    assert_eq!(flow.wait_handled(&t, "ACQUIT_MIXED.xml").await, "archive");
    let events = flow.wait_events(1).await;
    assert_eq!(of_kind(&events, "titre.accepted").len(), 1);
    let reports = flow
        .wait_files(&t, "rejected", "ACQUIT_MIXED.xml.", 1)
        .await;
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(report.contains("bordereau 2026/77"), "{report}");

    let mut ghost = sent.bordereaux[0].clone();
    ghost.pieces[0].id_pce = 9;
    let name = "PES2R_RCE__PO_081_00_094000_20260331_20260331_20260331061502.xml";
    let file = retour(
        &sent,
        &ghost,
        name,
        "02",
        d(2026, 3, 31),
        &[taken(9, line("05", vec![("10", "2026-03-30", "10.00")]))],
    );
    flow.drop_file(&t, name, &file);
    assert_eq!(flow.wait_handled(&t, name).await, "archive");
    let reports = flow.wait_files(&t, "rejected", name, 1).await;
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(report.contains("pièce 2026/01/1/9"), "{report}");
    settle().await;
    assert!(
        of_kind(&flow.events().await, "payment.received").is_empty(),
        "a payment on a titre that is not ours is never published"
    );
    assert_eq!(
        counter(
            "encaisse_helios_unmatched_total",
            &[("tenant", t.as_str()), ("kind", "retour")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_are_rejected_once_and_the_next_acquit_is_read() {
    let t = tenant_id("hostile");
    let mut config = tenant(&t, BordereauKind::Ordinaire);
    config.config.max_input_elements = 1_000;
    let flow = Flow::start(vec![config]).await;
    let sent = send_run(
        &flow,
        &t,
        "run-hostile",
        &[Inv::new("F2026000901", "10.00")],
    )
    .await;
    // Non-ASCII bytes right after `encoding=`: once a string slice inside a character, a
    // file retried forever.
    flow.drop_file(
        &t,
        "A_HOSTILE.xml",
        b"<?xml version=\"1.0\" encoding=\xC3\xA9\"ISO-8859-1\"?><n:PES_Retour/>",
    );
    // Small in bytes, huge in elements: refused at the element bound, not held in memory.
    let mut flood = b"<n:PES_Retour xmlns:n=\"x\">".to_vec();
    flood.extend(b"<a/>".repeat(2_000));
    flood.extend(b"</n:PES_Retour>");
    flow.drop_file(&t, "A_FLOOD.xml", &flood);
    flow.drop_file(&t, "B_ACQUIT.xml", &acquit(&sent, d(2026, 3, 11), &[]));
    assert_eq!(flow.wait_handled(&t, "A_HOSTILE.xml").await, "rejected");
    assert_eq!(flow.wait_handled(&t, "B_ACQUIT.xml").await, "archive");
    let why = std::fs::read_to_string(
        flow.helios_dir(&t, "rejected")
            .join("A_HOSTILE.xml.reason.txt"),
    )
    .unwrap();
    assert!(
        why.starts_with("invalid: ") && why.contains("line 1"),
        "{why}"
    );
    let events = flow.wait_events(1).await;
    assert_eq!(of_kind(&events, "titre.accepted").len(), 1, "{events:#?}");
}
