//! Ops tooling against a real RabbitMQ: the `ops.parking` drain stores parked messages in the
//! ledger, replays go back to the stage that failed exactly once, discards need a reason.

#[path = "runtime_support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use encaisse_ledger::{Ledger, OpsStore};
use encaisse_pipelines::runtime::Runtime;
use encaisse_pipelines::stages::ops::replay::{self, Outcome, Replayer};
use encaisse_pipelines::stages::ops::store::{Filter, GroupKey, ParkedSummary, State};
use encaisse_pipelines::stages::ops::{ParkedGauges, ParkingDrain, show};
use encaisse_pipelines::{Handled, HeaderValue, Incoming, Outgoing, StageError, stage_fn};
use lapin::options::{BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use support::*;

const BODY: &str = r#"{"schema_version":1,
 "invoice":{"tenant":"ivry","exercice":2026,"number":"F0042"},
 "family_code":"FAM042","total":"42.50","payment_mode":"PRELEVEMENT","collection":"regie",
 "payer":{"civilite":"MME","last_name":"Dupont-Martin","first_name":"Jeanne",
   "address":{"street":"12 rue de la Paix","postal_code":"94200","city":"Ivry-sur-Seine"},
   "email":"jeanne.dupont@example.com"},
 "mandate":{"rum":"RUM-42","iban":"FR7630006000011234567890189","holder":"Jeanne Dupont"}}"#;

/// What the stage saw of a replayed message: its attempt and who replayed it.
type Seen = (u32, Option<String>);

fn drain(ns: &Namespace, ledger: &Ledger) -> Arc<ParkingDrain> {
    Arc::new(ParkingDrain::new(
        ns.prefix.clone(),
        ledger.clone(),
        ParkedGauges::new(ledger.clone()),
    ))
}

async fn parked(ledger: &Ledger, filter: Filter) -> Vec<ParkedSummary> {
    ledger
        .inspect(move |tx| tx.list_parked(&filter, 100))
        .await
        .unwrap()
}

async fn wait_for_rows(ledger: &Ledger, n: usize) -> Vec<ParkedSummary> {
    wait_until(
        "parked rows in the ledger",
        Duration::from_secs(30),
        || async { parked(ledger, Filter::default()).await.len() >= n },
    )
    .await;
    parked(ledger, Filter::default()).await
}

fn output(id: &str) -> Outgoing {
    Outgoing {
        exchange: None,
        routing_key: "out.item".into(),
        message_id: format!("out-{id}"),
        message_type: "test.output".into(),
        headers: BTreeMap::from([(
            "encaisse-tenant".to_string(),
            HeaderValue::Text("ivry".into()),
        )]),
        body: Bytes::from_static(b"{}"),
    }
}

/// A stage that refuses tenants it does not know (a permanent error, as a real stage does
/// for a tenant missing from its configuration), refuses a body `bad` as undecodable
/// (poison), and otherwise counts its effect once per message and publishes one output.
fn tenanted_stage(
    name: &str,
    known: Arc<Mutex<HashSet<String>>>,
) -> Arc<dyn encaisse_pipelines::Stage> {
    stage_fn(name, ["work.#"], move |msg: Incoming| {
        let known = known.clone();
        async move {
            let tenant = msg.header_text("encaisse-tenant").unwrap_or("").to_string();
            if !known.lock().unwrap().contains(&tenant) {
                return Err(StageError::permanent(
                    "unknown_tenant",
                    format!("tenant {tenant} is not configured"),
                ));
            }
            if msg.body.as_ref() == b"bad" {
                return Err(StageError::poison("undecodable", "not JSON"));
            }
            let key = msg.message_id.clone().unwrap_or_default();
            Ok(Handled::publish(vec![output(&key)]).commit_with(move |c| count_effect(c, &key)))
        }
    })
}

