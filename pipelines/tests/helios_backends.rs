//! The Hélios ledger operations on both backends: the same bodies on SQLite (a temporary
//! file) and PostgreSQL (a fresh database per test from `ENCAISSE_TEST_POSTGRES_URL`;
//! skipped visibly when unset, required in CI with `ENCAISSE_REQUIRE_POSTGRES=1`). Above all
//! what two daemons sharing a PostgreSQL ledger must never do: number two bordereaux or two
//! pièces alike, leave a gap, give an invoice two titres, write a file or record a return
//! file twice, reduce an original beyond its amount.

#[path = "helios_support/mod.rs"]
mod helios;
#[path = "runtime_support/mod.rs"]
mod support;

use std::collections::BTreeSet;

use encaisse_helios::codes::BordereauKind;
use encaisse_helios::reconcile::{LineKey, Sighting};
use encaisse_ledger::batch::BatchKey;
use encaisse_ledger::testing::Fixture;
use encaisse_ledger::{BatchStore, CoreStore, Ledger, LedgerError, Tx};
use encaisse_pipelines::stage::{ErrorClass, Stage};
use encaisse_pipelines::stages::helios::error::{HeliosError, read_tx, write_tx};
use encaisse_pipelines::stages::helios::lookup::{line_state_date, store_line_state};
use encaisse_pipelines::stages::helios::outputs::{Check, complete_pending};
use encaisse_pipelines::stages::helios::plan::{Planned, close_and_plan};
use encaisse_pipelines::stages::helios::reductions::{self, Decision};
use encaisse_pipelines::stages::helios::returns::{HandledFile, record_file, seen_before};
use encaisse_pipelines::stages::helios::store::{self, Scope};
use encaisse_pipelines::stages::helios::{HeliosTitres, TenantHelios};
use encaisse_pipelines::stages::helios::{STAGE, reduction_store};
use encaisse_schemas::{CreditNoteIssued, InvoiceRef, Money, TenantId};
use helios::{Inv, invoice, now};

encaisse_ledger::on_both_backends!(
    concurrent_plans_number_gapless_and_unique,
    a_rolled_back_plan_gives_its_numbers_back,
    a_run_closed_at_once_by_many_gives_each_invoice_one_titre,
    planned_files_are_listed_and_marked_written_once,
    a_return_file_and_its_line_states_are_recorded_once,
    credit_notes_are_recorded_once_and_never_reduce_beyond_the_original,
    planned_outputs_are_rendered_and_written_once,
    the_helios_tables_have_the_same_columns_on_both_backends,
    two_daemons_handling_the_same_messages_write_each_run_once,
    numbers_continue_on_a_ledger_planned_before_the_counters,
);

/// Planners running at once (two daemons, many runs).
const CONCURRENT: usize = 8;

fn tenant_id() -> TenantId {
    TenantId::new("vitry").unwrap()
}

/// Titres ordinaires, two pièces per bordereau (so a run of three is two bordereaux).
fn tenant() -> TenantHelios {
    let mut t = helios::tenant(&tenant_id(), BordereauKind::Ordinaire);
    t.config.max_pieces_per_bordereau = 2;
    t
}

fn key(run: &str) -> BatchKey {
    BatchKey {
        stage: STAGE.to_string(),
        tenant: tenant_id().to_string(),
        run_id: run.to_string(),
        group: "principal".to_string(),
    }
}

/// Collects `numbers` invoices of `run` (not closed: the count is not announced yet).
async fn collect(ledger: &Ledger, run: &str, numbers: &[String]) {
    let invoices = numbers.iter().map(|n| Inv::new(n, "12.50")).collect();
    collect_invoices(ledger, run, invoices).await;
}

async fn collect_invoices(ledger: &Ledger, run: &str, invoices: Vec<Inv>) {
    let run = run.to_string();
    ledger
        .transact(move |tx| {
            for inv in &invoices {
                let i = invoice(&tenant_id(), &run, inv);
                let body = encaisse_schemas::encode(&i);
                tx.add_item(&key(&run), &i.invoice.key(), &i.content_hash, &body)?;
            }
            Ok::<_, LedgerError>(())
        })
        .await
        .unwrap();
}

/// Announces `expected` invoices of `run` and plans it, in one transaction.
fn close(tx: &mut Tx<'_>, run: &str, expected: u32) -> Result<Planned, HeliosError> {
    tx.set_expected(&key(run), expected)?;
    close_and_plan(tx, &tenant(), &key(run), now())
}

