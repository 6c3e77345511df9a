//! The polyfac area's ledger operations (`stages::polyfac::{ingest_store, export_store}`) on
//! both backends: the same bodies on SQLite (a temporary file) and PostgreSQL (a fresh
//! database per test from `ENCAISSE_TEST_POSTGRES_URL`; skipped visibly when unset, required
//! with `ENCAISSE_REQUIRE_POSTGRES=1`). Also the reconciliation summaries (`recon_*`) that
//! triggers keep from the rows those operations write, and the REGLEMENTS file numbering
//! under concurrency, where PostgreSQL has no single writer to order it.

use std::collections::BTreeMap;

use encaisse_ledger::testing::Fixture;
use encaisse_ledger::{LedgerError, Tx};
use encaisse_pipelines::stages::polyfac::export_store::{self, InvoiceSeen, NewLine, Sighting};
use encaisse_pipelines::stages::polyfac::ingest_store::{
    self, ClosedRun, FileReject, IssuedBefore, IssuedRecord,
};
use encaisse_schemas::{Channel, CollectionPath, Money, PaymentSource};

encaisse_ledger::on_both_backends!(
    issued_invoices_and_runs_are_recorded_once,
    a_batch_is_recorded_and_looked_up_across_statement_chunks,
    rejected_invoices_are_found_by_file_and_line,
    invoices_and_payments_are_learnt_once_and_matched,
    files_are_planned_per_outbox_and_day_then_written,
    the_summaries_equal_the_rows_after_inserts_updates_and_deletes,
    concurrent_plans_of_one_outbox_number_its_files_without_gap,
    two_sightings_of_one_invoice_at_once_are_matched_one_after_the_other,
);

fn issued(key: &str, run: &str, hash: &str, budget: &str, cents: i64) -> IssuedRecord {
    IssuedRecord {
        tenant: "vitry".into(),
        invoice_key: format!("vitry/2026/{key}"),
        content_hash: hash.into(),
        run_id: run.into(),
        file: "FACT_202603.csv".into(),
        lines: (2, 4),
        budget: budget.into(),
        activity: "CANTINE".into(),
        collection: CollectionPath::Titres,
        total: Money::from_cents(cents).unwrap(),
        message_id: format!("m-{key}"),
        origin_key: None,
        payer_key: "oeuvray".into(),
    }
}

/// A batch of 1,100 invoices (more than one multi-row statement, more than one lookup
/// statement) is recorded once, duplicates inside the batch and already recorded ones
/// skipped, and every one is found again by the batch lookup, with its own values.
async fn a_batch_is_recorded_and_looked_up_across_statement_chunks(f: &Fixture) {
    let (inserted, again, found) = f
        .ledger
        .transact(|tx| {
            let at = "2026-03-05T08:00:00.000000Z";
            ingest_store::record_issued(tx, &issued("B0007", "run-0", "old", "eau", 1), at)?;
            let mut batch: Vec<IssuedRecord> = (0..1100)
                .map(|n| {
                    issued(
                        &format!("B{n:04}"),
                        "run-1",
                        &format!("h{n}"),
                        "principal",
                        n,
                    )
                })
                .collect();
            batch[3].payer_key = String::new();
            batch.push(issued("B0001", "run-1", "dup", "principal", 1));
            let refs: Vec<&IssuedRecord> = batch.iter().collect();
            let inserted = ingest_store::record_issued_many(tx, &refs, at)?;
            let again = ingest_store::record_issued_many(tx, &refs, at)?;
            let mut keys: Vec<String> = (0..1100).map(|n| format!("vitry/2026/B{n:04}")).collect();
            keys.push("vitry/2026/absent".into());
            let found = ingest_store::issued_before_many(tx, "vitry", &keys)?;
            Ok::<_, LedgerError>((inserted, again, found))
        })
        .await
        .unwrap();
    assert_eq!(
        inserted, 1099,
        "1,101 rows less the one recorded before and the duplicate"
    );
    assert_eq!(again, 0);
    assert_eq!(found.len(), 1100);
    assert_eq!(found["vitry/2026/B0007"].content_hash, "old");
    assert_eq!(
        found["vitry/2026/B0001"].content_hash, "h1",
        "the first of the batch won"
    );
    assert_eq!(found["vitry/2026/B1099"].content_hash, "h1099");
    assert_eq!(found["vitry/2026/B1099"].run_id, "run-1");
    let counts = f
        .ledger
        .inspect(|tx| ingest_store::run_counts(tx, "vitry", "run-1"))
        .await
        .unwrap();
    let counts: Vec<(String, u32, i64)> = counts
        .into_iter()
        .map(|c| (c.budget, c.invoices, c.total.cents()))
        .collect();
    let total: i64 = (0..1100).filter(|n| *n != 7).sum();
    assert_eq!(counts, [("principal".to_string(), 1099, total)]);
}

