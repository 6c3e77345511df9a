//! PayFiP when things go wrong, and the titres path: `P5` retried through the delay tiers, a
//! gateway outage retried then parked with a clear reason, the classic URL whose unsigned
//! result must match the ledger, and `payfip.register` following payments and titres.
//! Real broker, the adapter's simulator, the daemon's routes over real HTTP.

#[path = "runtime_support/mod.rs"]
mod support;

#[path = "payfip_support/mod.rs"]
mod payfip_support;

use std::time::Duration;

use encaisse_payfip::Resultrans;
use encaisse_payfip::config::ReconciliationConfig;
use encaisse_payfip::sim::{OutageKind, SimulatorOptions};
use encaisse_pipelines::stages::payfip::store;
use encaisse_schemas::{
    Channel, CollectionPath, InvoiceRef, Money, PaymentReceived, PaymentReversed, PaymentSource,
    TitreSource,
};
use payfip_support::*;
use serde_json::json;

const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn p5_is_retried_through_the_delay_tiers_then_succeeds() {
    support::install_metrics();
    let retried_before = support::counter(
        "encaisse_stage_retried_total",
        &[
            ("stage", "payfip.confirm"),
            ("kind", "payfip_result_pending"),
        ],
    );
    let p5_before = support::counter(
        "encaisse_payfip_errors_total",
        &[
            ("operation", "recupererDetailPaiementSecurise"),
            ("code", "P5"),
        ],
    );
    let h = Harness::start(Setup {
        sim: losing_notifications(),
        ..Setup::default()
    })
    .await;
    h.issue(&invoice("vitry", "F-1", "45.60", CollectionPath::Regie))
        .await;
    let (pid, page) = h.pay_link("vitry", "F-1").await;
    let idop = idop_of(&page);
    // An early notification: the gateway does not know the result yet (P5).
    assert_eq!(
        h.post_form("/payfip/vitry/notification", &[("idop", &idop)])
            .await,
        200
    );
    support::wait_until("a P5 answer", EVENT_TIMEOUT, || async {
        h.sim.counters().soap_faults >= 1
    })
    .await;
    assert!(h.events_for(&pid).await.is_empty());
    // The family pays (the gateway's own notification is lost): the next try finds it.
    h.sim.pay(&idop, Resultrans::P).await.unwrap();
    let event = h.wait_event(&pid, EVENT_TIMEOUT).await;
    assert_eq!(event.routing_key, "payment.received");
    h.assert_exactly_one(&pid, Duration::from_secs(3)).await;
    assert!(h.sim.counters().recuperer_detail_paiement >= 2);
    assert!(
        support::counter(
            "encaisse_stage_retried_total",
            &[
                ("stage", "payfip.confirm"),
                ("kind", "payfip_result_pending")
            ],
        ) > retried_before
    );
    assert!(
        support::counter(
            "encaisse_payfip_errors_total",
            &[
                ("operation", "recupererDetailPaiementSecurise"),
                ("code", "P5"),
            ],
        ) > p5_before
    );
    h.stop().await;
}

