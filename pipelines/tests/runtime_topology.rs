//! The broker topology as RabbitMQ reports it, conflicts, and unroutable outputs.

mod runtime_support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{PublishError, Runtime, RuntimeError};
use encaisse_pipelines::{Handled, Outgoing, stage_fn};
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use runtime_support::*;
use serde_json::{Value, json};

/// `rabbitmqctl <args> --formatter json`, as JSON.
fn rabbitmqctl(args: &[&str]) -> Value {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .args(["--formatter", "json", "--quiet"])
        .output()
        .expect("rabbitmqctl is installed");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).expect("rabbitmqctl prints JSON")
}

/// Queue name → (type, arguments as name → value) for the queues of `prefix`.
fn queues_of(prefix: &str) -> BTreeMap<String, (String, BTreeMap<String, Value>)> {
    let listed = rabbitmqctl(&["list_queues", "name", "type", "arguments"]);
    listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| {
            q["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{prefix}."))
        })
        .map(|q| {
            let args = q["arguments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a[0].as_str().unwrap().to_string(), a[2].clone()))
                .collect();
            (
                q["name"].as_str().unwrap().to_string(),
                (q["type"].as_str().unwrap().to_string(), args),
            )
        })
        .collect()
}

fn args(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[tokio::test]
async fn topology_is_declared_with_the_documented_types_and_arguments_idempotently() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let tiers = [1, 5];
    ns.stage("alpha.one", &tiers);
    ns.stage("beta", &tiers);
    let build = || {
        let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &tiers), ledger.clone());
        runtime.add_stage(stage_fn("alpha.one", ["invoice.issued.#"], |_| async {
            Ok(Handled::none())
        }));
        runtime.add_stage(stage_fn("beta", ["payment.#", "titre.#"], |_| async {
            Ok(Handled::none())
        }));
        runtime
    };
    // Twice: the second declaration of the same topology must be a no-op.
    for _ in 0..2 {
        let running = Running::start(build());
        wait_connected(&running.health).await;
        running.stop().await;
    }

    let p = &ns.prefix;
    let queues = queues_of(p);
    let mut expected = BTreeMap::new();
    for stage in ["alpha.one", "beta"] {
        let work = format!("{p}.{stage}");
        expected.insert(
            work.clone(),
            (
                "quorum".to_string(),
                args(&[
                    ("x-queue-type", json!("quorum")),
                    ("x-delivery-limit", json!(20)),
                    ("x-dead-letter-exchange", json!("")),
                    ("x-dead-letter-routing-key", json!(format!("{work}.parked"))),
                    ("x-dead-letter-strategy", json!("at-least-once")),
                    ("x-overflow", json!("reject-publish")),
                ]),
            ),
        );
        for secs in tiers {
            expected.insert(
                format!("{work}.retry.{secs}s"),
                (
                    "quorum".to_string(),
                    args(&[
                        ("x-queue-type", json!("quorum")),
                        ("x-message-ttl", json!(secs * 1000)),
                        ("x-delivery-limit", json!(20)),
                        ("x-dead-letter-exchange", json!("")),
                        ("x-dead-letter-routing-key", json!(work.clone())),
                        ("x-dead-letter-strategy", json!("at-least-once")),
                        ("x-overflow", json!("reject-publish")),
                    ]),
                ),
            );
        }
        expected.insert(
            format!("{work}.parked"),
            (
                "quorum".to_string(),
                args(&[("x-queue-type", json!("quorum"))]),
            ),
        );
    }
    assert_eq!(queues, expected);

    let exchanges = rabbitmqctl(&["list_exchanges", "name", "type", "durable"]);
    let exchange = exchanges
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == json!(p))
        .expect("work exchange declared");
    assert_eq!(exchange["type"], json!("topic"));
    assert_eq!(exchange["durable"], json!(true));

    let bindings = rabbitmqctl(&[
        "list_bindings",
        "source_name",
        "destination_name",
        "routing_key",
    ]);
    let mut bound: Vec<(String, String)> = bindings
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["source_name"] == json!(p))
        .map(|b| {
            (
                b["destination_name"].as_str().unwrap().to_string(),
                b["routing_key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    bound.sort();
    assert_eq!(
        bound,
        vec![
            (format!("{p}.alpha.one"), "invoice.issued.#".to_string()),
            (format!("{p}.beta"), "payment.#".to_string()),
            (format!("{p}.beta"), "titre.#".to_string()),
        ]
    );
}

/// The dead-letter handler the broker actually uses for `queue` (RabbitMQ 3.10: the 4th
/// field of the quorum queue's `cfg` record): `at_least_once`, or `{at_most_once, …}` when
/// it silently fell back.
fn effective_dead_letter_handler(queue: &str) -> String {
    let expr = format!(
        "{{ok, Q}} = rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"{queue}\">>)), \
         {{Name, _}} = amqqueue:get_pid(Q), \
         {{ok, {{_, S}}, _}} = ra:local_query({{Name, node()}}, fun(S) -> S end), \
         element(5, element(2, S))."
    );
    let out = std::process::Command::new("rabbitmqctl")
        .args(["eval", &expr])
        .output()
        .expect("rabbitmqctl is installed");
    assert!(out.status.success(), "rabbitmqctl eval: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn dead_lettering_is_at_least_once_and_the_delivery_limit_parks_a_crashing_message() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let queues = ns.stage("crashy", &[1]);
    let mut config = ns.config(&broker_url(BROKER), &[1]);
    config.broker.delivery_limit = 2;
    let mut runtime = Runtime::new(config, ledger);
    runtime.add_stage(stage_fn("crashy", ["work.#"], |_| async {
        Ok(Handled::none())
    }));
    let running = Running::start(runtime);
    wait_connected(&running.health).await;
    running.stop().await;

    // The broker did not fall back to at-most-once (it does so silently when, for
    // instance, x-overflow is not reject-publish).
    assert_eq!(effective_dead_letter_handler(&queues.work), "at_least_once");
    assert_eq!(
        effective_dead_letter_handler(&queues.tiers[0].1),
        "at_least_once"
    );

    // A consumer that "crashes" (returns the message unacked) again and again: after
    // `delivery_limit` returns the broker dead-letters it to the parking lot.
    let client = Client::new().await;
    client
        .publish(
            &ns.prefix,
            "work.item",
            message_props("m-crash", "vitry"),
            b"{}",
        )
        .await;
    for _ in 0..3 {
        let got = client
            .channel
            .basic_get(
                queues.work.as_str().into(),
                lapin::options::BasicGetOptions::default(),
            )
            .await
            .unwrap();
        let Some(message) = got else { break };
        message
            .delivery
            .acker
            .reject(lapin::options::BasicRejectOptions { requeue: true })
            .await
            .unwrap();
    }
    wait_until("the parked message", Duration::from_secs(10), || async {
        client.count(&queues.parked).await == 1
    })
    .await;
    let parked = client.drain(&queues.parked).await;
    let headers = parked[0].properties.headers().clone().unwrap();
    let AMQPValue::FieldArray(deaths) = &headers.inner()["x-death"] else {
        panic!("x-death is an array: {headers:?}");
    };
    let AMQPValue::FieldTable(death) = &deaths.as_slice()[0] else {
        panic!("x-death entries are tables");
    };
    let reason = match &death.inner()["reason"] {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("reason is a string: {other:?}"),
    };
    assert_eq!(reason, "delivery_limit");
    assert_eq!(client.count(&queues.work).await, 0);
}

#[tokio::test]
async fn a_queue_declared_with_other_arguments_is_a_topology_conflict() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let queues = ns.stage("clash", &[1]);
    let client = Client::new().await;
    // Someone declared the work queue as a classic queue.
    client
        .channel
        .queue_declare(
            queues.work.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger);
    runtime.add_stage(stage_fn("clash", ["x.#"], |_| async {
        Ok(Handled::none())
    }));
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        runtime.run(tokio_util::sync::CancellationToken::new()),
    )
    .await
    .expect("a conflict stops the runtime");
    match result {
        Err(RuntimeError::TopologyConflict { queue, message }) => {
            assert_eq!(queue, queues.work);
            assert!(message.contains("PRECONDITION_FAILED"), "{message}");
        }
        other => panic!("expected a topology conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn unroutable_publishes_fail_and_park_the_input() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let queues = ns.stage("orphan", &[1]);
    let client = Client::new().await;
    let nowhere = |id: &str| Outgoing {
        exchange: None,
        routing_key: "nobody.listens".into(),
        message_id: id.into(),
        message_type: "test.output".into(),
        headers: BTreeMap::new(),
        body: Bytes::from_static(b"{}"),
    };
    let out = nowhere("out-1");
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger.clone());
    runtime.add_stage(stage_fn("orphan", ["work.#"], move |_| {
        let out = out.clone();
        async move { Ok(Handled::publish(vec![out])) }
    }));
    let publisher = runtime.publisher();
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    match publisher.publish(vec![nowhere("direct")]).await {
        Err(PublishError::Unroutable {
            message_id,
            routing_key,
        }) => {
            assert_eq!(message_id, "direct");
            assert_eq!(routing_key, "nobody.listens");
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    client
        .publish(
            &ns.prefix,
            "work.item",
            message_props("m-1", "vitry"),
            b"{}",
        )
        .await;
    wait_until("the parked input", Duration::from_secs(20), || async {
        client.count(&queues.parked).await == 1
    })
    .await;
    running.stop().await;
    let parked = client.drain(&queues.parked).await;
    assert_eq!(
        text_header(&parked[0].properties, "encaisse-error-kind").as_deref(),
        Some("unroutable_output")
    );
    // The record stays, so a replay after fixing the bindings republishes the outputs.
    assert!(ledger.processed("orphan", "m-1").await.unwrap().is_some());
}