/// An invoice is recorded once (a second record, even with other content, keeps the first
/// and says so); a run's counts are per budget and collection path, invoices only; a run is
/// closed once.
async fn issued_invoices_and_runs_are_recorded_once(f: &Fixture) {
    let recorded = f
        .ledger
        .transact(|tx| {
            let at = "2026-03-05T08:00:00.000000Z";
            let first = ingest_store::record_issued(
                tx,
                &issued("F1", "run-1", "h1", "principal", 7013),
                at,
            )?;
            let again =
                ingest_store::record_issued(tx, &issued("F1", "run-2", "h2", "eau", 1), at)?;
            ingest_store::record_issued(tx, &issued("F2", "run-1", "h", "principal", 3350), at)?;
            ingest_store::record_issued(tx, &issued("F3", "run-1", "h", "eau", 12000), at)?;
            let mut note = issued("A1", "run-1", "h", "principal", 500);
            note.origin_key = Some("vitry/2026/F1".into());
            ingest_store::record_issued(tx, &note, at)?;
            Ok::<_, LedgerError>((first, again))
        })
        .await
        .unwrap();
    assert_eq!(recorded, (true, false));
    let (before, missing, counts, closed) = f
        .ledger
        .inspect(|tx| {
            Ok::<_, LedgerError>((
                ingest_store::issued_before(tx, "vitry", "vitry/2026/F1")?,
                ingest_store::issued_before(tx, "ivry", "vitry/2026/F1")?,
                ingest_store::run_counts(tx, "vitry", "run-1")?,
                ingest_store::run_closed(tx, "vitry", "run-1")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        before,
        Some(IssuedBefore {
            content_hash: "h1".into(),
            run_id: "run-1".into(),
            file: "FACT_202603.csv".into(),
        })
    );
    assert_eq!(missing, None);
    let counts: Vec<(String, u32, i64)> = counts
        .into_iter()
        .map(|c| (c.budget, c.invoices, c.total.cents()))
        .collect();
    assert_eq!(
        counts,
        [
            ("eau".to_string(), 1, 12000),
            ("principal".to_string(), 2, 7013 + 3350)
        ],
        "the credit note is not counted"
    );
    assert!(!closed);
    let run = ClosedRun {
        tenant: "vitry".into(),
        run_id: "run-1".into(),
        file: "FACT_202603.csv".into(),
        file_sha256: "ab".into(),
        exercice: 2026,
        lines: 12,
        invoices: 3,
        refused: 1,
        closed_message_id: "closed-1".into(),
    };
    for _ in 0..2 {
        let run = run.clone();
        f.ledger
            .transact(move |tx| ingest_store::record_run(tx, &run, "2026-03-05T08:01:00.000000Z"))
            .await
            .unwrap();
    }
    let (closed, payer_keys) = f
        .ledger
        .inspect(|tx| {
            Ok::<_, LedgerError>((
                ingest_store::run_closed(tx, "vitry", "run-1")?,
                tx.query_one(
                    "SELECT count(*) FROM invoice_payer_name WHERE tenant = 'vitry'
                         AND name_key = 'oeuvray'",
                    &[],
                    |r| r.get::<i64>(0),
                )?,
            ))
        })
        .await
        .unwrap();
    assert!(closed);
    assert_eq!(payer_keys, 4, "one search key per invoice, recorded once");
}

fn reject(run: &str, lines: (u64, u64), number: &str, tenant: &str) -> FileReject {
    FileReject {
        tenant: tenant.into(),
        run_id: run.into(),
        file: "FACT_NONUM.csv".into(),
        application: "polyfac".into(),
        lines,
        number: number.into(),
        exercice: (!number.is_empty()).then_some(2026),
        rule: "missing_field".into(),
        column: "NumFacture".into(),
        message: "NumFacture is missing".into(),
        rules: "missing_field".into(),
        recorded_at: format!("2026-02-01T08:00:0{}.000000Z", lines.0),
    }
}

/// Rejects are kept once per run and first line, and found by file, tenant and the line
/// they cover.
async fn rejected_invoices_are_found_by_file_and_line(f: &Fixture) {
    let rows = vec![
        reject("run-1", (2, 2), "", "vitry"),
        reject("run-1", (3, 5), "F2026-000101", "vitry"),
        reject("run-1", (3, 5), "F2026-000101", "vitry"),
        reject("run-9", (4, 4), "", "ivry"),
    ];
    f.ledger
        .transact(move |tx| {
            for row in &rows {
                ingest_store::record_reject(tx, row)?;
            }
            Ok::<_, LedgerError>(())
        })
        .await
        .unwrap();
    let find = |tenant: Option<&'static str>, line: Option<u64>| {
        f.ledger.inspect(move |tx| {
            ingest_store::file_rejects(tx, "FACT_NONUM.csv", tenant, line).map(|rows| {
                rows.into_iter()
                    .map(|r| (r.tenant, r.lines))
                    .collect::<Vec<_>>()
            })
        })
    };
    let all = find(None, None).await.unwrap();
    assert_eq!(
        all,
        [
            ("vitry".to_string(), (2, 2)),
            ("vitry".to_string(), (3, 5)),
            ("ivry".to_string(), (4, 4))
        ]
    );
    assert_eq!(find(Some("vitry"), None).await.unwrap().len(), 2);
    assert_eq!(
        find(None, Some(4)).await.unwrap(),
        [("vitry".to_string(), (3, 5)), ("ivry".to_string(), (4, 4))]
    );
    assert_eq!(
        find(Some("vitry"), Some(4)).await.unwrap(),
        [("vitry".to_string(), (3, 5))]
    );
    assert!(find(Some("vitry"), Some(6)).await.unwrap().is_empty());
    let full = f
        .ledger
        .inspect(|tx| ingest_store::file_rejects(tx, "FACT_NONUM.csv", Some("vitry"), Some(3)))
        .await
        .unwrap();
    assert_eq!(full, [reject("run-1", (3, 5), "F2026-000101", "vitry")]);
}

fn seen(key: &str, hash: &str) -> InvoiceSeen {
    InvoiceSeen {
        tenant: "vitry".into(),
        invoice_key: format!("vitry/2026/{key}"),
        family_code: "FAM-1".into(),
        total: Money::from_cents(7013).unwrap(),
        payment_mode: "tipi".into(),
        application: "polyfac".into(),
        content_hash: hash.into(),
        origin_number: None,
    }
}

fn sighting(id: &str, key: &str, source: PaymentSource, confirms: Option<&str>) -> Sighting {
    Sighting {
        payment_id: id.into(),
        invoice_key: format!("vitry/2026/{key}"),
        amount_cents: 7013,
        channel: Channel::Cb,
        source,
        reference: "ref".into(),
        confirms: confirms.map(str::to_string),
        confirmed_by: None,
        reversed: false,
    }
}

/// The first `invoice.issued` of an invoice wins (a second with other content is reported);
/// a payment is recorded once; a confirming sighting closes its primary; a reversal marks
/// the primary.
async fn invoices_and_payments_are_learnt_once_and_matched(f: &Fixture) {
    let learnt = f
        .ledger
        .transact(|tx| {
            let first = export_store::learn_invoice(tx, &seen("F1", "h1"), "t1")?;
            let same = export_store::learn_invoice(tx, &seen("F1", "h1"), "t2")?;
            let other = export_store::learn_invoice(tx, &seen("F1", "h2"), "t3")?;
            let known = export_store::lock_invoice(tx, "vitry", "vitry/2026/F1")?;
            Ok::<_, LedgerError>((first, same, other, known))
        })
        .await
        .unwrap();
    assert_eq!((learnt.0, learnt.1), (None, None));
    assert_eq!(learnt.2.as_deref(), Some("h1"));
    let known = learnt.3.unwrap();
    assert_eq!(
        (known.content_hash.as_str(), known.total.cents()),
        ("h1", 7013)
    );

    let at = |s: u32| format!("2026-03-06T10:00:0{s}.000000Z");
    let (recorded, again, open_before) = f
        .ledger
        .transact(move |tx| {
            let primary = sighting("payfip:1", "F1", PaymentSource::Payfip, None);
            let recorded = export_store::record_sighting(tx, "vitry", &primary, &at(1))?;
            let again = export_store::record_sighting(tx, "vitry", &primary, &at(2))?;
            let open = export_store::open_primaries(tx, "vitry", "vitry/2026/F1")?;
            let confirming = sighting("helios:1", "F1", PaymentSource::Helios, Some("payfip:1"));
            export_store::record_sighting(tx, "vitry", &confirming, &at(3))?;
            Ok::<_, LedgerError>((recorded, again, open))
        })
        .await
        .unwrap();
    assert!(recorded && !again, "a payment is recorded once");
    assert_eq!(open_before.len(), 1);
    let (primary, open_after, confirming) = f
        .ledger
        .transact(|tx| {
            export_store::mark_reversed(tx, "vitry", "payfip:1", "2026-03-20T10:00:00.000000Z")?;
            Ok::<_, LedgerError>((
                export_store::sighting(tx, "vitry", "payfip:1")?,
                export_store::open_primaries(tx, "vitry", "vitry/2026/F1")?,
                export_store::sighting(tx, "vitry", "helios:1")?,
            ))
        })
        .await
        .unwrap();
    let primary = primary.unwrap();
    assert_eq!(primary.confirmed_by.as_deref(), Some("helios:1"));
    assert!(primary.reversed);
    assert_eq!(
        (primary.channel, primary.source),
        (Channel::Cb, PaymentSource::Payfip)
    );
    assert!(
        open_after.is_empty(),
        "confirmed and reversed: no longer open"
    );
    assert_eq!(confirming.unwrap().confirms.as_deref(), Some("payfip:1"));
}

fn line<'a>(source: &'a str, key: &'a str, day: &'a str, bytes: &'a [u8]) -> NewLine<'a> {
    NewLine {
        tenant: "vitry",
        source,
        event_key: key,
        invoice_key: "vitry/2026/F1",
        statut: "PAYE",
        day,
        bytes,
    }
}

fn name_of(day: &str, seq: u32) -> Result<String, LedgerError> {
    Ok(format!(
        "REGLEMENTS_vitry_{}_{seq:03}.csv",
        day.replace('-', "")
    ))
}

fn plan(tx: &mut Tx<'_>, source: &str) -> Result<Option<(String, u32, u32)>, LedgerError> {
    Ok(
        export_store::plan_next_file(tx, "vitry", source, name_of, "2026-03-07T00:00:01Z")?
            .map(|f| (f.day, f.seq, f.lines)),
    )
}

/// Files are planned per outbox, earliest day first, with every unassigned line of that day;
/// a planned file not written is planned again (not a new one); the next file of a day takes
/// the next number; another outbox counts its own.
async fn files_are_planned_per_outbox_and_day_then_written(f: &Fixture) {
    let steps = f
        .ledger
        .transact(|tx| {
            let at = "2026-03-06T10:00:00Z";
            let mut inserted = Vec::new();
            for (source, key, day) in [
                ("", "e1", "2026-03-06"),
                ("", "e2", "2026-03-05"),
                ("", "e3", "2026-03-06"),
                ("creche", "e4", "2026-03-06"),
                ("", "e1", "2026-03-06"),
            ] {
                inserted.push(export_store::record_line(
                    tx,
                    &line(source, key, day, key.as_bytes()),
                    at,
                )?);
            }
            let first = export_store::plan_next_file(tx, "vitry", "", name_of, at)?.unwrap();
            let replanned = plan(tx, "")?;
            let rows = export_store::file_rows(tx, first.id)?;
            export_store::mark_written(tx, first.id, at)?;
            let second = export_store::plan_next_file(tx, "vitry", "", name_of, at)?.unwrap();
            let rows2 = export_store::file_rows(tx, second.id)?;
            export_store::mark_written(tx, second.id, at)?;
            let nothing = plan(tx, "")?;
            export_store::record_line(tx, &line("", "e5", "2026-03-06", b"e5"), at)?;
            let third = plan(tx, "")?;
            let creche = export_store::plan_next_file(tx, "vitry", "creche", name_of, at)?.unwrap();
            Ok::<_, LedgerError>((
                inserted,
                (
                    first.day.clone(),
                    first.seq,
                    first.lines,
                    first.name.clone(),
                ),
                replanned,
                rows,
                (second.day, second.seq, second.lines),
                rows2,
                nothing,
                third,
                (creche.source, creche.day, creche.seq, creche.lines),
            ))
        })
        .await
        .unwrap();
    let (inserted, first, replanned, rows, second, rows2, nothing, third, creche) = steps;
    assert_eq!(
        inserted,
        [true, true, true, true, false],
        "a line is recorded once"
    );
    assert_eq!(
        first,
        (
            "2026-03-05".into(),
            1,
            1,
            "REGLEMENTS_vitry_20260305_001.csv".into()
        )
    );
    assert_eq!(
        replanned,
        Some(("2026-03-05".into(), 1, 1)),
        "not written: planned again"
    );
    assert_eq!(rows, [("vitry/2026/F1".to_string(), b"e2".to_vec())]);
    assert_eq!(second, ("2026-03-06".into(), 1, 2));
    let bytes: Vec<Vec<u8>> = rows2.into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        bytes,
        [b"e1".to_vec(), b"e3".to_vec()],
        "in recording order"
    );
    assert_eq!(nothing, None);
    assert_eq!(
        third,
        Some(("2026-03-06".into(), 2, 1)),
        "the day's next number"
    );
    assert_eq!(creche, ("creche".into(), "2026-03-06".into(), 1, 1));
}

/// The summaries as the rows define them: per tenant, UTC hour, budget and activity.
type Summaries = (
    BTreeMap<(String, String, String, String), (i64, i64, i64)>,
    BTreeMap<(String, String, String, String, String), (i64, i64)>,
);

/// Reads [`Summaries`] from two queries of the same columns: (tenant, hour, budget, activity,
/// invoices, invoiced, paid) and (tenant, hour, budget, activity, channel, payments, cents).
fn summaries(tx: &mut Tx<'_>, issued: &str, collected: &str) -> Result<Summaries, LedgerError> {
    let issued = tx.query_all(issued, &[], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
            (r.get(4)?, r.get(5)?, r.get(6)?),
        ))
    })?;
    let collected = tx.query_all(collected, &[], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
            (r.get(5)?, r.get(6)?),
        ))
    })?;
    Ok((
        issued.into_iter().collect(),
        collected.into_iter().collect(),
    ))
}