#[tokio::test]
async fn a_gateway_outage_is_retried_then_parked_with_a_clear_reason() {
    let h = Harness::start(Setup {
        tiers: vec![1],
        max_attempts: 3,
        sim: SimulatorOptions {
            outage: OutageKind::Html,
            ..SimulatorOptions::default()
        },
        ..Setup::default()
    })
    .await;
    h.issue(&invoice("vitry", "F-1", "45.60", CollectionPath::Regie))
        .await;
    let (pid, page) = h.pay_link("vitry", "F-1").await;
    let idop = idop_of(&page);
    // From now on every SOAP call fails as an outage (HTTP 500, an HTML page).
    h.sim.update_options(|o| o.http_500_rate = 1.0);
    h.sim.pay(&idop, Resultrans::P).await.unwrap();

    let parked = format!("{}.payfip.confirm.parked", h.ns.prefix);
    support::wait_until("the parked command", EVENT_TIMEOUT, || async {
        h.client.count(&parked).await == 1
    })
    .await;
    let message = h.client.drain(&parked).await.remove(0);
    let header = |name| support::text_header(&message.properties, name).unwrap_or_default();
    assert_eq!(header("encaisse-error-class"), "transient");
    assert_eq!(header("encaisse-error-kind"), "payfip_unavailable");
    assert_eq!(header("encaisse-stage"), "payfip.confirm");
    let reason = header("encaisse-error");
    assert!(
        reason.contains(&idop) && reason.contains("HTTP 500"),
        "clear reason: {reason}"
    );
    assert_eq!(
        support::int_header(&message.properties, "encaisse-attempt"),
        Some(3)
    );
    assert!(h.sim.counters().injected_outages >= 3);
    assert!(h.events_for(&pid).await.is_empty());
    assert_eq!(h.operation(&idop).await.unwrap().status(), "pending");

    // Once the gateway is back, replaying the parked command (what `encaisse dlq replay`
    // does: same bytes, same id) gives the result.
    h.sim.update_options(|o| o.http_500_rate = 0.0);
    h.client
        .publish(
            "",
            &format!("{}.payfip.confirm", h.ns.prefix),
            message.properties.clone(),
            &message.data,
        )
        .await;
    let event = h.wait_event(&pid, EVENT_TIMEOUT).await;
    assert_eq!(event.routing_key, "payment.received");
    h.stop().await;
}