fn numbers_of(run: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{run}-F{i}")).collect()
}

/// `(IdBord, file id)` of every bordereau and `(IdPce, IdBord, invoice)` of every titre.
#[allow(clippy::type_complexity)]
async fn numbering(ledger: &Ledger) -> (Vec<(u32, i64)>, Vec<(u32, u32, String)>) {
    ledger
        .inspect(|tx| {
            let bordereaux = tx.query_all(
                "SELECT id_bord, file_id FROM helios_bordereau ORDER BY id_bord",
                &[],
                |r| Ok((r.get::<u32>(0)?, r.get::<i64>(1)?)),
            )?;
            let titres = tx.query_all(
                "SELECT id_pce, id_bord, invoice_key FROM helios_titre ORDER BY id_pce",
                &[],
                |r| Ok((r.get::<u32>(0)?, r.get::<u32>(1)?, r.get::<String>(2)?)),
            )?;
            Ok::<_, LedgerError>((bordereaux, titres))
        })
        .await
        .unwrap()
}

/// Eight billing runs of three invoices closed at once, each in its own transaction: the
/// sixteen bordereaux are numbered 1..=16 and the 24 pièces 1..=24, none twice, none
/// missing, each run's bordereaux consecutive and its pièces with them.
async fn concurrent_plans_number_gapless_and_unique(f: &Fixture) {
    let runs: Vec<String> = (0..CONCURRENT).map(|i| format!("R{i}")).collect();
    for run in &runs {
        collect(&f.ledger, run, &numbers_of(run, 3)).await;
    }
    let handles: Vec<_> = runs
        .iter()
        .map(|run| {
            let (ledger, run) = (f.ledger.clone(), run.clone());
            tokio::spawn(async move { write_tx(&ledger, move |tx| close(tx, &run, 3)).await })
        })
        .collect();
    let mut files = BTreeSet::new();
    for handle in handles {
        let planned = handle.await.unwrap().unwrap();
        assert_eq!((planned.titres, planned.refused.len()), (3, 0));
        assert_eq!(planned.files.len(), 1);
        files.extend(planned.files);
    }
    assert_eq!(files.len(), CONCURRENT, "one file name per run: {files:?}");
    let (bordereaux, titres) = numbering(&f.ledger).await;
    let ids: Vec<u32> = bordereaux.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=2 * CONCURRENT as u32).collect::<Vec<_>>());
    let pieces: Vec<u32> = titres.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(pieces, (1..=3 * CONCURRENT as u32).collect::<Vec<_>>());
    // A file holds two consecutive bordereaux; a run's three pièces are consecutive, the
    // first two in its first bordereau.
    for pair in bordereaux.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "{bordereaux:?}");
        assert_eq!(pair[0].0 + 1, pair[1].0);
    }
    for run in titres.chunks(3) {
        let run_of = |t: &(u32, u32, String)| t.2.rsplit_once('-').map(|(r, _)| r.to_string());
        assert!(run.iter().all(|t| run_of(t) == run_of(&run[0])), "{run:?}");
        assert_eq!(run[0].1, run[1].1);
        assert_eq!(run[1].1 + 1, run[2].1);
    }
    // The next run numbers after them.
    collect(&f.ledger, "NEXT", &numbers_of("NEXT", 1)).await;
    write_tx(&f.ledger, |tx| close(tx, "NEXT", 1))
        .await
        .unwrap();
    let (bordereaux, titres) = numbering(&f.ledger).await;
    assert_eq!(bordereaux.last().unwrap().0, 2 * CONCURRENT as u32 + 1);
    assert_eq!(titres.last().unwrap().0, 3 * CONCURRENT as u32 + 1);
}

