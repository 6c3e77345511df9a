//! The client against the simulator: every outcome end to end, the idOp life cycle, faults,
//! outages, timeouts, notification delivery options, the WSDL, and the classic URL.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use encaisse_payfip::classic::{ClassicExpectation, ClassicRequest, ClassicResult, verify};
use encaisse_payfip::client::{detail_envelope, read_create_response, read_detail_response};
use encaisse_payfip::commission::{FeeChannel, commission, default_tariffs};
use encaisse_payfip::config::{GatewayConfig, PayfipMode};
use encaisse_payfip::error::{FaultKind, PayfipError, RetryClass};
use encaisse_payfip::fields::{Email, Exer, IdOp, NumCli, Objet, Refdet, Saisie};
use encaisse_payfip::result::{OperationStatus, interpret};
use encaisse_payfip::sim::{
    NotifyOrder, OutageKind, ReturnMethod, SimClient, SimDebt, SimulatorHandle, SimulatorOptions,
};
use encaisse_payfip::soap::{Operation, request_envelope};
use encaisse_payfip::{CreatePayment, PayfipClient, Resultrans};
use encaisse_schemas::{Channel, InvoiceRef, Money, PayfipFailure, TenantId};
use url::Url;

struct World {
    sim: SimulatorHandle,
    receiver: Receiver,
    client: PayfipClient,
    browser: reqwest::Client,
}

async fn world(options: SimulatorOptions) -> World {
    let sim = SimulatorHandle::start(options).await.unwrap();
    let receiver = Receiver::start().await;
    let client = PayfipClient::new(&sim.gateway_config()).unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    World {
        sim,
        receiver,
        client,
        browser,
    }
}

impl World {
    fn request(&self, amount: &str) -> CreatePayment {
        CreatePayment {
            numcli: NumCli::new("090909").unwrap(),
            exer: Exer::current(Utc::now()),
            refdet: Refdet::generate(Utc::now()),
            amount: Money::parse(amount).unwrap(),
            mel: Email::new("famille.martin@example.org").unwrap(),
            objet: Objet::for_invoice("Facture", "F2026-000123"),
            saisie: Saisie::new("T").unwrap(),
            urlnotif: Url::parse(&format!("{}/notif", self.receiver.base)).unwrap(),
            urlredirect: Url::parse(&format!("{}/return", self.receiver.base)).unwrap(),
        }
    }

    async fn create(&self, amount: &str) -> IdOp {
        self.client
            .create_payment(&self.request(amount))
            .await
            .unwrap()
    }

    async fn open_page(&self, idop: &IdOp) -> (u16, String) {
        let url = self.client.payment_page(idop);
        let response = self.browser.get(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// `GET url` as a browser: the page's text.
    async fn page(&self, url: impl reqwest::IntoUrl) -> String {
        self.browser
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Submits the page's form; returns the status, the `Location` header and the body.
    async fn submit(&self, idop: &IdOp, outcome: &str) -> (u16, Option<String>, String) {
        let response = self
            .browser
            .post(self.sim.payment_page_url())
            .form(&[("idop", idop.as_str()), ("resultrans", outcome)])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, location, response.text().await.unwrap())
    }

    /// A raw SOAP call: status and body.
    async fn raw(&self, body: String) -> (u16, Vec<u8>) {
        let response = self
            .browser
            .post(self.sim.soap_url())
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", "\"\"")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }
}

/// Polls `condition` for up to 5 seconds.
async fn wait_until(condition: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

fn invoice() -> InvoiceRef {
    InvoiceRef {
        tenant: TenantId::new("vitry").unwrap(),
        exercice: 2026,
        number: "F2026-000123".into(),
    }
}

fn valid_creer_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("exer", "2026"),
        ("mel", "john.doe@example.com"),
        ("montant", "1000"),
        ("numcli", "090909"),
        ("refdet", "ABCDEFGH"),
        ("saisie", "T"),
        ("urlnotif", "https://notif.example.com/"),
        ("urlredirect", "https://redirect.example.com/"),
    ]
}

