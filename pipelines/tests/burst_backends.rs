//! The burst committer on both ledger backends (bursts on PostgreSQL; on SQLite each
//! delivery goes to the writer thread, which joins them itself): deliveries committed together each get
//! their own outcome — a failing effect undoes only its own delivery, a copy delivered twice
//! gets the first outputs back and its effect is dropped — and every committed effect is
//! there, exactly once, with its processed-message record.

use std::sync::Arc;

use encaisse_ledger::testing::Fixture;
use encaisse_ledger::{CoreStore, LedgerError, ProcessedMessage};
use encaisse_pipelines::runtime::burst::{BurstCommitter, Unit};
use encaisse_pipelines::stage::LedgerEffect;

encaisse_ledger::on_both_backends!(deliveries_committed_together_fail_and_dedupe_alone);

fn record(id: &str, outputs: &[u8]) -> ProcessedMessage {
    ProcessedMessage {
        stage: "burst.test".into(),
        message_id: id.into(),
        message_type: Some("test".into()),
        tenant: Some("t".into()),
        invoice_key: None,
        processed_at: "2026-12-07T00:00:00Z".into(),
        outputs: outputs.to_vec(),
    }
}

/// An effect that inserts one row; `fail` makes it insert, then fail (its row must go).
fn effect(id: u32, fail: bool) -> LedgerEffect {
    LedgerEffect(Box::new(move |tx| {
        if id == 0 {
            // Holds the first burst long enough for the others to queue up behind it.
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        tx.execute(
            "INSERT INTO burst_effect (id) VALUES (?1)",
            &[&i64::from(id)],
        )?;
        if fail {
            return Err(LedgerError::Conflict(format!("effect {id} refused")));
        }
        Ok(())
    }))
}

async fn deliveries_committed_together_fail_and_dedupe_alone(f: &Fixture) {
    f.ledger
        .transact(|tx| tx.execute_script("CREATE TABLE burst_effect (id BIGINT PRIMARY KEY)"))
        .await
        .unwrap();
    let committer = Arc::new(BurstCommitter::start(f.ledger.clone(), "burst.test".into()));
    // A message already processed: its copy must get these outputs back.
    committer
        .commit(Unit {
            record: record("m-dup", b"first outputs"),
            effect: Some(effect(1000, false)),
        })
        .await
        .unwrap();

    // 200 deliveries at once (so that bursts of several form): every 10th effect fails,
    // and the copy of m-dup comes among them.
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let committer = committer.clone();
        tasks.push(tokio::spawn(async move {
            let unit = if i == 77 {
                Unit {
                    record: record("m-dup", b"second outputs"),
                    effect: Some(effect(2000, false)),
                }
            } else {
                Unit {
                    record: record(&format!("m-{i}"), b"o"),
                    effect: Some(effect(i, i % 10 == 3)),
                }
            };
            (i, committer.commit(unit).await)
        }));
    }
    for task in tasks {
        // (each answered once its own burst is durable)
        let (i, outcome) = task.await.unwrap();
        match outcome {
            Ok(None) => assert!(i % 10 != 3 && i != 77, "delivery {i} should not commit"),
            Ok(Some(earlier)) => {
                assert_eq!(i, 77);
                assert_eq!(earlier.outputs, b"first outputs");
            }
            Err(LedgerError::Conflict(message)) => {
                assert_eq!(i % 10, 3, "delivery {i}: {message}");
                assert!(
                    message.contains(&format!("effect {i} refused")),
                    "{message}"
                );
            }
            Err(e) => panic!("delivery {i}: {e}"),
        }
    }

    let bursts = committer.bursts();
    if f.ledger.backend() == "postgres" {
        assert!(
            bursts < 100,
            "201 deliveries took {bursts} transactions: the bursts did not form"
        );
    } else {
        assert_eq!(
            bursts, 0,
            "SQLite's writer thread joins the deliveries itself"
        );
    }

    let (effects, processed) = f
        .ledger
        .inspect(|tx| {
            let effects = tx.query_all("SELECT id FROM burst_effect ORDER BY id", &[], |r| {
                r.get::<i64>(0)
            })?;
            let mut processed = Vec::new();
            for i in 0..200u32 {
                processed.push(tx.processed("burst.test", &format!("m-{i}"))?.is_some());
            }
            Ok::<_, LedgerError>((effects, processed))
        })
        .await
        .unwrap();
    let expected: Vec<i64> = (0..200i64)
        .filter(|i| i % 10 != 3 && *i != 77)
        .chain([1000])
        .collect();
    assert_eq!(
        effects, expected,
        "each committed effect once, no failed one"
    );
    for (i, recorded) in processed.into_iter().enumerate() {
        assert_eq!(recorded, i % 10 != 3 && i != 77, "record of m-{i}");
    }
}
