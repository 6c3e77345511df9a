//! The whole online-payment journey of a régie invoice, against the real broker, the
//! adapter's gateway simulator and the daemon's PayFiP routes (real HTTP): start a payment,
//! pay with each outcome, notifications duplicated, delayed, dropped (found by the
//! reconciliation job), forged; exactly one result event per operation, with the commission
//! of the dated tariff.

#[path = "runtime_support/mod.rs"]
mod support;

#[path = "payfip_support/mod.rs"]
mod payfip_support;

use std::time::Duration;

use encaisse_payfip::Resultrans;
use encaisse_payfip::config::ReconciliationConfig;
use encaisse_payfip::sim::{NotificationOptions, NotifyOrder, SimulatorOptions};
use encaisse_schemas::CollectionPath;
use payfip_support::*;
use serde_json::json;

const EVENT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to keep watching for an unwanted second event.
const SETTLE: Duration = Duration::from_secs(4);

#[tokio::test]
async fn every_outcome_gives_exactly_one_result_event_with_its_commission() {
    let h = Harness::start(Setup::default()).await;
    let cases = [
        ("F-P", "45.60", Resultrans::P),
        ("F-V", "12.00", Resultrans::V),
        ("F-R", "30.00", Resultrans::R),
        ("F-Z", "30.00", Resultrans::Z),
        ("F-A", "30.00", Resultrans::A),
    ];
    for (number, amount, _) in cases {
        h.issue(&invoice("vitry", number, amount, CollectionPath::Regie))
            .await;
    }

    // P through the browser: payment page (automatic outcome) → our return endpoint →
    // the Kiosque return URL with the outcome known so far.
    let (pid_p, page) = h.pay_link("vitry", "F-P").await;
    let idop = idop_of(&page);
    assert_eq!(pid_p, format!("payfip:{idop}"));
    h.sim.set_auto_outcome(Some(Resultrans::P));
    let response = h.http.get(&page).send().await.unwrap();
    h.sim.set_auto_outcome(None);
    assert_eq!(response.status().as_u16(), 303);
    let back = response.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        back,
        format!("{}/payfip/vitry/return?idop={idop}", h.base),
        "the gateway returns the browser to our endpoint"
    );
    let response = h.http.get(&back).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    let kiosque = response.headers()["location"].to_str().unwrap().to_string();
    assert!(kiosque.starts_with(&format!("{RETURN_PREFIX}retour?status=")));
    assert!(kiosque.contains(&format!("payment_id=payfip%3A{idop}")));
    assert!(kiosque.ends_with("&invoice=F-P"));

    // The others straight through the gateway (which notifies us).
    let mut ids = vec![(pid_p.clone(), Resultrans::P)];
    for (number, _, outcome) in &cases[1..] {
        let (pid, page) = h.pay_link("vitry", number).await;
        h.sim.pay(&idop_of(&page), *outcome).await.unwrap();
        ids.push((pid, *outcome));
    }

    for (pid, _) in &ids {
        h.wait_event(pid, EVENT_TIMEOUT).await;
    }
    for (pid, outcome) in &ids {
        let event = h.assert_exactly_one(pid, Duration::ZERO).await;
        let body = &event.body;
        match outcome {
            Resultrans::P | Resultrans::V => {
                assert_eq!(event.routing_key, "payment.received", "{body}");
                assert_eq!(body["source"], "payfip");
                // numauto (the simulator's `<12 digits>-sim`) then the idOp.
                let reference = body["reference"].as_str().unwrap();
                let idop = pid.strip_prefix("payfip:").unwrap();
                let (numauto, rest) = reference.split_once(' ').unwrap();
                assert_eq!(rest, idop, "{body}");
                assert!(numauto.ends_with("-sim") && numauto.len() == 16, "{body}");
                let paid_at = body["paid_at"].as_str().unwrap();
                assert!(
                    paid_at.ends_with("+01:00") || paid_at.ends_with("+02:00"),
                    "Europe/Paris time: {paid_at}"
                );
            }
            _ => {
                assert_eq!(event.routing_key, "payment.failed", "{body}");
                assert_eq!(body["result"], outcome.as_str());
            }
        }
    }
    let received = |pid: &str| {
        let pid = pid.to_string();
        let h = &h;
        async move { h.events_for(&pid).await.remove(0).body }
    };
    // Spec §5 worked example (2023 tariff, euro-zone card): 0.05 + 0.25 % × 45.60 = 0.164.
    let p = received(&ids[0].0).await;
    assert_eq!(p["channel"], "CB");
    assert_eq!(p["amount"], "45.60");
    assert_eq!(p["commission"], "0.16");
    // The SEPA one-off debit is free for the commune.
    let v = received(&ids[1].0).await;
    assert_eq!(v["channel"], "PRELEVEMENT_UNIQUE");
    assert_eq!(v["commission"], "0.00");

    // The ledger knows the outcome; the browser now goes back with it.
    let op = h.operation(&idop).await.unwrap();
    assert_eq!(op.status(), "paid");
    assert_eq!(op.commission.map(|m| m.to_string()), Some("0.16".into()));
    let response = h.http.get(&back).send().await.unwrap();
    let kiosque = response.headers()["location"].to_str().unwrap().to_string();
    assert!(kiosque.contains("status=paid"), "{kiosque}");

    // A paid invoice is refused; a refused one may be paid again at once.
    let (status, _, body) = h
        .start_payment("vitry", Some(VITRY_TOKEN), json!({"invoice": "F-P"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("already_paid"))
    );
    assert_eq!(body["payment_id"], pid_p.as_str());
    let (status, _, body) = h
        .start_payment("vitry", Some(VITRY_TOKEN), json!({"invoice": "F-R"}))
        .await;
    assert_eq!(status, 201, "{body}");
    h.stop().await;
}

