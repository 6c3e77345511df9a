//! Sources restarted after failures and panics; a stage's concurrency bound; a panicking
//! handler that does not stop its consumer; an inbox file whose handling panics is set
//! aside and the next file is read.

mod runtime_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{Runtime, Source, SourceContext};
use encaisse_pipelines::stages::inbox::{
    FileOutcome, InboxFile, InboxHandler, InboxWatcher, WatchSettings,
};
use encaisse_pipelines::{Handled, Incoming, Outgoing, Stage, StageError, stage_fn};
use encaisse_schemas::TenantId;
use futures::future::BoxFuture;
use runtime_support::*;

/// Fails, then panics, then publishes one message and waits for shutdown.
struct Flaky {
    runs: AtomicUsize,
    stopped: AtomicUsize,
}

impl Source for Flaky {
    fn name(&self) -> &str {
        "flaky.source"
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            match self.runs.fetch_add(1, Ordering::SeqCst) {
                0 => return Err("inbox unreadable".into()),
                1 => panic!("source bug"),
                _ => {}
            }
            let message = Outgoing {
                exchange: None,
                routing_key: "out.from-source".into(),
                message_id: "from-source-1".into(),
                message_type: "test.output".into(),
                headers: BTreeMap::new(),
                body: Bytes::from_static(b"{}"),
            };
            ctx.publisher
                .publish(vec![message])
                .await
                .map_err(|e| e.to_string())?;
            ctx.shutdown.cancelled().await;
            self.stopped.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test]
async fn a_failing_or_panicking_source_is_restarted_and_stops_on_shutdown() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    ns.stage("idle", &[1]);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;
    let source = Arc::new(Flaky {
        runs: AtomicUsize::new(0),
        stopped: AtomicUsize::new(0),
    });
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger);
    runtime.add_stage(stage_fn("idle", ["nothing.#"], |_| async {
        Ok(Handled::none())
    }));
    runtime.add_source(source.clone());
    let running = Running::start(runtime);
    wait_until("the source's message", Duration::from_secs(30), || async {
        client.count(&sink).await == 1
    })
    .await;
    assert_eq!(source.runs.load(Ordering::SeqCst), 3, "restarted twice");
    running.stop().await;
    assert_eq!(source.stopped.load(Ordering::SeqCst), 1, "told to stop");
}

/// Counts how many of its messages run at once.
struct Slow {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Stage for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    fn bindings(&self) -> Vec<String> {
        vec!["work.#".into()]
    }

    fn handle<'a>(&'a self, _: &'a Incoming) -> BoxFuture<'a, Result<Handled, StageError>> {
        Box::pin(async move {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(Handled::none())
        })
    }

    fn concurrency(&self) -> Option<usize> {
        Some(3)
    }
}

#[tokio::test]
async fn a_stage_handles_at_most_its_concurrency_at_once() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let queues = ns.stage("slow", &[1]);
    let client = Client::new().await;
    let stage = Arc::new(Slow {
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    });
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger.clone());
    runtime.add_stage(stage.clone());
    let running = Running::start(runtime);
    wait_connected(&running.health).await;
    for i in 0..12 {
        client
            .publish(
                &ns.prefix,
                "work.item",
                message_props(&format!("m-{i}"), "vitry"),
                b"{}",
            )
            .await;
    }
    wait_until("all processed", Duration::from_secs(30), || async {
        ledger
            .read(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM processed_message WHERE stage = 'slow'",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .unwrap()
            == 12
    })
    .await;
    running.stop().await;
    assert_eq!(
        stage.max.load(Ordering::SeqCst),
        3,
        "three at once, not more"
    );
    assert_eq!(client.count(&queues.work).await, 0);
}

#[tokio::test]
async fn a_panicking_handler_parks_its_message_and_the_consumer_goes_on() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let queues = ns.stage("fragile", &[1]);
    let client = Client::new().await;
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = handled.clone();
    let stage = stage_fn("fragile", ["work.#"], move |msg| {
        let counter = counter.clone();
        async move {
            if msg.body.as_ref() == b"boom" {
                panic!("index out of bounds");
            }
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Handled::none())
        }
    });
    let mut config = ns.config(&broker_url(BROKER), &[1]);
    config.broker.prefetch = 1;
    let mut runtime = Runtime::new(config, ledger);
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;
    client
        .publish(
            &ns.prefix,
            "work.item",
            message_props("m-boom", "vitry"),
            b"boom",
        )
        .await;
    client
        .publish(
            &ns.prefix,
            "work.item",
            message_props("m-fine", "vitry"),
            b"{}",
        )
        .await;
    wait_until("the next message", Duration::from_secs(20), || async {
        handled.load(Ordering::SeqCst) == 1
    })
    .await;
    running.stop().await;
    let parked = client.drain(&queues.parked).await;
    assert_eq!(parked.len(), 1);
    let p = &parked[0].properties;
    assert_eq!(
        text_header(p, "encaisse-error-kind").as_deref(),
        Some("handler_panicked")
    );
    assert_eq!(
        text_header(p, "encaisse-error-class").as_deref(),
        Some("permanent")
    );
    assert!(
        text_header(p, "encaisse-error")
            .unwrap()
            .contains("index out of bounds")
    );
    assert_eq!(client.count(&queues.work).await, 0);
}

/// Archives every file, but panics on the ones named `boom…` (a reader bug a hostile file
/// reaches).
struct PanicsOnBoom;

impl InboxHandler for PanicsOnBoom {
    fn name(&self) -> &str {
        "boom.inbox"
    }

    fn area(&self) -> &str {
        "bank"
    }

    fn handle<'a>(
        &'a self,
        _ctx: &'a SourceContext,
        file: &'a InboxFile,
    ) -> BoxFuture<'a, Result<FileOutcome, StageError>> {
        Box::pin(async move {
            if file.name.starts_with("boom") {
                panic!("byte index 31 is not a char boundary");
            }
            Ok(FileOutcome::Archived)
        })
    }
}

#[tokio::test]
async fn a_file_whose_handling_panics_is_rejected_and_the_next_file_is_read() {
    install_metrics();
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let tenant = TenantId::new("panicky").unwrap();
    let area = dir.path().join("panicky").join("bank");
    // Sorted by name: the panicking file comes first.
    drop_into(&area.join("inbox"), "boom-1.xml", b"<x/>");
    drop_into(&area.join("inbox"), "real-2.xml", b"<x/>");
    ns.stage("idle", &[1]);
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger);
    runtime.add_stage(stage_fn("idle", ["nothing.#"], |_| async {
        Ok(Handled::none())
    }));
    runtime.add_source(Arc::new(InboxWatcher::new(
        PanicsOnBoom,
        dir.path().to_path_buf(),
        vec![tenant],
        WatchSettings {
            poll_interval: Duration::from_millis(50),
            settle: Duration::ZERO,
        },
    )));
    let running = Running::start(runtime);
    assert_eq!(wait_handled(&area, "boom-1.xml").await, "rejected");
    assert_eq!(wait_handled(&area, "real-2.xml").await, "archive");
    let reason = std::fs::read_to_string(area.join("rejected/boom-1.xml.reason.txt")).unwrap();
    assert!(
        reason.contains("handler_panicked") && reason.contains("not a char boundary"),
        "{reason}"
    );
    assert_eq!(
        counter(
            "encaisse_inbox_panics_total",
            &[("tenant", "panicky"), ("area", "bank")]
        ),
        1
    );
    running.stop().await;
}
