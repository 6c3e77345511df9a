//! Connection loss mid-stream: a TCP proxy between the runtime and the broker severs every
//! connection while messages flow. Every message must be processed exactly once in effect,
//! none lost, queues empty at the end.

mod runtime_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{BrokerState, Runtime};
use encaisse_pipelines::{Handled, Outgoing, stage_fn};
use runtime_support::*;

const MESSAGES: usize = 300;

#[tokio::test]
async fn severed_connections_lose_nothing_and_duplicate_no_effect() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    let queues = ns.stage("steady", &[1]);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;
    let proxy = Proxy::start(BROKER).await;

    let runs = Arc::new(AtomicUsize::new(0));
    let runs_in = runs.clone();
    let stage = stage_fn("steady", ["work.#"], move |msg| {
        let runs = runs_in.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            let key = msg.message_id.clone().unwrap_or_default();
            let out = Outgoing {
                exchange: None,
                routing_key: "out.item".into(),
                message_id: format!("out-{key}"),
                message_type: "test.output".into(),
                headers: BTreeMap::new(),
                body: Bytes::from(format!("{{\"of\":\"{key}\"}}")),
            };
            Ok(Handled::publish(vec![out]).commit_with(move |c| count_effect(c, &key)))
        }
    });
    let mut runtime = Runtime::new(ns.config(&broker_url(&proxy.addr), &[1]), ledger.clone());
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    let feeder = {
        let prefix = ns.prefix.clone();
        tokio::spawn(async move {
            let client = Client::new().await;
            for i in 0..MESSAGES {
                let id = format!("m-{i:04}");
                client
                    .publish(&prefix, "work.item", message_props(&id, "vitry"), b"{}")
                    .await;
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };

    let mut severed = 0;
    for threshold in [40, 120, 200] {
        wait_until("progress", Duration::from_secs(60), || async {
            effects(&ledger).await.len() >= threshold
        })
        .await;
        severed += proxy.sever();
        wait_until("disconnection noticed", Duration::from_secs(30), || async {
            running.health.state() != BrokerState::Connected
        })
        .await;
        wait_connected(&running.health).await;
    }
    assert!(severed >= 3, "connections were cut ({severed})");
    feeder.await.unwrap();

    wait_until("every effect", Duration::from_secs(90), || async {
        effects(&ledger).await.len() == MESSAGES
    })
    .await;
    // Outputs whose confirm was lost are republished from the ledger on redelivery.
    let mut outputs = BTreeSet::new();
    let mut deliveries = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while outputs.len() < MESSAGES {
        assert!(
            std::time::Instant::now() < deadline,
            "missing outputs: {}",
            MESSAGES - outputs.len()
        );
        for d in client.drain(&sink).await {
            deliveries += 1;
            outputs.insert(d.properties.message_id().clone().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await;

    let effects = effects(&ledger).await;
    assert_eq!(effects.len(), MESSAGES, "no message lost");
    let doubled: Vec<_> = effects.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubled.is_empty(),
        "effects run more than once: {doubled:?}"
    );
    assert_eq!(client.count(&queues.work).await, 0, "work queue empty");
    assert_eq!(client.count(&queues.parked).await, 0, "nothing parked");
    eprintln!(
        "connection loss: {MESSAGES} messages, {severed} connections severed, {} handler runs, {deliveries} output deliveries",
        runs.load(Ordering::SeqCst)
    );
}
