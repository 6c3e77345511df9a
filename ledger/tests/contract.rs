//! The ledger's store contract: one test body per operation of the core, batch, ops and sepa
//! stores,
//! run on SQLite (a temporary file) and on PostgreSQL (a fresh database per test, from
//! `ENCAISSE_TEST_POSTGRES_URL`; skipped visibly when unset, required in CI with
//! `ENCAISSE_REQUIRE_POSTGRES=1`).

use std::collections::BTreeSet;
use std::future::Future;

use encaisse_ledger::batch::{AddOutcome, BatchKey};
use encaisse_ledger::files::NewFile;
use encaisse_ledger::ops::{AuditEntry, Filter, GroupKey, Marked, ParkedBy, ParkedRecord, State};
use encaisse_ledger::sepa::{BankRecord, MandateRow, NewUse, PendingEvent, Uses};
use encaisse_ledger::{
    BatchStore, CoreStore, InvoiceFact, Ledger, LedgerError, LedgerUrl, OpsStore, ProcessedMessage,
    SepaStore, Tx,
};

use encaisse_ledger::testing::Fixture;

encaisse_ledger::on_both_backends!(
    record_processed_keeps_the_first_record,
    prune_processed_drops_old_records,
    record_file_is_idempotent_and_refuses_other_bytes,
    emit_file_writes_and_records_once,
    record_fact_deduplicates_and_facts_come_in_time_order,
    facts_recorded_together_are_the_facts_recorded_one_by_one,
    applied_migrations_list_the_ported_areas,
    a_duplicate_processed_row_under_concurrency_is_refused_once,
    add_item_says_what_it_did,
    set_expected_accepts_the_same_count_only,
    close_if_complete_closes_once_and_items_come_in_byte_order,
    an_item_after_the_close_is_refused_and_the_transaction_goes_on,
    more_items_than_announced_is_a_conflict,
    visit_items_stops_at_the_callers_error,
    open_groups_lists_the_unclosed,
    a_refused_transaction_leaves_nothing,
    two_writers_adding_to_one_batch_close_it_once,
    writers_adding_while_the_run_is_announced_close_it_once,
    record_parked_stores_a_message_once_with_its_bytes,
    parked_messages_are_filtered_listed_and_grouped,
    a_parked_message_is_resolved_once_with_its_audit_row,
    concurrent_replays_of_one_message_mark_it_once,
    console_actions_come_newest_first_by_pages,
    last_written_is_per_tenant_and_kind,
    sepa_events_are_queued_once_and_handed_once,
    a_sepa_invoice_is_kept_once_with_its_bytes,
    a_bank_record_is_recorded_once_with_its_first_outcome,
    concurrent_decisions_queue_one_event_and_record_one_bank_record,
    a_mandate_is_created_once_and_replaced,
    uses_are_planned_read_moved_and_forgotten,
    a_locked_mandate_orders_the_decisions_on_its_uses,
    portable_statements_carry_every_kind_both_ways,
    a_portable_upsert_returns_what_it_wrote,
);

fn message(id: &str, at: &str, outputs: &[u8]) -> ProcessedMessage {
    ProcessedMessage {
        stage: "helios.titres".into(),
        message_id: id.into(),
        message_type: Some("invoice.issued".into()),
        tenant: Some("vitry".into()),
        invoice_key: None,
        processed_at: at.into(),
        outputs: outputs.to_vec(),
    }
}

fn key(group: &str) -> BatchKey {
    BatchKey {
        stage: "helios.titres".into(),
        tenant: "vitry".into(),
        run_id: "run-1".into(),
        group: group.into(),
    }
}

async fn write<T, F>(f: &Fixture, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut Tx<'_>) -> Result<T, LedgerError> + Send + 'static,
{
    f.ledger.transact(body).await.unwrap()
}

async fn read<T, F>(f: &Fixture, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut Tx<'_>) -> Result<T, LedgerError> + Send + 'static,
{
    f.ledger.inspect(body).await.unwrap()
}

/// Runs `n` copies of `job` at once and collects their results in order.
async fn concurrently<T, Fut>(n: usize, job: impl Fn(usize) -> Fut) -> Vec<T>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(job(i))).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

async fn record_processed_keeps_the_first_record(f: &Fixture) {
    let first = message("m1", "2026-01-01T00:00:00.000000Z", b"[1]");
    let again = message("m1", "2026-01-02T00:00:00.000000Z", b"[2]");
    let a = first.clone();
    assert!(write(f, move |tx| tx.record_processed(&a)).await);
    assert!(!write(f, move |tx| tx.record_processed(&again)).await);
    let stored = read(f, |tx| tx.processed("helios.titres", "m1")).await;
    assert_eq!(
        stored,
        Some(first),
        "the first record and its outputs are kept"
    );
    assert_eq!(f.ledger.processed("other.stage", "m1").await.unwrap(), None);
    let empty = ProcessedMessage {
        message_type: None,
        tenant: None,
        outputs: Vec::new(),
        ..message("m2", "2026-01-01T00:00:00.000000Z", b"")
    };
    let e = empty.clone();
    assert!(write(f, move |tx| tx.record_processed(&e)).await);
    assert_eq!(
        f.ledger.processed("helios.titres", "m2").await.unwrap(),
        Some(empty),
        "absent fields read back as absent"
    );
}

async fn prune_processed_drops_old_records(f: &Fixture) {
    for (id, at) in [
        ("old", "2026-01-01T00:00:00.000000Z"),
        ("edge", "2026-02-01T00:00:00.000000Z"),
        ("new", "2026-03-01T00:00:00.000000Z"),
    ] {
        let m = message(id, at, b"[]");
        write(f, move |tx| tx.record_processed(&m)).await;
    }
    let pruned = f
        .ledger
        .prune_processed("2026-02-01T00:00:00.000000Z")
        .await
        .unwrap();
    assert_eq!(pruned, 1, "strictly before the cut-off");
    let processed = |id: &'static str| f.ledger.processed("helios.titres", id);
    assert!(processed("old").await.unwrap().is_none());
    assert!(processed("edge").await.unwrap().is_some());
    assert!(processed("new").await.unwrap().is_some());
}

fn new_file(path: &str, sha: &str) -> NewFile {
    NewFile {
        tenant: "vitry".into(),
        kind: "pes_aller".into(),
        path: path.into(),
        sha256: sha.into(),
        bytes: 4_000_000_000,
        written_at: "2026-01-01T00:00:00.000000Z".into(),
        caused_by: "run-1".into(),
    }
}

async fn record_file_is_idempotent_and_refuses_other_bytes(f: &Fixture) {
    let file = new_file("/out/PES-1.xml", "aa");
    let (a, b) = (file.clone(), file.clone());
    let first = write(f, move |tx| tx.record_file(&a)).await;
    assert_eq!(first.bytes, 4_000_000_000, "sizes beyond 32 bits");
    let again = write(f, move |tx| tx.record_file(&b)).await;
    assert_eq!(first, again);
    let second = write(f, |tx| tx.record_file(&new_file("/out/PES-2.xml", "bb"))).await;
    assert!(second.id > first.id, "ids grow");
    let changed = f
        .ledger
        .transact(|tx| tx.record_file(&new_file("/out/PES-1.xml", "cc")))
        .await;
    assert!(
        matches!(changed, Err(LedgerError::Conflict(_))),
        "{changed:?}"
    );
    let found = f
        .ledger
        .emitted_file_by_path("/out/PES-1.xml")
        .await
        .unwrap();
    assert_eq!(found, Some(first));
    assert_eq!(
        f.ledger.emitted_file_by_path("/out/none").await.unwrap(),
        None
    );
}

async fn emit_file_writes_and_records_once(f: &Fixture) {
    let out = f.dir.path().join("vitry/helios/outbox/PES.xml");
    let emit = |bytes: &'static [u8]| {
        f.ledger
            .emit_file("vitry", "pes_aller", &out, bytes.to_vec(), "run-1")
    };
    let first = emit(b"<a/>").await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"<a/>");
    assert_eq!(emit(b"<a/>").await.unwrap(), first);
    let err = emit(b"<b/>").await.unwrap_err();
    assert!(matches!(err, LedgerError::Conflict(_)), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"<a/>");
}

