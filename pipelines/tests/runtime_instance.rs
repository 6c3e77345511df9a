//! The claim on a prefix (`Runtime::claim_prefix`) against the real broker: another holder
//! stops the runtime with `PrefixHeld` naming it; a claim left by this very process's
//! previous connection (the broker has not noticed it is gone yet) is waited out.

mod runtime_support;

use std::time::Duration;

use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::instance::{self, ClaimError};
use encaisse_pipelines::runtime::{BrokerState, Runtime, RuntimeError};
use encaisse_pipelines::{Handled, stage_fn};
use runtime_support::*;

fn runtime(ns: &Namespace, dir: &tempfile::TempDir, holder: &str) -> Runtime {
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    ns.stage("idle", &[1]);
    ns.track(&instance::claim_queue(&ns.prefix));
    ns.track(&instance::holder_queue(&ns.prefix));
    let mut runtime = Runtime::new(ns.config(&broker_url(BROKER), &[1]), ledger);
    runtime.add_stage(stage_fn("idle", ["nothing.#"], |_| async {
        Ok(Handled::none())
    }));
    runtime.claim_prefix(holder);
    runtime
}

#[tokio::test]
async fn another_holder_stops_the_runtime_naming_it() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let other = connect(BROKER).await.unwrap();
    instance::claim(&other, &ns.prefix, "pid 1 on host elsewhere")
        .await
        .unwrap();
    // A second claim on the same prefix, from another connection, is refused.
    let second = connect(BROKER).await.unwrap();
    match instance::claim(&second, &ns.prefix, "pid 2 on host here").await {
        Err(ClaimError::Held { holder, .. }) => assert_eq!(holder, "pid 1 on host elsewhere"),
        other => panic!("expected Held, got {other:?}"),
    }

    let running = Running::start(runtime(&ns, &dir, "pid 3 on host here"));
    let result = tokio::time::timeout(Duration::from_secs(30), running.handle)
        .await
        .expect("the runtime stops at once")
        .unwrap();
    match result {
        Err(RuntimeError::PrefixHeld { prefix, holder }) => {
            assert_eq!(prefix, ns.prefix);
            assert_eq!(holder, "pid 1 on host elsewhere");
        }
        other => panic!("expected PrefixHeld, got {other:?}"),
    }
    assert_ne!(running.health.state(), BrokerState::Connected);
    let _ = other.close(200, "OK".into()).await;
}

#[tokio::test]
async fn a_claim_left_by_our_own_previous_connection_is_waited_out() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let holder = "pid 4 on host here, data directory /srv/x";
    let stale = connect(BROKER).await.unwrap();
    instance::claim(&stale, &ns.prefix, holder).await.unwrap();

    let running = Running::start(runtime(&ns, &dir, holder));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!running.handle.is_finished(), "it keeps retrying");
    assert_ne!(running.health.state(), BrokerState::Connected);
    // The broker drops the old connection: the claim is free, the runtime takes it.
    stale.close(200, "OK".into()).await.unwrap();
    wait_connected(&running.health).await;
    running.stop().await;
}