fn invoice_props(id: &str) -> lapin::BasicProperties {
    let props = message_props(id, "ivry");
    let mut headers = props.headers().clone().unwrap();
    headers.insert(
        "encaisse-invoice".into(),
        AMQPValue::LongString(LongString::from("ivry/2026/F0042")),
    );
    props
        .with_type("invoice.issued".into())
        .with_headers(headers)
}

#[tokio::test]
async fn a_message_parked_by_a_permanent_error_is_listed_then_replayed_once_after_the_fix() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    let queues = ns.stage("tenanted", &[1]);
    let client = Client::new().await;
    let sink = client.sink(&ns, "sink", "out.#").await;
    let known = Arc::new(Mutex::new(HashSet::from(["vitry".to_string()])));
    let config = ns.config(&broker_url(BROKER), &[1]);
    let mut runtime = Runtime::new(config.clone(), ledger.clone());
    runtime.add_stage(tenanted_stage("tenanted", known.clone()));
    runtime.add_drain(drain(&ns, &ledger));
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    client
        .publish(
            &ns.prefix,
            "work.invoice",
            invoice_props("m-ivry"),
            BODY.as_bytes(),
        )
        .await;
    let rows = wait_for_rows(&ledger, 1).await;
    let first = &rows[0];
    assert_eq!(first.stage, "tenanted");
    assert_eq!(first.group, "tenanted/unknown_tenant");
    assert_eq!(
        (first.error_class.as_str(), first.error_kind.as_str()),
        ("permanent", "unknown_tenant")
    );
    assert_eq!(first.error, "tenant ivry is not configured");
    assert_eq!(first.attempts, 1);
    assert_eq!(first.tenant.as_deref(), Some("ivry"));
    assert_eq!(first.invoice.as_deref(), Some("ivry/2026/F0042"));
    assert_eq!(first.parked_by, "runtime");
    assert_eq!(first.state, State::Parked);
    // The parking lot is drained (acked once stored): inspecting never consumes it again.
    wait_until(
        "the parking lot drained",
        Duration::from_secs(10),
        || async { client.count(&queues.parked).await == 0 },
    )
    .await;

    // Filters and grouping.
    let by_tenant = |t: &str| Filter {
        tenant: Some(t.into()),
        ..Filter::parked()
    };
    assert_eq!(parked(&ledger, by_tenant("ivry")).await.len(), 1);
    assert_eq!(parked(&ledger, by_tenant("vitry")).await.len(), 0);
    let groups = ledger
        .inspect(|tx| tx.parked_groups(&Filter::parked()))
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].group.as_str(), groups[0].count),
        ("tenanted/unknown_tenant", 1)
    );
    assert_eq!(groups[0].error_classes, ["permanent"]);

    // `dlq show`: domain terms, personal data masked.
    let id = first.id;
    let message = ledger
        .inspect(move |tx| tx.parked(id))
        .await
        .unwrap()
        .unwrap();
    let view = show::view(&message, &[], &[], false).unwrap();
    assert_eq!(view["domain"]["family_code"], "FAM042");
    assert_eq!(view["domain"]["amount"], "42.50");
    assert_eq!(view["domain"]["channel"], "PRELEVEMENT");
    assert_eq!(view["headers"]["encaisse-error-kind"], "unknown_tenant");
    assert_eq!(view["origin"]["queue"], queues.work.as_str());
    let shown = view.to_string();
    assert!(
        !shown.contains("Dupont") && !shown.contains("jeanne.dupont"),
        "{shown}"
    );
    let revealed = show::view(&message, &[], &[], true).unwrap();
    assert_eq!(revealed["body"]["payer"]["last_name"], "Dupont-Martin");

    // Replayed before the cause is fixed: it fails again and is parked again, as a new row
    // whose history shows the first parking.
    let replayer = Replayer::connect(&config).await.unwrap();
    let outcomes = replayer.replay(&ledger, &[id], "alice").await;
    assert_eq!(
        outcomes,
        [Outcome::Replayed {
            id,
            queue: queues.work.clone()
        }]
    );
    let rows = wait_for_rows(&ledger, 2).await;
    let second = rows.iter().find(|r| r.id != id).unwrap().clone();
    assert_eq!(second.state, State::Parked);
    assert_eq!(second.attempts, 1, "a replay starts the attempts afresh");
    let second_id = second.id;
    let again = ledger
        .inspect(move |tx| tx.parked(second_id))
        .await
        .unwrap()
        .unwrap();
    let earlier = ledger
        .inspect({
            let again = again.clone();
            move |tx| tx.earlier_parkings(&again)
        })
        .await
        .unwrap();
    assert_eq!(earlier.len(), 1);
    assert_eq!(
        (
            earlier[0].id,
            earlier[0].state,
            earlier[0].resolved_by.as_deref()
        ),
        (id, State::Replayed, Some("alice"))
    );
    let view = show::view(&again, &earlier, &[], false).unwrap();
    assert_eq!(view["headers"]["encaisse-replayed-by"], "alice");
    assert_eq!(effects(&ledger).await.len(), 0);

    // The tenant is configured: the replay succeeds, exactly once.
    known.lock().unwrap().insert("ivry".into());
    let outcomes = replayer.replay(&ledger, &[second_id], "bob").await;
    assert_eq!(
        outcomes,
        [Outcome::Replayed {
            id: second_id,
            queue: queues.work.clone()
        }]
    );
    wait_until("the output", Duration::from_secs(30), || async {
        client.count(&sink).await == 1
    })
    .await;
    assert_eq!(
        effects(&ledger).await,
        BTreeMap::from([("m-ivry".to_string(), 1)])
    );

    // Replaying twice is harmless: nothing is published the second time...
    let outcomes = replayer
        .replay(&ledger, &[second_id, id, 999_999], "bob")
        .await;
    assert!(matches!(
        outcomes[0],
        Outcome::AlreadyResolved { state: State::Replayed, ref by, .. } if by.as_deref() == Some("bob")
    ));
    assert!(matches!(outcomes[1], Outcome::AlreadyResolved { .. }));
    assert_eq!(outcomes[2], Outcome::NotFound { id: 999_999 });
    // ...and even the same bytes published again by hand (a replay that died before its
    // mark) are recognised by the stage's deduplication: no second effect.
    client
        .publish("", &queues.work, invoice_props("m-ivry"), BODY.as_bytes())
        .await;
    wait_until("the duplicate handled", Duration::from_secs(30), || async {
        client.count(&queues.work).await == 0 && client.count(&sink).await == 2
    })
    .await;
    assert_eq!(
        effects(&ledger).await,
        BTreeMap::from([("m-ivry".to_string(), 1)])
    );
    assert!(parked(&ledger, Filter::parked()).await.is_empty());

    replayer.close().await;
    running.stop().await;
}