#[tokio::test]
async fn a_classic_result_is_only_a_claim_until_the_pes_retour_confirms_it() {
    let h = Harness::start(Setup::default()).await;
    let titre_invoice = invoice("vitry", "T-1", "12.00", CollectionPath::Titres);
    h.issue(&titre_invoice).await;
    let request = json!({"invoice": "T-1", "return_url": format!("{RETURN_PREFIX}retour")});

    // Not taken in charge yet: an acquit only says the file was read.
    let now = encaisse_pipelines_now();
    h.publish(&titre_accepted(
        &titre_invoice,
        345,
        TitreSource::Acquit,
        now,
    ))
    .await;
    let (status, _, body) = h
        .start_payment("vitry", Some(VITRY_TOKEN), request.clone())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("not_yet_payable"))
    );
    // Another titre taken in charge today: loaded into PayFiP tomorrow (J+1).
    let today_invoice = invoice("vitry", "T-2", "12.00", CollectionPath::Titres);
    h.issue(&today_invoice).await;
    h.publish(&titre_accepted(
        &today_invoice,
        346,
        TitreSource::Retour,
        now,
    ))
    .await;
    support::wait_until("the titre registered", EVENT_TIMEOUT, || async {
        let (s, _, b) = h
            .start_payment("vitry", Some(VITRY_TOKEN), json!({"invoice": "T-2"}))
            .await;
        s == 409 && b["payable_from"].is_string()
    })
    .await;
    // Ours was taken in charge two days ago.
    let earlier = now - chrono::Duration::days(2);
    h.publish(&titre_accepted(
        &titre_invoice,
        345,
        TitreSource::Retour,
        earlier,
    ))
    .await;
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    let created = loop {
        let (s, _, b) = h
            .start_payment("vitry", Some(VITRY_TOKEN), request.clone())
            .await;
        if s == 201 {
            break b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "titre never payable: {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(created["channel"], "classic");
    // Refdet from the configured template {exercice}{id_bord:6}{id_pce:8}.
    assert_eq!(created["payment_id"], "tipi:202600001200000345");
    let url = created["redirect_url"].as_str().unwrap();
    assert!(url.starts_with(&h.sim.classic_url()));
    assert!(url.contains(&format!("numcli={TITRES_NUMCLI}")) && url.contains("montant=1200"));
    assert!(url.contains("saisie=T") && url.contains("exer=2026"));

    // A forged result: right references, tampered amount. Refused, nothing published, and
    // the answer names the field without telling the amount, numcli or letter we expect.
    let forged = |montant: &str, refdet: &str| {
        vec![
            ("numcli", TITRES_NUMCLI.to_string()),
            ("exer", "2026".to_string()),
            ("refdet", refdet.to_string()),
            ("montant", montant.to_string()),
            ("mel", "claire.martin@example.org".to_string()),
            ("saisie", "T".to_string()),
            ("resultrans", "P".to_string()),
            ("numauto", "000000000001-sim".to_string()),
            ("dattrans", "02032026".to_string()),
            ("heurtrans", "1030".to_string()),
        ]
    };
    let post = |fields: Vec<(&'static str, String)>| {
        let h = &h;
        async move {
            let response = h
                .http
                .post(format!("{}/payfip/vitry/classic", h.base))
                .form(&fields)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let (status, body) = post(forged("100", "202600001200000345")).await;
    assert_eq!(status, 422);
    assert!(body.contains("`montant` does not match"), "{body}");
    assert!(!body.contains("12.00") && !body.contains("1200"), "{body}");
    let mut wrong_letter = forged("1200", "202600001200000345");
    wrong_letter[5].1 = "W".into();
    let (status, body) = post(wrong_letter).await;
    assert_eq!(status, 422);
    assert!(body.contains("`saisie` does not match"), "{body}");
    assert!(!body.contains("\"T\""), "{body}");
    let mut wrong_numcli = forged("1200", "202600001200000345");
    wrong_numcli[0].1 = "999999".into();
    let (status, body) = post(wrong_numcli).await;
    assert_eq!(
        (status, body.contains(TITRES_NUMCLI)),
        (422, false),
        "{body}"
    );
    assert_eq!(post(forged("1200", "202600001200000999")).await.0, 404);
    let tampered_query = format!(
        "{}/payfip/vitry/classic?numcli={TITRES_NUMCLI}&exer=2026&refdet=202600001200000345&montant=120&saisie=T&resultrans=P",
        h.base
    );
    assert_eq!(
        h.http
            .get(tampered_query)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        422
    );

    // The real payment: the gateway posts the result to urlcl, then sends the browser there.
    // Unsigned, it is only a claim: recorded and shown, never published as a payment.
    h.sim.set_auto_outcome(Some(Resultrans::P));
    let page = h.http.get(url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let key = titre_invoice.invoice.key();
    support::wait_until("the claim recorded", EVENT_TIMEOUT, || async {
        let facts = h.ledger.invoice_facts(&key).await.unwrap();
        facts.iter().any(|f| f.kind == "payfip_announced")
    })
    .await;
    assert_eq!(h.sim.counters().classic_results_delivered, 1);
    // The browser brings the same result again, then someone forges one with every field
    // right: still one claim, nothing published.
    let auto_post = page.text().await.unwrap();
    assert!(auto_post.contains("/payfip/vitry/classic"));
    assert_eq!(post(forged("1200", "202600001200000345")).await.0, 200);
    let mut refused = forged("1200", "202600001200000345");
    refused[6].1 = "R".into();
    assert_eq!(post(refused).await.0, 200, "a refusal after a claim");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        h.events_for("tipi:202600001200000345").await.is_empty(),
        "a classic result published a payment event"
    );
    let facts = h.ledger.invoice_facts(&key).await.unwrap();
    let announced: Vec<_> = facts
        .iter()
        .filter(|f| f.kind == "payfip_announced")
        .collect();
    assert_eq!(announced.len(), 1, "{facts:?}");
    assert!(announced[0].detail.contains("\"claim\":\"P\""));
    assert!(
        !facts.iter().any(|f| f.kind == "payfip_failed"),
        "{facts:?}"
    );
    // The family (or the Kiosque) asking again is told a payment is in progress.
    let (status, headers, body) = h
        .start_payment("vitry", Some(VITRY_TOKEN), request.clone())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("payment_in_progress")),
        "{body}"
    );
    assert!(body["announced_at"].is_string(), "{body}");
    assert!(headers.get("retry-after").is_some());

    // The PES Retour émargement (OrgEma 10, TIPI: channel CB) is the proof: it confirms the
    // claim, and the titre is paid.
    h.publish(&PaymentReceived {
        schema_version: 1,
        invoice: titre_invoice.invoice.clone(),
        payment_id: "helios:2026/01/12/345/1/10-20260303-1200-1".into(),
        amount: Money::parse("12.00").unwrap(),
        channel: Channel::Cb,
        source: PaymentSource::Helios,
        paid_at: paris("2026-03-03T00:00:00+01:00"),
        reference: "PES Retour OrgEma 10".into(),
        commission: None,
    })
    .await;
    support::wait_until("the claim confirmed", EVENT_TIMEOUT, || async {
        let facts = h.ledger.invoice_facts(&key).await.unwrap();
        facts.iter().any(|f| f.kind == "payfip_claim_confirmed")
    })
    .await;
    let (status, _, body) = h
        .start_payment("vitry", Some(VITRY_TOKEN), request.clone())
        .await;
    assert_eq!(
        (status, body["error"].as_str(), body["payment_id"].as_str()),
        (409, Some("already_paid"), Some("tipi:202600001200000345"))
    );
    h.stop().await;
}

/// A claim that no PES Retour confirms is reported to ops (metric + journal fact) once its
/// window ends, and stops blocking the titre after the hold, so that a forged result cannot
/// keep a family from paying.
#[tokio::test]
async fn a_classic_claim_never_confirmed_is_reported_and_frees_the_titre() {
    support::install_metrics();
    let unconfirmed_before = support::counter(
        "encaisse_payfip_claims_total",
        &[("tenant", "ivry"), ("outcome", "unconfirmed")],
    );
    let h = Harness::start(Setup {
        reconciliation: Some(ReconciliationConfig {
            interval_secs: 1,
            classic_claim_hold_secs: 2,
            classic_claim_confirm_secs: 3,
            ..ReconciliationConfig::default()
        }),
        ..Setup::default()
    })
    .await;
    let titre_invoice = invoice("ivry", "T-7", "30.00", CollectionPath::Titres);
    h.issue(&titre_invoice).await;
    let earlier = encaisse_pipelines_now() - chrono::Duration::days(2);
    h.publish(&titre_accepted(
        &titre_invoice,
        777,
        TitreSource::Retour,
        earlier,
    ))
    .await;
    let request = json!({"invoice": "T-7"});
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    let payment_id = loop {
        let (s, _, b) = h
            .start_payment("ivry", Some(IVRY_TOKEN), request.clone())
            .await;
        if s == 201 {
            break b["payment_id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "never payable: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let refdet = payment_id.trim_start_matches("tipi:").to_string();
    // A forged result with every field right (they are all in the URL the browser gets).
    let status = h
        .post_form(
            "/payfip/ivry/classic",
            &[
                ("numcli", TITRES_NUMCLI),
                ("exer", "2026"),
                ("refdet", &refdet),
                ("montant", "3000"),
                ("saisie", "T"),
                ("resultrans", "P"),
                ("numauto", "4242424242-FORGE"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let key = titre_invoice.invoice.key();
    support::wait_until("the claim reported", EVENT_TIMEOUT, || async {
        let facts = h.ledger.invoice_facts(&key).await.unwrap();
        facts.iter().any(|f| f.kind == "payfip_claim_unconfirmed")
    })
    .await;
    assert_eq!(
        support::counter(
            "encaisse_payfip_claims_total",
            &[("tenant", "ivry"), ("outcome", "unconfirmed")],
        ),
        unconfirmed_before + 1
    );
    // Reported once, however many sweeps run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let facts = h.ledger.invoice_facts(&key).await.unwrap();
    assert_eq!(
        facts
            .iter()
            .filter(|f| f.kind == "payfip_claim_unconfirmed")
            .count(),
        1
    );
    assert!(h.events_for(&payment_id).await.is_empty());
    // The hold is over: the family can pay.
    let (status, _, body) = h
        .start_payment("ivry", Some(IVRY_TOKEN), request.clone())
        .await;
    assert_eq!(status, 201, "{body}");
    h.stop().await;
}

/// With `[payfip] classic_result_networks` set, a result from another network is recorded
/// nowhere, while the browser still gets its page.
#[tokio::test]
async fn a_classic_result_from_outside_the_allowed_networks_is_not_recorded() {
    let h = Harness::start(Setup {
        classic_result_networks: vec!["192.0.2.0/24".into()],
        ..Setup::default()
    })
    .await;
    let titre_invoice = invoice("vitry", "T-8", "30.00", CollectionPath::Titres);
    h.issue(&titre_invoice).await;
    let earlier = encaisse_pipelines_now() - chrono::Duration::days(2);
    h.publish(&titre_accepted(
        &titre_invoice,
        888,
        TitreSource::Retour,
        earlier,
    ))
    .await;
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    let payment_id = loop {
        let (s, _, b) = h
            .start_payment("vitry", Some(VITRY_TOKEN), json!({"invoice": "T-8"}))
            .await;
        if s == 201 {
            break b["payment_id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "never payable: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let refdet = payment_id.trim_start_matches("tipi:").to_string();
    let status = h
        .post_form(
            "/payfip/vitry/classic",
            &[
                ("numcli", TITRES_NUMCLI),
                ("exer", "2026"),
                ("refdet", &refdet),
                ("montant", "3000"),
                ("saisie", "T"),
                ("resultrans", "P"),
            ],
        )
        .await;
    assert_eq!(status, 200, "the browser still gets its page");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let facts = h
        .ledger
        .invoice_facts(&titre_invoice.invoice.key())
        .await
        .unwrap();
    assert!(
        !facts.iter().any(|f| f.kind == "payfip_announced"),
        "{facts:?}"
    );
    assert!(h.events_for(&payment_id).await.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn register_follows_payments_and_reversals_from_any_channel() {
    let h = Harness::start(Setup::default()).await;
    let issued = invoice("vitry", "F-9", "30.00", CollectionPath::Regie);
    h.issue(&issued).await;
    let invoice_ref: InvoiceRef = issued.invoice.clone();
    let sighting = PaymentReceived {
        schema_version: 1,
        invoice: invoice_ref.clone(),
        payment_id: "helios:2026/01/12/7/1".into(),
        amount: Money::parse("30.00").unwrap(),
        channel: Channel::Guichet,
        source: PaymentSource::Helios,
        paid_at: paris("2026-02-10T00:00:00+01:00"),
        reference: "2026/01/12/7".into(),
        commission: None,
    };
    h.publish(&sighting).await;
    let request = json!({"invoice": "F-9"});
    // Watched in the ledger: asking the API before the payment is registered would start an
    // attempt, whose lock would then hide the reversal below.
    support::wait_until("the payment registered", EVENT_TIMEOUT, || async {
        let key = invoice_ref.clone();
        h.ledger
            .inspect(move |tx| store::coverage(tx, &key))
            .await
            .unwrap()
            .received
            .is_positive()
    })
    .await;
    let (status, _, body) = h
        .start_payment("vitry", Some(VITRY_TOKEN), request.clone())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("already_paid"))
    );
    h.publish(&PaymentReversed {
        schema_version: 1,
        invoice: invoice_ref,
        payment_id: sighting.payment_id.clone(),
        amount: sighting.amount,
        reversed_at: paris("2026-02-20T00:00:00+01:00"),
        reason: "émargement annulé".into(),
    })
    .await;
    support::wait_until("the reversal registered", EVENT_TIMEOUT, || async {
        let (s, _, _) = h
            .start_payment("vitry", Some(VITRY_TOKEN), request.clone())
            .await;
        s == 201
    })
    .await;
    // A corrected invoice (new content) replaces the amount.
    let mut corrected = issued.clone();
    corrected.total = Money::parse("25.00").unwrap();
    corrected.content_hash = "hash-F-9-corrected".into();
    h.issue(&corrected).await;
    let (status, _, body) = h
        .start_payment(
            "vitry",
            Some(VITRY_TOKEN),
            json!({"invoice": "F-9", "exercice": 2026}),
        )
        .await;
    // The earlier attempt is still the active one (lock), whatever the amount now.
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("payment_in_progress"))
    );
    h.stop().await;
}

/// Now, in Paris time.
fn encaisse_pipelines_now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .fixed_offset()
}
