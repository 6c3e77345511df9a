//! Bundles against a real RabbitMQ: a stage handles every item of a bundle as the message it
//! stands for — its effect once, its outputs published, a failing item retried or parked
//! alone (as a single message, with its own id, type, headers and body), an item processed
//! before deduplicated — and the bundle is acked once every item is settled.

mod runtime_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use encaisse_ledger::Ledger;
use encaisse_pipelines::bundle;
use encaisse_pipelines::runtime::Runtime;
use encaisse_pipelines::{Handled, HeaderValue, Outgoing, StageError, stage_fn};
use runtime_support::*;

fn item(id: &str, mode: &str) -> Outgoing {
    Outgoing {
        exchange: None,
        routing_key: "work.item".into(),
        message_id: id.into(),
        message_type: "test.item".into(),
        headers: BTreeMap::from([(
            "encaisse-tenant".to_string(),
            HeaderValue::Text("vitry".into()),
        )]),
        body: Bytes::from(format!(r#"{{"mode": "{mode}", "id": "{id}"}}"#)),
    }
}

fn output(id: &str) -> Outgoing {
    Outgoing {
        exchange: None,
        routing_key: "out.item".into(),
        message_id: format!("out-{id}"),
        message_type: "test.output".into(),
        headers: BTreeMap::new(),
        body: Bytes::from(format!(r#"{{"of":"{id}"}}"#)),
    }
}

/// Publishes `message` as the ingest would (its AMQP properties from the `Outgoing`).
async fn publish(client: &Client, ns: &Namespace, message: &Outgoing, replayed_copy: bool) {
    let mut headers = encaisse_pipelines::runtime::headers::to_field_table(&message.headers)
        .expect("headers fit the wire");
    if replayed_copy {
        headers.insert(
            "encaisse-replayed-at".into(),
            lapin::types::AMQPValue::LongString("2026-12-07T08:00:00Z".into()),
        );
    }
    let props = lapin::BasicProperties::default()
        .with_message_id(message.message_id.as_str().into())
        .with_type(message.message_type.as_str().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    client
        .publish(&ns.prefix, &message.routing_key, props, &message.body)
        .await;
}

#[tokio::test]
async fn each_item_of_a_bundle_is_handled_once_and_fails_alone() {
    install_metrics();
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    let tiers = [1];
    let queues = ns.stage("bundled", &tiers);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;
    // (id, attempt) of every handler run.
    let runs: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let runs_in = runs.clone();
    let stage = stage_fn("bundled", ["work.#"], move |msg| {
        let runs = runs_in.clone();
        async move {
            let id = msg.message_id.clone().unwrap_or_default();
            runs.lock().unwrap().push((id.clone(), msg.attempt));
            assert_eq!(msg.message_type.as_deref(), Some("test.item"));
            assert_eq!(msg.routing_key, "work.item");
            assert_eq!(msg.header_text("encaisse-tenant"), Some("vitry"));
            let value: serde_json::Value = serde_json::from_slice(&msg.body)
                .map_err(|e| StageError::poison("undecodable", e.to_string()))?;
            assert_eq!(value["id"], id.as_str(), "the item's own body");
            match value["mode"].as_str() {
                Some("permanent") => Err(StageError::permanent(
                    "unknown_tenant",
                    "tenant vitry is not configured",
                )),
                Some("transient_once") if msg.attempt == 1 => {
                    Err(StageError::transient("gateway_unavailable", "gateway down"))
                }
                // The handler succeeds, its ledger effect fails after writing: committed
                // with the others, it must be undone alone.
                Some("effect_fails") => {
                    Ok(Handled::publish(vec![output(&id)]).commit_with(move |tx| {
                        count_effect(tx, &id)?;
                        Err(encaisse_ledger::LedgerError::Conflict(format!(
                            "{id}: the ledger refuses it"
                        )))
                    }))
                }
                _ => Ok(Handled::publish(vec![output(&id)])
                    .commit_with(move |tx| count_effect(tx, &id))),
            }
        }
    });
    let mut config = ns.config(&broker_url(BROKER), &tiers);
    config.retry.in_process_retries = 0;
    let mut runtime = Runtime::new(config, ledger.clone());
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    // m-7 arrives alone first; its copy in the bundle must not apply twice.
    publish(&client, &ns, &item("m-7", "ok"), false).await;
    wait_until("m-7 alone", Duration::from_secs(20), || async {
        client.count(&sink).await == 1
    })
    .await;

    let items: Vec<Outgoing> = (0..20)
        .map(|i| {
            let mode = match i {
                3 => "permanent",
                5 => "transient_once",
                9 => "effect_fails",
                _ => "ok",
            };
            item(&format!("m-{i}"), mode)
        })
        .collect();
    let packed = bundle::pack(items.clone(), 50);
    assert_eq!(packed.len(), 1, "one bundle");
    publish(&client, &ns, &packed[0], false).await;
    // 18 outputs of the bundle (none for m-3 and m-9; m-7's first output again) + m-7's
    // first.
    wait_until("the bundle's outputs", Duration::from_secs(30), || async {
        client.count(&sink).await == 19
    })
    .await;
    wait_until("m-3 and m-9 parked", Duration::from_secs(10), || async {
        client.count(&queues.parked).await == 2
    })
    .await;

    let expected: BTreeMap<String, i64> = (0..20)
        .filter(|i| *i != 3 && *i != 9)
        .map(|i| (format!("m-{i}"), 1))
        .collect();
    assert_eq!(
        effects(&ledger).await,
        expected,
        "every item's effect once, none for m-3, m-9's undone"
    );
    let first_runs = runs.lock().unwrap().clone();
    let attempts_of = |id: &str| -> Vec<u32> {
        first_runs
            .iter()
            .filter(|(r, _)| r == id)
            .map(|(_, a)| *a)
            .collect()
    };
    assert_eq!(
        attempts_of("m-5"),
        [1, 2],
        "m-5 retried alone, via its tier"
    );
    assert_eq!(attempts_of("m-3"), [1], "m-3 parked at once (permanent)");
    assert_eq!(attempts_of("m-0"), [1]);

    // Each parked item is one message: its own id, type, headers and body.
    let mut parked = client.drain(&queues.parked).await;
    assert_eq!(parked.len(), 2);
    parked.sort_by_key(|d| d.properties.message_id().clone().unwrap().to_string());
    let kind = |d: &lapin::message::Delivery| text_header(&d.properties, "encaisse-error-kind");
    assert_eq!(kind(&parked[1]).as_deref(), Some("ledger_conflict"), "m-9");
    assert_eq!(parked[1].data, items[9].body.to_vec());
    let p = &parked[0].properties;
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("m-3"));
    assert_eq!(p.kind().as_ref().map(|s| s.as_str()), Some("test.item"));
    assert_eq!(parked[0].data, items[3].body.to_vec());
    assert_eq!(text_header(p, "encaisse-tenant").as_deref(), Some("vitry"));
    assert_eq!(
        text_header(p, "encaisse-error-kind").as_deref(),
        Some("unknown_tenant")
    );
    assert_eq!(
        text_header(p, "encaisse-origin-routing-key").as_deref(),
        Some("work.item")
    );
    assert_eq!(
        text_header(p, "encaisse-origin-queue"),
        Some(queues.work.clone())
    );
    assert!(text_header(p, "encaisse-parked-at").is_some());

    // A replayed copy of the whole bundle reads the dedupe records: no handler runs again
    // for the committed items, their stored outputs go out again; m-3 and m-9 fail again.
    publish(&client, &ns, &packed[0], true).await;
    wait_until(
        "the replayed bundle's outputs",
        Duration::from_secs(30),
        || async { client.count(&sink).await == 37 },
    )
    .await;
    wait_until(
        "m-3 and m-9 parked again",
        Duration::from_secs(10),
        || async { client.count(&queues.parked).await == 2 },
    )
    .await;
    running.stop().await;
    let replay_runs = runs.lock().unwrap()[first_runs.len()..].to_vec();
    let mut replay_runs = replay_runs;
    replay_runs.sort();
    assert_eq!(
        replay_runs,
        [("m-3".to_string(), 1), ("m-9".to_string(), 1)],
        "only the items never committed run again"
    );
    assert_eq!(effects(&ledger).await, expected, "still once each");
    assert_eq!(client.count(&queues.work).await, 0);
    for (_, tier) in &queues.tiers {
        assert_eq!(client.count(tier).await, 0, "{tier} empty");
    }
    let processed = counter("encaisse_stage_processed_total", &[("stage", "bundled")]);
    assert_eq!(processed, 18, "m-7 alone + 17 items of the bundle");
}

#[tokio::test]
async fn an_unreadable_bundle_is_parked_whole_with_its_reason() {
    install_metrics();
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let queues = ns.stage("bundled_bad", &[1]);
    let client = Client::new().await;
    let runs = Arc::new(Mutex::new(0u32));
    let runs_in = runs.clone();
    let stage = stage_fn("bundled_bad", ["work.#"], move |_msg| {
        let runs = runs_in.clone();
        async move {
            *runs.lock().unwrap() += 1;
            Ok(Handled::none())
        }
    });
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger);
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    let mut bad = item("b-1", "ok");
    bad.message_type = bundle::TYPE.into();
    bad.message_id = "bundle-bad".into();
    bad.body = Bytes::from_static(br#"{"bundle_version":1,"items":[{"message_id":"x""#);
    publish(&client, &ns, &bad, false).await;
    wait_until("the bundle parked", Duration::from_secs(20), || async {
        client.count(&queues.parked).await == 1
    })
    .await;
    running.stop().await;
    assert_eq!(*runs.lock().unwrap(), 0, "no item handled");
    let parked = client.drain(&queues.parked).await;
    let p = &parked[0].properties;
    assert_eq!(
        p.message_id().as_ref().map(|s| s.as_str()),
        Some("bundle-bad")
    );
    assert_eq!(parked[0].data, bad.body.to_vec(), "kept as it came");
    assert_eq!(
        text_header(p, "encaisse-error-class").as_deref(),
        Some("poison")
    );
    assert_eq!(
        text_header(p, "encaisse-error-kind").as_deref(),
        Some("malformed_bundle")
    );
    let error = text_header(p, "encaisse-error").unwrap();
    assert!(
        error.contains("bundle-bad") && error.contains("EOF"),
        "{error}"
    );
    assert_eq!(client.count(&queues.work).await, 0);
}
