//! Leases and inbox claims (`encaisse_ledger::cluster`) on both backends: the same bodies on
//! SQLite (a temporary file) and PostgreSQL (a fresh database per test from
//! `ENCAISSE_TEST_POSTGRES_URL`; skipped visibly when unset, required in CI with
//! `ENCAISSE_REQUIRE_POSTGRES=1`), with the races that matter run concurrently: several
//! daemons acquiring one lease, or claiming one file, get exactly one winner.

use std::time::Duration;

use encaisse_ledger::cluster::{ClusterStore, InboxFileKey, LeaseGrant};
use encaisse_ledger::testing::Fixture;
use encaisse_ledger::{LedgerError, Tx};

encaisse_ledger::on_both_backends!(
    a_lease_has_one_holder_and_a_release_hands_it_over,
    an_expired_lease_is_taken_over_with_a_new_token,
    concurrent_acquisitions_of_one_lease_give_one_holder,
    an_inbox_file_is_claimed_once_and_taken_over_after_expiry,
    concurrent_claims_of_one_file_give_one_reader,
    finished_claims_are_pruned,
);

async fn write<T, F>(f: &Fixture, op: F) -> T
where
    T: Send + 'static,
    F: FnOnce(&mut Tx<'_>) -> Result<T, LedgerError> + Send + 'static,
{
    f.ledger.transact(op).await.unwrap()
}

async fn acquire(f: &Fixture, name: &str, holder: &str, ttl_ms: i64) -> Option<LeaseGrant> {
    let (name, holder) = (name.to_string(), holder.to_string());
    write(f, move |tx| {
        tx.acquire_or_renew_lease(&name, &holder, ttl_ms)
    })
    .await
}

const MINUTE: i64 = 60_000;

async fn a_lease_has_one_holder_and_a_release_hands_it_over(f: &Fixture) {
    let first = acquire(f, "polyfac.ingest", "a", MINUTE).await.unwrap();
    assert_eq!(first.fencing, 1);
    assert!(acquire(f, "polyfac.ingest", "b", MINUTE).await.is_none());
    // Another lease is another row.
    assert_eq!(
        acquire(f, "helios.returns", "b", MINUTE)
            .await
            .unwrap()
            .fencing,
        1
    );
    let renewed = acquire(f, "polyfac.ingest", "a", MINUTE).await.unwrap();
    assert_eq!(renewed.fencing, 1, "a renewal keeps the token");
    assert!(renewed.expires_at_ms >= first.expires_at_ms);
    assert!(
        !write(f, |tx| tx.release_lease("polyfac.ingest", "b")).await,
        "only the holder releases"
    );
    assert!(write(f, |tx| tx.release_lease("polyfac.ingest", "a")).await);
    let taken = acquire(f, "polyfac.ingest", "b", MINUTE).await.unwrap();
    assert_eq!(taken.fencing, 2, "a change of holder increments the token");
    assert!(acquire(f, "polyfac.ingest", "a", MINUTE).await.is_none());
    assert!(write(f, |tx| tx.lease_is_current("polyfac.ingest", 2)).await);
    assert!(
        !write(f, |tx| tx.lease_is_current("polyfac.ingest", 1)).await,
        "the old holder's token is stale"
    );
    let leases = write(f, |tx| tx.leases()).await;
    let names: Vec<(&str, &str, i64)> = leases
        .iter()
        .map(|l| (l.name.as_str(), l.holder.as_str(), l.fencing))
        .collect();
    assert_eq!(
        names,
        [("helios.returns", "b", 1), ("polyfac.ingest", "b", 2)]
    );
}

async fn an_expired_lease_is_taken_over_with_a_new_token(f: &Fixture) {
    acquire(f, "payfip.reconcile", "a", 150).await.unwrap();
    assert!(acquire(f, "payfip.reconcile", "b", MINUTE).await.is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !write(f, |tx| tx.lease_is_current("payfip.reconcile", 1)).await,
        "an expired lease fences nothing"
    );
    let taken = acquire(f, "payfip.reconcile", "b", MINUTE).await.unwrap();
    assert_eq!(taken.fencing, 2);
    assert!(
        acquire(f, "payfip.reconcile", "a", MINUTE).await.is_none(),
        "the old holder cannot renew a lease taken over"
    );
    // The same holder renewing its own expired lease keeps its token.
    acquire(f, "ops.metrics", "c", 100).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        acquire(f, "ops.metrics", "c", MINUTE)
            .await
            .unwrap()
            .fencing,
        1
    );
}