fn with(
    fields: &[(&'static str, &'static str)],
    name: &str,
    value: &'static str,
) -> Vec<(&'static str, &'static str)> {
    fields
        .iter()
        .map(|(k, v)| if *k == name { (*k, value) } else { (*k, *v) })
        .collect()
}

#[tokio::test]
async fn every_outcome_end_to_end() {
    let w = world(SimulatorOptions::default()).await;
    let policy = GatewayConfig::default().result_policy();
    for outcome in Resultrans::ALL {
        let created_at = Utc::now();
        let idop = w.create("45.60").await;
        assert_eq!(idop.as_str().len(), 36, "a UUID like the recorded ones");

        // Before the payment: P5, transient, "waiting".
        let pending = w.client.payment_detail(&idop).await.unwrap_err();
        assert_eq!(pending.fault_code(), Some("P5"));
        assert_eq!(pending.class(), RetryClass::Transient);
        assert!(matches!(
            interpret(Err(pending), created_at, Utc::now(), policy),
            Ok(OperationStatus::Waiting { .. })
        ));

        let (status, page) = w.open_page(&idop).await;
        assert_eq!(status, 200);
        assert!(page.contains(idop.as_str()));
        for r in Resultrans::ALL {
            assert!(page.contains(&format!("value=\"{r}\"")), "{r} offered");
        }

        let (status, location, _) = w.submit(&idop, outcome.as_str()).await;
        assert_eq!(status, 303);
        assert_eq!(
            location.as_deref(),
            Some(format!("{}/return?idop={idop}", w.receiver.base).as_str())
        );
        // Notification before the redirect (default): delivered exactly once.
        assert_eq!(w.receiver.notifications_for(idop.as_str()), 1);

        let detail = w.client.payment_detail(&idop).await.unwrap();
        assert_eq!(detail.resultrans, outcome);
        assert_eq!(detail.idop, idop);
        assert_eq!(detail.amount, Money::parse("45.60").unwrap());
        assert_eq!(detail.numcli, "090909");
        assert_eq!(detail.saisie, "T");
        assert_eq!(detail.objet.as_deref(), Some("Facture F2026 000123"));
        assert_eq!(
            detail.mel.as_ref().map(|m| m.as_str()),
            Some("famille.martin@example.org")
        );
        assert_eq!(detail.numauto.is_some(), outcome.is_paid(), "{outcome}");
        let at = detail.transaction_at.expect("dattrans/heurtrans").to_utc();
        // heurtrans has minute precision.
        assert!((Utc::now() - at).num_seconds().abs() < 120, "{at}");

        let now = Utc::now().fixed_offset();
        match outcome {
            Resultrans::P | Resultrans::V => {
                let channel = FeeChannel::of(outcome).unwrap();
                let fee = commission(&default_tariffs(), detail.amount, channel, at.date_naive())
                    .unwrap();
                // 2023 tiers: card 0.05 + 0.25 % × 45.60 = 0.164 → 0.16; SEPA debit free.
                let expected = if outcome == Resultrans::P {
                    "0.16"
                } else {
                    "0.00"
                };
                assert_eq!(fee, Money::parse(expected).unwrap());
                let event = detail.payment_received(invoice(), Some(fee), now).unwrap();
                assert_eq!(event.payment_id, format!("payfip:{idop}"));
                let channel = if outcome == Resultrans::P {
                    Channel::Cb
                } else {
                    Channel::PrelevementUnique
                };
                assert_eq!(event.channel, channel);
                assert!(detail.payment_failed(invoice(), now).is_none());
            }
            Resultrans::R | Resultrans::Z => {
                let failed = detail.payment_failed(invoice(), now).unwrap();
                let expected = if outcome == Resultrans::R {
                    PayfipFailure::R
                } else {
                    PayfipFailure::Z
                };
                assert_eq!(failed.result, expected);
                assert!(matches!(
                    interpret(Ok(detail), created_at, Utc::now(), policy),
                    Ok(OperationStatus::Final(_))
                ));
            }
            Resultrans::A => {
                // An abandon is not final during the first 2 minutes.
                assert!(matches!(
                    interpret(Ok(detail.clone()), created_at, Utc::now(), policy),
                    Ok(OperationStatus::Waiting { .. })
                ));
                assert!(matches!(
                    interpret(
                        Ok(detail),
                        created_at,
                        Utc::now() + chrono::Duration::minutes(3),
                        policy
                    ),
                    Ok(OperationStatus::Final(_))
                ));
            }
        }
    }
    let c = w.sim.counters();
    assert_eq!(c.creer, 5);
    assert_eq!(c.completions, 5);
    assert_eq!(c.notifications_delivered, 5);
    assert_eq!(c.recuperer_detail_paiement, 10);
}