/// A plan whose transaction fails after numbering (here: the caller's own error) leaves
/// nothing behind: the next plan takes the same numbers, so no gap.
async fn a_rolled_back_plan_gives_its_numbers_back(f: &Fixture) {
    collect(&f.ledger, "A", &numbers_of("A", 3)).await;
    let failed = write_tx(&f.ledger, |tx| {
        let planned = close(tx, "A", 3)?;
        assert_eq!(planned.titres, 3);
        Err::<Planned, _>(HeliosError::Setup("the caller changed its mind".into()))
    })
    .await;
    assert!(matches!(failed, Err(HeliosError::Setup(_))));
    assert_eq!(numbering(&f.ledger).await, (Vec::new(), Vec::new()));
    let planned = write_tx(&f.ledger, |tx| close(tx, "A", 3)).await.unwrap();
    assert_eq!(planned.titres, 3);
    let (bordereaux, titres) = numbering(&f.ledger).await;
    assert_eq!(
        bordereaux.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        titres.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

/// The same run's closure arriving in eight transactions at once (its `billing_run.closed`
/// redelivered to two daemons): one closes and plans it, the others find it closed; each
/// invoice has exactly one titre, and a titre stored again for it is refused.
async fn a_run_closed_at_once_by_many_gives_each_invoice_one_titre(f: &Fixture) {
    collect(&f.ledger, "R", &numbers_of("R", 3)).await;
    let handles: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move { write_tx(&ledger, |tx| close(tx, "R", 3)).await })
        })
        .collect();
    let mut titres = Vec::new();
    for handle in handles {
        titres.push(handle.await.unwrap().unwrap().titres);
    }
    titres.sort_unstable();
    let mut expected = vec![0; CONCURRENT - 1];
    expected.push(3);
    assert_eq!(titres, expected);
    let (bordereaux, rows) = numbering(&f.ledger).await;
    assert_eq!(bordereaux.len(), 2);
    assert_eq!(rows.len(), 3);
    let keys: BTreeSet<_> = rows.iter().map(|r| r.2.clone()).collect();
    assert_eq!(keys.len(), 3);
    // Storing a titre for an invoice that has one changes nothing.
    let again = write_tx(&f.ledger, |tx| {
        let mut titre = store::titre_of_invoice(tx, "vitry", "vitry/2026/R-F0")?.unwrap();
        titre.id_pce = 99;
        let b = helios::budget();
        store::insert_titre(tx, Scope::of("vitry", &b), &titre)
    })
    .await
    .unwrap();
    assert!(!again, "a second titre for one invoice is refused");
    assert_eq!(numbering(&f.ledger).await.1.len(), 3);
}