async fn record_fact_deduplicates_and_facts_come_in_time_order(f: &Fixture) {
    let fact = |at: &str, kind: &str, dedupe: Option<&str>| InvoiceFact {
        invoice_key: "vitry/2026/F1".into(),
        tenant: "vitry".into(),
        at: at.into(),
        kind: kind.into(),
        detail: "{\"file\":\"PES-1.xml\"}".into(),
        dedupe_key: dedupe.map(str::to_string),
    };
    let facts = [
        fact("2026-01-03T00:00:00.000000Z", "paid", Some("p1")),
        fact("2026-01-03T00:00:00.000000Z", "paid", Some("p1")),
        fact("2026-01-01T00:00:00.000000Z", "issued", None),
        fact("2026-01-02T00:00:00.000000Z", "titre_emitted", None),
        fact("2026-01-02T00:00:00.000000Z", "titre_accepted", None),
    ];
    for one in facts.clone() {
        f.ledger.record_invoice_fact(one).await.unwrap();
    }
    let stored = f.ledger.invoice_facts("vitry/2026/F1").await.unwrap();
    let kinds: Vec<_> = stored.iter().map(|x| x.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["issued", "titre_emitted", "titre_accepted", "paid"],
        "time order, then recording order; the deduplicated fact once"
    );
    assert_eq!(stored[3], facts[0]);
    assert!(read(f, |tx| tx.facts_of("vitry/2026/F2")).await.is_empty());
}

/// 250 facts in one call (several statements): each deduplicated fact once (inside the call
/// and against one recorded before), the others all there, in recording order.
async fn facts_recorded_together_are_the_facts_recorded_one_by_one(f: &Fixture) {
    let fact = |n: usize, dedupe: Option<String>| InvoiceFact {
        invoice_key: "vitry/2026/F9".into(),
        tenant: "vitry".into(),
        at: "2026-01-01T00:00:00.000000Z".into(),
        kind: format!("k{n:03}"),
        detail: "{}".into(),
        dedupe_key: dedupe,
    };
    f.ledger
        .record_invoice_fact(fact(999, Some("d-7".into())))
        .await
        .unwrap();
    let facts: Vec<InvoiceFact> = (0..250)
        .map(|n| {
            let dedupe = match n {
                _ if n % 3 == 0 => None,
                151 => Some("d-1".into()),
                _ => Some(format!("d-{n}")),
            };
            fact(n, dedupe)
        })
        .collect();
    write(f, move |tx| tx.record_facts(&facts)).await;
    let stored = f.ledger.invoice_facts("vitry/2026/F9").await.unwrap();
    let kinds: Vec<String> = stored.into_iter().map(|x| x.kind).collect();
    let expected: Vec<String> = std::iter::once(999)
        .chain((0..250).filter(|n| *n != 7 && *n != 151))
        .map(|n| format!("k{n:03}"))
        .collect();
    assert_eq!(kinds, expected);
}

async fn applied_migrations_list_the_ported_areas(f: &Fixture) {
    let backend = f.ledger.backend();
    let applied = read(f, move |tx| {
        assert_eq!(
            tx.backend(),
            backend,
            "the transaction runs on the ledger's backend"
        );
        tx.applied_migrations()
    })
    .await;
    for (area, version) in [
        ("batch", 1),
        ("batch", 2),
        ("batch", 3),
        ("core", 1),
        ("ops", 1),
        ("ops", 2),
        ("ops", 3),
        ("polyfac", 1),
        ("polyfac", 4),
        ("payfip", 1),
        ("payfip", 2),
        ("payfip", 3),
        ("sepa", 1),
        ("sepa", 2),
        ("helios", 1),
        ("helios", 2),
        ("helios", 3),
        ("helios", 4),
    ] {
        assert!(
            applied.contains(&(area.to_string(), version)),
            "{area}/{version} in {applied:?}"
        );
    }
    let mut sorted = applied.clone();
    sorted.sort();
    assert_eq!(applied, sorted, "area then version order");
}

