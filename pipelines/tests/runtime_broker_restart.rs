//! Broker restart mid-stream. Stops the whole broker: run alone, with
//! `cargo test -p encaisse-pipelines --test runtime_broker_restart -- --ignored`.

mod runtime_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{BrokerState, Runtime};
use encaisse_pipelines::{Handled, Outgoing, stage_fn};
use runtime_support::*;

const MESSAGES: usize = 200;

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl is installed");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// Starts the broker's application again whatever happens to the test.
struct RestoreBroker;

impl Drop for RestoreBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .status();
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["await_startup", "--timeout", "60"])
            .status();
    }
}

#[tokio::test]
#[ignore = "exclusive: restarts the broker; run by scripts/test.sh"]
async fn broker_restart_mid_stream_exclusive() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    let queues = ns.stage("survivor", &[1]);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;
    let stage = stage_fn("survivor", ["work.#"], |msg| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let key = msg.message_id.clone().unwrap_or_default();
        let out = Outgoing {
            exchange: None,
            routing_key: "out.item".into(),
            message_id: format!("out-{key}"),
            message_type: "test.output".into(),
            headers: BTreeMap::new(),
            body: Bytes::from_static(b"{}"),
        };
        Ok(Handled::publish(vec![out]).commit_with(move |c| count_effect(c, &key)))
    });
    let mut config = ns.config(&broker_url(BROKER), &[1]);
    config.broker.prefetch = 4;
    let mut runtime = Runtime::new(config, ledger.clone());
    runtime.add_stage(stage);
    let running = Running::start(runtime);
    wait_connected(&running.health).await;
    for i in 0..MESSAGES {
        client
            .publish(
                &ns.prefix,
                "work.item",
                message_props(&format!("m-{i:04}"), "vitry"),
                b"{}",
            )
            .await;
    }
    drop(client);

    wait_until("progress", Duration::from_secs(60), || async {
        effects(&ledger).await.len() >= MESSAGES / 3
    })
    .await;
    let _restore = RestoreBroker;
    rabbitmqctl(&["stop_app"]);
    wait_until("disconnection noticed", Duration::from_secs(30), || async {
        running.health.state() != BrokerState::Connected
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup", "--timeout", "60"]);
    wait_connected(&running.health).await;

    wait_until("every effect", Duration::from_secs(120), || async {
        effects(&ledger).await.len() == MESSAGES
    })
    .await;
    let client = Client::new().await;
    let mut outputs = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while outputs.len() < MESSAGES {
        assert!(
            Instant::now() < deadline,
            "missing outputs: {}",
            MESSAGES - outputs.len()
        );
        for d in client.drain(&sink).await {
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
    assert_eq!(client.count(&queues.work).await, 0);
    assert_eq!(client.count(&queues.parked).await, 0);
}