/// What the triggers kept (rows summing to nothing left out).
fn kept(tx: &mut Tx<'_>) -> Result<Summaries, LedgerError> {
    summaries(
        tx,
        "SELECT tenant, hour, budget, activity, invoices, invoiced_cents, paid_cents
         FROM recon_issued
         WHERE invoices <> 0 OR invoiced_cents <> 0 OR paid_cents <> 0",
        "SELECT tenant, hour, budget, activity, channel, payments, cents FROM recon_collected
         WHERE payments <> 0 OR cents <> 0",
    )
}

/// What the rows give, by the summaries' definitions.
fn from_rows(tx: &mut Tx<'_>) -> Result<Summaries, LedgerError> {
    summaries(
        tx,
        "SELECT i.tenant, substr(i.published_at, 1, 13), i.budget, coalesce(i.activity, ''),
                count(*), CAST(sum(i.total_cents) AS BIGINT),
                CAST(coalesce(sum((SELECT sum(p.amount_cents) FROM polyfac_payment p
                     WHERE p.tenant = i.tenant AND p.invoice_key = i.invoice_key
                       AND p.confirms IS NULL AND p.reversed_at IS NULL)), 0) AS BIGINT)
         FROM polyfac_issued i GROUP BY 1, 2, 3, 4",
        "SELECT p.tenant, substr(p.seen_at, 1, 13), coalesce(i.budget, ''),
                coalesce(i.activity, ''), p.channel, count(*), CAST(sum(p.amount_cents) AS BIGINT)
         FROM polyfac_payment p
         LEFT JOIN polyfac_issued i ON i.tenant = p.tenant AND i.invoice_key = p.invoice_key
         WHERE p.confirms IS NULL GROUP BY 1, 2, 3, 4, 5",
    )
}

