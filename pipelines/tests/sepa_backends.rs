//! The régie direct-debit path's ledger operations on both backends (SQLite in a temporary
//! file, PostgreSQL in a fresh database per test from `ENCAISSE_TEST_POSTGRES_URL`; skipped
//! visibly when unset, required in CI with `ENCAISSE_REQUIRE_POSTGRES=1`): a régie's plan
//! (numbered file, uses, facts) written and reported on by the bank, outcomes and refusals
//! recorded once even when reported concurrently, the day's `{seq}` unique and gapless under
//! concurrent planners, and credit notes that lower a pending debit or become refunds.

#[path = "sepa_support/mod.rs"]
mod sepa;
#[path = "runtime_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::NaiveDateTime;
use encaisse_ledger::batch::{AddOutcome, BatchKey};
use encaisse_ledger::testing::Fixture;
use encaisse_ledger::{BatchStore, CoreStore, LedgerError, Tx};
use encaisse_pipelines::mandates::{self, BankOutcome, Recorded, UseStatus};
use encaisse_pipelines::stages::sepa::credit_notes::{self, Decision};
use encaisse_pipelines::stages::sepa::plan::{self, Candidate, PlanContext, RegiePlan};
use encaisse_pipelines::stages::sepa::store::{self, FileKind, NewFile, PainMeta};
use encaisse_pipelines::stages::sepa::{TenantSepa, outputs};
use encaisse_schemas::identifiers::Rum;
use encaisse_schemas::{CreditNoteIssued, InvoiceIssued, Money, TenantId};
use sepa::{Inv, invoice, now, tenant, tenant_id};

encaisse_ledger::on_both_backends!(
    a_planned_file_is_written_and_the_bank_outcomes_are_recorded_once,
    day_numbers_are_unique_and_gapless_under_concurrent_planners,
    concurrent_plans_of_one_tenant_name_their_files_one_after_another,
    credit_notes_lower_a_pending_debit_or_become_refunds,
    an_imported_mandate_continues_its_life,
);

const ORIGIN: &str = "sepa.batch";

fn candidate(invoice: InvoiceIssued) -> Candidate {
    Candidate {
        attempt: 1,
        due_date: invoice.due_date,
        previous_sequence: None,
        invoice,
    }
}

/// Plans `invoices` of the crèche's régie in one transaction, as `sepa.batch` does.
async fn plan_in(
    f: &Fixture,
    cfg: &TenantSepa,
    run: &str,
    at: NaiveDateTime,
    invoices: Vec<InvoiceIssued>,
) -> RegiePlan {
    let (cfg, run) = (cfg.clone(), run.to_string());
    plan::commit(&f.ledger, move |tx| {
        let ctx = PlanContext {
            tenant: &cfg,
            now: at,
            origin: ORIGIN,
            cause: &run,
        };
        plan::plan_regie(
            tx,
            ctx,
            Some("regie-creche"),
            invoices.into_iter().map(candidate).collect(),
        )
    })
    .await
    .unwrap()
}