/// The planned file (and the refusals' report and events) are listed until written; eight
/// writers marking the file at once: one does, with one `titre_emitted` fact per titre
/// (the same JSON on both backends); reports and events are marked once too.
async fn planned_files_are_listed_and_marked_written_once(f: &Fixture) {
    collect(&f.ledger, "W", &numbers_of("W", 3)).await;
    write_tx(&f.ledger, |tx| close(tx, "W", 3)).await.unwrap();
    let files = read_tx(&f.ledger, |tx| store::unwritten_files(tx, "vitry"))
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    let file = files[0].clone();
    assert_eq!(
        (file.bordereaux, file.pieces, file.total_cents),
        (2, 3, 3750)
    );
    let bordereaux = read_tx(&f.ledger, move |tx| store::bordereaux_of_file(tx, file.id))
        .await
        .unwrap();
    assert_eq!(bordereaux, vec![1, 2]);
    let file = files[0].clone();
    let render = read_tx(&f.ledger, move |tx| {
        store::titres_to_render(tx, &file, STAGE, 1, -1, 10)
    })
    .await
    .unwrap();
    assert_eq!(
        render
            .iter()
            .map(|t| (t.position, t.id_pce))
            .collect::<Vec<_>>(),
        vec![(0, 1), (1, 2)]
    );
    assert!(render.iter().all(|t| t.payload.is_some()));

    let handles: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let (ledger, file) = (f.ledger.clone(), files[0].clone());
            tokio::spawn(async move {
                write_tx(&ledger, move |tx| {
                    if !store::mark_file_written(tx, file.id, &format!("sha-{i}"))? {
                        return Ok(0);
                    }
                    store::record_emitted_facts(tx, &file, STAGE, "2026-03-10T08:30:00Z")
                })
                .await
            })
        })
        .collect();
    let mut facts = Vec::new();
    for handle in handles {
        facts.push(handle.await.unwrap().unwrap());
    }
    facts.sort_unstable();
    let mut expected = vec![0; CONCURRENT - 1];
    expected.push(3);
    assert_eq!(
        facts, expected,
        "one writer marks it, with a fact per titre"
    );
    let (unwritten, count, last, journal) = read_tx(&f.ledger, |tx| {
        let unwritten = store::unwritten_files(tx, "vitry")?;
        let count = store::unwritten_count(tx, "vitry")?;
        let last = store::last_written_at(tx, "vitry")?;
        let journal = tx.facts_of("vitry/2026/W-F2")?;
        Ok((unwritten, count, last, journal))
    })
    .await
    .unwrap();
    assert!(unwritten.is_empty());
    assert_eq!(count, 0);
    assert!(last.is_some());
    let emitted: Vec<_> = journal
        .iter()
        .filter(|f| f.kind == "titre_emitted")
        .collect();
    assert_eq!(emitted.len(), 1);
    assert_eq!(
        emitted[0].detail,
        format!(
            "{{\"bordereau_type\":\"01\",\"budget\":\"principal\",\"exercice\":2026,\"file\":\"{}\",\"id_bord\":2,\"id_pce\":3,\"stage\":\"helios.titres\"}}",
            files[0].file_name
        )
    );

    // Reports and queued events: listed until marked, queued once per message id.
    let event = encaisse_pipelines::stages::helios::refusal::event(
        &InvoiceRef {
            tenant: tenant_id(),
            exercice: 2026,
            number: "X1".into(),
        },
        "budget",
        "unknown",
        "vitry/helios/rejected/x.txt",
        chrono::DateTime::parse_from_rfc3339("2026-03-10T09:30:00+01:00").unwrap(),
    );
    let (reports, events) = write_tx(&f.ledger, move |tx| {
        store::insert_report(tx, "vitry", "vitry/helios/rejected/x.txt", b"report")?;
        encaisse_pipelines::stages::helios::refusal::queue(tx, &event)?;
        encaisse_pipelines::stages::helios::refusal::queue(tx, &event)?;
        Ok((
            store::unwritten_reports(tx, "vitry")?,
            store::pending_events(tx, "vitry")?,
        ))
    })
    .await
    .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].bytes, b"report");
    assert_eq!(events.len(), 1);
    let ids = vec![encaisse_schemas::Event::message_id(&events[0])];
    let report_id = reports[0].id;
    let (reports, events) = write_tx(&f.ledger, move |tx| {
        store::mark_report_written(tx, report_id)?;
        store::mark_events_handed(tx, &ids)?;
        Ok((
            store::unwritten_reports(tx, "vitry")?,
            store::pending_events(tx, "vitry")?,
        ))
    })
    .await
    .unwrap();
    assert!(reports.is_empty() && events.is_empty());
}

fn line() -> LineKey {
    LineKey {
        cod_col: "081".into(),
        cod_bud: "00".into(),
        exercice: 2026,
        typ_bord: "01".into(),
        id_bord: 1,
        id_pce: 1,
        id_ligne: 1,
    }
}

fn sighting(day: u32) -> Sighting {
    Sighting {
        origin: "03".into(),
        date: helios::d(2026, 3, day),
        amount: Money::parse("12.50").unwrap(),
        occurrence: 1,
    }
}

/// A return file handled by eight transactions at once (two daemons watching one inbox):
/// one records it, the others find it recorded and record nothing. Line states written at
/// once from files of different dates keep the newest whatever the commit order.
async fn a_return_file_and_its_line_states_are_recorded_once(f: &Fixture) {
    let handles: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move {
                write_tx(&ledger, move |tx| {
                    let recorded = record_file(
                        tx,
                        &HandledFile {
                            tenant: "vitry",
                            sha256: "abc",
                            name: &format!("PES_Retour_{i}.xml"),
                            kind: "retour",
                            nom_fic: Some("PES_Retour"),
                            events: 2,
                            unmatched: 0,
                            acquit_date: Some(helios::d(2026, 3, 10)),
                        },
                    )?;
                    if recorded {
                        store_line_state(
                            tx,
                            "vitry",
                            &line(),
                            &[sighting(1)],
                            "PES_Retour",
                            helios::d(2026, 3, 2),
                        )?;
                    }
                    Ok(recorded)
                })
                .await
            })
        })
        .collect();
    let mut recorded = 0;
    for handle in handles {
        recorded += usize::from(handle.await.unwrap().unwrap());
    }
    assert_eq!(recorded, 1);
    let seen = read_tx(&f.ledger, |tx| seen_before(tx, "vitry", "abc"))
        .await
        .unwrap()
        .unwrap();
    assert!(seen.name.starts_with("PES_Retour_"));
    assert_eq!(seen.acquit_date, Some(helios::d(2026, 3, 10)));

    // Files of 3..=10 March storing the same line at once: the 10 March state stays.
    let handles: Vec<_> = (3..=10)
        .rev()
        .map(|day| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move {
                write_tx(&ledger, move |tx| {
                    store_line_state(
                        tx,
                        "vitry",
                        &line(),
                        &[sighting(day)],
                        &format!("retour-{day}"),
                        helios::d(2026, 3, day),
                    )
                })
                .await
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap().unwrap();
    }
    let date = read_tx(&f.ledger, |tx| line_state_date(tx, "vitry", &line()))
        .await
        .unwrap();
    assert_eq!(date, Some(helios::d(2026, 3, 10)));
    // An older file afterwards changes nothing either.
    write_tx(&f.ledger, |tx| {
        store_line_state(
            tx,
            "vitry",
            &line(),
            &[],
            "retour-old",
            helios::d(2026, 3, 1),
        )
    })
    .await
    .unwrap();
    let date = read_tx(&f.ledger, |tx| line_state_date(tx, "vitry", &line()))
        .await
        .unwrap();
    assert_eq!(date, Some(helios::d(2026, 3, 10)));
}