async fn concurrent_acquisitions_of_one_lease_give_one_holder(f: &Fixture) {
    // A lease left by a dead holder, expired: eight daemons race for it.
    acquire(f, "helios.titres.flush", "dead", 50).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move {
                let holder = format!("daemon-{i}");
                ledger
                    .transact(move |tx| {
                        tx.acquire_or_renew_lease("helios.titres.flush", &holder, MINUTE)
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut grants = Vec::new();
    for task in tasks {
        grants.extend(task.await.unwrap());
    }
    assert_eq!(grants.len(), 1, "one holder: {grants:?}");
    assert_eq!(grants[0].fencing, 2);
}

fn key(name: &str, mtime_ns: i64) -> InboxFileKey {
    InboxFileKey {
        tenant: "vitry".into(),
        area: "polyfac".into(),
        name: name.into(),
        size_bytes: 1234,
        mtime_ns,
    }
}

async fn claim(f: &Fixture, key: &InboxFileKey, holder: &str, ttl_ms: i64) -> bool {
    let (key, holder) = (key.clone(), holder.to_string());
    write(f, move |tx| {
        tx.claim_inbox_file(&key, &holder, "2026-12-07T02:00:00.000000Z", ttl_ms, false)
    })
    .await
}

async fn an_inbox_file_is_claimed_once_and_taken_over_after_expiry(f: &Fixture) {
    let file = key("export.csv", 1_700_000_000_000_000_000);
    assert!(claim(f, &file, "a", MINUTE).await);
    assert!(!claim(f, &file, "b", MINUTE).await, "a live claim is a's");
    assert!(claim(f, &file, "a", MINUTE).await, "a claims its own again");
    let k = file.clone();
    assert!(write(f, move |tx| tx.renew_inbox_claim(&k, "a", MINUTE)).await);
    let k = file.clone();
    assert!(!write(f, move |tx| tx.renew_inbox_claim(&k, "b", MINUTE)).await);
    // Another version of the file (same name, other mtime) is another claim.
    assert!(claim(f, &key("export.csv", 1), "b", MINUTE).await);

    // Released (left in the inbox after a transient failure): anyone takes it at once.
    let k = file.clone();
    assert!(write(f, move |tx| tx.release_inbox_claim(&k, "a")).await);
    assert!(claim(f, &file, "b", MINUTE).await);
    let k = file.clone();
    assert!(
        !write(f, move |tx| tx.renew_inbox_claim(&k, "a", MINUTE)).await,
        "a lost it"
    );

    // Done: a file dropped again with the same name, size and time is claimed anew.
    let k = file.clone();
    assert!(
        write(f, move |tx| tx.finish_inbox_claim(
            &k,
            "b",
            "2026-12-07T02:00:01.000000Z"
        ))
        .await
    );
    let k = file.clone();
    let stored = write(f, move |tx| tx.inbox_claim(&k)).await.unwrap();
    assert_eq!(stored.claimed_by, "b");
    assert_eq!(
        stored.done_at.as_deref(),
        Some("2026-12-07T02:00:01.000000Z")
    );
    assert!(claim(f, &file, "c", 150).await);
    let k = file.clone();
    assert_eq!(
        write(f, move |tx| tx.inbox_claim(&k))
            .await
            .unwrap()
            .done_at,
        None
    );

    // c dies: its claim expires and d takes it over; c cannot renew or finish it.
    assert!(!claim(f, &file, "d", MINUTE).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(claim(f, &file, "d", MINUTE).await);
    let k = file.clone();
    assert!(!write(f, move |tx| tx.renew_inbox_claim(&k, "c", MINUTE)).await);
    let k = file.clone();
    assert!(!write(f, move |tx| tx.finish_inbox_claim(&k, "c", "x")).await);

    // The only daemon of a ledger takes any claim, live or not.
    let k = file.clone();
    assert!(write(f, move |tx| tx.claim_inbox_file(&k, "e", "t", 0, true)).await);
}

async fn concurrent_claims_of_one_file_give_one_reader(f: &Fixture) {
    let file = key("REGLEMENTS.csv", 42);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let ledger = f.ledger.clone();
            let file = file.clone();
            tokio::spawn(async move {
                let holder = format!("daemon-{i}");
                ledger
                    .transact(move |tx| {
                        tx.claim_inbox_file(
                            &file,
                            &holder,
                            "2026-12-07T02:00:00.000000Z",
                            MINUTE,
                            false,
                        )
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1, "one daemon reads the file");
}

async fn finished_claims_are_pruned(f: &Fixture) {
    for (name, done) in [
        ("old.csv", Some("2026-01-01T00:00:00.000000Z")),
        ("new.csv", Some("2026-12-01T00:00:00.000000Z")),
        ("open.csv", None),
    ] {
        let k = key(name, 7);
        assert!(claim(f, &k, "a", MINUTE).await);
        if let Some(at) = done {
            assert!(write(f, move |tx| tx.finish_inbox_claim(&k, "a", at)).await);
        }
    }
    let pruned = write(f, |tx| tx.prune_inbox_claims("2026-06-01T00:00:00.000000Z")).await;
    assert_eq!(pruned, 1);
    for (name, kept) in [("old.csv", false), ("new.csv", true), ("open.csv", true)] {
        let k = key(name, 7);
        assert_eq!(
            write(f, move |tx| tx.inbox_claim(&k)).await.is_some(),
            kept,
            "{name}"
        );
    }
}