#[tokio::test]
async fn idop_life_cycle_p1_p3_p4_and_purge() {
    let w = world(SimulatorOptions::default()).await;

    // Never issued: P1, "unknown operation" (a forged notification changes nothing).
    let forged = IdOp::new("4b0eb5b0-b335-11e2-9219-001fe256bdfe").unwrap();
    let err = w.client.payment_detail(&forged).await.unwrap_err();
    assert_eq!(err.fault_code(), Some("P1"));
    assert_eq!(err.class(), RetryClass::UnknownOperation);
    let (_, page) = w.open_page(&forged).await;
    assert!(page.contains("data-code=\"P1\""));

    // Used: P3 on the page.
    let paid = w.create("10.00").await;
    w.sim.pay(paid.as_str(), Resultrans::P).await.unwrap();
    let (_, page) = w.open_page(&paid).await;
    assert!(page.contains("data-code=\"P3\""), "{page}");
    let (_, _, body) = w.submit(&paid, "R").await;
    assert!(
        body.contains("data-code=\"P3\""),
        "a second payment is refused"
    );
    assert_eq!(
        w.client.payment_detail(&paid).await.unwrap().resultrans,
        Resultrans::P
    );

    // Abandoned, then paid with the same idOp while it lives.
    let retried = w.create("10.00").await;
    w.sim.pay(retried.as_str(), Resultrans::A).await.unwrap();
    let (_, page) = w.open_page(&retried).await;
    assert!(
        !page.contains("data-code="),
        "the page opens again after an abandon"
    );
    w.sim.pay(retried.as_str(), Resultrans::P).await.unwrap();
    assert_eq!(
        w.client.payment_detail(&retried).await.unwrap().resultrans,
        Resultrans::P
    );

    // Older than 15 minutes: P4 on the page; the result query still says P5.
    let stale = w.create("10.00").await;
    w.sim.advance_clock(chrono::Duration::minutes(16));
    let (_, page) = w.open_page(&stale).await;
    assert!(page.contains("data-code=\"P4\""), "{page}");
    assert!(w.sim.pay(stale.as_str(), Resultrans::P).await.is_err());
    assert_eq!(
        w.client
            .payment_detail(&stale)
            .await
            .unwrap_err()
            .fault_code(),
        Some("P5")
    );

    // Purged by the nightly job: P1. Completed operations are kept.
    w.sim.advance_clock(chrono::Duration::hours(25));
    assert_eq!(
        w.client.payment_detail(&stale).await.unwrap_err().class(),
        RetryClass::UnknownOperation
    );
    assert!(w.sim.operation(stale.as_str()).is_none());
    assert!(w.client.payment_detail(&paid).await.is_ok());
}