/// A credit note of `origin` taking `amount` (< 0) off its first line.
fn credit_note(number: &str, origin: &str, amount: &str) -> CreditNoteIssued {
    let mut note = invoice(&tenant_id(), "AV", &Inv::new(number, "1.00"));
    note.lines.truncate(1);
    note.lines[0].label = "Absences justifiées".into();
    note.lines[0].unit_price = Money::parse(amount).unwrap();
    note.lines[0].amount = note.lines[0].unit_price;
    note.total = note.lines[0].amount;
    note.content_hash = format!("hash-{number}");
    CreditNoteIssued {
        schema_version: 1,
        origin: InvoiceRef {
            tenant: tenant_id(),
            exercice: 2026,
            number: origin.into(),
        },
        note,
    }
}

async fn receive(ledger: &Ledger, note: CreditNoteIssued) -> Decision {
    let body = encaisse_schemas::encode(&note);
    write_tx(ledger, move |tx| {
        reductions::receive(tx, &tenant(), &note, &body, now())
    })
    .await
    .unwrap()
}

/// Each of `notes` received in its own transaction, all at once.
async fn receive_at_once(ledger: &Ledger, notes: Vec<CreditNoteIssued>) -> Vec<Decision> {
    let handles: Vec<_> = notes
        .into_iter()
        .map(|note| {
            let ledger = ledger.clone();
            tokio::spawn(async move { receive(&ledger, note).await })
        })
        .collect();
    let mut decisions = Vec::new();
    for handle in handles {
        decisions.push(handle.await.unwrap());
    }
    decisions
}

fn planned(decisions: &[Decision]) -> usize {
    decisions
        .iter()
        .filter(|d| matches!(d, Decision::Planned { .. }))
        .count()
}

fn known(decisions: &[Decision]) -> usize {
    decisions
        .iter()
        .filter(|d| **d == Decision::AlreadyKnown)
        .count()
}