/// The summaries the triggers keep equal the rows' sums after each kind of write: a payment
/// before its invoice (under '' until the invoice arrives), a confirmation (not counted), a
/// reversal (no longer paid), an invoice moved to another budget, rows deleted.
async fn the_summaries_equal_the_rows_after_inserts_updates_and_deletes(f: &Fixture) {
    let check = |what: &'static str| {
        f.ledger.inspect(move |tx| {
            let (kept, rows) = (kept(tx)?, from_rows(tx)?);
            assert_eq!(kept, rows, "after {what}");
            Ok::<_, LedgerError>(kept)
        })
    };
    let steps: [(&str, &str); 7] = [
        (
            "a payment before its invoice",
            "INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents, channel,
                 source, reference, seen_at) VALUES
               ('vitry', 'p1', 'vitry/2026/F1', 4000, 'CB', 'payfip', 'x', '2026-03-06T10:00:00Z'),
               ('vitry', 'p2', 'vitry/2026/F2', 900, 'GUICHET', 'regie', 'x', '2026-03-06T10:30:00Z')",
        ),
        (
            "the invoices",
            "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id, file,
                 first_line, last_line, budget, collection, total_cents, message_id, published_at,
                 activity) VALUES
               ('vitry', 'vitry/2026/F1', 'h', 'r', 'f', 1, 1, 'principal', 'titres', 7013, 'm',
                '2026-03-05T08:00:00Z', 'CANTINE'),
               ('vitry', 'vitry/2026/F3', 'h', 'r', 'f', 2, 2, 'eau', 'titres', 500, 'm',
                '2026-03-05T08:10:00Z', NULL)",
        ),
        (
            "a confirmation and a second payment",
            "INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents, channel,
                 source, reference, seen_at, confirms) VALUES
               ('vitry', 'h1', 'vitry/2026/F1', 4000, 'CB', 'helios', 'x', '2026-03-09T10:00:00Z', 'p1'),
               ('vitry', 'p3', 'vitry/2026/F1', 3013, 'TIP', 'helios', 'x', '2026-03-09T11:00:00Z', NULL)",
        ),
        (
            "a reversal",
            "UPDATE polyfac_payment SET reversed_at = '2026-03-20T10:00:00Z' WHERE payment_id = 'p3'",
        ),
        (
            "an invoice moved to another budget and activity",
            "UPDATE polyfac_issued SET budget = 'eau', activity = 'PISCINE'
                 WHERE invoice_key = 'vitry/2026/F1'",
        ),
        (
            "a payment moved in time and amount",
            "UPDATE polyfac_payment SET seen_at = '2026-03-10T23:00:00Z', amount_cents = 4100
                 WHERE payment_id = 'p1'",
        ),
        (
            "deletes",
            "DELETE FROM polyfac_payment WHERE payment_id = 'p2';
             DELETE FROM polyfac_issued WHERE invoice_key = 'vitry/2026/F3'",
        ),
    ];
    for (what, sql) in steps {
        f.ledger
            .transact(move |tx| tx.execute_script(sql))
            .await
            .unwrap();
        check(what).await.unwrap();
    }
    // The end state, spelt out: F1 (now eau/PISCINE) paid by p1 only (p3 reversed).
    let (issued, collected) = check("the end").await.unwrap();
    let f1 = (
        "vitry".to_string(),
        "2026-03-05T08".to_string(),
        "eau".to_string(),
        "PISCINE".to_string(),
    );
    assert_eq!(issued[&f1], (1, 7013, 4100));
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(
        collected.len(),
        2,
        "p1 and p3, under F1's budget: {collected:?}"
    );
    assert!(collected.keys().all(|k| k.2 == "eau" && k.3 == "PISCINE"));
}