#[tokio::test]
async fn a_message_the_broker_parked_at_its_delivery_limit_is_stored_and_replayed_with_fresh_attempts()
 {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    let tiers = [1];
    let queues = ns.stage("crashy", &tiers);
    let mut config = ns.config(&broker_url(BROKER), &tiers);
    config.broker.delivery_limit = 2;
    let client = Client::new().await;

    // Declare the topology, then play a consumer that dies with the message in hand again
    // and again: the broker dead-letters it to the parking lot itself.
    let mut runtime = Runtime::new(config.clone(), ledger.clone());
    runtime.add_stage(stage_fn("crashy", ["work.#"], |_| async {
        Ok(Handled::none())
    }));
    let running = Running::start(runtime);
    wait_connected(&running.health).await;
    running.stop().await;
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
            .basic_get(queues.work.as_str().into(), Default::default())
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
    wait_until(
        "the broker-parked message",
        Duration::from_secs(10),
        || async { client.count(&queues.parked).await == 1 },
    )
    .await;

    // The stage is fixed: it fails once transiently on the replay (through a delay tier and
    // back to its work queue), then succeeds.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let calls = Arc::new(AtomicU32::new(0));
    let (seen_in, calls_in) = (seen.clone(), calls.clone());
    let stage = stage_fn("crashy", ["work.#"], move |msg: Incoming| {
        let (seen, calls) = (seen_in.clone(), calls_in.clone());
        async move {
            seen.lock().unwrap().push((
                msg.attempt,
                msg.header_text("encaisse-replayed-by").map(str::to_string),
            ));
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(StageError::transient("flaky", "try again"));
            }
            let key = msg.message_id.clone().unwrap_or_default();
            Ok(Handled::none().commit_with(move |c| count_effect(c, &key)))
        }
    });
    let mut runtime = Runtime::new(config.clone(), ledger.clone());
    runtime.add_stage(stage);
    runtime.add_drain(drain(&ns, &ledger));
    let running = Running::start(runtime);
    wait_connected(&running.health).await;

    let rows = wait_for_rows(&ledger, 1).await;
    let row = &rows[0];
    assert_eq!(row.parked_by, "broker");
    assert_eq!(
        (row.error_class.as_str(), row.error_kind.as_str()),
        ("poison", "delivery_limit")
    );
    assert!(row.error.contains("x-delivery-limit"), "{}", row.error);
    assert_eq!(row.message_id.as_deref(), Some("m-crash"));
    let id = row.id;
    let message = ledger
        .inspect(move |tx| tx.parked(id))
        .await
        .unwrap()
        .unwrap();
    let view = show::view(&message, &[], &[], false).unwrap();
    assert_eq!(view["headers"]["x-death"][0]["reason"], "delivery_limit");
    assert!(
        view["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"].as_str().unwrap().contains("delivery_limit")),
        "{view}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the stage never saw it");

    let replayer = Replayer::connect(&config).await.unwrap();
    let outcomes = replayer.replay(&ledger, &[id], "carol").await;
    assert_eq!(
        outcomes,
        [Outcome::Replayed {
            id,
            queue: queues.work.clone()
        }]
    );
    wait_until(
        "the replayed message handled",
        Duration::from_secs(30),
        || async { !effects(&ledger).await.is_empty() },
    )
    .await;
    assert_eq!(
        effects(&ledger).await,
        BTreeMap::from([("m-crash".to_string(), 1)])
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (1, Some("carol".to_string())),
            (2, Some("carol".to_string()))
        ],
        "fresh attempts (1, then 2 after the tier), marked with who replayed it"
    );
    assert!(parked(&ledger, Filter::parked()).await.is_empty());
    replayer.close().await;
    running.stop().await;
}

