//! The `helios.titres` stage on the real broker: a billing run's titres become one PES
//! Aller file per budget in `<tenant>/helios/outbox`, valid against the official XSD,
//! numbered 1..n in the ledger (ORMC and titres ordinaires), whatever the order of the
//! messages; a crash between planning/writing and acking writes the same file once and
//! leaves no gap; the next run takes the next numbers; refused invoices never block a run
//! and are told to Polyfac once (`titre.rejected`, source `local` → `TITRE_REJETE`); a run
//! larger than a bordereau is split.

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
use encaisse_ledger::Ledger;
use encaisse_ledger::batch::BatchKey;
use encaisse_pipelines::Stage;
use encaisse_pipelines::stages::helios::error::write_tx;
use encaisse_pipelines::stages::helios::plan::close_and_plan;
use encaisse_pipelines::stages::helios::{HeliosTitres, STAGE, TitresFlush};
use encaisse_schemas::{BillingRunClosed, Event, InvoiceIssued, TenantId};
use export_support::{polyfac_export, reglements_lines};
use helios::*;
use support::{counter, install_metrics};

/// Lets in-flight handlers finish before asserting that nothing more happened.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}

/// `(typ_bord, id_bord, id_pce, invoice number, position)` of every titre, by pièce.
async fn titres(ledger: &Ledger, tenant: &str) -> Vec<(String, u32, u32, String, u32)> {
    let tenant = tenant.to_string();
    ledger
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT typ_bord, id_bord, id_pce, invoice_number, position FROM helios_titre
                 WHERE tenant = ?1 ORDER BY id_pce",
            )?;
            let rows = stmt
                .query_map([&tenant], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
        .unwrap()
}

/// The invoice number of every titre of `tenant`, by pièce.
async fn titre_numbers(flow: &Flow, tenant: &TenantId) -> Vec<String> {
    titres(&flow.ledger, tenant.as_str())
        .await
        .into_iter()
        .map(|r| r.3)
        .collect()
}