#[tokio::test]
async fn validation_faults_have_the_recorded_shape() {
    let w = world(SimulatorOptions::default()).await;
    let base = valid_creer_fields();
    let creer =
        |fields: &[(&str, &str)]| request_envelope(Operation::CreerPaiementSecurise, fields);

    let (status, body) = w.raw(creer(&base)).await;
    assert_eq!(status, 200);
    assert!(read_create_response(status, &body, 1 << 16).is_ok());

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (with(&base, "refdet", "ABCD"), "R3"),
        (with(&base, "mel", "john.doeexample.com"), "A2"),
        // As recorded: a bad e-mail wins over an absurd amount.
        (
            with(
                &with(&base, "mel", "john.doeexample.com"),
                "montant",
                "9990000001",
            ),
            "A2",
        ),
        (with(&base, "montant", "99"), "M3"),
        (with(&base, "montant", "10000000"), "M5"),
        (with(&base, "montant", "10.00"), "M1"),
        (with(&base, "saisie", "Q"), "S1"),
        (with(&base, "numcli", "9090"), "T1"),
        (with(&base, "urlnotif", "notif"), "N1"),
        (with(&base, "urlredirect", "ftp://x"), "D1"),
        (
            base.iter().copied().filter(|(k, _)| *k != "mel").collect(),
            "A1",
        ),
    ];
    for (fields, code) in cases {
        let (status, body) = w.raw(creer(&fields)).await;
        assert_eq!(status, 500, "{code}");
        let err = read_create_response(status, &body, 1 << 16).unwrap_err();
        assert_eq!(err.fault_code(), Some(code));
        assert_eq!(err.class(), RetryClass::Permanent, "{code}");
        let PayfipError::Fault { fault, .. } = err else {
            unreachable!()
        };
        assert_eq!(fault.kind, FaultKind::Fonctionnelle);
        assert_eq!(fault.faultcode, "S:Server");
        assert_eq!(fault.severite, Some(2));
        assert_valid_payload(
            "fault-detail.xml",
            &element(
                std::str::from_utf8(&body).unwrap(),
                "ns2:FonctionnelleErreur",
            ),
        );
    }
    let (_, body) = w
        .raw(creer(&with(&base, "mel", "john.doeexample.com")))
        .await;
    assert!(String::from_utf8_lossy(&body).contains("<libelle>Adresse mél incorrecte. </libelle>"));

    // Element names are case-sensitive: `<idop>` is not `<idOp>` → P1.
    let lower = request_envelope(Operation::RecupererDetailPaiementSecurise, &[("idop", "x")]);
    let (status, body) = w.raw(lower).await;
    let idop = IdOp::new("x").unwrap();
    let err = read_detail_response(status, &body, 1 << 16, &idop).unwrap_err();
    assert_eq!(err.fault_code(), Some("P1"));

    // Unknown operation and garbage: a client fault.
    let (status, body) = w.raw("<not-soap/>".into()).await;
    assert_eq!(status, 500);
    let err = read_create_response(status, &body, 1 << 16).unwrap_err();
    assert_eq!(err.class(), RetryClass::Permanent);

    // Fault status is an option (not recorded): 200 works the same for the client.
    w.sim.update_options(|o| o.fault_http_status = 200);
    let (status, body) = w.raw(creer(&with(&base, "refdet", "ABCD"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        read_create_response(status, &body, 1 << 16)
            .unwrap_err()
            .fault_code(),
        Some("R3")
    );
    assert_eq!(w.sim.counters().creer, 14);
}

#[tokio::test]
async fn outages_and_timeouts_are_transient() {
    let w = world(SimulatorOptions::default()).await;

    w.sim.fail_next_soap_calls(1);
    let err = w
        .client
        .create_payment(&w.request("10.00"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PayfipError::HttpStatus { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(w.client.create_payment(&w.request("10.00")).await.is_ok());

    w.sim.update_options(|o| {
        o.http_500_rate = 1.0;
        o.outage = OutageKind::TechFault;
    });
    let err = w
        .client
        .create_payment(&w.request("10.00"))
        .await
        .unwrap_err();
    let PayfipError::Fault { fault, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.kind, FaultKind::TechIndisponibilite);
    assert!(err.is_transient());

    // Half the calls fail with a seeded rate: some of each, reproducibly.
    w.sim.update_options(|o| {
        o.http_500_rate = 0.5;
        o.outage = OutageKind::Html;
    });
    let mut failures = 0;
    for _ in 0..40 {
        if w.client.create_payment(&w.request("10.00")).await.is_err() {
            failures += 1;
        }
    }
    assert!((8..=32).contains(&failures), "{failures}");

    // Latency beyond the client's timeout.
    w.sim.update_options(|o| {
        o.http_500_rate = 0.0;
        o.latency_ms = 2_000;
    });
    let impatient = PayfipClient::new(&GatewayConfig {
        request_timeout_ms: 150,
        ..w.sim.gateway_config()
    })
    .unwrap();
    let started = Instant::now();
    let err = impatient
        .create_payment(&w.request("10.00"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PayfipError::Timeout {
                timeout_ms: 150,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(err.kind(), "payfip_timeout");

    // Nobody listening.
    let config = w.sim.gateway_config();
    let request = w.request("10.00");
    w.sim.shutdown().await.unwrap();
    let gone = PayfipClient::new(&config).unwrap();
    let err = gone.create_payment(&request).await.unwrap_err();
    assert!(matches!(err, PayfipError::Network { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn notifications_duplicated_dropped_delayed_and_failed() {
    let w = world(SimulatorOptions::default()).await;

    // Duplicated.
    w.sim.update_options(|o| o.notification.copies = 2);
    let idop = w.create("10.00").await;
    w.submit(&idop, "P").await;
    assert_eq!(w.receiver.notifications_for(idop.as_str()), 2);

    // Dropped: the result is still there for the reconciliation job.
    w.sim.update_options(|o| {
        o.notification.copies = 1;
        o.notification.drop_rate = 1.0;
    });
    let idop = w.create("10.00").await;
    w.submit(&idop, "V").await;
    assert_eq!(w.receiver.notifications_for(idop.as_str()), 0);
    assert_eq!(w.sim.counters().notifications_dropped, 1);
    assert_eq!(
        w.client.payment_detail(&idop).await.unwrap().resultrans,
        Resultrans::V
    );

    // Delayed, after the redirect.
    w.sim.update_options(|o| {
        o.notification.drop_rate = 0.0;
        o.notification.delay_ms = 500;
        o.notification.order = NotifyOrder::AfterRedirect;
    });
    let idop = w.create("10.00").await;
    let (status, _, _) = w.submit(&idop, "P").await;
    assert_eq!(status, 303);
    assert_eq!(w.receiver.notifications_for(idop.as_str()), 0, "not yet");
    assert!(
        wait_until(|| w.receiver.notifications_for(idop.as_str()) == 1).await,
        "delivered later"
    );
    assert_eq!(w.receiver.notifications_for(idop.as_str()), 1);

    // Delayed, before the redirect: the browser waits for it.
    w.sim
        .update_options(|o| o.notification.order = NotifyOrder::BeforeRedirect);
    let idop = w.create("10.00").await;
    let started = Instant::now();
    w.submit(&idop, "R").await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(w.receiver.notifications_for(idop.as_str()), 1);

    // A receiver that is down: each attempt counted as failed.
    w.sim.update_options(|o| {
        o.notification.delay_ms = 0;
        o.notification.retries = 2;
        o.notification.retry_delay_ms = 10;
    });
    let mut request = w.request("10.00");
    request.urlnotif = Url::parse("http://127.0.0.1:9/notif").unwrap();
    let idop = w.client.create_payment(&request).await.unwrap();
    let before = w.sim.counters().notifications_failed;
    let (status, _, _) = w.submit(&idop, "P").await;
    assert_eq!(status, 303, "the browser is redirected anyway");
    assert_eq!(w.sim.counters().notifications_failed - before, 3);

    // Browser return by POST.
    w.sim
        .update_options(|o| o.redirect_method = ReturnMethod::Post);
    let idop = w.create("10.00").await;
    let (status, _, body) = w.submit(&idop, "A").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("action=\"{}/return\"", w.receiver.base)));
    assert!(body.contains(&format!("name=\"idop\" value=\"{idop}\"")));
}

#[tokio::test]
async fn automatic_outcome_and_client_labels() {
    let w = world(SimulatorOptions {
        clients: vec![SimClient {
            numcli: "090909".into(),
            libelle_n1: "REGIE PERISCOLAIRE".into(),
            libelle_n2: "VILLE DE VITRY".into(),
            libelle_n3: String::new(),
        }],
        accept_unknown_clients: false,
        ..SimulatorOptions::default()
    })
    .await;
    let detail = w
        .client
        .client_detail(&NumCli::new("090909").unwrap())
        .await
        .unwrap();
    assert_eq!(detail.libelle_n1, "REGIE PERISCOLAIRE");
    assert_eq!(detail.libelle_n3, "");
    let err = w
        .client
        .client_detail(&NumCli::new("123456").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.fault_code(), Some("T2"));
    assert_eq!(err.class(), RetryClass::Permanent);

    w.sim.set_auto_outcome(Some(Resultrans::Z));
    let idop = w.create("10.00").await;
    let url = w.client.payment_page(&idop);
    let response = w.browser.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(w.receiver.notifications_for(idop.as_str()), 1);
    assert_eq!(
        w.client.payment_detail(&idop).await.unwrap().resultrans,
        Resultrans::Z
    );
}

#[tokio::test]
async fn answers_validate_against_the_xsd_and_contract_is_served() {
    let w = world(SimulatorOptions::default()).await;
    let idop = w.create("10.00").await;
    w.sim.pay(idop.as_str(), Resultrans::P).await.unwrap();
    let (_, body) = w.raw(detail_envelope(&idop)).await;
    let body = String::from_utf8(body).unwrap();
    assert_valid_payload(
        "detail-response.xml",
        &element(&body, "ns2:recupererDetailPaiementSecuriseResponse"),
    );
    let (_, body) = w
        .raw(request_envelope(
            Operation::CreerPaiementSecurise,
            &valid_creer_fields(),
        ))
        .await;
    assert_valid_payload(
        "creer-response.xml",
        &element(
            &String::from_utf8(body).unwrap(),
            "ns2:creerPaiementSecuriseResponse",
        ),
    );
    let (_, body) = w
        .raw(request_envelope(
            Operation::RecupererDetailClient,
            &[("numCli", "090909")],
        ))
        .await;
    assert_valid_payload(
        "client-response.xml",
        &element(
            &String::from_utf8(body).unwrap(),
            "ns2:recupererDetailClientResponse",
        ),
    );

    // The WSDL, its address rewritten to the simulator (as a JAX-WS endpoint does).
    let contract = encaisse_xml::specs_or_skip!(
        "payfip",
        "the served PayFiP contract compared with the official WSDL and XSDs"
    );
    let original = std::fs::read_to_string(contract.join("PaiementSecuriseService.wsdl")).unwrap();
    let served = w.page(format!("{}?wsdl", w.sim.soap_url())).await;
    assert_eq!(
        served,
        original.replace(
            "https://www.payfip.gouv.fr/tpa/services/securite",
            &w.sim.soap_url()
        )
    );
    for name in [
        "PaiementSecuriseService_schema1.xsd",
        "PaiementSecuriseService_schema2.xsd",
        "PaiementSecuriseService_schema3.xsd",
    ] {
        let served = w
            .browser
            .get(format!("{}/tpa/services/{name}", w.sim.base_url()))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            served.to_vec(),
            std::fs::read(contract.join(name)).unwrap(),
            "{name}"
        );
    }
    let status = w
        .browser
        .get(format!("{}/tpa/services/SOURCE.md", w.sim.base_url()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404, "only the contract's files are served");
    assert_eq!(w.sim.counters().wsdl_served, 1);

    w.sim.update_options(|o| o.rewrite_wsdl_address = false);
    let served = w.page(format!("{}?WSDL", w.sim.soap_url())).await;
    assert_eq!(served, original);
}

#[tokio::test]
async fn classic_flow_titres() {
    let w = world(SimulatorOptions {
        debts: vec![SimDebt {
            numcli: "012345".into(),
            exer: "2026".into(),
            refdet: "130000000000123456".into(),
            montant_cents: 2154,
        }],
        classic_require_known_debt: true,
        ..SimulatorOptions::default()
    })
    .await;
    let config = w.sim.gateway_config();
    let base = Url::parse(&config.classic_url).unwrap();
    let request = |amount: &str, saisie: &str| ClassicRequest {
        numcli: NumCli::new("012345").unwrap(),
        exer: Some(Exer::new(2026).unwrap()),
        refdet: Refdet::new("130000000000123456").unwrap(),
        amount: Money::parse(amount).unwrap(),
        mel: Email::new("parent@example.com").unwrap(),
        objet: None,
        urlcl: Some(Url::parse(&format!("{}/classic", w.receiver.base)).unwrap()),
        saisie: Saisie::new(saisie).unwrap(),
    };
    let expectation = |mode| ClassicExpectation {
        numcli: NumCli::new("012345").unwrap(),
        exer: Some(Exer::new(2026).unwrap()),
        refdet: Refdet::new("130000000000123456").unwrap(),
        amount: Money::parse("21.54").unwrap(),
        mode,
    };

    // A partial payment of the debt is refused by the gateway.
    let url = request("10.00", "A")
        .url(&base, config.classic_bounds())
        .unwrap();
    let page = w.page(url).await;
    assert!(page.contains("data-code=\"MONTANT_INCORRECT\""), "{page}");

    // The full amount: the form, then the result posted to urlcl (server) and the browser.
    let url = request("21.54", "A")
        .url(&base, config.classic_bounds())
        .unwrap();
    let page = w.page(url.clone()).await;
    let session = page
        .split("name=\"session\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let response = w
        .browser
        .post(w.sim.classic_url())
        .form(&[("session", session.as_str()), ("resultrans", "P")])
        .send()
        .await
        .unwrap();
    let browser_page = response.text().await.unwrap();
    assert!(browser_page.contains(&format!("action=\"{}/classic\"", w.receiver.base)));
    let received = w.receiver.received().classic;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, "POST");
    let result = ClassicResult::parse(&received[0].1).unwrap();
    assert_eq!(result.resultrans, Resultrans::P);
    assert!(result.numauto.is_some());
    assert!(result.transaction_at.is_some());
    let codes = GatewayConfig::default().classic_saisie;
    assert_eq!(
        verify(&result, &expectation(PayfipMode::Production), &codes),
        Ok(Resultrans::P)
    );
    // The session is single use; the debt is now paid and refused a second time.
    let again = w
        .browser
        .post(w.sim.classic_url())
        .form(&[("session", session.as_str()), ("resultrans", "P")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 400);
    let page = w.page(url).await;
    assert!(page.contains("data-code=\"DEJA_PAYE\""), "{page}");

    // Test mode looks no debt up; a test result is refused for a tenant in production.
    w.sim.update_options(|o| {
        o.auto_outcome = Some(Resultrans::P.into());
        o.classic_result_method = ReturnMethod::Get;
        o.classic_server_calls = 2;
    });
    let url = request("21.54", "T")
        .url(&base, config.classic_bounds())
        .unwrap();
    let response = w.browser.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 303, "browser return by GET");
    let received = w.receiver.received().classic;
    assert_eq!(received.len(), 3, "two more server-side deliveries");
    assert!(received[1..].iter().all(|(m, _)| m == "GET"));
    let result = ClassicResult::parse(&received[2].1).unwrap();
    assert_eq!(result.saisie, "T");
    assert!(verify(&result, &expectation(PayfipMode::Production), &codes).is_err());
    assert_eq!(
        verify(&result, &expectation(PayfipMode::Test), &codes),
        Ok(Resultrans::P)
    );

    // Unknown debts are refused outside test mode.
    let mut unknown = request("21.54", "A");
    unknown.refdet = Refdet::new("130000000000999999").unwrap();
    let page = w
        .page(unknown.url(&base, config.classic_bounds()).unwrap())
        .await;
    assert!(page.contains("data-code=\"DETTE_INCONNUE\""));
}

#[tokio::test]
async fn bad_options_are_refused() {
    let err = SimulatorHandle::start(SimulatorOptions {
        http_500_rate: 1.5,
        ..SimulatorOptions::default()
    })
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("http_500_rate"));
    let err = SimulatorHandle::start(SimulatorOptions {
        contract_dir: "/nonexistent".into(),
        serve_contract: true,
        ..SimulatorOptions::default()
    })
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("PaiementSecuriseService.wsdl"));
}