#[tokio::test]
async fn the_same_parked_message_drained_twice_is_stored_once_and_groups_replay_together() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    create_effect_table(&ledger).await;
    let queues = ns.stage("grouped", &[1]);
    let config = ns.config(&broker_url(BROKER), &[1]);
    let known = Arc::new(Mutex::new(HashSet::from(["vitry".to_string()])));
    let mut runtime = Runtime::new(config.clone(), ledger.clone());
    runtime.add_stage(tenanted_stage("grouped", known.clone()));
    runtime.add_drain(drain(&ns, &ledger));
    let client = Client::new().await;
    client.sink(&ns, "sink", "out.#").await;

    // The drain's ack was lost and the broker delivers the same parked message again — with
    // `x-delivery-count` raised, as a quorum queue does: still one row. Simulated before the
    // drain starts: two copies in the parking lot, one of them returned once.
    let mut headers = message_props("m-dup", "ivry").headers().clone().unwrap();
    for (k, v) in [
        ("encaisse-stage", "grouped"),
        ("encaisse-error-class", "permanent"),
        ("encaisse-error-kind", "unknown_tenant"),
        ("encaisse-error", "tenant ivry"),
        ("encaisse-parked-at", "2026-05-04T09:00:00.000000Z"),
    ] {
        headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
    }
    let props = message_props("m-dup", "ivry").with_headers(headers);
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    client
        .channel
        .queue_declare(
            queues.parked.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            quorum,
        )
        .await
        .unwrap();
    client
        .publish("", &queues.parked, props.clone(), b"{}")
        .await;
    client.publish("", &queues.parked, props, b"{}").await;
    let first = client
        .channel
        .basic_get(queues.parked.as_str().into(), Default::default())
        .await
        .unwrap()
        .unwrap();
    first
        .delivery
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await
        .unwrap();
    let running = Running::start(runtime);
    wait_connected(&running.health).await;
    // Two more failures of the group, one poison message of another tenant.
    for id in ["m-a", "m-b"] {
        client
            .publish(&ns.prefix, "work.item", message_props(id, "ivry"), b"{}")
            .await;
    }
    client
        .publish(
            &ns.prefix,
            "work.item",
            message_props("m-bad", "vitry"),
            b"bad",
        )
        .await;
    wait_until(
        "every message parked and drained",
        Duration::from_secs(30),
        || async {
            parked(&ledger, Filter::default()).await.len() >= 4
                && client.count(&queues.parked).await == 0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = parked(&ledger, Filter::default()).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.message_id.as_deref() == Some("m-dup"))
            .count(),
        1
    );
    let groups = ledger
        .inspect(|tx| tx.parked_groups(&Filter::parked()))
        .await
        .unwrap();
    let counts: Vec<_> = groups.iter().map(|g| (g.group.as_str(), g.count)).collect();
    assert_eq!(
        counts,
        [("grouped/unknown_tenant", 3), ("grouped/undecodable", 1)]
    );

    // Discarding needs a reason; it keeps the row and an audit line.
    let bad = rows
        .iter()
        .find(|r| r.message_id.as_deref() == Some("m-bad"))
        .unwrap()
        .id;
    let refused = replay::discard(&ledger, vec![bad], "dave", "   ").await;
    assert!(refused.unwrap_err().to_string().contains("reason"));
    let outcomes = replay::discard(&ledger, vec![bad], "dave", "sent by a test tool")
        .await
        .unwrap();
    assert_eq!(outcomes, [Outcome::Discarded { id: bad }]);
    let actions = ledger
        .inspect(move |tx| tx.parked_actions(bad))
        .await
        .unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(
        (
            actions[0].action.as_str(),
            actions[0].by.as_str(),
            actions[0].reason.as_deref()
        ),
        ("discard", "dave", Some("sent by a test tool"))
    );
    let again = replay::discard(&ledger, vec![bad], "dave", "twice")
        .await
        .unwrap();
    assert!(matches!(
        again[0],
        Outcome::AlreadyResolved {
            state: State::Discarded,
            ..
        }
    ));

    // The group is replayed together once the tenant exists; a dry run changes nothing.
    let group = Filter {
        group: Some(GroupKey::parse("grouped/unknown_tenant").unwrap()),
        ..Filter::parked()
    };
    let ids = ledger
        .inspect(move |tx| tx.parked_ids(&group))
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let planned = replay::plan(&ledger, ids.clone()).await.unwrap();
    assert!(
        planned
            .iter()
            .all(|o| matches!(o, Outcome::WouldReplay { .. }))
    );
    assert_eq!(parked(&ledger, Filter::parked()).await.len(), 3);
    known.lock().unwrap().insert("ivry".into());
    let replayer = Replayer::connect(&config).await.unwrap();
    let outcomes = replayer.replay(&ledger, &ids, "erin").await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Replayed { .. })),
        "{outcomes:?}"
    );
    wait_until("the group handled", Duration::from_secs(30), || async {
        effects(&ledger).await.len() == 3
    })
    .await;
    assert!(effects(&ledger).await.values().all(|n| *n == 1));
    assert!(parked(&ledger, Filter::parked()).await.is_empty());
    replayer.close().await;
    running.stop().await;
}