/// One credit note received by eight transactions at once: one réduction titre. Eight
/// credit notes of one original (12.50) taking 5.00 off each, decided at once: two fit, the
/// others are refused, and the réduction titres are numbered 1, 2, 3 (IdBord of type 02)
/// after the original's pièces.
async fn credit_notes_are_recorded_once_and_never_reduce_beyond_the_original(f: &Fixture) {
    collect(&f.ledger, "O", &numbers_of("O", 2)).await;
    write_tx(&f.ledger, |tx| close(tx, "O", 2)).await.unwrap();

    let same = vec![credit_note("AV1", "O-F1", "-2.50"); CONCURRENT];
    let decisions = receive_at_once(&f.ledger, same).await;
    assert_eq!(
        (planned(&decisions), known(&decisions)),
        (1, CONCURRENT - 1),
        "{decisions:?}"
    );

    let notes = (0..CONCURRENT)
        .map(|i| credit_note(&format!("AV2-{i}"), "O-F0", "-5.00"))
        .collect();
    let decisions = receive_at_once(&f.ledger, notes).await;
    let refused = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Refused { .. }))
        .count();
    assert_eq!(
        (planned(&decisions), refused),
        (2, CONCURRENT - 2),
        "{decisions:?}"
    );
    let (reduced, reductions) = read_tx(&f.ledger, |tx| {
        let reduced = reduction_store::reduced_so_far(tx, "vitry", "vitry/2026/O-F0")?;
        let reductions = tx.query_all(
            "SELECT b.id_bord, t.id_pce FROM helios_titre t JOIN helios_bordereau b
                  ON b.tenant = t.tenant AND b.exercice = t.exercice AND b.typ_bord = t.typ_bord
                 AND b.id_bord = t.id_bord
             WHERE t.typ_bord = '02' ORDER BY b.id_bord",
            &[],
            |r| Ok((r.get::<u32>(0)?, r.get::<u32>(1)?)),
        )?;
        Ok::<_, HeliosError>((reduced, reductions))
    })
    .await
    .unwrap();
    assert_eq!(reduced, vec![(1, 1000)], "two réductions of 5.00 on line 1");
    assert_eq!(reductions, vec![(1, 3), (2, 4), (3, 5)]);
    // A note waiting for an original the ledger does not know yet is decided once its
    // titre exists, by whichever retry locks it first.
    collect(&f.ledger, "L", &numbers_of("L", 1)).await;
    assert_eq!(
        receive(&f.ledger, credit_note("AV3", "L-F0", "-1.00")).await,
        Decision::Waiting
    );
    write_tx(&f.ledger, |tx| close(tx, "L", 1)).await.unwrap();
    let handles: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move {
                write_tx(&ledger, |tx| {
                    reductions::retry_waiting(tx, &tenant(), now())
                })
                .await
            })
        })
        .collect();
    let mut decided = Vec::new();
    for handle in handles {
        decided.extend(handle.await.unwrap().unwrap());
    }
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert!(matches!(decided[0], Decision::Planned { .. }));
}

/// What was planned (a run with a refused invoice, a réduction titre) is rendered from the
/// ledger, written to the outbox and marked written, once: the refusals' report too, and
/// a second pass writes nothing.
async fn planned_outputs_are_rendered_and_written_once(f: &Fixture) {
    let invoices = vec![
        Inv::new("P-F0", "12.50"),
        Inv::new("P-F1", "20.00").postal_code("9440"),
        Inv::new("P-F2", "7.25"),
    ];
    collect_invoices(&f.ledger, "P", invoices).await;
    let planned = write_tx(&f.ledger, |tx| close(tx, "P", 3)).await.unwrap();
    assert_eq!((planned.titres, planned.refused.len()), (2, 1));
    assert_eq!(
        receive(&f.ledger, credit_note("AV", "P-F0", "-2.50")).await,
        Decision::Planned {
            file: "PESALR1_21940081000012_2026_02_0000001.xml".into()
        }
    );
    let written = complete_pending(&f.ledger, f.dir.path(), &tenant(), Check::Ledger)
        .await
        .unwrap();
    assert_eq!(written.files.len(), 2, "{written:?}");
    assert_eq!(written.reports.len(), 1, "{written:?}");
    let outbox = f.dir.path().join("vitry/helios/outbox");
    for name in &written.files {
        let bytes = std::fs::read(outbox.join(name)).unwrap();
        assert!(bytes.starts_with(b"<?xml"), "{name}");
    }
    assert!(f.dir.path().join(&written.reports[0]).exists());
    let again = complete_pending(&f.ledger, f.dir.path(), &tenant(), Check::Ledger)
        .await
        .unwrap();
    assert!(again.files.is_empty() && again.reports.is_empty());
    let (count, journal, refused) = read_tx(&f.ledger, |tx| {
        Ok((
            store::unwritten_count(tx, "vitry")?,
            tx.facts_of("vitry/2026/P-F2")?,
            tx.facts_of("vitry/2026/P-F1")?,
        ))
    })
    .await
    .unwrap();
    assert_eq!(count, 0);
    assert!(journal.iter().any(|f| f.kind == "titre_emitted"));
    assert!(refused.iter().any(|f| f.kind == "titre_refused"));
    assert!(!refused.iter().any(|f| f.kind == "titre_emitted"));
}

const TABLES: [&str; 12] = [
    "helios_file",
    "helios_bordereau",
    "helios_titre",
    "helios_titre_line",
    "helios_refused",
    "helios_report",
    "helios_emargement",
    "helios_return_file",
    "helios_event",
    "helios_reduction",
    "helios_reduction_line",
    "helios_counter",
];

