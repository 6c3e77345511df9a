//! Retries through delay tiers, parking, and deduplication, against a real RabbitMQ.

mod runtime_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::Runtime;
use encaisse_pipelines::{Handled, HeaderValue, Outgoing, StageError, stage_fn};
use runtime_support::*;

fn output(id: &str, body: String) -> Outgoing {
    Outgoing {
        exchange: None,
        routing_key: "out.item".into(),
        message_id: format!("out-{id}"),
        message_type: "test.output".into(),
        headers: BTreeMap::from([(
            "encaisse-tenant".to_string(),
            HeaderValue::Text("vitry".into()),
        )]),
        body: Bytes::from(body),
    }
}

/// What a stage saw at one attempt: attempt, exchange, routing key, when.
type Seen = (u32, String, String, Instant);

#[tokio::test]
async fn transient_twice_then_success_is_processed_once_after_the_tier_delays() {
    install_metrics();
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    let tiers = [1, 2];
    let queues = ns.stage("flaky", &tiers);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;

    // Attempt n fails while n <= 2; what the stage saw at each attempt is recorded.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let seen_in = seen.clone();
    let stage = stage_fn("flaky", ["work.#"], move |msg| {
        let seen = seen_in.clone();
        async move {
            seen.lock().unwrap().push((
                msg.attempt,
                msg.exchange.clone(),
                msg.routing_key.clone(),
                Instant::now(),
            ));
            if msg.attempt <= 2 {
                return Err(StageError::transient("gateway_unavailable", "gateway down"));
            }
            let key = msg.message_id.clone().unwrap_or_default();
            Ok(Handled::publish(vec![output(&key, "done".into())])
                .commit_with(move |c| count_effect(c, &key)))
        }
    });
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &tiers), ledger.clone());
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    let started = Instant::now();
    client
        .publish(
            &ns.prefix,
            "work.item",
            message_props("m-1", "vitry"),
            br#"{"n":1}"#,
        )
        .await;
    wait_until("the output", Duration::from_secs(30), || async {
        client.count(&sink).await == 1
    })
    .await;
    let elapsed = started.elapsed();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "three attempts, counted by the runtime"
    );
    for (_, exchange, routing_key, _) in &seen {
        assert_eq!(exchange, &ns.prefix, "origin exchange restored");
        assert_eq!(routing_key, "work.item", "origin routing key restored");
    }
    let gap1 = seen[1].3 - seen[0].3;
    let gap2 = seen[2].3 - seen[1].3;
    // The broker expires a message on its own clock, in milliseconds: a CI run saw a 2 s
    // tier end 14 ms early by the test's monotonic clock. 50 ms of slack keeps the test
    // about the tiers, not about two clocks.
    let slack = Duration::from_millis(50);
    assert!(
        gap1 + slack >= Duration::from_millis(1000),
        "tier 1 s respected: {gap1:?}"
    );
    assert!(
        gap2 + slack >= Duration::from_millis(2000),
        "tier 2 s respected: {gap2:?}"
    );
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(
        effects(&ledger).await,
        BTreeMap::from([("m-1".to_string(), 1)])
    );

    running.stop().await;
    assert_eq!(client.count(&queues.work).await, 0);
    assert_eq!(client.count(&queues.parked).await, 0);
    for (_, tier) in &queues.tiers {
        assert_eq!(client.count(tier).await, 0, "{tier} empty");
    }
}

