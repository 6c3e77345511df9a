//! The PayFiP store (`encaisse_pipelines::stages::payfip::store`) on both ledger backends:
//! the same bodies on SQLite (a temporary file) and PostgreSQL (a fresh database per test
//! from `ENCAISSE_TEST_POSTGRES_URL`; skipped visibly when unset, required in CI with
//! `ENCAISSE_REQUIRE_POSTGRES=1`). Above all what must happen once when several daemons
//! share the ledger: reserving an invoice's attempt, claiming a notification, resolving an
//! attempt, counting a payment, settling a classic claim — each raced by several
//! transactions at once (on PostgreSQL they really overlap, at `READ COMMITTED`).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use encaisse_ledger::testing::Fixture;
use encaisse_ledger::{Ledger, LedgerError};
use encaisse_payfip::{PayfipMode, Resultrans};
use encaisse_pipelines::stages::payfip::store::{
    self, ClaimSettled, InvoiceRecord, OpChannel, OpState, Operation, Outcome, PaymentFact,
    Reserved, Resolution, TitreRecord,
};
use encaisse_schemas::{CollectionPath, InvoiceRef, Money, TenantId, TitreRef};

encaisse_ledger::on_both_backends!(
    invoices_titres_and_credit_notes_make_what_is_payable,
    concurrent_reservations_of_one_invoice_keep_one_current_attempt,
    a_notification_is_claimed_and_an_attempt_resolved_once,
    a_payment_counts_once_however_often_it_is_recorded,
    stale_attempts_are_asked_about_closed_and_dropped,
    a_classic_claim_is_recorded_confirmed_and_reported_once,
    two_lines_emarged_at_once_confirm_the_claim_they_cover_together,
);

/// How many transactions race for the same decision.
const RACERS: usize = 8;

fn invoice(number: &str) -> InvoiceRef {
    InvoiceRef {
        tenant: TenantId::new("vitry").unwrap(),
        exercice: 2026,
        number: number.into(),
    }
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
        .unwrap()
        .to_utc()
}

fn record(number: &str, amount: &str, collection: CollectionPath) -> InvoiceRecord {
    InvoiceRecord {
        invoice: invoice(number),
        content_hash: format!("hash-{number}"),
        amount: money(amount),
        email: Some("famille@example.org".into()),
        collection,
        budget: "principal".into(),
        regie: (collection == CollectionPath::Regie).then(|| "creche".into()),
        numcli: Some("090909".into()),
        online_payable: true,
        issued_on: NaiveDate::from_ymd_opt(2026, 2, 27).unwrap(),
    }
}

fn titre(number: &str, day: u32, id_pce: u32) -> TitreRecord {
    TitreRecord {
        invoice: invoice(number),
        titre: TitreRef {
            budget: "principal".into(),
            exercice: 2026,
            bordereau_type: "01".into(),
            id_bord: 12,
            id_pce,
        },
        taken_in_charge_on: NaiveDate::from_ymd_opt(2026, 3, day).unwrap(),
    }
}

/// An attempt of `number`, `state` as given (an open web-service attempt has its idOp).
fn op(id: &str, number: &str, channel: OpChannel, state: OpState, at: DateTime<Utc>) -> Operation {
    let open = state != OpState::Creating;
    Operation {
        op_id: id.into(),
        invoice: invoice(number),
        channel,
        state,
        active: true,
        idop: (open && channel == OpChannel::Ws).then(|| format!("idop-{id}")),
        payment_id: open.then(|| match channel {
            OpChannel::Ws => format!("payfip:idop-{id}"),
            OpChannel::Classic => format!("tipi:REF{number}"),
        }),
        numcli: "090909".into(),
        exer: 2026,
        refdet: format!("REF{number}"),
        amount: money("45.60"),
        mode: PayfipMode::Test,
        return_url: None,
        created_at: at,
        notified_at: None,
        requested_at: None,
        outcome: None,
        numauto: None,
        commission: None,
        resolved_at: None,
        claim: None,
    }
}