/// `(table, column, not null)` of the Hélios tables, in column order.
async fn columns(ledger: &Ledger) -> Vec<(String, String, bool)> {
    ledger
        .inspect(|tx| {
            let mut all = Vec::new();
            for table in TABLES {
                let sql = if tx.is_postgres() {
                    "SELECT column_name, CAST(CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END AS BIGINT)
                     FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = ?1
                     ORDER BY ordinal_position"
                } else {
                    "SELECT name, \"notnull\" OR pk > 0 FROM pragma_table_info(?1) ORDER BY cid"
                };
                for (column, not_null) in
                    tx.query_all(sql, &[&table], |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?)))?
                {
                    all.push((table.to_string(), column, not_null));
                }
            }
            Ok::<_, LedgerError>(all)
        })
        .await
        .unwrap()
}

/// The PostgreSQL migrations make the SQLite schema: the same columns, in the same order,
/// with the same NOT NULL constraints (a primary key's columns are NOT NULL on both).
async fn the_helios_tables_have_the_same_columns_on_both_backends(f: &Fixture) {
    let here = columns(&f.ledger).await;
    assert!(here.len() > 100, "{here:?}");
    let sqlite = Fixture::sqlite();
    assert_eq!(here, columns(&sqlite.ledger).await);
}

/// Two `helios.titres` stages (two daemons) on one ledger and one data directory, each
/// handed every message of three billing runs at once (a redelivery to the other daemon):
/// each run is one PES Aller file, written once, its bordereaux and pièces numbered without
/// gap or repeat.
async fn two_daemons_handling_the_same_messages_write_each_run_once(f: &Fixture) {
    let settings = helios::settings(f.dir.path(), vec![tenant()]);
    let daemons = [
        std::sync::Arc::new(HeliosTitres::new(settings.clone(), f.ledger.clone())),
        std::sync::Arc::new(HeliosTitres::new(settings, f.ledger.clone())),
    ];
    let mut messages = Vec::new();
    for run in ["D0", "D1", "D2"] {
        let invoices: Vec<_> = numbers_of(run, 3)
            .iter()
            .map(|n| invoice(&tenant_id(), run, &Inv::new(n, "12.50")))
            .collect();
        messages.extend(invoices.iter().map(support::incoming));
        messages.push(support::incoming(&helios::run_closed(
            &tenant_id(),
            run,
            &invoices,
        )));
    }
    let handles: Vec<_> = messages
        .iter()
        .flat_map(|m| daemons.iter().map(move |d| (d.clone(), m.clone())))
        .map(|(daemon, message)| {
            tokio::spawn(async move {
                // As the runtime does: a transient failure (a deadlock PostgreSQL broke) is
                // retried.
                for _ in 0..5 {
                    match daemon.handle(&message).await {
                        Ok(_) => return,
                        Err(e) if e.class == ErrorClass::Transient => {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                panic!("still failing after five attempts");
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    let (bordereaux, titres) = numbering(&f.ledger).await;
    assert_eq!(
        bordereaux.iter().map(|b| b.0).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    assert_eq!(
        titres.iter().map(|t| t.0).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    let files: BTreeSet<i64> = bordereaux.iter().map(|b| b.1).collect();
    assert_eq!(files.len(), 3);
    let unwritten = read_tx(&f.ledger, |tx| store::unwritten_count(tx, "vitry"))
        .await
        .unwrap();
    assert_eq!(unwritten, 0);
    let outbox = helios::list(&f.dir.path().join("vitry/helios/outbox"));
    assert_eq!(outbox.len(), 3, "{outbox:?}");
}

/// A ledger whose files were planned before `helios_counter` existed (no counter rows): the
/// first plan after the upgrade numbers after what the ledger holds.
async fn numbers_continue_on_a_ledger_planned_before_the_counters(f: &Fixture) {
    collect(&f.ledger, "OLD", &numbers_of("OLD", 3)).await;
    write_tx(&f.ledger, |tx| close(tx, "OLD", 3)).await.unwrap();
    f.ledger
        .transact(|tx| tx.execute("DELETE FROM helios_counter", &[]))
        .await
        .unwrap();
    collect(&f.ledger, "NEW", &numbers_of("NEW", 1)).await;
    write_tx(&f.ledger, |tx| close(tx, "NEW", 1)).await.unwrap();
    let (bordereaux, titres) = numbering(&f.ledger).await;
    assert_eq!(
        bordereaux.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        titres.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}