fn pieces(sent: &Sent) -> Vec<(u32, u32)> {
    sent.bordereaux
        .iter()
        .flat_map(|b| b.pieces.iter().map(move |p| (b.id_bord, p.id_pce)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ormc_and_ordinaire_runs_give_one_valid_file_each() {
    install_metrics();
    let ormc = tenant_id("ormc");
    let ordinaire = tenant_id("ord");
    let flow = Flow::start(vec![
        tenant(&ormc, BordereauKind::Ormc),
        tenant(&ordinaire, BordereauKind::Ordinaire),
    ])
    .await;
    for t in [&ormc, &ordinaire] {
        let run = format!("run-{t}");
        let invoices = vec![
            invoice(t, &run, &Inv::new("F2026000003", "41.20")),
            invoice(t, &run, &Inv::debit("F2026000001", "57.30", Some("RCUR"))),
            // No sequence from the source: the mandate history gives FRST.
            invoice(t, &run, &Inv::debit("F2026000002", "12.00", None)),
        ];
        for i in &invoices {
            flow.publish(i).await;
        }
        flow.publish(&run_closed(t, &run, &invoices)).await;
    }
    for (t, typ_fic, typ_bord) in [(&ormc, "PESORMC", "06"), (&ordinaire, "PESALR1", "01")] {
        let files = flow.wait_files(t, "outbox", typ_fic, 1).await;
        settle().await;
        assert_eq!(flow.files(t, "outbox"), files, "exactly one file");
        let bytes = std::fs::read(&files[0]).unwrap();
        assert_valid(&pes_aller_xsd(), &file_name(&files[0]), &bytes);
        let sent = read_sent(&bytes);
        assert_eq!(sent.nom_fic, file_name(&files[0]));
        assert_eq!(
            sent.nom_fic,
            format!("{typ_fic}_21940081000012_2026_0000001.xml")
        );
        assert_eq!(sent.bordereaux.len(), 1);
        let b = &sent.bordereaux[0];
        assert_eq!(
            (b.exercice, b.id_bord, b.typ_bord.as_str(), b.nbr_pce),
            (2026, 1, typ_bord, 3)
        );
        // IdPce 1..3 in invoice-number order; the free line is not written.
        assert_eq!(pieces(&sent), [(1, 1), (1, 2), (1, 3)]);
        assert!(b.pieces.iter().all(|p| p.lines.len() == 1));
        let sequences: Vec<_> = b
            .pieces
            .iter()
            .map(|p| p.lines[0].sequence.clone())
            .collect();
        assert_eq!(
            sequences,
            [Some("03".to_string()), Some("02".to_string()), None],
            "RCUR as given, FRST from the mandate history, none for online payment"
        );
        if typ_bord == "06" {
            let dettes: Vec<_> = b
                .pieces
                .iter()
                .map(|p| p.num_dette.clone().unwrap())
                .collect();
            assert_eq!(dettes, ["2026000001", "2026000002", "2026000003"]);
        }
        // The ledger's mapping.
        let rows = titres(&flow.ledger, t.as_str()).await;
        let numbers: Vec<(u32, u32, &str)> = rows
            .iter()
            .map(|(_, bord, pce, number, _)| (*bord, *pce, number.as_str()))
            .collect();
        assert_eq!(
            numbers,
            [
                (1, 1, "F2026000001"),
                (1, 2, "F2026000002"),
                (1, 3, "F2026000003")
            ]
        );
        // Journal: one titre_emitted fact per invoice, naming the file.
        let key = format!("{t}/2026/F2026000002");
        let facts = flow.ledger.invoice_facts(&key).await.unwrap();
        let emitted: Vec<_> = facts.iter().filter(|f| f.kind == "titre_emitted").collect();
        assert_eq!(emitted.len(), 1, "{facts:?}");
        let detail: serde_json::Value = serde_json::from_str(&emitted[0].detail).unwrap();
        assert_eq!(detail["file"], sent.nom_fic.as_str());
        assert_eq!(detail["id_pce"], 2);
        assert_eq!(
            counter(
                "encaisse_helios_titres_emitted_total",
                &[("tenant", t.as_str())]
            ),
            3
        );
        assert_eq!(
            counter(
                "encaisse_helios_bordereaux_emitted_total",
                &[("tenant", t.as_str())]
            ),
            1
        );
    }
    // The FRST was recorded as the invoice's use of its mandate.
    assert_eq!(
        flow.count("SELECT count(*) FROM sepa_collection WHERE invoice_key LIKE '%F2026000002' AND sequence = 'FRST'")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_closed_before_its_invoices_gives_the_same_file() {
    let t = tenant_id("early");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ormc)]).await;
    let run = "run-early";
    let invoices = vec![
        invoice(&t, run, &Inv::new("F2026000011", "10.00")),
        invoice(&t, run, &Inv::new("F2026000012", "20.00")),
    ];
    flow.publish(&run_closed(&t, run, &invoices)).await;
    settle().await;
    assert!(
        flow.files(&t, "outbox").is_empty(),
        "nothing before the invoices"
    );
    for i in invoices.iter().rev() {
        flow.publish(i).await;
    }
    let files = flow.wait_files(&t, "outbox", "PESORMC", 1).await;
    settle().await;
    assert_eq!(flow.files(&t, "outbox").len(), 1);
    let bytes = std::fs::read(&files[0]).unwrap();
    assert_valid(&pes_aller_xsd(), &file_name(&files[0]), &bytes);
    assert_eq!(pieces(&read_sent(&bytes)), [(1, 1), (1, 2)]);
}

/// A crash after the plan was committed and before the file was written (or after it was
/// written, before the ack): the redelivered messages write the same file, no second
/// bordereau, no gap; the next run takes IdBord 2 and the next IdPce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_writing_and_acking_writes_no_second_bordereau() {
    let t = tenant_id("crash");
    let mut flow = Flow::start(vec![tenant(&t, BordereauKind::Ordinaire)]).await;
    let run = "run-crash-1";
    let invoices = vec![
        invoice(&t, run, &Inv::new("F2026000021", "10.00")),
        invoice(&t, run, &Inv::debit("F2026000022", "22.50", Some("FRST"))),
        invoice(&t, run, &Inv::new("F2026000023", "30.00")),
    ];
    let closed = run_closed(&t, run, &invoices);
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&closed).await;
    let files = flow.wait_files(&t, "outbox", "PESALR1", 1).await;
    let first = std::fs::read(&files[0]).unwrap();
    settle().await;
    flow.stop().await;

    // Crash 1: after the plan, before the file. The file and its record are gone, the plan
    // is still there; no message of the run was acknowledged (no dedupe record).
    let path = files[0].display().to_string();
    flow.ledger
        .write(move |c| {
            c.execute(
                "UPDATE helios_file SET written_at = NULL, sha256 = NULL",
                [],
            )?;
            c.execute("DELETE FROM emitted_file WHERE path = ?1", [&path])?;
            c.execute(
                "DELETE FROM processed_message WHERE stage = 'helios.titres'",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    std::fs::remove_file(&files[0]).unwrap();
    flow.run().await;
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&closed).await;
    let again = flow.wait_files(&t, "outbox", "PESALR1", 1).await;
    settle().await;
    assert_eq!(again, files, "the same name");
    assert_eq!(std::fs::read(&again[0]).unwrap(), first, "the same bytes");
    flow.stop().await;

    // Crash 2: after the file was written, before it was marked and the messages acked.
    flow.ledger
        .write(|c| {
            c.execute("UPDATE helios_file SET written_at = NULL", [])?;
            c.execute(
                "DELETE FROM processed_message WHERE stage = 'helios.titres'",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    flow.run().await;
    flow.publish(&closed).await;
    settle().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(flow.files(&t, "outbox"), files, "still one file");
    assert_eq!(std::fs::read(&files[0]).unwrap(), first);
    assert_eq!(flow.count("SELECT count(*) FROM helios_bordereau").await, 1);
    assert_eq!(flow.count("SELECT count(*) FROM helios_titre").await, 3);
    assert_eq!(
        flow.count("SELECT count(*) FROM helios_file WHERE written_at IS NULL")
            .await,
        0,
        "the flush source or the redelivery marked it written"
    );
    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/F2026000021"))
        .await
        .unwrap();
    assert_eq!(
        facts.iter().filter(|f| f.kind == "titre_emitted").count(),
        1,
        "one fact whatever the rewrites"
    );

    // The next run: IdBord 2, IdPce 4 and 5.
    let run2 = "run-crash-2";
    let next = vec![
        invoice(&t, run2, &Inv::new("F2026000031", "5.00")),
        invoice(&t, run2, &Inv::new("F2026000032", "6.00")),
    ];
    for i in &next {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(&t, run2, &next)).await;
    let both = flow.wait_files(&t, "outbox", "PESALR1", 2).await;
    let second = both.iter().find(|p| **p != files[0]).unwrap();
    let bytes = std::fs::read(second).unwrap();
    assert_valid(&pes_aller_xsd(), &file_name(second), &bytes);
    let sent = read_sent(&bytes);
    assert_eq!(sent.nom_fic, "PESALR1_21940081000012_2026_0000002.xml");
    assert_eq!(pieces(&sent), [(2, 4), (2, 5)]);
}

/// The same crash without a broker: the plan is committed, then the process dies before
/// writing. A restarted daemon's flush source writes exactly the file the plan describes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_left_by_a_killed_process_is_written_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = tenant_id("killed");
    let settings = settings(dir.path(), vec![tenant(&t, BordereauKind::Ormc)]);
    let run = "run-killed";
    let invoices = vec![
        invoice(&t, run, &Inv::new("F2026000041", "10.00")),
        invoice(&t, run, &Inv::new("F2026000042", "11.00")),
        invoice(
            &t,
            run,
            &Inv::new("F2026000043", "12.00").postal_code("9440"),
        ),
    ];
    let (expected_bytes, expected_outputs) = {
        // A reference daemon that was never interrupted.
        let ref_dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(ref_dir.path().join("ledger.sqlite")).unwrap();
        let stage = HeliosTitres::new(
            helios::settings(ref_dir.path(), vec![tenant(&t, BordereauKind::Ormc)]),
            ledger,
        );
        for i in &invoices {
            stage.handle(&incoming(i)).await.unwrap();
        }
        let closing = stage
            .handle(&incoming(&run_closed(&t, run, &invoices)))
            .await
            .unwrap();
        let files = list(&ref_dir.path().join(t.as_str()).join("helios/outbox"));
        assert_eq!(files.len(), 1);
        (std::fs::read(&files[0]).unwrap(), closing.outputs)
    };
    assert_eq!(expected_outputs.len(), 1, "the refusal's titre.rejected");
    {
        // The killed daemon: invoices collected, then the closing transaction committed and
        // nothing more (the process died before rendering).
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        for i in &invoices {
            let body = encaisse_schemas::encode(i);
            let key = BatchKey {
                stage: STAGE.into(),
                tenant: t.to_string(),
                run_id: run.into(),
                group: "principal".into(),
            };
            let (item, hash) = (i.invoice.key(), i.content_hash.clone());
            ledger
                .write(move |c| {
                    encaisse_ledger::batch::add_item(c, &key, &item, &hash, &body)?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        let key = BatchKey {
            stage: STAGE.into(),
            tenant: t.to_string(),
            run_id: run.into(),
            group: "principal".into(),
        };
        let tenant_cfg = settings.tenants[0].clone();
        let planned = write_tx(&ledger, move |tx| {
            encaisse_ledger::BatchStore::set_expected(tx, &key, 3)?;
            close_and_plan(tx, &tenant_cfg, &key, now())
        })
        .await
        .unwrap();
        assert_eq!((planned.titres, planned.refused.len()), (2, 1));
        assert!(list(&dir.path().join(t.as_str()).join("helios/outbox")).is_empty());
    }
    // Restart: the flush source writes it at once.
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let flush = TitresFlush::new(settings.clone(), Duration::from_secs(60));
    let ctx = encaisse_pipelines::runtime::SourceContext {
        publisher: encaisse_pipelines::runtime::Runtime::new(Default::default(), ledger.clone())
            .publisher(),
        ledger: ledger.clone(),
        shutdown: tokio_util::sync::CancellationToken::new(),
    };
    assert_eq!(
        flush.flush_once(&ctx).await,
        2,
        "the file and the refusals' report"
    );
    let files = list(&dir.path().join(t.as_str()).join("helios/outbox"));
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), expected_bytes);
    // A redelivered run closure plans nothing more, and publishes the refusal's
    // titre.rejected the killed process queued — the same message as an uninterrupted run.
    let stage = HeliosTitres::new(settings, ledger.clone());
    let redelivered = stage
        .handle(&incoming(&run_closed(&t, run, &invoices)))
        .await
        .unwrap();
    assert_eq!(redelivered.outputs, expected_outputs);
    let mut mark = redelivered
        .ledger_effect
        .expect("marked handed with the dedupe record");
    ledger.transact(move |tx| (mark.0)(tx)).await.unwrap();
    let next = stage.handle(&incoming(&invoices[0])).await;
    assert!(
        next.unwrap().outputs.is_empty(),
        "handed once: the next message publishes nothing"
    );
    assert_eq!(flush.flush_once(&ctx).await, 0);
    let bordereaux: i64 = ledger
        .read(|c| Ok(c.query_row("SELECT count(*) FROM helios_bordereau", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(bordereaux, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_invoice_does_not_block_its_run_nor_take_a_number() {
    install_metrics();
    let t = tenant_id("refused");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ormc)]).await;
    let run = "run-refused";
    let invoices = vec![
        invoice(&t, run, &Inv::new("F2026000051", "10.00")),
        invoice(
            &t,
            run,
            &Inv::new("F2026000052", "20.00").postal_code("9440"),
        ),
        invoice(&t, run, &Inv::new("F2026000053", "30.00")),
    ];
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(&t, run, &invoices)).await;
    let files = flow.wait_files(&t, "outbox", "PESORMC", 1).await;
    let sent = read_sent(&std::fs::read(&files[0]).unwrap());
    assert_eq!(
        pieces(&sent),
        [(1, 1), (1, 2)],
        "no gap: the refused invoice took no IdPce"
    );
    assert_eq!(
        titre_numbers(&flow, &t).await,
        ["F2026000051", "F2026000053"]
    );
    let reports = flow.wait_files(&t, "rejected", "run-refused", 1).await;
    let report = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(
        report.contains(&format!(
            "{t}/2026/F2026000052\tLOCAL-RULES\tpayer.address.postal_code\t"
        )),
        "{report}"
    );
    assert_eq!(flow.count("SELECT count(*) FROM helios_refused").await, 1);
    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/F2026000052"))
        .await
        .unwrap();
    assert_eq!(
        facts.iter().filter(|f| f.kind == "titre_refused").count(),
        1
    );
    assert_eq!(
        counter(
            "encaisse_helios_invoices_refused_total",
            &[("tenant", t.as_str())]
        ),
        1
    );
    // Polyfac is told: one titre.rejected, refused locally, without a titre.
    let rejected = titres_rejected(&flow, 1).await;
    settle().await;
    assert_eq!(
        titres_rejected(&flow, 1).await.len(),
        1,
        "exactly one event"
    );
    let body = &rejected[0].body;
    assert_eq!(body["source"], "local");
    assert!(body.get("titre").is_none(), "no titre number: {body}");
    assert_eq!(body["invoice"]["number"], "F2026000052");
    assert_eq!(body["code"], "LOCAL-RULES");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("Not sent to Hélios: payer.address.postal_code: "),
        "{body}"
    );
    assert_eq!(
        body["file"],
        format!("{t}/helios/rejected/run-refused-principal.refused.txt")
    );
    assert_eq!(
        flow.count("SELECT count(*) FROM helios_event WHERE handed_at IS NOT NULL")
            .await,
        1
    );
}

/// The `titre.rejected` events seen so far (waiting for at least `n`).
async fn titres_rejected(flow: &Flow, n: usize) -> Vec<Seen> {
    let rejected = || async {
        flow.events()
            .await
            .into_iter()
            .filter(|e| e.kind == "titre.rejected")
            .collect::<Vec<_>>()
    };
    support::wait_until(
        &format!("{n} titre.rejected"),
        Duration::from_secs(30),
        || async { rejected().await.len() >= n },
    )
    .await;
    rejected().await
}

/// Publishes a run's invoices, then its closure, each under its deterministic id.
async fn publish_run(flow: &Flow, invoices: &[InvoiceIssued], closed: &BillingRunClosed) {
    for i in invoices {
        flow.publish(i).await;
    }
    flow.publish(closed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_the_writer_refuses_are_told_to_polyfac_once() {
    let t = tenant_id("local");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ormc)]).await;
    let export = polyfac_export(&flow, &t).await;
    let run = "run-local";
    let mut late_mandate = invoice(&t, run, &Inv::debit("F2026000072", "20.00", Some("RCUR")));
    if let Some(mandate) = late_mandate.mandate.as_mut() {
        mandate.signed_on = d(2026, 4, 1); // after the bordereau date
    }
    let invoices = vec![
        invoice(&t, run, &Inv::new("F2026000071", "10.00")),
        late_mandate,
        invoice(
            &t,
            run,
            &Inv::new("F2026000073", "30.00").postal_code("9440"),
        ),
        invoice(&t, run, &Inv::new("F2026000074", "40.00")),
    ];
    let closed = run_closed(&t, run, &invoices);
    publish_run(&flow, &invoices, &closed).await;

    // The rest of the run makes its titres and its PES file.
    let files = flow.wait_files(&t, "outbox", "PESORMC", 1).await;
    let bytes = std::fs::read(&files[0]).unwrap();
    assert_valid(&pes_aller_xsd(), &file_name(&files[0]), &bytes);
    assert_eq!(pieces(&read_sent(&bytes)), [(1, 1), (1, 2)]);
    assert_eq!(
        titre_numbers(&flow, &t).await,
        ["F2026000071", "F2026000074"]
    );

    // One titre.rejected per refused invoice, one TITRE_REJETE line each.
    let rejected = titres_rejected(&flow, 2).await;
    let mut told: Vec<(String, String)> = rejected
        .iter()
        .map(|e| {
            assert_eq!(e.body["source"], "local", "{}", e.body);
            assert!(e.body.get("titre").is_none(), "{}", e.body);
            (
                e.body["invoice"]["number"].as_str().unwrap().to_string(),
                e.body["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    told.sort();
    assert_eq!(
        told,
        [
            ("F2026000072".to_string(), "LOCAL-MANDATE".to_string()),
            ("F2026000073".to_string(), "LOCAL-RULES".to_string()),
        ]
    );
    support::wait_until("two REGLEMENTS lines", Duration::from_secs(30), || async {
        reglements_lines(&flow).await.len() >= 2
    })
    .await;
    let lines = reglements_lines(&flow).await;
    let expected = [
        (
            format!("{t}/2026/F2026000072"),
            "F2026000072;FAMF2026000072;10/03/2026;20,00;;TITRE_REJETE;;LOCAL-MANDATE Not sent to Hélios: mandate.signed_on: 2026-04-01 is after the bordereau date 2026-03-10;",
        ),
        (
            format!("{t}/2026/F2026000073"),
            "F2026000073;FAMF2026000073;10/03/2026;30,00;;TITRE_REJETE;;\"LOCAL-RULES Not sent to Hélios: payer.address.postal_code: \"\"9440\"\" is not a 5-digit postal code\";",
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(k, l)| (k, l.to_string()))
        .collect();
    assert_eq!(lines, expected, "no titre number, the local code in Motif");
    // The journal (encaisse trace) shows the refusal, its code, and the line for Polyfac.
    let facts = flow
        .ledger
        .invoice_facts(&format!("{t}/2026/F2026000072"))
        .await
        .unwrap();
    let kinds: Vec<&str> = facts.iter().map(|f| f.kind.as_str()).collect();
    assert!(kinds.contains(&"titre_refused"), "{kinds:?}");
    assert!(kinds.contains(&"reglement_recorded"), "{kinds:?}");
    let refused = facts.iter().find(|f| f.kind == "titre_refused").unwrap();
    let detail: serde_json::Value = serde_json::from_str(&refused.detail).unwrap();
    assert_eq!(detail["code"], "LOCAL-MANDATE");
    assert_eq!(detail["field"], "mandate.signed_on");
    assert_eq!(
        detail["titre_rejected"].as_str(),
        rejected
            .iter()
            .find(|e| e.body["invoice"]["number"] == "F2026000072")
            .map(|e| e.message_id.as_str())
    );

    // Every message of the run delivered again, under its id: nothing new anywhere.
    let copies = rejected.len();
    publish_run(&flow, &invoices, &closed).await;
    // The message that closed the run republishes its stored outputs (same ids).
    let again = titres_rejected(&flow, copies + 2).await;
    settle().await;
    let mut ids: Vec<&str> = again.iter().map(|e| e.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "no new titre.rejected");
    assert_eq!(
        reglements_lines(&flow).await,
        lines,
        "no new REGLEMENTS line"
    );
    assert_eq!(flow.files(&t, "outbox").len(), 1, "no second PES file");
    assert_eq!(flow.count("SELECT count(*) FROM helios_titre").await, 2);
    assert_eq!(flow.count("SELECT count(*) FROM helios_event").await, 2);
    assert_eq!(
        flow.count("SELECT count(*) FROM helios_event WHERE handed_at IS NULL")
            .await,
        0
    );
    export.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_larger_than_a_bordereau_is_split_in_one_file() {
    let t = tenant_id("split");
    let mut config = tenant(&t, BordereauKind::Ormc);
    config.config.max_pieces_per_bordereau = 2;
    let flow = Flow::start(vec![config]).await;
    let run = "run-split";
    let invoices: Vec<_> = (1..=5)
        .map(|n| invoice(&t, run, &Inv::new(&format!("F20260001{n:02}"), "9.99")))
        .collect();
    for i in &invoices {
        flow.publish(i).await;
    }
    flow.publish(&run_closed(&t, run, &invoices)).await;
    let files = flow.wait_files(&t, "outbox", "PESORMC", 1).await;
    settle().await;
    assert_eq!(flow.files(&t, "outbox").len(), 1, "one file for the run");
    let bytes = std::fs::read(&files[0]).unwrap();
    assert_valid(&pes_aller_xsd(), &file_name(&files[0]), &bytes);
    let sent = read_sent(&bytes);
    let per: Vec<(u32, u32)> = sent
        .bordereaux
        .iter()
        .map(|b| (b.id_bord, b.nbr_pce))
        .collect();
    assert_eq!(per, [(1, 2), (2, 2), (3, 1)]);
    assert_eq!(pieces(&sent), [(1, 1), (1, 2), (2, 3), (2, 4), (3, 5)]);
    assert_eq!(flow.count("SELECT count(*) FROM helios_bordereau").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_and_its_run_of_a_tenant_without_helios_are_parked() {
    let t = tenant_id("none");
    let other = tenant_id("configured");
    let flow = Flow::start(vec![tenant(&other, BordereauKind::Ormc)]).await;
    let run = "run-none";
    let i = invoice(&t, run, &Inv::new("F2026000061", "10.00"));
    flow.publish(&i).await;
    // Its run is parked too (not acked): replayed with the invoice once the tenant has
    // [tenants.helios], it closes the run.
    flow.publish(&run_closed(&t, run, std::slice::from_ref(&i)))
        .await;
    let parked = format!("{}.{STAGE}.parked", flow.ns.prefix);
    support::wait_until(
        "the invoice and its run parked",
        Duration::from_secs(30),
        || async { flow.client.count(&parked).await == 2 },
    )
    .await;
    for delivery in flow.client.drain(&parked).await {
        assert_eq!(
            support::text_header(&delivery.properties, "encaisse-error-kind").as_deref(),
            Some("no_helios_config")
        );
    }
}

/// `invoice` with an accueil du soir line of 9.00 and the reductions of its number's rank:
/// one in three gets a quotient-familial reduction on the cantine (−1.50), one in three an
/// absence credited on the accueil that exceeds it (−10.00: 1.00 comes off the cantine).
fn with_reductions(mut invoice: InvoiceIssued, rank: usize) -> InvoiceIssued {
    let line = |number: u32, cod: &str, label: &str, amount: &str| {
        let mut line = invoice.lines[0].clone();
        line.number = number;
        line.cod_prod_loc = cod.into();
        line.fonction = Some(if cod == "CANT" { "251" } else { "421" }.into());
        line.label = label.into();
        line.unit_price = encaisse_schemas::Money::parse(amount).unwrap();
        line.amount = line.unit_price;
        line
    };
    let mut lines = vec![line(3, "ACCS", "Accueil du soir février 2026", "9.00")];
    match rank % 3 {
        0 => lines.push(line(4, "CANT", "Réduction quotient familial", "-1.50")),
        1 => lines.push(line(4, "ACCS", "Absences justifiées", "-10.00")),
        _ => {}
    }
    invoice.lines.extend(lines);
    invoice.total = encaisse_schemas::Money::sum(invoice.lines.iter().map(|l| &l.amount)).unwrap();
    invoice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_with_reduction_lines_become_titres_for_their_total() {
    let ormc = tenant_id("redormc");
    let ordinaire = tenant_id("redord");
    let flow = Flow::start(vec![
        tenant(&ormc, BordereauKind::Ormc),
        tenant(&ordinaire, BordereauKind::Ordinaire),
    ])
    .await;
    for (t, typ_fic) in [(&ormc, "PESORMC"), (&ordinaire, "PESALR1")] {
        let run = format!("run-{t}");
        // 30 invoices, two thirds with reduction lines; every fourth paid by direct debit.
        let invoices: Vec<InvoiceIssued> = (1..=30)
            .map(|n| {
                let number = format!("F20260001{n:02}");
                let inv = if n % 4 == 0 {
                    Inv::debit(&number, "20.00", Some("RCUR"))
                } else {
                    Inv::new(&number, "20.00")
                };
                with_reductions(invoice(t, &run, &inv), n)
            })
            .collect();
        let closed = run_closed(t, &run, &invoices);
        publish_run(&flow, &invoices, &closed).await;
        let files = flow.wait_files(t, "outbox", typ_fic, 1).await;
        let bytes = std::fs::read(&files[0]).unwrap();
        assert_valid(&pes_aller_xsd(), &file_name(&files[0]), &bytes);
        let sent = read_sent(&bytes);
        let written: Vec<_> = sent.pieces().collect();
        assert_eq!(written.len(), 30, "{t}: one titre per invoice");
        let numbers = titre_numbers(&flow, t).await;
        for (_, piece) in written {
            let number = &numbers[piece.id_pce as usize - 1];
            let inv = invoices
                .iter()
                .find(|i| &i.invoice.number == number)
                .unwrap();
            let amounts: Vec<encaisse_schemas::Money> = piece
                .lines
                .iter()
                .map(|l| encaisse_schemas::Money::parse(&l.amount).unwrap())
                .collect();
            assert!(amounts.iter().all(|a| a.is_positive()), "{amounts:?}");
            assert_eq!(
                encaisse_schemas::Money::sum(amounts.iter()).unwrap(),
                inv.total,
                "{t} {number}: the titre is for the invoice's total"
            );
            let debit = inv.payment_mode == encaisse_schemas::events::PaymentMode::Prelevement;
            assert!(
                piece.lines.iter().all(|l| l.sequence.is_some() == debit),
                "{number}: every line debited for its net amount"
            );
        }
        // 18.50 + 9.00, 10.00 + 9.00 − 10.00 → 19.00 in one line, 29.00: 10 of each.
        let total: i64 = invoices.iter().map(|i| i.total.cents()).sum();
        assert_eq!(total, 10 * (2750 + 1900 + 2900));
        assert_eq!(sent.bordereaux[0].nbr_pce, 30);
    }
    settle().await;
    assert!(
        flow.events()
            .await
            .iter()
            .all(|e| e.kind != "titre.rejected"),
        "no invoice refused for its reductions"
    );
    assert_eq!(flow.count("SELECT count(*) FROM helios_refused").await, 0);
}

/// A run whose invoices come in a bundle (as the ingest publishes them): the stage adds them
/// in one transaction, which also plans the file once the run is complete. Same outcome as
/// one by one: one file without gap, the refused invoice told once, and an invoice number
/// reused with other content parked alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_a_bundle_gives_the_same_file_and_a_conflict_is_parked_alone() {
    let t = tenant_id("bundled");
    let flow = Flow::start(vec![tenant(&t, BordereauKind::Ormc)]).await;
    let run = "run-bundled";
    let invoices = vec![
        invoice(&t, run, &Inv::new("F2026000061", "10.00")),
        invoice(
            &t,
            run,
            &Inv::new("F2026000062", "20.00").postal_code("9440"),
        ),
        invoice(&t, run, &Inv::new("F2026000063", "30.00")),
    ];
    // The run is announced first: the bundle's last add completes it.
    flow.publish(&run_closed(&t, run, &invoices)).await;
    let reused = invoice(&t, run, &Inv::new("F2026000061", "99.00"));
    let items: Vec<encaisse_pipelines::Outgoing> =
        [&invoices[0], &invoices[1], &reused, &invoices[2]]
            .into_iter()
            .map(encaisse_pipelines::Outgoing::event)
            .collect();
    let packed = encaisse_pipelines::bundle::pack(items, 100);
    assert_eq!(packed.len(), 1, "one bundle");
    let bundle = &packed[0];
    let headers = encaisse_pipelines::runtime::headers::to_field_table(&bundle.headers)
        .expect("headers fit the wire");
    let props = lapin::BasicProperties::default()
        .with_message_id(bundle.message_id.as_str().into())
        .with_type(encaisse_pipelines::bundle::TYPE.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    flow.client
        .publish(&flow.ns.prefix, &bundle.routing_key, props, &bundle.body)
        .await;

    let files = flow.wait_files(&t, "outbox", "PESORMC", 1).await;
    let sent = read_sent(&std::fs::read(&files[0]).unwrap());
    assert_eq!(pieces(&sent), [(1, 1), (1, 2)], "no gap");
    assert_eq!(
        titre_numbers(&flow, &t).await,
        ["F2026000061", "F2026000063"]
    );
    let rejected = titres_rejected(&flow, 1).await;
    assert_eq!(rejected[0].body["invoice"]["number"], "F2026000062");
    let parked = flow.ns.stage(STAGE, &[1]).parked;
    support::wait_until(
        "the reused number parked",
        Duration::from_secs(20),
        || async { flow.client.count(&parked).await == 1 },
    )
    .await;
    settle().await;
    assert_eq!(titres_rejected(&flow, 1).await.len(), 1, "told once");
    let parked = flow.client.drain(&parked).await;
    assert_eq!(
        parked[0]
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some(reused.message_id().as_str()),
        "the reused number alone"
    );
    assert_eq!(
        support::text_header(&parked[0].properties, "encaisse-error-kind").as_deref(),
        Some("batch_conflict")
    );
    assert_eq!(
        flow.count("SELECT count(*) FROM batch_item WHERE run_id = 'run-bundled'")
            .await,
        3
    );
}