/// Plan → write → bank outcomes: the file is numbered 1, written once, its collections
/// presented; eight concurrent reports of one rejection record it once; a refusal of a
/// planned use happens once and leaves the bank nothing to report on.
async fn a_planned_file_is_written_and_the_bank_outcomes_are_recorded_once(f: &Fixture) {
    let t = tenant_id("backends");
    let cfg = tenant(&t);
    let invoices = vec![
        invoice(&t, "run-1", &Inv::debit("B1", "RUM-B1", "40.00")),
        invoice(&t, "run-1", &Inv::debit("B2", "RUM-B2", "12.50")),
    ];
    let plan = plan_in(f, &cfg, "run-1", now(), invoices).await;
    assert!(plan.refused.is_empty(), "{:?}", plan.refused);
    assert_eq!(plan.planned.len(), 2);
    let file_name = plan.file_name.clone().unwrap();

    let tenant_key = t.as_str().to_string();
    let written = outputs::write_planned(&f.ledger, f.dir.path(), t.as_str(), ORIGIN)
        .await
        .unwrap();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].kind, FileKind::Pain008);
    assert_eq!(written[0].collections, 2);
    assert!(written[0].path.ends_with(&file_name), "{written:?}");
    assert!(f.dir.path().join(&written[0].path).is_file());
    // Written once: nothing left to write.
    let again = outputs::write_planned(&f.ledger, f.dir.path(), t.as_str(), ORIGIN)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");

    let e2e = plan.planned[0].end_to_end_id.clone();
    let key = tenant_key.clone();
    let (used, facts, last, day_seq) = f
        .ledger
        .inspect(move |tx| {
            let used = mandates::use_by_end_to_end_id(tx, &key, &e2e)?.unwrap();
            let facts = tx.facts_of(&used.invoice_key)?;
            let rum = Rum::parse("RUM-B1").unwrap();
            let last = mandates::last_presented(tx, &key, &rum)?;
            let day_seq: i64 = tx.query_one(
                "SELECT day_seq FROM sepa_file WHERE tenant = ?1 AND kind = 'pain008'",
                &[&key],
                |r| r.get(0),
            )?;
            Ok::<_, LedgerError>((used, facts, last, day_seq))
        })
        .await
        .unwrap();
    assert_eq!(used.status, UseStatus::Presented);
    assert_eq!(day_seq, 1, "the first file of the day is number 1");
    let kinds: Vec<&str> = facts.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["collection_planned", "pain008_emitted"]);
    let last = last.unwrap();
    assert_eq!(last.rum, "RUM-B1");
    assert_eq!(last.ics, "FR55ZZZ947001");

    // The same rejection reported eight times at once (pain.002 and camt.054 read by
    // several daemons): recorded once.
    let rejected = BankOutcome::Rejected {
        code: Some("AM04".into()),
    };
    let on = now().date();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (ledger, key, e2e, rejected) = (
                f.ledger.clone(),
                tenant_key.clone(),
                plan.planned[0].end_to_end_id.clone(),
                rejected.clone(),
            );
            tokio::spawn(async move {
                ledger
                    .transact(move |tx| {
                        let recorded = mandates::record_outcome(tx, &key, &e2e, &rejected, on)?;
                        // Held while the others wait for the row.
                        std::thread::sleep(Duration::from_millis(20));
                        Ok::<_, LedgerError>(recorded)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut new = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Recorded::New(u) => {
                new += 1;
                assert_eq!(u.status, UseStatus::Rejected);
                assert_eq!(u.outcome_code.as_deref(), Some("AM04"));
            }
            Recorded::AlreadyRejected(u) => assert_eq!(u.status, UseStatus::Rejected),
            Recorded::Unknown => panic!("the collection is known"),
        }
    }
    assert_eq!(new, 1, "one rejection recorded");
    // A settlement reported after the rejection changes nothing either.
    let (key, e2e) = (tenant_key.clone(), plan.planned[0].end_to_end_id.clone());
    let settled = f
        .ledger
        .transact(move |tx| mandates::record_outcome(tx, &key, &e2e, &BankOutcome::Settled, on))
        .await
        .unwrap();
    assert!(
        matches!(settled, Recorded::AlreadyRejected(_)),
        "{settled:?}"
    );

    // A use planned and refused before any file: refused once (concurrently too), and the
    // bank cannot report on it.
    let m = invoice(&t, "run-2", &Inv::debit("B3", "RUM-B3", "5.00"));
    let mandate = m.mandate.clone().unwrap();
    let invoice_ref = m.invoice.clone();
    f.ledger
        .transact(move |tx| {
            mandates::sequence_for(
                tx,
                &invoice_ref,
                &mandate,
                now().date() + chrono::Days::new(10),
                &mandates::SequencePolicy {
                    first: encaisse_sepa::config::FirstSequence::Frst,
                    lapse_months: 36,
                },
            )
        })
        .await
        .unwrap();
    let refusals: Vec<_> = (0..4)
        .map(|_| {
            let (ledger, key, invoice_key) =
                (f.ledger.clone(), tenant_key.clone(), m.invoice.key());
            tokio::spawn(async move {
                ledger
                    .transact(move |tx| mandates::refuse_use(tx, &key, &invoice_key, 1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for r in refusals {
        r.await.unwrap();
    }
    let (key, invoice_key) = (tenant_key.clone(), m.invoice.key());
    let (refused, reported) = f
        .ledger
        .transact(move |tx| {
            let refused = mandates::use_of(tx, &key, &invoice_key, 1)?.unwrap();
            let e2e = refused.end_to_end_id.clone().unwrap();
            let reported = mandates::record_outcome(tx, &key, &e2e, &BankOutcome::Settled, on)?;
            Ok::<_, LedgerError>((refused, reported))
        })
        .await
        .unwrap();
    assert_eq!(refused.status, UseStatus::Refused);
    assert_eq!(reported, Recorded::Unknown);
}

/// Sixteen transactions each take the day's next `{seq}`, hold it a moment, and record
/// their file: the numbers are 1 to 16, each once. Another day and another tenant start at
/// 1. A transaction rolled back after taking a number leaves no gap.
async fn day_numbers_are_unique_and_gapless_under_concurrent_planners(f: &Fixture) {
    let day = now().date();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move {
                ledger
                    .transact(move |tx| {
                        let seq = store::next_day_seq(tx, "ivry", day)?;
                        std::thread::sleep(Duration::from_millis(10));
                        insert_pain(tx, "ivry", &format!("p{i}"), now(), seq)?;
                        Ok::<_, LedgerError>(seq)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for handle in handles {
        seqs.push(handle.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=16).collect::<Vec<u32>>(), "unique and gapless");

    // A planner that fails after taking a number: rolled back, its number is taken next.
    let failed = f
        .ledger
        .transact(move |tx| {
            let seq = store::next_day_seq(tx, "ivry", day)?;
            insert_pain(tx, "ivry", "rolled-back", now(), seq)?;
            Err::<(), _>(LedgerError::Corrupt(format!(
                "planner failed holding {seq}"
            )))
        })
        .await;
    assert!(failed.is_err());
    let tomorrow = day.succ_opt().unwrap();
    let (next, other_tenant, other_day) = f
        .ledger
        .inspect(move |tx| {
            Ok::<_, LedgerError>((
                store::next_day_seq(tx, "ivry", day)?,
                store::next_day_seq(tx, "vitry", day)?,
                store::next_day_seq(tx, "ivry", tomorrow)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((next, other_tenant, other_day), (17, 1, 1));
}

/// A pain.008 row numbered `seq` (its name and `MsgId` from `name`, so that two rows given
/// the same number would both be stored and the test would see it).
fn insert_pain(
    tx: &mut Tx<'_>,
    tenant: &str,
    name: &str,
    at: NaiveDateTime,
    seq: u32,
) -> Result<i64, LedgerError> {
    store::insert_file(
        tx,
        &NewFile {
            tenant,
            origin: ORIGIN,
            kind: FileKind::Pain008,
            path: format!("{tenant}/bank/outbox/{name}.xml"),
            bytes: b"<Document/>".to_vec(),
            cause: "run",
            pain: Some(PainMeta {
                regie: "regie-creche".into(),
                message_id: format!("MSG-{name}"),
                created_at: at,
                day_seq: seq,
                collections: 1,
                amount_cents: 100,
            }),
        },
    )
}

/// Six runs of one tenant planned at once through the stage's own planning: six files,
/// numbered 1 to 6 that day, six distinct names, every collection in exactly one file.
async fn concurrent_plans_of_one_tenant_name_their_files_one_after_another(f: &Fixture) {
    let t = tenant_id("daynames");
    let cfg = tenant(&t);
    let numbers = ["C1", "C2", "C3", "C4", "C5", "C6"];
    let handles: Vec<_> = numbers
        .iter()
        .enumerate()
        .map(|(i, number)| {
            let inv = invoice(
                &t,
                &format!("run-{i}"),
                &Inv::debit(
                    number,
                    ["RUM-C1", "RUM-C2", "RUM-C3", "RUM-C4", "RUM-C5", "RUM-C6"][i],
                    "10.00",
                ),
            );
            let (ledger, cfg) = (f.ledger.clone(), cfg.clone());
            tokio::spawn(async move {
                let run = format!("run-{i}");
                plan::commit(&ledger, move |tx| {
                    let ctx = PlanContext {
                        tenant: &cfg,
                        now: now(),
                        origin: ORIGIN,
                        cause: &run,
                    };
                    plan::plan_regie(tx, ctx, Some("regie-creche"), vec![candidate(inv)])
                })
                .await
                .unwrap()
            })
        })
        .collect();
    let mut names = BTreeSet::new();
    for handle in handles {
        let plan = handle.await.unwrap();
        assert!(plan.refused.is_empty(), "{:?}", plan.refused);
        assert!(names.insert(plan.file_name.unwrap()), "a name given twice");
    }
    assert_eq!(names.len(), 6);
    let key = t.as_str().to_string();
    let (seqs, uses) = f
        .ledger
        .inspect(move |tx| {
            let seqs: Vec<i64> = tx.query_all(
                "SELECT day_seq FROM sepa_file WHERE tenant = ?1 ORDER BY day_seq",
                &[&key],
                |r| r.get(0),
            )?;
            let uses: Vec<(i64, i64)> = tx.query_all(
                "SELECT f.day_seq, count(*) FROM sepa_collection c
                 JOIN sepa_file f ON f.id = c.file_id
                 WHERE c.tenant = ?1 GROUP BY f.day_seq ORDER BY f.day_seq",
                &[&key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok::<_, LedgerError>((seqs, uses))
        })
        .await
        .unwrap();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert_eq!(uses, (1..=6).map(|s| (s, 1)).collect::<Vec<_>>());
}

/// A régie credit note of `amount` against `origin`.
fn credit_note(
    t: &TenantId,
    number: &'static str,
    origin: &InvoiceIssued,
    amount: &str,
) -> CreditNoteIssued {
    let mut note = invoice(t, "run-notes", &Inv::debit(number, "RUM-X", "1.00"));
    let minus = Money::parse(amount).unwrap();
    note.lines[0].unit_price = minus;
    note.lines[0].amount = minus;
    note.total = minus;
    note.mandate = None;
    CreditNoteIssued {
        schema_version: 1,
        origin: origin.invoice.clone(),
        note,
    }
}

/// Against an invoice received and not planned: pending, then lowers the debit once when
/// its run is planned. Against a debit already planned: a refund. Against an unknown
/// invoice: refused. Received twice: the same decision, one row.
async fn credit_notes_lower_a_pending_debit_or_become_refunds(f: &Fixture) {
    // `received` reads the polyfac area's issued invoices; until that area has its
    // PostgreSQL tables the test gives it an empty one.
    f.ledger
        .transact(|tx| {
            if tx.is_postgres() {
                tx.execute_script(
                    "CREATE TABLE IF NOT EXISTS polyfac_issued
                         (tenant text NOT NULL, invoice_key text NOT NULL)",
                )?;
            }
            Ok::<_, LedgerError>(())
        })
        .await
        .unwrap();
    let t = tenant_id("notes");
    let cfg = tenant(&t);
    let received = invoice(&t, "run-n", &Inv::debit("N1", "RUM-N1", "40.00"));
    let planned = invoice(&t, "run-p", &Inv::debit("N2", "RUM-N2", "25.00"));
    let unknown = invoice(&t, "run-u", &Inv::debit("N3", "RUM-N3", "9.00"));
    plan_in(f, &cfg, "run-p", now(), vec![planned.clone()]).await;
    let key = BatchKey {
        stage: ORIGIN.to_string(),
        tenant: t.as_str().to_string(),
        run_id: "run-n".into(),
        group: "principal".into(),
    };
    let (k, item) = (key.clone(), received.clone());
    f.ledger
        .transact(move |tx| {
            let added = tx.add_item(
                &k,
                &item.invoice.key(),
                &item.content_hash,
                &encaisse_schemas::encode(&item),
            )?;
            assert!(matches!(added, AddOutcome::Added), "{added:?}");
            Ok::<_, LedgerError>(())
        })
        .await
        .unwrap();

    let notes = [
        credit_note(&t, "AV1", &received, "-15.00"),
        credit_note(&t, "AV2", &received, "-5.00"),
        credit_note(&t, "AV3", &planned, "-5.00"),
        credit_note(&t, "AV4", &unknown, "-5.00"),
    ];
    let mut decisions = Vec::new();
    for note in notes.iter().chain(std::iter::once(&notes[2])) {
        let note = note.clone();
        let decision = plan::commit(&f.ledger, move |tx| {
            credit_notes::decide(tx, ORIGIN, &note, now())
        })
        .await
        .unwrap();
        decisions.push(match decision {
            Decision::Pending => "pending".to_string(),
            Decision::Tell(event) => event.code.clone(),
        });
    }
    assert_eq!(
        decisions,
        [
            "pending",
            "pending",
            "LOCAL-REMBOURSEMENT",
            "LOCAL-AVOIR",
            "LOCAL-REMBOURSEMENT"
        ]
    );

    // The run is planned: the two pending notes lower the debit, once.
    let (k, debit) = (key.clone(), received.clone());
    let (lowered, again, states) = f
        .ledger
        .transact(move |tx| {
            credit_notes::lock_tenant(tx, &k.tenant)?;
            let lowered = credit_notes::lower_debit(tx, &k, debit.clone())
                .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            let again = credit_notes::lower_debit(tx, &k, debit)
                .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            let states: Vec<(String, String)> = tx.query_all(
                "SELECT note_key, state FROM sepa_credit_note WHERE tenant = ?1 ORDER BY note_key",
                &[&k.tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok::<_, LedgerError>((lowered, again, states))
        })
        .await
        .unwrap();
    assert_eq!(lowered.unwrap().total, Money::parse("20.00").unwrap());
    assert_eq!(
        again.unwrap().total,
        Money::parse("40.00").unwrap(),
        "applied once"
    );
    let states: Vec<&str> = states.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(states, ["applied", "applied", "refund", "refused"]);
}

/// A mandate imported from another tool with its last collection: imported twice, one
/// journal fact; a later last collection moves the history forward (the upsert keeps the
/// latest); the next debit is `RCUR`.
async fn an_imported_mandate_continues_its_life(f: &Fixture) {
    use encaisse_pipelines::stages::sepa::mandate_import::{ImportedMandate, import_mandate};
    use encaisse_schemas::identifiers::Iban;
    let imported = |last: (i32, u32, u32)| ImportedMandate {
        rum: Rum::parse("OLD-TOOL-000789").unwrap(),
        iban: Iban::parse("FR1420041010050500013M02606").unwrap(),
        bic: None,
        signed_on: chrono::NaiveDate::from_ymd_opt(2021, 3, 1).unwrap(),
        last_collection_on: chrono::NaiveDate::from_ymd_opt(last.0, last.1, last.2),
        last_sequence: None,
        one_off: false,
    };
    let today = now().date();
    for last in [(2026, 4, 5), (2026, 4, 5), (2026, 5, 5), (2026, 3, 5)] {
        let m = imported(last);
        f.ledger
            .transact(move |tx| import_mandate(tx, "ivry", &m, "m.csv:2", today))
            .await
            .unwrap();
    }
    let t = TenantId::new("ivry").unwrap();
    let next = invoice(&t, "run-i", &Inv::debit("I1", "OLD-TOOL-000789", "10.00"));
    let (facts, due, sequence) = f
        .ledger
        .transact(move |tx| {
            let facts = tx.facts_of("ivry/mandate/OLD-TOOL-000789")?;
            let due: String = tx.query_one(
                "SELECT due_date FROM sepa_collection WHERE tenant = 'ivry' AND status = 'settled'",
                &[],
                |r| r.get(0),
            )?;
            let sequence = mandates::sequence_for(
                tx,
                &next.invoice,
                next.mandate.as_ref().unwrap(),
                next.due_date,
                &mandates::SequencePolicy {
                    first: encaisse_sepa::config::FirstSequence::Frst,
                    lapse_months: 36,
                },
            )
            .map_err(|e| LedgerError::Corrupt(e.to_string()))?;
            Ok::<_, LedgerError>((facts.len(), due, sequence))
        })
        .await
        .unwrap();
    assert_eq!(facts, 3, "the same row imported twice is one fact");
    assert_eq!(due, "2026-05-05", "the latest last collection is kept");
    assert_eq!(sequence, encaisse_schemas::SequenceType::Rcur);
}