#[tokio::test]
async fn exhausted_permanent_and_poison_messages_are_parked_with_their_failure_headers() {
    install_metrics();
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let tiers = [1];
    let queues = ns.stage("strict", &tiers);
    let client = Client::new().await;
    let calls: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let calls_in = calls.clone();
    let stage = stage_fn("strict", ["work.#"], move |msg| {
        let calls = calls_in.clone();
        async move {
            let id = msg.message_id.clone().unwrap_or_default();
            *calls.lock().unwrap().entry(id).or_default() += 1;
            let value: serde_json::Value = serde_json::from_slice(&msg.body)
                .map_err(|e| StageError::poison("undecodable", e.to_string()))?;
            match value["mode"].as_str() {
                Some("transient") => {
                    Err(StageError::transient("gateway_unavailable", "gateway down"))
                }
                _ => Err(StageError::permanent(
                    "unknown_tenant",
                    "tenant vitry is not configured",
                )),
            }
        }
    });
    let mut config = ns.config(&broker_url(BROKER), &tiers);
    config.retry.max_attempts = 2;
    config.retry.in_process_retries = 1;
    let mut runtime = Runtime::new(config, ledger);
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    let inputs: [(&str, &[u8]); 3] = [
        ("m-transient", br#"{"mode":"transient"}"#),
        ("m-permanent", br#"{"mode":"permanent"}"#),
        ("m-poison", b"{not json"),
    ];
    for (id, body) in inputs {
        client
            .publish(&ns.prefix, "work.item.x", message_props(id, "vitry"), body)
            .await;
    }
    wait_until("three parked messages", Duration::from_secs(30), || async {
        client.count(&queues.parked).await == 3
    })
    .await;
    running.stop().await;

    let parked: BTreeMap<String, lapin::message::Delivery> = client
        .drain(&queues.parked)
        .await
        .into_iter()
        .map(|d| (d.properties.message_id().clone().unwrap().to_string(), d))
        .collect();
    assert_eq!(parked.len(), 3);
    let calls = calls.lock().unwrap().clone();
    // Transient: 2 attempts × (1 try + 1 in-process retry); the others once.
    assert_eq!(calls.get("m-transient"), Some(&4));
    assert_eq!(calls.get("m-permanent"), Some(&1));
    assert_eq!(calls.get("m-poison"), Some(&1));

    for (id, body) in inputs {
        let d = &parked[id];
        let p = &d.properties;
        assert_eq!(d.data, body, "{id}: original body");
        assert_eq!(p.kind().as_ref().map(|s| s.as_str()), Some("test.item"));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(
            *p.timestamp(),
            Some(1_790_000_000),
            "{id}: original timestamp"
        );
        assert_eq!(text_header(p, "encaisse-tenant").as_deref(), Some("vitry"));
        assert_eq!(text_header(p, "encaisse-stage").as_deref(), Some("strict"));
        assert_eq!(
            text_header(p, "encaisse-origin-queue"),
            Some(queues.work.clone())
        );
        assert_eq!(
            text_header(p, "encaisse-origin-exchange"),
            Some(ns.prefix.clone())
        );
        assert_eq!(
            text_header(p, "encaisse-origin-routing-key").as_deref(),
            Some("work.item.x")
        );
        let first = text_header(p, "encaisse-first-failure-at").unwrap();
        let last = text_header(p, "encaisse-last-failure-at").unwrap();
        let parked_at = text_header(p, "encaisse-parked-at").unwrap();
        for t in [&first, &last, &parked_at] {
            assert!(
                chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
                "{t} is RFC 3339 UTC"
            );
        }
        assert!(first <= last && last == parked_at);
    }
    let h = |id: &str, name: &str| text_header(&parked[id].properties, name);
    let attempt = |id: &str| int_header(&parked[id].properties, "encaisse-attempt");
    assert_eq!(attempt("m-transient"), Some(2));
    assert_eq!(
        h("m-transient", "encaisse-error-class").as_deref(),
        Some("transient")
    );
    assert_eq!(
        h("m-transient", "encaisse-error-kind").as_deref(),
        Some("gateway_unavailable")
    );
    assert_eq!(
        h("m-transient", "encaisse-error").as_deref(),
        Some("gateway down")
    );
    assert!(
        h("m-transient", "encaisse-first-failure-at")
            < h("m-transient", "encaisse-last-failure-at"),
        "two failures, one tier apart"
    );
    assert_eq!(attempt("m-permanent"), Some(1));
    assert_eq!(
        h("m-permanent", "encaisse-error-class").as_deref(),
        Some("permanent")
    );
    assert_eq!(
        h("m-permanent", "encaisse-error-kind").as_deref(),
        Some("unknown_tenant")
    );
    assert_eq!(attempt("m-poison"), Some(1));
    assert_eq!(
        h("m-poison", "encaisse-error-class").as_deref(),
        Some("poison")
    );
    assert_eq!(
        h("m-poison", "encaisse-error-kind").as_deref(),
        Some("undecodable")
    );
    assert_eq!(client.count(&queues.work).await, 0);
    let parked = |class: &str, kind: &str| {
        counter(
            "encaisse_stage_parked_total",
            &[("stage", "strict"), ("class", class), ("kind", kind)],
        )
    };
    assert_eq!(parked("transient", "gateway_unavailable"), 1);
    assert_eq!(parked("permanent", "unknown_tenant"), 1);
    assert_eq!(parked("poison", "undecodable"), 1);
    let retried = [("stage", "strict"), ("kind", "gateway_unavailable")];
    assert_eq!(counter("encaisse_stage_retried_total", &retried), 1);
}

#[tokio::test]
async fn a_redelivered_processed_message_republishes_its_stored_outputs_without_rerunning() {
    install_metrics();
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let queues = ns.stage("once", &[1]);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;
    let runs = Arc::new(AtomicU32::new(0));
    let runs_in = runs.clone();
    let stage = stage_fn("once", ["work.#"], move |msg| {
        let runs = runs_in.clone();
        async move {
            // Each run would produce a different body: the stored one must come back.
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let id = msg.message_id.clone().unwrap_or_default();
            Ok(Handled::publish(vec![output(&id, format!("run {run}"))]))
        }
    });
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger.clone());
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    // The same message again once the first copy is processed, marked as a replay: like a
    // broker redelivery or a retry, it reads the dedupe record before running anything.
    // Then the same for a message without id (deduped on its body's hash).
    let no_id = lapin::BasicProperties::default().with_type("test.item".into());
    let inputs = [
        (message_props("m-dup", "vitry"), &br#"{"n":1}"#[..]),
        (
            replayed(message_props("m-dup", "vitry")),
            &br#"{"n":1}"#[..],
        ),
        (no_id.clone(), &br#"{"n":2}"#[..]),
        (replayed(no_id), &br#"{"n":2}"#[..]),
    ];
    for (sent, (props, body)) in inputs.into_iter().enumerate() {
        client.publish(&ns.prefix, "work.item", props, body).await;
        wait_until("the output", Duration::from_secs(20), || async {
            client.count(&sink).await == sent as u32 + 1
        })
        .await;
    }
    running.stop().await;

    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one run per distinct message"
    );
    let outputs = client.drain(&sink).await;
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &outputs {
        by_id
            .entry(d.properties.message_id().clone().unwrap().to_string())
            .or_default()
            .push(String::from_utf8(d.data.clone()).unwrap());
        assert_eq!(*d.properties.delivery_mode(), Some(2), "persistent");
    }
    assert_eq!(by_id.len(), 2, "same output ids republished: {by_id:?}");
    for bodies in by_id.values() {
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            bodies[0], bodies[1],
            "stored outputs republished as they were"
        );
    }
    let processed = ledger.processed("once", "m-dup").await.unwrap().unwrap();
    assert_eq!(processed.tenant.as_deref(), Some("vitry"));
    assert_eq!(processed.message_type.as_deref(), Some("test.item"));
    assert_eq!(
        counter("encaisse_stage_duplicates_total", &[("stage", "once")]),
        2
    );
    assert_eq!(
        counter("encaisse_stage_processed_total", &[("stage", "once")]),
        2
    );
    assert_eq!(client.count(&queues.work).await, 0);
}

/// The properties with the replay header `encaisse dlq replay` sets.
fn replayed(props: lapin::BasicProperties) -> lapin::BasicProperties {
    let mut headers = props.headers().clone().unwrap_or_default();
    headers.insert(
        "encaisse-replayed-at".into(),
        lapin::types::AMQPValue::LongString("2026-12-06T00:00:00Z".into()),
    );
    props.with_headers(headers)
}

/// A first delivery skips the dedupe read; a copy of a processed message sent again as a new
/// message (an upstream that crashed between its publish and its record) still applies once:
/// its handler runs, but the processed row's uniqueness drops its effect and the first
/// outputs are republished.
#[tokio::test]
async fn a_duplicate_first_delivery_runs_the_handler_but_applies_once() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    let queues = ns.stage("first", &[1]);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;
    let runs = Arc::new(AtomicU32::new(0));
    let runs_in = runs.clone();
    let stage = stage_fn("first", ["work.#"], move |msg| {
        let runs = runs_in.clone();
        async move {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            let key = msg.message_id.clone().unwrap_or_default();
            Ok(Handled::publish(vec![output(&key, format!("run {run}"))])
                .commit_with(move |c| count_effect(c, &key)))
        }
    });
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger.clone());
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;
    for sent in 1..=2u32 {
        client
            .publish(
                &ns.prefix,
                "work.item",
                message_props("m-again", "vitry"),
                b"{}",
            )
            .await;
        wait_until("the output", Duration::from_secs(20), || async {
            client.count(&sink).await == sent
        })
        .await;
    }
    running.stop().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "no dedupe read on a first delivery: the handler ran for both copies"
    );
    assert_eq!(
        effects(&ledger).await,
        BTreeMap::from([("m-again".to_string(), 1)]),
        "the effect committed once"
    );
    let bodies: Vec<String> = client
        .drain(&sink)
        .await
        .into_iter()
        .map(|d| String::from_utf8(d.data).unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["run 1", "run 1"],
        "the second copy republished the first outputs"
    );
    assert_eq!(client.count(&queues.work).await, 0);
}

