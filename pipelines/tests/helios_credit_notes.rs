//! Credit notes through `helios.titres` on the real broker: a partial and a full credit note
//! against invoices sent as titres become réduction titres (bordereau of type 02, its own
//! IdBord sequence, `RattachPiece` naming the original), valid against the official XSD; an
//! excessive one and one for an unknown invoice are refused and told to Polyfac
//! (`titre.rejected`, `LOCAL-AVOIR`), never sent; a credit note received twice gives one
//! réduction titre; one for an invoice whose run is not closed waits for its titre; the PES
//! Retour taking the réduction titre in charge gives a `titre.accepted` for the credit note.

#[path = "helios_support/polyfac_export.rs"]
mod export_support;
#[path = "helios_support/mod.rs"]
mod helios;
#[path = "polyfac_support/mod.rs"]
mod polyfac;
#[path = "runtime_support/mod.rs"]
mod support;

use std::time::Duration;

use encaisse_helios::codes::BordereauKind;
use encaisse_helios::read::tree;
use encaisse_schemas::{CreditNoteIssued, InvoiceIssued, InvoiceRef, Money, TenantId};
use export_support::{polyfac_export, reglements_lines};
use helios::*;

async fn settle() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}

/// A credit note `number` against `origin`, taking `amounts` off (product code, amount < 0).
fn credit_note(
    t: &TenantId,
    run: &str,
    number: &str,
    origin: &str,
    amounts: &[(&str, &'static str)],
) -> CreditNoteIssued {
    let mut note = invoice(t, run, &Inv::new(number, "1.00"));
    let template = note.lines[0].clone();
    note.lines = amounts
        .iter()
        .zip(1..)
        .map(|((cod, amount), n)| {
            let mut l = template.clone();
            l.number = n;
            l.cod_prod_loc = cod.to_string();
            l.label = "Absences justifiées".into();
            l.unit_price = Money::parse(amount).unwrap();
            l.amount = l.unit_price;
            l
        })
        .collect();
    note.total = Money::sum(note.lines.iter().map(|l| &l.amount)).unwrap();
    note.content_hash = format!("hash-{number}");
    CreditNoteIssued {
        schema_version: 1,
        origin: InvoiceRef {
            tenant: t.clone(),
            exercice: 2026,
            number: origin.into(),
        },
        note,
    }
}

/// `(IdPce, MtHT, NatPceOrig, ExerRat, IdPceOrig, IdLigneOrig)` of every line of a file of
/// réduction titres, after checking its bordereau is of type 02 with pièces 02/06.
fn reductions_in(bytes: &[u8]) -> (u32, Vec<[String; 6]>) {
    let parsed = tree::parse(bytes, 1 << 20).unwrap();
    let bordereau = parsed
        .root
        .child("PES_RecetteAller")
        .and_then(|r| r.child("Bordereau"))
        .unwrap();
    let bloc = bordereau.child("BlocBordereau").unwrap();
    assert_eq!(bloc.value_of("TypBord"), Some("02"));
    let id_bord = bloc.value_of("IdBord").unwrap().parse().unwrap();
    let mut out = Vec::new();
    for piece in bordereau.children_named("Piece") {
        let bp = piece.child("BlocPiece").unwrap();
        assert_eq!(
            (bp.value_of("TypPce"), bp.value_of("NatPce")),
            (Some("02"), Some("06"))
        );
        for line in piece.children_named("LigneDePiece") {
            let bl = line.child("BlocLignePiece").unwrap();
            let info = bl.child("InfoLignePiece").unwrap();
            let r = bl.child("RattachPiece").unwrap();
            let v = |e: &tree::Element, n: &str| e.value_of(n).unwrap().to_string();
            out.push([
                v(bp, "IdPce"),
                v(info, "MtHT"),
                v(r, "NatPceOrig"),
                v(r, "ExerRat"),
                v(r, "IdPceOrig"),
                v(r, "IdLigneOrig"),
            ]);
        }
    }
    (id_bord, out)
}

fn rejected_credit_notes(events: &[Seen]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.kind == "titre.rejected")
        .map(|e| {
            (
                e.body["invoice"]["number"].as_str().unwrap().to_string(),
                e.body["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn publish_run(flow: &Flow, invoices: &[InvoiceIssued], t: &TenantId, run: &str) {
    for i in invoices {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(t, run, invoices)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_notes_become_reduction_titres_tied_to_their_originals() {
    let t = tenant_id("avoirs");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ordinaire)]).await;
    let export = polyfac_export(&flow, &t).await;
    let run = "run-avoirs";
    let invoices = vec![
        invoice(&t, run, &Inv::new("F2026000301", "41.20")),
        invoice(&t, run, &Inv::new("F2026000302", "57.30")),
        invoice(&t, run, &Inv::new("F2026000303", "12.00")),
    ];
    publish_run(&flow, &invoices, &t, run).await;
    let first = flow.wait_files(&t, "outbox", "PESALR1", 1).await;
    assert_eq!(
        read_sent(&std::fs::read(&first[0]).unwrap()).bordereaux[0].id_bord,
        1
    );

    let notes = "run-avoirs-2";
    let partial = credit_note(
        &t,
        notes,
        "A2026000001",
        "F2026000301",
        &[("CANT", "-6.20")],
    );
    let full = credit_note(
        &t,
        notes,
        "A2026000002",
        "F2026000302",
        &[("CANT", "-57.30")],
    );
    let excessive = credit_note(
        &t,
        notes,
        "A2026000003",
        "F2026000303",
        &[("CANT", "-12.01")],
    );
    let unknown = credit_note(
        &t,
        notes,
        "A2026000004",
        "F2026000999",
        &[("CANT", "-1.00")],
    );
    for n in [&partial, &full, &excessive, &unknown] {
        flow.publish(n).await;
    }
    // Replayed as is (same message id), and dropped again with other content (another id).
    flow.publish(&partial).await;
    let mut again = partial.clone();
    again.note.content_hash = "hash-A2026000001-again".into();
    flow.publish(&again).await;

    let files = flow
        .wait_files(&t, "outbox", "PESALR1_21940081000012_2026_02_", 2)
        .await;
    settle().await;
    assert_eq!(
        flow.files(&t, "outbox").len(),
        3,
        "one ordinary file, two réduction files: {:?}",
        flow.files(&t, "outbox")
    );
    // The stage handles messages concurrently: which credit note came first is not fixed,
    // the numbers are: IdBord 1 and 2 of type 02 (their own sequence, the ordinary
    // bordereau is 1 too), IdPce 4 and 5 (after the originals' 1–3), in the same order.
    let mut seen = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_valid(&pes_aller_xsd(), &file_name(f), &bytes);
        let (id_bord, lines) = reductions_in(&bytes);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let [id_pce, amount, nat, exer, orig, orig_line] = lines[0].clone();
        seen.push((id_bord, id_pce, (amount, nat, exer, orig, orig_line)));
    }
    seen.sort();
    let numbers: Vec<(u32, String)> = seen.iter().map(|(b, p, _)| (*b, p.clone())).collect();
    assert_eq!(numbers, [(1, "4".to_string()), (2, "5".to_string())]);
    let mut links: Vec<_> = seen.iter().map(|(_, _, l)| l.clone()).collect();
    links.sort();
    let link = |v: [&str; 5]| {
        (
            v[0].into(),
            v[1].into(),
            v[2].into(),
            v[3].into(),
            v[4].into(),
        )
    };
    assert_eq!(
        links,
        [
            link(["57.30", "01", "2026", "2", "1"]),
            link(["6.20", "01", "2026", "1", "1"]),
        ],
        "MtHT, NatPceOrig, ExerRat, IdPceOrig, IdLigneOrig"
    );
    let (partial_bord, partial_pce) = seen
        .iter()
        .find(|(_, _, l)| l.3 == "1")
        .map(|(b, p, _)| (*b, p.parse::<u32>().unwrap()))
        .unwrap();

    let events = flow.wait_events(2).await;
    assert_eq!(
        rejected_credit_notes(&events),
        [
            ("A2026000003".to_string(), "LOCAL-AVOIR".to_string()),
            ("A2026000004".to_string(), "LOCAL-AVOIR".to_string()),
        ]
    );
    let excessive_text = events
        .iter()
        .find(|e| e.body["invoice"]["number"] == "A2026000003")
        .map(|e| e.body["text"].as_str().unwrap().to_string())
        .unwrap();
    assert!(
        excessive_text.contains("more than what remains of the original titre (12.00"),
        "{excessive_text}"
    );
    assert_eq!(
        flow.count("SELECT count(*) FROM helios_reduction WHERE state = 'planned'")
            .await,
        2
    );
    // The original's journal shows its réduction titre.
    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/F2026000301"))
        .await
        .unwrap();
    let planned = facts
        .iter()
        .find(|f| f.kind == "reduction_planned")
        .expect("reduction_planned");
    assert!(planned.detail.contains("A2026000001"), "{}", planned.detail);

    // What remains of F2026000301 is 35.00: a second credit note of 35.00 passes, a third
    // of 0.01 does not.
    let rest = credit_note(
        &t,
        notes,
        "A2026000005",
        "F2026000301",
        &[("CANT", "-35.00")],
    );
    let beyond = credit_note(
        &t,
        notes,
        "A2026000006",
        "F2026000301",
        &[("CANT", "-0.01")],
    );
    flow.publish(&rest).await;
    flow.wait_files(&t, "outbox", "PESALR1_21940081000012_2026_02_", 3)
        .await;
    flow.publish(&beyond).await;
    support::wait_until("A2026000006 refused", Duration::from_secs(30), || async {
        rejected_credit_notes(&flow.events().await).len() == 3
    })
    .await;

    // The Trésorerie takes the partial réduction titre in charge.
    let partial_file = files
        .iter()
        .find(|f| reductions_in(&std::fs::read(f).unwrap()).0 == partial_bord)
        .unwrap();
    let sent = read_sent(&std::fs::read(partial_file).unwrap());
    let name = "PES2R_RCE__PO_081_00_094000_20260330_20260330_20260330061502.xml";
    let bytes = retour(
        &sent,
        &sent.bordereaux[0],
        name,
        "02",
        d(2026, 3, 30),
        &[RPiece {
            id_pce: partial_pce,
            state: "02",
            obs: None,
            taken_on: Some("2026-03-28"),
            rejected_on: None,
            lines: vec![RLine {
                id_ligne: 1,
                state: "04",
                emargements: vec![],
            }],
        }],
    );
    flow.drop_file(&t, name, &bytes);
    assert_eq!(flow.wait_handled(&t, name).await, "archive");
    support::wait_until("titre.accepted", Duration::from_secs(30), || async {
        flow.events()
            .await
            .iter()
            .any(|e| e.kind == "titre.accepted")
    })
    .await;
    let accepted: Vec<Seen> = flow
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == "titre.accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_eq!(accepted[0].body["invoice"]["number"], "A2026000001");
    assert_eq!(accepted[0].body["titre"]["bordereau_type"], "02");
    assert_eq!(accepted[0].body["titre"]["id_pce"], partial_pce);

    // Polyfac is told: AVOIR_REJETE for each refused credit note, TITRE_REDUIT (with the
    // amount) for the réduction titre taken in charge.
    support::wait_until("four REGLEMENTS lines", Duration::from_secs(30), || async {
        reglements_lines(&flow).await.len() >= 4
    })
    .await;
    settle().await;
    let lines: Vec<String> = reglements_lines(&flow)
        .await
        .into_iter()
        .map(|(_, line)| line)
        .collect();
    let statuses: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(';').collect();
            (f[0], f[3], f[5])
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("A2026000001", "6,20", "TITRE_REDUIT"),
            ("A2026000003", "12,01", "AVOIR_REJETE"),
            ("A2026000004", "1,00", "AVOIR_REJETE"),
            ("A2026000006", "0,01", "AVOIR_REJETE"),
        ],
        "{lines:#?}"
    );
    assert!(
        lines[0].ends_with(&format!(
            ";TITRE_REDUIT;2026/02/{partial_bord}/{partial_pce};FactureOrigine F2026000301;"
        )),
        "{}",
        lines[0]
    );
    // `encaisse trace` of the original: its réduction titres and their fate beside it.
    let key = format!("{t}/2026/F2026000301");
    let steps: Vec<String> = flow
        .ledger
        .inspect(move |tx| {
            Ok::<_, encaisse_ledger::LedgerError>(
                encaisse_pipelines::stages::ops::trace::trace(tx, &key)?
                    .steps
                    .into_iter()
                    .map(|s| s.summary)
                    .collect(),
            )
        })
        .await
        .unwrap();
    let has = |text: &str| steps.iter().any(|s| s.contains(text));
    assert!(has("Réduction titre planned"), "{steps:#?}");
    assert!(
        has(&format!("titre 2026/02/{partial_bord}/{partial_pce}")),
        "{steps:#?}"
    );
    assert!(
        has("Credit note ") && has("Titre accepted by the Trésorerie"),
        "{steps:#?}"
    );
    assert!(
        has("Credit note refused"),
        "A2026000006 refused against it: {steps:#?}"
    );
    export.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credit_note_for_an_invoice_not_yet_sent_waits_for_its_titre() {
    let t = tenant_id("avwait");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ormc)]).await;
    let run = "run-avwait";
    let invoices = vec![
        invoice(&t, run, &Inv::new("F2026000401", "30.00")),
        invoice(&t, run, &Inv::new("F2026000402", "20.00")),
    ];
    // The invoices arrive, the credit note too, the run closes only after.
    for i in &invoices {
        flow.publish(i).await;
    }
    support::wait_until(
        "both invoices received",
        Duration::from_secs(30),
        || async {
            flow.count("SELECT count(*) FROM batch_item WHERE stage = 'helios.titres'")
                .await
                == 2
        },
    )
    .await;
    let note = credit_note(
        &t,
        "run-avwait-2",
        "A2026000010",
        "F2026000402",
        &[("CANT", "-20.00")],
    );
    flow.publish(&note).await;
    settle().await;
    assert!(flow.files(&t, "outbox").is_empty());
    assert_eq!(
        flow.count("SELECT count(*) FROM helios_reduction WHERE state = 'waiting'")
            .await,
        1
    );
    flow.publish(&run_closed(&t, run, &invoices)).await;
    flow.wait_files(&t, "outbox", "PESORMC", 1).await;
    let files = flow.wait_files(&t, "outbox", "PESALR1", 1).await;
    let bytes = std::fs::read(&files[0]).unwrap();
    assert_valid(&pes_aller_xsd(), &file_name(&files[0]), &bytes);
    let row = |v: [&str; 6]| v.map(str::to_string);
    assert_eq!(
        reductions_in(&bytes),
        (1, vec![row(["3", "20.00", "01", "2026", "2", "1"])]),
        "the whole of F2026000402 (IdPce 2) cancelled"
    );
    settle().await;
    assert!(
        rejected_credit_notes(&flow.events().await).is_empty(),
        "nothing refused"
    );
}