#[tokio::test]
async fn one_open_payment_per_invoice_and_clear_refusals() {
    let h = Harness::start(Setup::default()).await;
    h.issue(&invoice("vitry", "F-1", "20.00", CollectionPath::Regie))
        .await;
    let mut not_online = invoice("vitry", "F-2", "20.00", CollectionPath::Regie);
    not_online.online_payable = false;
    h.issue(&not_online).await;
    let too_small = invoice("vitry", "F-3", "0.50", CollectionPath::Regie);
    h.issue(&too_small).await;

    let (pid, page) = h.pay_link("vitry", "F-1").await;
    // A second attempt while the first may still complete: refused, with the way back to
    // the running one.
    let (status, headers, body) = h
        .start_payment("vitry", Some(VITRY_TOKEN), json!({"invoice": "F-1"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "payment_in_progress");
    assert_eq!(body["payment_id"], pid.as_str());
    assert_eq!(body["redirect_url"], page.as_str());
    assert!(headers.contains_key("retry-after"));
    assert_eq!(h.sim.counters().creer, 1, "no second gateway operation");

    let refusals = [
        (json!({"invoice": "NOPE"}), 404, "unknown_invoice"),
        (json!({"invoice": "F-2"}), 422, "not_payable_online"),
        (json!({"invoice": "F-3"}), 422, "amount_out_of_bounds"),
        (
            json!({"invoice": "F-1", "return_url": "https://evil.example/"}),
            422,
            "return_url_not_allowed",
        ),
        (
            json!({"invoice": "F-1", "email": "not-an-address"}),
            422,
            "invalid_email",
        ),
        (
            json!({"invoice": "F-1", "amount": "1.00"}),
            400,
            "invalid_request",
        ),
        (json!({"number": "F-1"}), 400, "invalid_request"),
    ];
    for (request, expected_status, code) in refusals {
        let (status, _, body) = h
            .start_payment("vitry", Some(VITRY_TOKEN), request.clone())
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (expected_status, Some(code)),
            "{request} → {body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing in the answers or the errors repeats the e-mail address.
    let (_, _, body) = h
        .start_payment(
            "vitry",
            Some(VITRY_TOKEN),
            json!({"invoice": "F-1", "email": "x"}),
        )
        .await;
    assert!(!body.to_string().contains("claire.martin"));
    h.stop().await;
}

/// Eight requests for one invoice at once (a family double-clicking, two tabs, two daemons
/// behind the load balancer): one attempt is created at the gateway, the others are told a
/// payment is in progress. On a PostgreSQL ledger (`PAYFIP_HARNESS_LEDGER=postgres`) the
/// reservations really overlap and the invoice's row lock decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_one_invoice_start_one_payment() {
    let h = Harness::start(Setup::default()).await;
    h.issue(&invoice("vitry", "F-9", "20.00", CollectionPath::Regie))
        .await;
    let answers = futures::future::join_all(
        (0..8).map(|_| h.start_payment("vitry", Some(VITRY_TOKEN), json!({"invoice": "F-9"}))),
    )
    .await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    for (status, _, body) in &answers {
        if *status != 201 {
            assert_eq!(
                (*status, body["error"].as_str()),
                (409, Some("payment_in_progress")),
                "{body}"
            );
        }
    }
    assert_eq!(h.sim.counters().creer, 1, "one gateway operation");
    h.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_bearer_token_is_401() {
    let h = Harness::start(Setup::default()).await;
    h.issue(&invoice("vitry", "F-1", "20.00", CollectionPath::Regie))
        .await;
    let request = json!({"invoice": "F-1"});
    for (tenant, token) in [
        ("vitry", None),
        ("vitry", Some("wrong")),
        ("vitry", Some(IVRY_TOKEN)),
        ("vitry", Some("")),
        ("nowhere", Some(VITRY_TOKEN)),
    ] {
        let (status, headers, body) = h.start_payment(tenant, token, request.clone()).await;
        assert_eq!(status, 401, "{tenant} {token:?}: {body}");
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(
            headers["www-authenticate"].to_str().unwrap(),
            "Bearer realm=\"encaisse\""
        );
    }
    // A scheme other than Bearer is not accepted either.
    let status = h
        .http
        .post(format!("{}/api/v1/tenants/vitry/payments", h.base))
        .header("authorization", format!("Basic {VITRY_TOKEN}"))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
    assert_eq!(h.sim.counters().creer, 0);
    let (status, _, _) = h.start_payment("vitry", Some(VITRY_TOKEN), request).await;
    assert_eq!(status, 201);
    h.stop().await;
}

#[tokio::test]
async fn duplicated_and_delayed_notifications_give_one_event() {
    let h = Harness::start(Setup {
        sim: SimulatorOptions {
            notification: NotificationOptions {
                copies: 3,
                delay_ms: 2_500,
                order: NotifyOrder::AfterRedirect,
                ..NotificationOptions::default()
            },
            ..SimulatorOptions::default()
        },
        ..Setup::default()
    })
    .await;
    h.issue(&invoice("vitry", "F-1", "45.60", CollectionPath::Regie))
        .await;
    h.issue(&invoice("vitry", "F-2", "30.00", CollectionPath::Regie))
        .await;
    let (pid1, page1) = h.pay_link("vitry", "F-1").await;
    let (pid2, page2) = h.pay_link("vitry", "F-2").await;
    h.sim.pay(&idop_of(&page1), Resultrans::P).await.unwrap();
    h.sim.pay(&idop_of(&page2), Resultrans::R).await.unwrap();
    // The notifications leave after the redirect, 2.5 s apart: nothing can be known before.
    assert!(h.events_for(&pid1).await.is_empty());

    h.wait_event(&pid1, EVENT_TIMEOUT).await;
    h.wait_event(&pid2, EVENT_TIMEOUT).await;
    super_wait_notifications(&h, 6).await;
    let paid = h.assert_exactly_one(&pid1, SETTLE).await;
    assert_eq!(paid.routing_key, "payment.received");
    assert_eq!(paid.body["commission"], "0.16");
    let refused = h.assert_exactly_one(&pid2, Duration::ZERO).await;
    assert_eq!(refused.routing_key, "payment.failed");
    // One command per operation: the later copies were answered without publishing.
    assert_eq!(h.commands_published().await, 2);
    assert_eq!(h.sim.counters().recuperer_detail_paiement, 2);
    h.stop().await;
}

/// Waits until the simulator delivered `n` notifications.
async fn super_wait_notifications(h: &Harness, n: u64) {
    support::wait_until("the notifications", EVENT_TIMEOUT, || async {
        h.sim.counters().notifications_delivered >= n
    })
    .await;
    assert_eq!(h.sim.counters().notifications_failed, 0);
}

#[tokio::test]
async fn dropped_notification_is_found_by_the_reconciliation_job() {
    let h = Harness::start(Setup {
        sim: losing_notifications(),
        reconciliation: Some(ReconciliationConfig {
            interval_secs: 1,
            min_age_secs: 2,
            requery_after_secs: 30,
            ..ReconciliationConfig::default()
        }),
        ..Setup::default()
    })
    .await;
    h.issue(&invoice("vitry", "F-1", "45.60", CollectionPath::Regie))
        .await;
    let (pid, page) = h.pay_link("vitry", "F-1").await;
    let idop = idop_of(&page);
    h.sim.pay(&idop, Resultrans::P).await.unwrap();
    assert_eq!(h.sim.counters().notifications_dropped, 1);
    let event = h.wait_event(&pid, EVENT_TIMEOUT).await;
    assert_eq!(event.body["commission"], "0.16");
    h.assert_exactly_one(&pid, SETTLE).await;
    let op = h.operation(&idop).await.unwrap();
    assert!(op.notified_at.is_none(), "no notification ever came");
    assert!(op.requested_at.is_some(), "the job asked");
    assert_eq!(op.status(), "paid");
    // Resolved operations are not asked about again.
    let asked = h.sim.counters().recuperer_detail_paiement;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.sim.counters().recuperer_detail_paiement, asked);
    h.stop().await;
}

#[tokio::test]
async fn an_operation_never_paid_expires_after_the_gateway_window() {
    let h = Harness::start(Setup {
        reconciliation: Some(ReconciliationConfig {
            interval_secs: 1,
            min_age_secs: 0,
            // Longer than the delay tiers (1 s, 2 s): a question being retried by the
            // confirmation stage is not asked a second time.
            requery_after_secs: 5,
            ..ReconciliationConfig::default()
        }),
        idop_lifetime_secs: 2,
        result_wait_secs: 4,
        ..Setup::default()
    })
    .await;
    h.issue(&invoice("vitry", "F-1", "45.60", CollectionPath::Regie))
        .await;
    let (pid, page) = h.pay_link("vitry", "F-1").await;
    // Never paid: the gateway answers P5 until the window is over, then it is expired.
    let event = h.wait_event(&pid, EVENT_TIMEOUT).await;
    assert_eq!(event.routing_key, "payment.failed");
    assert_eq!(event.body["result"], "Expired");
    assert!(h.sim.counters().recuperer_detail_paiement >= 2, "P5 first");
    h.assert_exactly_one(&pid, SETTLE).await;
    assert_eq!(
        h.operation(&idop_of(&page)).await.unwrap().status(),
        "expired"
    );
    // The invoice may be paid again.
    let (status, _, body) = h
        .start_payment("vitry", Some(VITRY_TOKEN), json!({"invoice": "F-1"}))
        .await;
    assert_eq!(status, 201, "{body}");
    h.stop().await;
}

#[tokio::test]
async fn forged_notifications_change_nothing() {
    let h = Harness::start(Setup::default()).await;
    h.issue(&invoice("vitry", "F-1", "45.60", CollectionPath::Regie))
        .await;
    h.issue(&invoice("ivry", "I-1", "45.60", CollectionPath::Regie))
        .await;
    let (_, vitry_page) = h.pay_link("vitry", "F-1").await;
    let (_, ivry_page) = h.pay_link("ivry", "I-1").await;
    let ivry_idop = idop_of(&ivry_page);
    let before = h.sim.counters();

    // An idOp nobody issued, and another tenant's idOp, posted to vitry's endpoint: the
    // answer is the same 200 a real notification gets, and nothing happens.
    let unknown = "0b4e7c1a-5f2d-4c3b-9a8e-7d6f5e4c3b2a";
    assert_eq!(
        h.post_form("/payfip/vitry/notification", &[("idop", unknown)])
            .await,
        200
    );
    assert_eq!(
        h.post_form("/payfip/vitry/notification", &[("idop", &ivry_idop)])
            .await,
        200
    );
    // Malformed, and a tenant we do not serve.
    assert_eq!(
        h.post_form("/payfip/vitry/notification", &[("x", "y")])
            .await,
        400
    );
    assert_eq!(
        h.post_form("/payfip/nowhere/notification", &[("idop", unknown)])
            .await,
        404
    );
    // The browser return of an unknown or foreign idOp goes nowhere.
    let response = h
        .http
        .get(format!("{}/payfip/vitry/return?idop={ivry_idop}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.headers().get("location").is_none());

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.commands_published().await,
        0,
        "no payfip.confirm published"
    );
    assert_eq!(
        h.sim.counters().recuperer_detail_paiement,
        before.recuperer_detail_paiement
    );
    for idop in [ivry_idop.as_str(), idop_of(&vitry_page).as_str()] {
        let op = h.operation(idop).await.unwrap();
        assert!(op.notified_at.is_none() && op.requested_at.is_none());
        assert_eq!(op.status(), "pending");
    }
    // The genuine notification of ivry's payment, on ivry's endpoint, does work.
    h.sim.pay(&ivry_idop, Resultrans::P).await.unwrap();
    h.wait_event(&format!("payfip:{ivry_idop}"), EVENT_TIMEOUT)
        .await;
    h.stop().await;
}