/// Eight transactions, each recording a REGLEMENTS line of one outbox and day and planning
/// and writing its file, at once: every one succeeds, the day's files are numbered 1 to 8
/// without gap or repeat, and each line is in exactly one file. On PostgreSQL the outbox's
/// lock orders the plans (without it, two read the same `MAX(seq)` and one fails on the
/// unique key); on SQLite the one writer does.
async fn concurrent_plans_of_one_outbox_number_its_files_without_gap(f: &Fixture) {
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move {
                ledger
                    .transact(move |tx| {
                        let key = format!("event-{i}");
                        let at = "2026-03-06T10:00:00Z";
                        export_store::record_line(
                            tx,
                            &line("", &key, "2026-03-06", key.as_bytes()),
                            at,
                        )?;
                        let file = export_store::plan_next_file(tx, "vitry", "", name_of, at)?
                            .ok_or_else(|| LedgerError::Corrupt("nothing planned".into()))?;
                        export_store::mark_written(tx, file.id, at)?;
                        Ok::<_, LedgerError>((file.seq, file.lines))
                    })
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for handle in handles {
        let (seq, lines) = handle.await.unwrap().unwrap();
        assert_eq!(lines, 1, "its own line, no other's");
        seqs.push(seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=8).collect::<Vec<u32>>());
    let (files, unassigned) = f
        .ledger
        .inspect(|tx| {
            Ok::<_, LedgerError>((
                tx.query_all(
                    "SELECT f.seq, count(l.id) FROM polyfac_reglements_file f
                     JOIN polyfac_reglement_line l ON l.file_id = f.id
                     GROUP BY f.seq ORDER BY f.seq",
                    &[],
                    |r| Ok((r.get::<u32>(0)?, r.get::<i64>(1)?)),
                )?,
                tx.query_one(
                    "SELECT count(*) FROM polyfac_reglement_line WHERE file_id IS NULL",
                    &[],
                    |r| r.get::<i64>(0),
                )?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(files, (1..=8).map(|s| (s, 1)).collect::<Vec<_>>());
    assert_eq!(unassigned, 0);
}

/// The tables of the polyfac area and of `ops_0003` have the same columns and nullability
/// on both backends once migrated (PostgreSQL adds `source` at the end where SQLite rebuilt
/// the tables, hence compared as sets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_migrate_to_the_same_polyfac_columns() {
    let Some(postgres) = Fixture::postgres("both_backends_migrate_to_the_same_polyfac_columns")
    else {
        return;
    };
    let sqlite = Fixture::sqlite();
    const TABLES: [&str; 9] = [
        "polyfac_issued",
        "polyfac_run",
        "polyfac_export_invoice",
        "polyfac_payment",
        "polyfac_reglements_file",
        "polyfac_reglement_line",
        "polyfac_rejected",
        "recon_issued",
        "recon_collected",
    ];
    async fn columns(f: &Fixture) -> Result<Vec<(String, String, bool)>, LedgerError> {
        f.ledger
            .inspect(|tx| {
                let mut all = Vec::new();
                for table in TABLES {
                    let sql = if tx.is_postgres() {
                        "SELECT column_name, is_nullable = 'NO' FROM information_schema.columns
                     WHERE table_schema = 'public' AND table_name = ?1"
                    } else {
                        "SELECT name, \"notnull\" <> 0 OR pk <> 0 FROM pragma_table_info(?1)"
                    };
                    let mut these: Vec<(String, String, bool)> =
                        tx.query_all(sql, &[&table], |r| {
                            Ok((table.to_string(), r.get(0)?, r.get(1)?))
                        })?;
                    assert!(!these.is_empty(), "{table} exists on {}", tx.backend());
                    these.sort();
                    all.extend(these);
                }
                Ok::<_, LedgerError>(all)
            })
            .await
    }
    assert_eq!(
        columns(&sqlite).await.unwrap(),
        columns(&postgres).await.unwrap()
    );
    async fn payer_name(f: &Fixture) -> Result<i64, LedgerError> {
        f.ledger
            .inspect(|tx| {
                tx.query_one("SELECT count(*) FROM invoice_payer_name", &[], |r| {
                    r.get::<i64>(0)
                })
            })
            .await
    }
    assert_eq!(payer_name(&postgres).await.unwrap(), 0);
    assert_eq!(payer_name(&sqlite).await.unwrap(), 0);
}

/// Two sightings of one invoice handled at once (PayFiP's and Hélios' of the same payment):
/// the second transaction to lock the invoice waits for the first to commit, so it sees the
/// first's primary among the open ones and confirms it, instead of both becoming primaries
/// (two `PAYE` lines for one payment). On SQLite the one writer orders them.
async fn two_sightings_of_one_invoice_at_once_are_matched_one_after_the_other(f: &Fixture) {
    f.ledger
        .transact(|tx| export_store::learn_invoice(tx, &seen("F9", "h"), "t"))
        .await
        .unwrap();
    let handles: Vec<_> = [PaymentSource::Payfip, PaymentSource::Helios]
        .into_iter()
        .enumerate()
        .map(|(i, source)| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move {
                ledger
                    .transact(move |tx| {
                        export_store::lock_invoice(tx, "vitry", "vitry/2026/F9")?;
                        let open = export_store::open_primaries(tx, "vitry", "vitry/2026/F9")?;
                        let confirms = open.first().map(|p| p.payment_id.clone());
                        let id = format!("{i}:1");
                        let mut new = sighting(&id, "F9", source, None);
                        new.confirms = confirms.clone();
                        export_store::record_sighting(tx, "vitry", &new, "2026-03-06T10:00:00Z")?;
                        // Holds the invoice a while: the other transaction is waiting.
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        Ok::<_, LedgerError>(confirms)
                    })
                    .await
            })
        })
        .collect();
    let mut confirmed = Vec::new();
    for handle in handles {
        confirmed.push(handle.await.unwrap().unwrap());
    }
    assert_eq!(
        confirmed.iter().filter(|c| c.is_some()).count(),
        1,
        "one primary, one confirmation: {confirmed:?}"
    );
    let open = f
        .ledger
        .inspect(|tx| export_store::open_primaries(tx, "vitry", "vitry/2026/F9"))
        .await
        .unwrap();
    assert!(open.is_empty(), "the primary is confirmed: {open:?}");
}