async fn write<T, F>(ledger: &Ledger, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut encaisse_ledger::Tx<'_>) -> Result<T, LedgerError> + Send + 'static,
{
    ledger.transact(f).await.unwrap()
}

async fn read<T, F>(ledger: &Ledger, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut encaisse_ledger::Tx<'_>) -> Result<T, LedgerError> + Send + 'static,
{
    ledger.inspect(f).await.unwrap()
}

/// Runs `n` copies of `f` (given their index), each in its own transaction, at once.
async fn race<T, F>(ledger: &Ledger, n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, &mut encaisse_ledger::Tx<'_>) -> Result<T, LedgerError>
        + Send
        + Sync
        + Clone
        + 'static,
{
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (ledger, f) = (ledger.clone(), f.clone());
            tokio::spawn(async move { ledger.transact(move |tx| f(i, tx)).await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for handle in handles {
        results.push(handle.await.unwrap().unwrap());
    }
    results
}

async fn invoices_titres_and_credit_notes_make_what_is_payable(f: &Fixture) {
    let now = store::ts(t0());
    write(&f.ledger, move |tx| {
        store::upsert_invoice(tx, &record("T1", "100.00", CollectionPath::Titres), &now)?;
        store::upsert_invoice(tx, &record("R1", "30.00", CollectionPath::Regie), &now)?;
        // A corrected invoice replaces what was known of it.
        store::upsert_invoice(tx, &record("T1", "120.00", CollectionPath::Titres), &now)?;
        // Credit notes, each recorded twice: once counts.
        for _ in 0..2 {
            store::record_credit_note(tx, &invoice("A1"), &invoice("T1"), money("20.00"))?;
            store::record_credit_note(tx, &invoice("A2"), &invoice("R1"), money("10.50"))?;
        }
        Ok(())
    })
    .await;
    let payable = |number: &'static str| {
        let ledger = f.ledger.clone();
        async move {
            let found = read(&ledger, move |tx| {
                store::invoices_by_number(tx, &TenantId::new("vitry").unwrap(), number)
            })
            .await;
            assert_eq!(found.len(), 1, "{found:?}");
            found[0].clone()
        }
    };
    let t1 = payable("T1").await;
    assert_eq!(t1, record("T1", "120.00", CollectionPath::Titres));
    // A régie invoice is reduced at once; a titre once the réduction titre is taken in charge.
    assert_eq!(payable("R1").await.amount, money("19.50"));
    write(&f.ledger, |tx| {
        store::upsert_titre(tx, &titre("T1", 5, 7))?;
        // A later PES Retour updates the reference, keeps the earliest prise en charge.
        store::upsert_titre(tx, &titre("T1", 9, 8))?;
        store::upsert_titre(tx, &titre("T1", 4, 9))?;
        store::upsert_titre(tx, &titre("A1", 6, 10))
    })
    .await;
    assert_eq!(payable("T1").await.amount, money("100.00"));
    let taken = read(&f.ledger, |tx| store::titre_of(tx, &invoice("T1")))
        .await
        .unwrap();
    assert_eq!(
        taken.taken_in_charge_on,
        NaiveDate::from_ymd_opt(2026, 3, 4).unwrap()
    );
    assert_eq!(taken.titre.id_pce, 9);
    assert!(
        read(&f.ledger, |tx| store::titre_of(tx, &invoice("R1")))
            .await
            .is_none()
    );
}

/// Eight requests for one invoice at once, each reserving in its own transaction and
/// refused while another attempt is current: exactly one wins. Then eight that may each
/// supersede the current attempt: all are recorded, one after the other, and exactly one is
/// current at the end (without the invoice's lock, two would supersede the same attempt and
/// the second would fail on the unique index).
async fn concurrent_reservations_of_one_invoice_keep_one_current_attempt(f: &Fixture) {
    let now = store::ts(t0());
    write(&f.ledger, move |tx| {
        store::upsert_invoice(tx, &record("F1", "45.60", CollectionPath::Regie), &now)
    })
    .await;
    let decided = race(&f.ledger, RACERS, |i, tx| {
        let attempt = op(
            &format!("a{i}"),
            "F1",
            OpChannel::Ws,
            OpState::Creating,
            t0(),
        );
        store::reserve_attempt(tx, &attempt, |coverage, active| {
            assert!(!coverage.is_paid(money("45.60")));
            match active {
                Some(current) => Err(current.op_id.clone()),
                None => Ok(()),
            }
        })
    })
    .await;
    let winners: Vec<usize> = (0..RACERS)
        .filter(|i| decided[*i] == Reserved::Reserved)
        .collect();
    assert_eq!(winners.len(), 1, "{decided:?}");
    let winner = format!("a{}", winners[0]);
    assert!(
        decided
            .iter()
            .all(|d| *d == Reserved::Reserved || *d == Reserved::Refused(winner.clone())),
        "the others saw the winner: {decided:?}"
    );

    let superseding = race(&f.ledger, RACERS, |i, tx| {
        let later = t0() + Duration::minutes(30);
        let attempt = op(
            &format!("b{i}"),
            "F1",
            OpChannel::Ws,
            OpState::Creating,
            later,
        );
        store::reserve_attempt(tx, &attempt, |_, _| Ok::<(), ()>(()))
    })
    .await;
    assert!(superseding.iter().all(|d| *d == Reserved::Reserved));
    let ops = read(&f.ledger, |tx| store::operations_of(tx, &invoice("F1"))).await;
    assert_eq!(ops.len(), RACERS + 1);
    assert_eq!(ops.iter().filter(|o| o.active).count(), 1, "{ops:?}");
    let current = read(&f.ledger, |tx| store::active_operation(tx, &invoice("F1")))
        .await
        .unwrap();
    assert!(current.op_id.starts_with('b'));

    // A paid invoice refuses any new attempt.
    write(&f.ledger, |tx| {
        store::record_payment(
            tx,
            &invoice("F1"),
            "helios:p1",
            money("45.60"),
            PaymentFact::Received,
            "t",
        )
    })
    .await;
    let refused = write(&f.ledger, |tx| {
        let attempt = op("c", "F1", OpChannel::Ws, OpState::Creating, t0());
        store::reserve_attempt(tx, &attempt, |coverage, _| {
            if coverage.is_paid(money("45.60")) {
                Err("paid")
            } else {
                Ok(())
            }
        })
    })
    .await;
    assert_eq!(refused, Reserved::Refused("paid"));
}

/// Two daemons receiving the same notification (or the browser return and the
/// notification): the result is asked for once; two confirmations of the same idOp: the
/// attempt is resolved, and its fact journaled, once.
async fn a_notification_is_claimed_and_an_attempt_resolved_once(f: &Fixture) {
    let reserved = op("n", "F2", OpChannel::Ws, OpState::Creating, t0());
    write(&f.ledger, move |tx| {
        store::insert_operation(tx, &reserved)?;
        // Nothing is claimed before the attempt is open.
        assert!(!store::claim_notification(
            tx,
            "n",
            "2026-03-02T10:00:30.000000Z"
        )?);
        store::open_ws(tx, "n", "idop-n", "payfip:idop-n")
    })
    .await;
    let now = store::ts(t0() + Duration::minutes(1));
    let claimed = race(&f.ledger, RACERS, move |_, tx| {
        store::claim_notification(tx, "n", &now)
    })
    .await;
    assert_eq!(claimed.iter().filter(|c| **c).count(), 1, "{claimed:?}");
    // Released (the command could not be published), the next notification asks again.
    write(&f.ledger, |tx| store::release_notification(tx, "n")).await;
    assert!(
        write(&f.ledger, |tx| store::claim_notification(
            tx,
            "n",
            "2026-03-02T10:02:00.000000Z"
        ))
        .await
    );

    let paid = Resolution {
        outcome: Outcome::Result(Resultrans::P),
        numauto: Some("112233445566-tip".into()),
        commission: Some(money("0.16")),
    };
    let resolved = race(&f.ledger, RACERS, move |i, tx| {
        let changed = store::resolve(tx, "n", &paid, i % 2 == 0, "2026-03-02T10:05:00Z")?;
        if changed {
            encaisse_ledger::CoreStore::record_fact(
                tx,
                &encaisse_ledger::InvoiceFact {
                    invoice_key: invoice("F2").key(),
                    tenant: "vitry".into(),
                    at: "2026-03-02T10:05:00Z".into(),
                    kind: "payfip_paid".into(),
                    detail: format!("{{\"by\":{i}}}"),
                    dedupe_key: None,
                },
            )?;
        }
        Ok(changed)
    })
    .await;
    assert_eq!(resolved.iter().filter(|c| **c).count(), 1, "{resolved:?}");
    let facts = f.ledger.invoice_facts(&invoice("F2").key()).await.unwrap();
    assert_eq!(facts.len(), 1, "{facts:?}");
    let read_back = read(&f.ledger, |tx| store::operation_by_idop(tx, "idop-n"))
        .await
        .unwrap();
    assert_eq!(read_back.status(), "paid");
    assert!(!read_back.active);
    assert_eq!(read_back.commission, Some(money("0.16")));
    assert_eq!(read_back.state, OpState::Resolved);
    let coverage = read(&f.ledger, |tx| store::coverage(tx, &invoice("F2"))).await;
    assert_eq!(coverage.paid_attempt.as_deref(), Some("payfip:idop-n"));
    assert!(coverage.is_paid(money("45.60")));
    // Resolved: a late notification asks nothing.
    assert!(
        !write(&f.ledger, |tx| store::claim_notification(
            tx,
            "n",
            "2026-03-02T10:06:00.000000Z"
        ))
        .await
    );
}

/// The same payment seen by several daemons at once (PayFiP, then the Hélios émargement;
/// a redelivery), and a reversal that may arrive first: it counts once, or not at all.
async fn a_payment_counts_once_however_often_it_is_recorded(f: &Fixture) {
    race(&f.ledger, RACERS, |i, tx| {
        let fact = if i == 3 {
            PaymentFact::Reversed
        } else {
            PaymentFact::Received
        };
        store::record_payment(tx, &invoice("F3"), "helios:x", money("10.00"), fact, "t")?;
        store::record_payment(
            tx,
            &invoice("F3"),
            "payfip:y",
            money("5.25"),
            PaymentFact::Received,
            "t",
        )
    })
    .await;
    let coverage = read(&f.ledger, |tx| store::coverage(tx, &invoice("F3"))).await;
    // `helios:x` was reversed (whichever came first); `payfip:y` counts once.
    assert_eq!(coverage.received, money("5.25"));
    assert_eq!(coverage.paid_attempt, None);
    assert!(!coverage.is_paid(money("45.60")));
    assert!(coverage.is_paid(money("5.25")));
    let nothing = read(&f.ledger, |tx| store::coverage(tx, &invoice("F9"))).await;
    assert_eq!(nothing.received, Money::ZERO);
}

async fn stale_attempts_are_asked_about_closed_and_dropped(f: &Fixture) {
    let (old, young) = (
        op("o", "F4", OpChannel::Ws, OpState::Open, t0()),
        op(
            "y",
            "F5",
            OpChannel::Ws,
            OpState::Open,
            t0() + Duration::hours(1),
        ),
    );
    let classic = op("c", "T4", OpChannel::Classic, OpState::Open, t0());
    let stuck = op("s", "F6", OpChannel::Ws, OpState::Creating, t0());
    write(&f.ledger, move |tx| {
        store::insert_operation(tx, &old)?;
        store::insert_operation(tx, &young)?;
        store::insert_operation(tx, &classic)?;
        store::insert_operation(tx, &stuck)
    })
    .await;
    let cutoff = store::ts(t0() + Duration::minutes(30));
    let (a, b) = (cutoff.clone(), cutoff.clone());
    let due = read(&f.ledger, move |tx| store::due_for_query(tx, &a, &b, 10)).await;
    assert_eq!(
        due,
        vec![(TenantId::new("vitry").unwrap(), "idop-o".into())]
    );
    let n = cutoff.clone();
    write(&f.ledger, move |tx| {
        store::mark_requested(tx, &["idop-o".to_string()], &n)
    })
    .await;
    let (a, b) = (cutoff.clone(), store::ts(t0()));
    let due = read(&f.ledger, move |tx| store::due_for_query(tx, &a, &b, 10)).await;
    assert!(due.is_empty(), "asked recently: {due:?}");

    // Two reconciliation jobs at once: the classic attempt is closed once, the stuck
    // reservation dropped once.
    let (before, now) = (cutoff.clone(), store::ts(t0() + Duration::days(1)));
    let closed = race(&f.ledger, RACERS, move |_, tx| {
        let closed = store::close_stale_classic(tx, &before, &now)?;
        let dropped = store::drop_stale_reservations(tx, &before)?;
        Ok((closed, dropped))
    })
    .await;
    assert_eq!(closed.iter().map(|c| c.0).sum::<usize>(), 1, "{closed:?}");
    assert_eq!(closed.iter().map(|c| c.1).sum::<usize>(), 1, "{closed:?}");
    let classic = read(&f.ledger, |tx| store::operation(tx, "c"))
        .await
        .unwrap();
    assert_eq!(classic.outcome, Some(Outcome::Closed));
    assert_eq!(classic.status(), "expired");
    // The gateway call that finally answers finds its reservation gone.
    let late = f
        .ledger
        .transact(|tx| store::open_ws(tx, "s", "idop-s", "payfip:idop-s"))
        .await;
    assert!(matches!(late, Err(LedgerError::Conflict(_))), "{late:?}");
    assert!(
        read(&f.ledger, |tx| store::operation(tx, "s"))
            .await
            .is_none()
    );
    // A failed gateway call drops its own reservation only while it is one.
    let reserved = op("r", "F7", OpChannel::Ws, OpState::Creating, t0());
    write(&f.ledger, move |tx| {
        store::insert_operation(tx, &reserved)?;
        store::delete_reservation(tx, "r")?;
        store::delete_reservation(tx, "o")
    })
    .await;
    assert!(
        read(&f.ledger, |tx| store::operation(tx, "r"))
            .await
            .is_none()
    );
    assert!(
        read(&f.ledger, |tx| store::operation(tx, "o"))
            .await
            .is_some()
    );
}

/// A classic result announcing a payment, delivered several times at once (browser and
/// server posts): one claim, over a closed attempt made current again. Reconciliation jobs
/// reporting it at once: reported once. Émargements confirming it at once: confirmed once.
async fn a_classic_claim_is_recorded_confirmed_and_reported_once(f: &Fixture) {
    let now = store::ts(t0());
    let classic = op("k", "T5", OpChannel::Classic, OpState::Open, t0());
    let later = store::ts(t0() + Duration::days(2));
    let l = later.clone();
    write(&f.ledger, move |tx| {
        store::upsert_invoice(tx, &record("T5", "45.60", CollectionPath::Titres), &now)?;
        store::insert_operation(tx, &classic)?;
        assert_eq!(store::close_stale_classic(tx, &l, &l)?, 1);
        Ok(())
    })
    .await;
    let l = later.clone();
    let claimed = race(&f.ledger, RACERS, move |i, tx| {
        store::record_claim(tx, "k", Resultrans::P, Some(&format!("n{i}")), None, &l)
    })
    .await;
    assert_eq!(claimed.iter().filter(|c| **c).count(), 1, "{claimed:?}");
    let read_back = read(&f.ledger, |tx| store::operation(tx, "k"))
        .await
        .unwrap();
    assert_eq!(read_back.status(), "announced");
    assert!(read_back.active && read_back.outcome.is_none());
    // Not paid until the PES Retour.
    let coverage = read(&f.ledger, |tx| store::coverage(tx, &invoice("T5"))).await;
    assert!(!coverage.is_paid(money("45.60")));
    let latest = read(&f.ledger, |tx| {
        store::latest_classic(tx, &TenantId::new("vitry").unwrap(), "REFT5")
    })
    .await
    .unwrap();
    assert_eq!(latest.op_id, "k");

    let (before, at) = (later.clone(), store::ts(t0() + Duration::days(10)));
    let reported = race(&f.ledger, RACERS, move |_, tx| {
        store::report_unconfirmed_claims(tx, &before, 10, &at)
    })
    .await;
    assert_eq!(
        reported.iter().map(Vec::len).sum::<usize>(),
        1,
        "{reported:?}"
    );
    let at = store::ts(t0() + Duration::days(11));
    let confirmed = race(&f.ledger, RACERS, move |_, tx| {
        store::confirm_claims(tx, &invoice("T5"), money("45.60"), &at)
    })
    .await;
    assert_eq!(
        confirmed.iter().map(Vec::len).sum::<usize>(),
        1,
        "{confirmed:?}"
    );
    let read_back = read(&f.ledger, |tx| store::operation(tx, "k"))
        .await
        .unwrap();
    assert_eq!(read_back.status(), "paid");
    assert_eq!(
        read_back.claim.unwrap().settled,
        Some(ClaimSettled::Confirmed)
    );
    assert!(!read_back.active);
}

/// A titre of two lines émargés at once (two daemons): whichever commits second sees both
/// payments and confirms the claim they cover together — exactly once. Raced on several
/// titres: without the invoice's lock some of them ended with no confirmation at all.
async fn two_lines_emarged_at_once_confirm_the_claim_they_cover_together(f: &Fixture) {
    for k in 0..6 {
        let number: &'static str = ["T6", "T7", "T8", "T9", "T10", "T11"][k];
        let now = store::ts(t0());
        let op_id = format!("m{k}");
        let classic = op(&op_id, number, OpChannel::Classic, OpState::Open, t0());
        let id = op_id.clone();
        write(&f.ledger, move |tx| {
            store::upsert_invoice(tx, &record(number, "45.60", CollectionPath::Titres), &now)?;
            store::insert_operation(tx, &classic)?;
            store::record_claim(tx, &id, Resultrans::P, None, None, &now)
        })
        .await;
        let at = store::ts(t0() + Duration::days(3));
        let confirmed = race(&f.ledger, 2, move |i, tx| {
            let (line, amount) = [("l1", "20.00"), ("l2", "25.60")][i];
            let payment_id = format!("helios:{number}:{line}");
            store::record_emargement(tx, &invoice(number), &payment_id, money(amount), &at)
        })
        .await;
        assert_eq!(
            confirmed.iter().map(Vec::len).sum::<usize>(),
            1,
            "{number}: {confirmed:?}"
        );
        let read_back = read(&f.ledger, move |tx| store::operation(tx, &op_id))
            .await
            .unwrap();
        assert_eq!(read_back.status(), "paid");
        let coverage = read(&f.ledger, move |tx| store::coverage(tx, &invoice(number))).await;
        assert_eq!(coverage.received, money("45.60"));
    }
}

/// The PayFiP tables have the same columns (name, order, nullability) and the same indexes
/// (name, uniqueness) on both backends once every migration ran — the SQLite ones spread
/// over `payfip_0001..0003` and `ops_0002`, the PostgreSQL ones over `payfip_0001..0003`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payfip_schema_is_the_same_on_both_backends() {
    let Some(pg) = Fixture::postgres("the_payfip_schema_is_the_same_on_both_backends") else {
        return;
    };
    let sqlite = Fixture::sqlite();
    let tables = [
        "payfip_invoice",
        "payfip_titre",
        "payfip_payment",
        "payfip_operation",
        "payfip_credit_note",
    ];
    for table in tables {
        let lite = read(&sqlite.ledger, move |tx| {
            tx.query_all(
                "SELECT name, \"notnull\" OR pk > 0 FROM pragma_table_info(?1) ORDER BY cid",
                &[&table],
                |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?)),
            )
        })
        .await;
        let post = read(&pg.ledger, move |tx| {
            tx.query_all(
                "SELECT CAST(column_name AS TEXT), is_nullable = 'NO'
                 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ?1
                 ORDER BY ordinal_position",
                &[&table],
                |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?)),
            )
        })
        .await;
        assert!(!lite.is_empty(), "{table}");
        assert_eq!(lite, post, "columns of {table}");
    }
    let lite = read(&sqlite.ledger, |tx| {
        tx.query_all(
            "SELECT l.name, l.\"unique\" FROM sqlite_master m, pragma_index_list(m.name) l
             WHERE m.type = 'table' AND m.name LIKE 'payfip%' AND l.origin = 'c'
             ORDER BY l.name",
            &[],
            |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?)),
        )
    })
    .await;
    // PostgreSQL names the indexes behind PRIMARY KEY and UNIQUE itself (`*_pkey`,
    // `*_key`); SQLite's are `sqlite_autoindex_*` (origin `pk`/`u`, left out above).
    let post = read(&pg.ledger, |tx| {
        tx.query_all(
            "SELECT CAST(i.relname AS TEXT), x.indisunique
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                             JOIN pg_class t ON t.oid = x.indrelid
             WHERE t.relname LIKE 'payfip%' AND NOT x.indisprimary
               AND i.relname NOT LIKE '%\\_key' ESCAPE '\\'
             ORDER BY i.relname COLLATE \"C\"",
            &[],
            |r| Ok((r.get::<String>(0)?, r.get::<bool>(1)?)),
        )
    })
    .await;
    assert!(
        lite.iter()
            .any(|(name, _)| name == "payfip_operation_resolved")
    );
    assert_eq!(lite, post, "indexes of the payfip tables");
}