async fn a_duplicate_processed_row_under_concurrency_is_refused_once(f: &Fixture) {
    let results = concurrently(16, |i| {
        let ledger = f.ledger.clone();
        async move {
            let outputs = format!("[{i}]");
            let m = message("dup", "2026-01-01T00:00:00.000000Z", outputs.as_bytes());
            ledger
                .transact(move |tx| tx.record_processed(&m))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(results.iter().filter(|won| **won).count(), 1, "{results:?}");
    let stored = f
        .ledger
        .processed("helios.titres", "dup")
        .await
        .unwrap()
        .unwrap();
    let winner = results.iter().position(|won| *won).unwrap();
    assert_eq!(
        stored.outputs,
        format!("[{winner}]").as_bytes(),
        "the winner's outputs are stored"
    );
}

async fn add_item_says_what_it_did(f: &Fixture) {
    let outcomes = write(f, |tx| {
        Ok([
            tx.add_item(&key("principal"), "vitry/2026/F1", "h1", b"1")?,
            tx.add_item(&key("principal"), "vitry/2026/F1", "h1", b"1")?,
            tx.add_item(&key("principal"), "vitry/2026/F1", "other", b"1")?,
            tx.add_item(&key("caisse"), "vitry/2026/F1", "h1", b"1")?,
        ])
    })
    .await;
    assert_eq!(outcomes[0], AddOutcome::Added);
    assert_eq!(outcomes[1], AddOutcome::AlreadyPresent);
    assert!(
        matches!(&outcomes[2], AddOutcome::Conflict { reason } if reason.contains("other content")),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(&outcomes[3], AddOutcome::Conflict { reason } if reason.contains("group principal")),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(
        read(f, |tx| tx.progress(&key("principal"))).await,
        (1, None)
    );
    assert_eq!(read(f, |tx| tx.progress(&key("caisse"))).await, (0, None));
}

async fn set_expected_accepts_the_same_count_only(f: &Fixture) {
    write(f, |tx| {
        tx.set_expected(&key("principal"), 3)?;
        tx.set_expected(&key("principal"), 3)
    })
    .await;
    let err = f
        .ledger
        .transact(|tx| tx.set_expected(&key("principal"), 4))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::Conflict(_)), "{err}");
    assert_eq!(
        read(f, |tx| tx.progress(&key("principal"))).await,
        (0, Some(3))
    );
}

async fn close_if_complete_closes_once_and_items_come_in_byte_order(f: &Fixture) {
    // Keys whose byte order differs from a natural-language collation's.
    let keys = [
        "vitry/2026/f1",
        "vitry/2026/F10",
        "vitry/2026/F9",
        "vitry/2026/F-2",
        "vitry/2026/F_1",
    ];
    write(f, move |tx| {
        for k in keys {
            tx.add_item(&key("principal"), k, "h", k.as_bytes())?;
        }
        assert!(
            !tx.close_if_complete(&key("principal"))?,
            "not announced yet"
        );
        tx.set_expected(&key("principal"), 5)
    })
    .await;
    let first = write(f, |tx| tx.close_if_complete(&key("principal"))).await;
    let second = write(f, |tx| tx.close_if_complete(&key("principal"))).await;
    assert!(first && !second, "closed exactly once");
    let items = read(f, |tx| tx.items(&key("principal"))).await;
    let read_keys: Vec<_> = items.iter().map(|i| i.item_key.as_str()).collect();
    let mut expected = keys.to_vec();
    expected.sort_unstable();
    assert_eq!(read_keys, expected, "byte order on every backend");
    assert!(items.iter().all(|i| i.payload == i.item_key.as_bytes()));
    assert!(!write(f, |tx| tx.close_if_complete(&key("absent"))).await);
}

async fn an_item_after_the_close_is_refused_and_the_transaction_goes_on(f: &Fixture) {
    write(f, |tx| {
        tx.set_expected(&key("principal"), 1)?;
        tx.add_item(&key("principal"), "vitry/2026/F1", "h", b"1")?;
        tx.close_if_complete(&key("principal"))
    })
    .await;
    let (late, other) = write(f, |tx| {
        let late = tx.add_item(&key("principal"), "vitry/2026/F2", "h", b"2")?;
        // The same transaction is still usable after the refusal.
        let other = tx.add_item(&key("caisse"), "vitry/2026/F3", "h", b"3")?;
        Ok((late, other))
    })
    .await;
    assert!(
        matches!(&late, AddOutcome::Conflict { reason } if reason.contains("already closed")),
        "{late:?}"
    );
    assert_eq!(other, AddOutcome::Added);
    assert_eq!(
        read(f, |tx| tx.progress(&key("principal"))).await,
        (1, Some(1))
    );
    assert_eq!(read(f, |tx| tx.items(&key("principal"))).await.len(), 1);
    assert_eq!(read(f, |tx| tx.progress(&key("caisse"))).await, (1, None));
}

async fn more_items_than_announced_is_a_conflict(f: &Fixture) {
    let err = f
        .ledger
        .transact(|tx| {
            tx.set_expected(&key("caisse"), 1)?;
            tx.add_item(&key("caisse"), "vitry/2026/F8", "h", b"8")?;
            tx.add_item(&key("caisse"), "vitry/2026/F9", "h", b"9")?;
            tx.close_if_complete(&key("caisse"))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::Conflict(_)), "{err}");
}

/// A caller's own error, to stop a visit early.
#[derive(Debug)]
enum Visit {
    Enough(usize),
    Ledger(LedgerError),
}

impl From<LedgerError> for Visit {
    fn from(e: LedgerError) -> Self {
        Visit::Ledger(e)
    }
}

async fn visit_items_stops_at_the_callers_error(f: &Fixture) {
    write(f, |tx| {
        for n in 0..10 {
            tx.add_item(&key("principal"), &format!("vitry/2026/F{n}"), "h", b"x")?;
        }
        Ok(())
    })
    .await;
    let outcome = f
        .ledger
        .inspect(|tx| {
            let mut seen = Vec::new();
            tx.visit_items(&key("principal"), |item| {
                seen.push(item.item_key);
                if seen.len() == 3 {
                    return Err(Visit::Enough(seen.len()));
                }
                Ok(())
            })
        })
        .await;
    match outcome {
        Err(Visit::Enough(3)) => {}
        Err(Visit::Ledger(e)) => panic!("the ledger failed: {e}"),
        other => panic!("the visit did not stop at the third item: {other:?}"),
    }
}

async fn open_groups_lists_the_unclosed(f: &Fixture) {
    write(f, |tx| {
        tx.add_item(&key("b"), "vitry/2026/F1", "h", b"1")?;
        tx.add_item(&key("b"), "vitry/2026/F2", "h", b"2")?;
        tx.set_expected(&key("a"), 4)?;
        tx.set_expected(&key("c"), 1)?;
        tx.add_item(&key("c"), "vitry/2026/F3", "h", b"3")?;
        tx.close_if_complete(&key("c"))
    })
    .await;
    let open = read(f, |tx| tx.open_groups("helios.titres")).await;
    assert_eq!(open, vec![(key("a"), 0, Some(4)), (key("b"), 2, None)]);
    assert!(read(f, |tx| tx.open_groups("sepa.batch")).await.is_empty());
}

async fn a_refused_transaction_leaves_nothing(f: &Fixture) {
    let refused = f
        .ledger
        .transact(|tx| {
            tx.add_item(&key("principal"), "vitry/2026/F1", "h", b"1")?;
            tx.record_processed(&message("m1", "2026-01-01T00:00:00.000000Z", b"[]"))?;
            Err::<(), _>(Visit::Enough(0))
        })
        .await;
    assert!(matches!(refused, Err(Visit::Enough(0))), "{refused:?}");
    assert_eq!(
        read(f, |tx| tx.progress(&key("principal"))).await,
        (0, None)
    );
    assert!(
        f.ledger
            .processed("helios.titres", "m1")
            .await
            .unwrap()
            .is_none()
    );
}

async fn two_writers_adding_to_one_batch_close_it_once(f: &Fixture) {
    const PER_WRITER: usize = 20;
    write(f, |tx| {
        tx.set_expected(&key("principal"), 2 * PER_WRITER as u32)
    })
    .await;
    let closes = concurrently(2, |writer| {
        let ledger = f.ledger.clone();
        async move {
            let mut closed = 0;
            for n in 0..PER_WRITER {
                let item = format!("vitry/2026/W{writer}-{n:02}");
                let (added, won) = ledger
                    .transact(move |tx| {
                        let added = tx.add_item(&key("principal"), &item, "h", item.as_bytes())?;
                        Ok::<_, LedgerError>((added, tx.close_if_complete(&key("principal"))?))
                    })
                    .await
                    .unwrap();
                assert_eq!(added, AddOutcome::Added);
                closed += usize::from(won);
            }
            closed
        }
    })
    .await;
    assert_eq!(
        closes.iter().sum::<usize>(),
        1,
        "one close for both writers: {closes:?}"
    );
    assert_eq!(
        read(f, |tx| tx.progress(&key("principal"))).await,
        (40, Some(40))
    );
    let items = read(f, |tx| tx.items(&key("principal"))).await;
    let distinct: BTreeSet<_> = items.iter().map(|i| i.item_key.clone()).collect();
    assert_eq!(distinct.len(), 2 * PER_WRITER);
    assert!(
        read(f, |tx| tx.open_groups("helios.titres"))
            .await
            .is_empty()
    );
}

/// Eight writers add a run's items side by side (each add also tries to close, as
/// `helios.titres` does) while the run's size is announced halfway: every item counted once,
/// the group closed exactly once, and by whichever transaction completed it. A transient
/// failure (a deadlock PostgreSQL broke) is retried, as the runtime retries it.
async fn writers_adding_while_the_run_is_announced_close_it_once(f: &Fixture) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 25;
    const TOTAL: u32 = (WRITERS * PER_WRITER) as u32;
    async fn until_done<T: Send + 'static>(
        ledger: &encaisse_ledger::Ledger,
        job: impl Fn() -> Box<dyn FnOnce(&mut Tx<'_>) -> Result<T, LedgerError> + Send>,
    ) -> T {
        loop {
            match ledger.transact(job()).await {
                Ok(value) => return value,
                Err(e) if e.is_transient() => eprintln!("retried: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
    }
    let announcer = {
        let ledger = f.ledger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            until_done(&ledger, || {
                Box::new(|tx| {
                    tx.set_expected(&key("principal"), TOTAL)?;
                    tx.close_if_complete(&key("principal"))
                })
            })
            .await
        })
    };
    let closes = concurrently(WRITERS, |writer| {
        let ledger = f.ledger.clone();
        async move {
            let mut closed = 0;
            for n in 0..PER_WRITER {
                let item = format!("vitry/2026/A{writer}-{n:02}");
                let (added, won) = until_done(&ledger, || {
                    let item = item.clone();
                    Box::new(move |tx| {
                        let added = tx.add_item(&key("principal"), &item, "h", item.as_bytes())?;
                        Ok((added, tx.close_if_complete(&key("principal"))?))
                    })
                })
                .await;
                assert_eq!(added, AddOutcome::Added, "{item}");
                closed += usize::from(won);
            }
            closed
        }
    })
    .await;
    let announced_closed = usize::from(announcer.await.unwrap());
    assert_eq!(
        closes.iter().sum::<usize>() + announced_closed,
        1,
        "one close in all: writers {closes:?}, announcement {announced_closed}"
    );
    assert_eq!(
        read(f, |tx| tx.progress(&key("principal"))).await,
        (TOTAL, Some(TOTAL))
    );
    assert!(
        read(f, |tx| tx.open_groups("helios.titres"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn sqlite_only_closures_are_refused_on_postgres_not_run() {
    let Some(f) = Fixture::postgres("sqlite_only_closures_are_refused_on_postgres_not_run") else {
        return;
    };
    let refused = f
        .ledger
        .write(|c| Ok(c.execute("DELETE FROM batch_item", [])?))
        .await;
    assert!(
        matches!(refused, Err(LedgerError::Unsupported(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn concurrent_transactions_share_a_bounded_number_of_connections() {
    let Some(f) =
        Fixture::postgres("concurrent_transactions_share_a_bounded_number_of_connections")
    else {
        return;
    };
    let url = f.database.as_ref().unwrap().url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watching = stop.clone();
    // Counts the ledger's sessions on its database while the transactions run.
    let watcher = std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let mut most = 0i64;
        while !watching.load(std::sync::atomic::Ordering::Relaxed) {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )
                .unwrap();
            most = most.max(row.get(0));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        most
    });
    let done = concurrently(40, |i| {
        let ledger = f.ledger.clone();
        async move {
            ledger
                .transact(move |tx| {
                    let m = message(&format!("m{i}"), "2026-01-01T00:00:00.000000Z", b"[]");
                    let recorded = tx.record_processed(&m)?;
                    // Holds the connection a while, as a slow stage effect would.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    Ok::<_, LedgerError>(recorded)
                })
                .await
                .unwrap()
        }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = watcher.join().unwrap();
    eprintln!("40 concurrent transactions used at most {most} connections");
    assert!(done.iter().all(|recorded| *recorded));
    assert!(most <= 16, "{most} connections at once");
    assert!(most > 1, "the transactions did run concurrently ({most})");
}

#[tokio::test]
async fn two_daemons_opening_one_new_database_migrate_it_once() {
    let Some(database) = encaisse_ledger::testing::postgres_or_skip(
        "two_daemons_opening_one_new_database_migrate_it_once",
    ) else {
        return;
    };
    let url = LedgerUrl::parse(&database.url).unwrap();
    let opened: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Ledger::open_url(&url))
        })
        .collect();
    let ledgers: Vec<Ledger> = opened
        .into_iter()
        .map(|one| one.join().unwrap().unwrap())
        .collect();
    let applied = ledgers[0]
        .inspect(|tx| tx.applied_migrations())
        .await
        .unwrap();
    let mut expected: Vec<(String, u32)> = encaisse_ledger::migrations::POSTGRES
        .iter()
        .map(|m| (m.area.to_string(), m.version))
        .collect();
    expected.sort();
    assert_eq!(applied, expected, "each PostgreSQL migration once");
    drop(ledgers);
}

/// A drained message of `stage`, failed with `kind`, parked at `at`.
fn parked(fingerprint: &str, stage: &str, kind: &str, tenant: &str, at: &str) -> ParkedRecord {
    ParkedRecord {
        fingerprint: fingerprint.into(),
        queue: format!("p.{stage}.parked"),
        stage: stage.into(),
        parked_by: ParkedBy::Runtime,
        origin_queue: format!("p.{stage}"),
        origin_exchange: Some("p.events".into()),
        origin_routing_key: None,
        message_id: Some(format!("msg-{fingerprint}")),
        message_type: Some("invoice.issued".into()),
        tenant: Some(tenant.into()),
        invoice_key: Some(format!("{tenant}/2026/{fingerprint}")),
        error_class: "permanent".into(),
        error_kind: kind.into(),
        error: format!("{kind} in {fingerprint}"),
        attempts: 3,
        first_failure_at: Some("2026-01-01T00:00:00.000000Z".into()),
        last_failure_at: None,
        parked_at: at.into(),
        stored_at: at.into(),
        properties: vec![0, 1, 2, 255],
        body: b"{\"n\":1}".to_vec(),
    }
}

async fn park(f: &Fixture, record: ParkedRecord) -> Option<i64> {
    write(f, move |tx| tx.record_parked(&record)).await
}

async fn record_parked_stores_a_message_once_with_its_bytes(f: &Fixture) {
    let record = parked(
        "a",
        "helios.titres",
        "unknown_tenant",
        "vitry",
        "2026-01-02T00:00:00.000000Z",
    );
    let id = park(f, record.clone())
        .await
        .expect("a new message gets an id");
    assert_eq!(
        park(f, record.clone()).await,
        None,
        "a redelivery is stored once"
    );
    let mut broker = parked(
        "b",
        "helios.titres",
        "delivery_limit",
        "vitry",
        "2026-01-03T00:00:00.000000Z",
    );
    broker.parked_by = ParkedBy::Broker;
    broker.message_id = record.message_id.clone();
    let second = park(f, broker).await.unwrap();
    assert!(second > id, "ids grow");
    let message = read(f, move |tx| tx.parked(id)).await.unwrap();
    assert_eq!(message.summary.id, id);
    assert_eq!(message.summary.group, "helios.titres/unknown_tenant");
    assert_eq!(message.summary.state, State::Parked);
    assert_eq!(message.summary.parked_by, "runtime");
    assert_eq!(message.summary.attempts, 3);
    assert_eq!(message.summary.invoice.as_deref(), Some("vitry/2026/a"));
    assert_eq!(
        message.properties, record.properties,
        "property bytes as drained"
    );
    assert_eq!(message.body, record.body);
    assert_eq!(message.origin_queue, "p.helios.titres");
    assert_eq!(message.first_failure_at, record.first_failure_at);
    assert_eq!(message.last_failure_at, None);
    let earlier = read(f, move |tx| tx.earlier_parkings(&message)).await;
    assert_eq!(
        earlier.len(),
        1,
        "the same message parked again: {earlier:?}"
    );
    assert_eq!(earlier[0].id, second);
    assert_eq!(earlier[0].parked_by, "broker");
    assert!(read(f, |tx| tx.parked(9_999)).await.is_none());
}

async fn parked_messages_are_filtered_listed_and_grouped(f: &Fixture) {
    let at = |day: u32| format!("2026-01-{day:02}T00:00:00.000000Z");
    for (fp, stage, kind, tenant, day) in [
        ("a", "helios.titres", "unknown_tenant", "vitry", 1),
        ("b", "helios.titres", "unknown_tenant", "ivry", 2),
        ("c", "helios.titres", "unknown_tenant", "vitry", 3),
        ("d", "sepa.batch", "no_mandate", "vitry", 4),
    ] {
        park(f, parked(fp, stage, kind, tenant, &at(day)))
            .await
            .unwrap();
    }
    let all = read(f, |tx| tx.list_parked(&Filter::parked(), 10)).await;
    let order: Vec<&str> = all
        .iter()
        .map(|m| m.invoice.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        order,
        [
            "vitry/2026/d",
            "vitry/2026/c",
            "ivry/2026/b",
            "vitry/2026/a"
        ],
        "newest first"
    );
    let two = read(f, |tx| tx.list_parked(&Filter::parked(), 2)).await;
    assert_eq!(two.len(), 2, "at most the limit");
    let filter = Filter {
        tenant: Some("vitry".into()),
        since: Some(at(2)),
        group: Some(GroupKey::parse("helios.titres/unknown_tenant").unwrap()),
        ..Filter::parked()
    };
    let f2 = filter.clone();
    let found = read(f, move |tx| tx.list_parked(&f2, 10)).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].invoice.as_deref(), Some("vitry/2026/c"));
    let ids = read(f, |tx| tx.parked_ids(&Filter::default())).await;
    let oldest_first: Vec<i64> = all.iter().rev().map(|m| m.id).collect();
    assert_eq!(ids, oldest_first, "ids oldest first");
    let groups = read(f, |tx| tx.parked_groups(&Filter::parked())).await;
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert_eq!(
        groups[0].group, "helios.titres/unknown_tenant",
        "largest first"
    );
    assert_eq!(groups[0].count, 3);
    assert_eq!(groups[0].tenants, ["ivry", "vitry"]);
    assert_eq!(groups[0].error_classes, ["permanent"]);
    assert_eq!(groups[0].oldest_parked_at, at(1));
    assert_eq!(groups[0].newest_parked_at, at(3));
    assert_eq!(
        groups[0].example_error, "unknown_tenant in c",
        "the newest's error"
    );
    assert_eq!(groups[1].count, 1);
    let waiting = read(f, |tx| tx.waiting_by_group()).await;
    let mut counts: Vec<(String, i64, String)> = waiting
        .into_iter()
        .map(|w| (w.stage, w.count, w.oldest_parked_at))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("helios.titres".to_string(), 3, at(1)),
            ("sepa.batch".to_string(), 1, at(4))
        ]
    );
}

async fn a_parked_message_is_resolved_once_with_its_audit_row(f: &Fixture) {
    let at = "2026-01-05T00:00:00.000000Z";
    let a = park(f, parked("a", "helios.titres", "k", "vitry", at))
        .await
        .unwrap();
    let b = park(f, parked("b", "helios.titres", "k", "vitry", at))
        .await
        .unwrap();
    let replayed = write(f, move |tx| {
        tx.mark_replayed(
            a,
            "2026-01-06T00:00:00.000000Z",
            "ops",
            r#"{"queue":"p.helios.titres"}"#,
        )
    })
    .await;
    assert_eq!(replayed, Marked::Done);
    let again = write(f, move |tx| {
        tx.discard_parked(a, "2026-01-07T00:00:00.000000Z", "ops", "late")
    })
    .await;
    let Marked::AlreadyResolved(summary) = again else {
        panic!("a replayed message is not discarded: {again:?}");
    };
    assert_eq!(summary.state, State::Replayed);
    assert_eq!(summary.resolved_by.as_deref(), Some("ops"));
    let discarded = write(f, move |tx| {
        tx.discard_parked(b, "2026-01-07T00:00:00.000000Z", "anne", "duplicate")
    })
    .await;
    assert_eq!(discarded, Marked::Done);
    let missing = write(f, |tx| {
        tx.discard_parked(9_999, "2026-01-07T00:00:00.000000Z", "anne", "x")
    })
    .await;
    assert_eq!(missing, Marked::NotFound);
    let actions = read(f, move |tx| tx.parked_actions(a)).await;
    assert_eq!(actions.len(), 1, "one row per change: {actions:?}");
    assert_eq!(actions[0].action, "replay");
    assert_eq!(
        actions[0].detail.as_deref(),
        Some(r#"{"queue":"p.helios.titres"}"#)
    );
    let actions = read(f, move |tx| tx.parked_actions(b)).await;
    assert_eq!(
        (actions[0].action.as_str(), actions[0].reason.as_deref()),
        ("discard", Some("duplicate"))
    );
    let message = read(f, move |tx| tx.parked(b)).await.unwrap();
    assert_eq!(message.summary.state, State::Discarded);
    assert_eq!(
        message.summary.resolution_reason.as_deref(),
        Some("duplicate")
    );
    assert!(
        !message.body.is_empty(),
        "a discarded message keeps its bytes"
    );
    assert!(
        read(f, |tx| tx.list_parked(&Filter::parked(), 10))
            .await
            .is_empty()
    );
    let every_state = read(f, |tx| tx.list_parked(&Filter::default(), 10)).await;
    assert_eq!(every_state.len(), 2);
}

async fn concurrent_replays_of_one_message_mark_it_once(f: &Fixture) {
    let id = park(
        f,
        parked(
            "a",
            "helios.titres",
            "k",
            "vitry",
            "2026-01-05T00:00:00.000000Z",
        ),
    )
    .await
    .unwrap();
    let results = concurrently(8, |i| {
        let ledger = f.ledger.clone();
        async move {
            ledger
                .transact(move |tx| {
                    tx.mark_replayed(id, "2026-01-06T00:00:00.000000Z", &format!("ops{i}"), "{}")
                })
                .await
                .unwrap()
        }
    })
    .await;
    let done = results.iter().filter(|m| **m == Marked::Done).count();
    assert_eq!(done, 1, "exactly one replay marks it: {results:?}");
    let actions = read(f, move |tx| tx.parked_actions(id)).await;
    assert_eq!(actions.len(), 1, "one audit row: {actions:?}");
}

async fn console_actions_come_newest_first_by_pages(f: &Fixture) {
    for (i, action) in ["login", "replay", "discard", "logout"].iter().enumerate() {
        let mut entry = AuditEntry::new("anne", "ops", action, "done").target(format!("{i}"));
        entry.at = format!("2026-01-0{}T00:00:00.000000Z", i + 1);
        if *action == "discard" {
            entry = entry.reason("duplicate");
        }
        write(f, move |tx| tx.record_console_action(&entry)).await;
    }
    let refused = AuditEntry::new("mallory", "", "login_refused", "refused");
    let mut same_time = refused.clone();
    same_time.at = "2026-01-04T00:00:00.000000Z".into();
    write(f, move |tx| tx.record_console_action(&same_time)).await;
    let page = read(f, |tx| tx.console_actions(3, 0)).await;
    let actions: Vec<&str> = page.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["login_refused", "logout", "discard"],
        "newest first, then latest recorded"
    );
    assert_eq!(page[0].user, "mallory");
    assert_eq!(page[0].role, "");
    assert_eq!(page[2].reason.as_deref(), Some("duplicate"));
    assert_eq!(page[2].target.as_deref(), Some("2"));
    let next = read(f, |tx| tx.console_actions(3, 3)).await;
    let actions: Vec<&str> = next.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["replay", "login"]);
    assert_eq!(next[1].reason, None);
}

async fn last_written_is_per_tenant_and_kind(f: &Fixture) {
    for (path, tenant, kind, at) in [
        ("a.xml", "vitry", "pes_aller", "2026-01-01T00:00:00.000000Z"),
        ("b.xml", "vitry", "pes_aller", "2026-01-03T00:00:00.000000Z"),
        ("c.xml", "vitry", "pain008", "2026-01-02T00:00:00.000000Z"),
        ("d.xml", "ivry", "pes_aller", "2026-01-02T00:00:00.000000Z"),
    ] {
        let file = NewFile {
            tenant: tenant.into(),
            kind: kind.into(),
            written_at: at.into(),
            ..new_file(path, path)
        };
        write(f, move |tx| tx.record_file(&file)).await;
    }
    let mut last = read(f, |tx| tx.last_written()).await;
    last.sort();
    let expected = [
        ("ivry", "pes_aller", "2026-01-02T00:00:00.000000Z"),
        ("vitry", "pain008", "2026-01-02T00:00:00.000000Z"),
        ("vitry", "pes_aller", "2026-01-03T00:00:00.000000Z"),
    ]
    .map(|(t, k, a)| (t.to_string(), k.to_string(), a.to_string()));
    assert_eq!(last, expected);
}

fn event(id: &str, origin: &str, at: &str) -> PendingEvent {
    PendingEvent {
        message_id: id.into(),
        tenant: "vitry".into(),
        origin: origin.into(),
        body: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        created_at: at.into(),
    }
}

fn bank_record(key: &str, outcome: &str) -> BankRecord {
    BankRecord {
        tenant: "vitry".into(),
        idempotency_key: key.into(),
        file: "camt054_20260105.xml".into(),
        outcome: outcome.into(),
        detail: format!("{{\"outcome\":\"{outcome}\"}}"),
        recorded_at: "2026-01-05T00:00:00.000000Z".into(),
    }
}

async fn sepa_events_are_queued_once_and_handed_once(f: &Fixture) {
    for (id, origin, at) in [
        ("rej-b", "sepa.returns", "2026-01-02T00:00:00.000000Z"),
        ("rej-a", "sepa.returns", "2026-01-02T00:00:00.000000Z"),
        ("rej-c", "sepa.returns", "2026-01-01T00:00:00.000000Z"),
        ("rej-d", "sepa.batch", "2026-01-01T00:00:00.000000Z"),
    ] {
        let e = event(id, origin, at);
        assert!(write(f, move |tx| tx.queue_sepa_event(&e)).await);
    }
    let mut again = event("rej-a", "sepa.returns", "2026-01-09T00:00:00.000000Z");
    again.body = b"other".to_vec();
    assert!(
        !write(f, move |tx| tx.queue_sepa_event(&again)).await,
        "a message id is queued once"
    );
    let pending = read(f, |tx| tx.pending_sepa_events("vitry", "sepa.returns")).await;
    let expected: Vec<Vec<u8>> = ["rej-c", "rej-a", "rej-b"]
        .iter()
        .map(|id| event(id, "", "").body)
        .collect();
    assert_eq!(
        pending, expected,
        "time order, then message id; first body kept"
    );
    assert!(
        read(f, |tx| tx.pending_sepa_events("ivry", "sepa.returns"))
            .await
            .is_empty()
    );
    write(f, |tx| {
        tx.mark_sepa_events_handed(
            &["rej-c".to_string(), "rej-b".to_string()],
            "2026-01-03T00:00:00.000000Z",
        )
    })
    .await;
    write(f, |tx| {
        tx.mark_sepa_events_handed(&["rej-c".to_string()], "2026-01-04T00:00:00.000000Z")
    })
    .await;
    let pending = read(f, |tx| tx.pending_sepa_events("vitry", "sepa.returns")).await;
    assert_eq!(pending, [event("rej-a", "", "").body]);
    let other = read(f, |tx| tx.pending_sepa_events("vitry", "sepa.batch")).await;
    assert_eq!(other.len(), 1, "each origin its own events");
}

async fn a_sepa_invoice_is_kept_once_with_its_bytes(f: &Fixture) {
    assert!(
        write(f, |tx| tx.keep_sepa_invoice(
            "vitry",
            "vitry/2026/F1",
            b"first\x00\xff"
        ))
        .await
    );
    assert!(
        !write(f, |tx| tx.keep_sepa_invoice(
            "vitry",
            "vitry/2026/F1",
            b"second"
        ))
        .await,
        "the first body wins"
    );
    assert_eq!(
        read(f, |tx| tx.kept_sepa_invoice("vitry", "vitry/2026/F1")).await,
        Some(b"first\x00\xff".to_vec())
    );
    assert_eq!(
        read(f, |tx| tx.kept_sepa_invoice("ivry", "vitry/2026/F1")).await,
        None,
        "per tenant"
    );
}

async fn a_bank_record_is_recorded_once_with_its_first_outcome(f: &Fixture) {
    assert!(!read(f, |tx| tx.bank_record_seen("vitry", "k1")).await);
    assert!(write(f, |tx| tx.record_bank_record(&bank_record("k1", "matched"))).await);
    assert!(
        !write(f, |tx| tx
            .record_bank_record(&bank_record("k1", "unmatched")))
        .await,
        "recorded once"
    );
    assert!(read(f, |tx| tx.bank_record_seen("vitry", "k1")).await);
    assert!(!read(f, |tx| tx.bank_record_seen("ivry", "k1")).await);
    assert!(!read(f, |tx| tx.bank_record_seen("vitry", "k2")).await);
}

/// Eight transactions decide the same rejection and handle the same bank record at once:
/// one queues the event and records the record, the others change nothing.
async fn concurrent_decisions_queue_one_event_and_record_one_bank_record(f: &Fixture) {
    let results = concurrently(8, |i| {
        let ledger = f.ledger.clone();
        async move {
            ledger
                .transact(move |tx| {
                    let mut e = event("rej-1", "sepa.returns", "2026-01-05T00:00:00.000000Z");
                    e.body = format!("{i}").into_bytes();
                    let queued = tx.queue_sepa_event(&e)?;
                    let recorded = tx.record_bank_record(&bank_record("k1", "matched"))?;
                    Ok::<_, LedgerError>((queued, recorded))
                })
                .await
                .unwrap()
        }
    })
    .await;
    let queued = results.iter().filter(|(q, _)| *q).count();
    let recorded = results.iter().filter(|(_, r)| *r).count();
    assert_eq!((queued, recorded), (1, 1), "{results:?}");
    let winner = results.iter().position(|(q, _)| *q).unwrap();
    let pending = read(f, |tx| tx.pending_sepa_events("vitry", "sepa.returns")).await;
    assert_eq!(
        pending,
        [format!("{winner}").into_bytes()],
        "the winner's body is stored"
    );
}

fn mandate_row(iban: &str) -> MandateRow {
    MandateRow {
        rum: "rum-1".into(),
        one_off: false,
        signed_on: "2026-01-15".into(),
        iban: iban.into(),
        bic: None,
        amended_on: None,
    }
}

const AT: &str = "2026-01-05T00:00:00.000000Z";

fn new_use<'a>(invoice_key: &'a str, attempt: i64, due_date: &'a str, e2e: &'a str) -> NewUse<'a> {
    NewUse {
        tenant: "vitry",
        invoice_key,
        attempt,
        rum_key: "RUM-1",
        end_to_end_id: Some(e2e),
        due_date,
        sequence: "RCUR",
        planned_at: AT,
    }
}

async fn a_mandate_is_created_once_and_replaced(f: &Fixture) {
    assert_eq!(read(f, |tx| tx.sepa_mandate("vitry", "RUM-1")).await, None);
    let first = mandate_row("FR7630006000011234567890189");
    let stored = first.clone();
    assert!(
        write(f, move |tx| tx
            .insert_sepa_mandate("vitry", "RUM-1", &stored, AT))
        .await
    );
    let other = mandate_row("FR1420041010050500013M02606");
    assert!(
        !write(f, move |tx| tx
            .insert_sepa_mandate("vitry", "RUM-1", &other, AT))
        .await,
        "created once, the first stays"
    );
    assert_eq!(
        read(f, |tx| tx.sepa_mandate("vitry", "RUM-1")).await,
        Some(first)
    );
    let amended = MandateRow {
        rum: "RUM-1".into(),
        one_off: true,
        bic: Some("AGRIFRPP".into()),
        amended_on: Some("2026-02-20".into()),
        ..mandate_row("FR1420041010050500013M02606")
    };
    let update = amended.clone();
    write(f, move |tx| {
        tx.update_sepa_mandate("vitry", "RUM-1", &update, AT)
    })
    .await;
    assert_eq!(
        write(f, |tx| tx.lock_sepa_mandate("vitry", "RUM-1")).await,
        Some(amended)
    );
    assert_eq!(read(f, |tx| tx.sepa_mandate("ivry", "RUM-1")).await, None);
}

async fn uses_are_planned_read_moved_and_forgotten(f: &Fixture) {
    write(f, |tx| {
        tx.plan_sepa_use(&new_use("vitry/2026/F2", 1, "2026-03-10", "2026-F2-1"))?;
        tx.plan_sepa_use(&new_use("vitry/2026/F1", 2, "2026-03-10", "2026-F1-2"))?;
        tx.plan_sepa_use(&NewUse {
            end_to_end_id: None,
            sequence: "FRST",
            ..new_use("vitry/2026/F1", 1, "2026-02-10", "")
        })
    })
    .await;
    let uses = read(f, |tx| tx.sepa_uses("vitry", &Uses::OfMandate("RUM-1"))).await;
    let order: Vec<(&str, i64)> = uses
        .iter()
        .map(|u| (u.invoice_key.as_str(), u.attempt))
        .collect();
    assert_eq!(
        order,
        [
            ("vitry/2026/F1", 1),
            ("vitry/2026/F1", 2),
            ("vitry/2026/F2", 1)
        ],
        "due date, then planning time, invoice, attempt"
    );
    assert_eq!(uses[0].sequence, "FRST");
    assert_eq!(uses[0].end_to_end_id, None);
    assert!(
        uses.iter()
            .all(|u| u.status == "planned" && u.outcome_on.is_none())
    );
    let one = read(f, |tx| tx.sepa_use("vitry", "vitry/2026/F2", 1)).await;
    assert_eq!(one.as_ref(), Some(&uses[2]));
    let by_id = read(f, |tx| tx.sepa_use_by_end_to_end_id("vitry", "2026-F2-1")).await;
    assert_eq!(by_id, one);
    assert_eq!(
        read(f, |tx| tx.sepa_use_by_end_to_end_id("ivry", "2026-F2-1")).await,
        None
    );
    write(f, |tx| {
        tx.set_sepa_use_due_date("vitry", "vitry/2026/F2", 1, "2026-01-30")?;
        tx.delete_sepa_use("vitry", "vitry/2026/F1", 2)
    })
    .await;
    let uses = read(f, |tx| tx.sepa_uses("vitry", &Uses::OfMandate("RUM-1"))).await;
    let order: Vec<(&str, &str)> = uses
        .iter()
        .map(|u| (u.invoice_key.as_str(), u.due_date.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("vitry/2026/F2", "2026-01-30"),
            ("vitry/2026/F1", "2026-02-10")
        ]
    );
    // Planned uses are in no file yet and carry no amount.
    assert!(
        read(f, |tx| tx.sepa_uses("vitry", &Uses::OfFile(1, None)))
            .await
            .is_empty()
    );
    assert!(
        read(f, |tx| tx.sepa_uses("vitry", &Uses::OfFile(1, Some("B1"))))
            .await
            .is_empty()
    );
    assert!(
        read(f, |tx| tx
            .sepa_uses("vitry", &Uses::ByMandateAndAmount("RUM-1", 100)))
        .await
        .is_empty()
    );
}

/// A transaction that locked a mandate and decides a use holds the others that lock it:
/// the second reads the mandate's uses only after the first committed, so it sees its use.
async fn a_locked_mandate_orders_the_decisions_on_its_uses(f: &Fixture) {
    let stored = mandate_row("FR7630006000011234567890189");
    write(f, move |tx| {
        tx.insert_sepa_mandate("vitry", "RUM-1", &stored, AT)
    })
    .await;
    let (locked, was_locked) = tokio::sync::oneshot::channel();
    let ledger = f.ledger.clone();
    let first = tokio::spawn(async move {
        ledger
            .transact(move |tx| {
                tx.lock_sepa_mandate("vitry", "RUM-1")?;
                let _ = locked.send(());
                std::thread::sleep(std::time::Duration::from_millis(300));
                tx.plan_sepa_use(&new_use("vitry/2026/F1", 1, "2026-02-10", "2026-F1-1"))
            })
            .await
            .unwrap()
    });
    was_locked.await.unwrap();
    let seen = write(f, |tx| {
        tx.lock_sepa_mandate("vitry", "RUM-1")?;
        tx.sepa_uses("vitry", &Uses::OfMandate("RUM-1"))
    })
    .await;
    first.await.unwrap();
    assert_eq!(seen.len(), 1, "the second decision sees the first's use");
}

async fn portable_statements_carry_every_kind_both_ways(f: &Fixture) {
    write(f, |tx| {
        tx.execute_script(
            "CREATE TABLE portable_probe (
                 id BIGINT PRIMARY KEY, small INTEGER, flag BOOLEAN, name TEXT, data BYTEA)",
        )
    })
    .await;
    let written =
        write(f, |tx| {
            let mut changed = tx.execute(
            "INSERT INTO portable_probe (id, small, flag, name, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[&1_i64, &7_u32, &true, &"Lefèvre ?'", &b"\x00\xff".to_vec()],
        )?;
            let none: Option<String> = None;
            changed += tx.execute(
            "INSERT INTO portable_probe (id, small, flag, name, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[&2_i64, &none.as_ref().map(|_| 0_u32), &false, &none, &None::<Vec<u8>>],
        )?;
            Ok(changed)
        })
        .await;
    assert_eq!(written, 2);
    let rows = read(f, |tx| {
        tx.query_all(
            "SELECT id, small, flag, name, data FROM portable_probe WHERE id >= ?1 ORDER BY id",
            &[&1],
            |r| {
                Ok((
                    r.get::<u64>(0)?,
                    r.get::<Option<u32>>(1)?,
                    r.get::<bool>(2)?,
                    r.get::<Option<String>>(3)?,
                    r.get::<Option<Vec<u8>>>(4)?,
                ))
            },
        )
    })
    .await;
    assert_eq!(
        rows,
        vec![
            (
                1,
                Some(7),
                true,
                Some("Lefèvre ?'".into()),
                Some(vec![0, 255])
            ),
            (2, None, false, None, None),
        ]
    );
    let total = read(f, |tx| {
        tx.query_one(
            "SELECT CAST(COALESCE(SUM(small), 0) AS BIGINT), COUNT(*) FROM portable_probe",
            &[],
            |r| Ok((r.get::<i64>(0)?, r.get::<u32>(1)?)),
        )
    })
    .await;
    assert_eq!(total, (7, 2));
    let missing = read(f, |tx| {
        tx.query_opt(
            "SELECT name FROM portable_probe WHERE id = ?1",
            &[&3],
            |r| r.get::<String>(0),
        )
    })
    .await;
    assert_eq!(missing, None);
    let error = f
        .ledger
        .inspect(|tx| {
            tx.query_one("SELECT id FROM portable_probe WHERE id = 3", &[], |r| {
                r.get::<i64>(0)
            })
        })
        .await
        .unwrap_err();
    assert!(matches!(error, LedgerError::Corrupt(_)), "{error:?}");
}

async fn a_portable_upsert_returns_what_it_wrote(f: &Fixture) {
    write(f, |tx| {
        tx.execute_script(
            "CREATE TABLE portable_counter (name TEXT PRIMARY KEY, n BIGINT NOT NULL)",
        )
    })
    .await;
    let values = concurrently(8, |_| {
        let ledger = f.ledger.clone();
        async move {
            ledger
                .transact(|tx| {
                    tx.query_one(
                        "INSERT INTO portable_counter (name, n) VALUES (?1, 1)
                         ON CONFLICT (name) DO UPDATE SET n = portable_counter.n + 1
                         RETURNING n",
                        &[&"idbord"],
                        |r| r.get::<i64>(0),
                    )
                })
                .await
                .unwrap()
        }
    })
    .await;
    let distinct: BTreeSet<i64> = values.into_iter().collect();
    assert_eq!(
        distinct,
        (1..=8).collect::<BTreeSet<i64>>(),
        "gapless and unique"
    );
}