#[tokio::test]
async fn concurrent_copies_of_a_message_commit_one_effect_and_publish_the_first_outputs() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    ns.stage("racy", &[1]);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;
    let runs = Arc::new(AtomicU32::new(0));
    let runs_in = runs.clone();
    let stage = stage_fn("racy", ["work.#"], move |msg| {
        let runs = runs_in.clone();
        async move {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            // Long enough for both copies to be in the handler at once.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let key = msg.message_id.clone().unwrap_or_default();
            Ok(Handled::publish(vec![output(&key, format!("run {run}"))])
                .commit_with(move |c| count_effect(c, &key)))
        }
    });
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger.clone());
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;
    for _ in 0..2 {
        client
            .publish(
                &ns.prefix,
                "work.item",
                message_props("m-twin", "vitry"),
                b"{}",
            )
            .await;
    }
    wait_until("two outputs", Duration::from_secs(20), || async {
        client.count(&sink).await == 2
    })
    .await;
    running.stop().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "both copies were in the handler"
    );
    assert_eq!(
        effects(&ledger).await,
        BTreeMap::from([("m-twin".to_string(), 1)]),
        "the effect committed once"
    );
    let bodies: Vec<Vec<u8>> = client
        .drain(&sink)
        .await
        .into_iter()
        .map(|d| d.data)
        .collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        bodies[0], bodies[1],
        "the loser publishes the winner's outputs"
    );
}
