//! A whole PayFiP set-up for the integration tests: the real RabbitMQ (own prefix), a ledger
//! in a temporary directory, the adapter's gateway simulator on an ephemeral port, the
//! `payfip.register` and `payfip.confirm` stages (and the reconciliation source when asked)
//! in a runtime, and the daemon's PayFiP routes served on an ephemeral port — everything
//! talks real HTTP and AMQP.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use encaisse_ledger::Ledger;
use encaisse_payfip::config::ReconciliationConfig;
use encaisse_payfip::sim::{SimulatorHandle, SimulatorOptions};
use encaisse_payfip::{GatewayConfig, PayfipMode, PayfipTenantConfig};
use encaisse_pipelines::runtime::Runtime;
use encaisse_pipelines::stages::payfip::store::{self, Operation};
use encaisse_pipelines::stages::payfip::{
    ApiToken, ConfirmStage, Gateway, PayfipSettings, Reconciler, RegisterStage, TenantPayfip,
    router,
};
use encaisse_schemas::tenant::{Budget, Regie};
use encaisse_schemas::{
    Address, Civilite, CollectionPath, Event, InvoiceIssued, InvoiceLine, InvoiceRef, Money, Payer,
    PaymentMode, SourceRef, TenantId, TitreAccepted, TitreRef, TitreSource,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::*;

pub const VITRY_TOKEN: &str = "vitry-kiosque-token";
pub const IVRY_TOKEN: &str = "ivry-kiosque-token";
pub const RETURN_PREFIX: &str = "https://kiosque.vitry.test/";
pub const REGIE_NUMCLI: &str = "090909";
pub const TITRES_NUMCLI: &str = "012345";

/// What a test may change.
pub struct Setup {
    pub tiers: Vec<u64>,
    pub max_attempts: u32,
    pub sim: SimulatorOptions,
    /// `None`: no reconciliation source.
    pub reconciliation: Option<ReconciliationConfig>,
    pub abandon_grace_secs: u64,
    pub result_wait_secs: u64,
    pub idop_lifetime_secs: u64,
    /// `[payfip] classic_result_networks`.
    pub classic_result_networks: Vec<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            tiers: vec![1, 2],
            max_attempts: 8,
            sim: SimulatorOptions::default(),
            reconciliation: None,
            abandon_grace_secs: 1,
            result_wait_secs: 7_200,
            idop_lifetime_secs: 900,
            classic_result_networks: Vec::new(),
        }
    }
}

/// A message seen on the `payment.#` sink.
#[derive(Debug, Clone)]
pub struct Seen {
    pub routing_key: String,
    pub message_id: String,
    pub body: Value,
}

impl Seen {
    pub fn payment_id(&self) -> &str {
        self.body["payment_id"].as_str().unwrap_or("")
    }
}

pub struct Harness {
    pub ns: Namespace,
    pub client: Client,
    pub ledger: Ledger,
    pub sim: SimulatorHandle,
    pub base: String,
    pub http: reqwest::Client,
    pub settings: Arc<PayfipSettings>,
    pub payments: String,
    pub commands: String,
    seen: Mutex<Vec<Seen>>,
    running: Option<Running>,
    server: CancellationToken,
    _dir: tempfile::TempDir,
    /// The PostgreSQL database of the ledger, dropped with the harness.
    _database: Option<encaisse_ledger::testing::Fixture>,
}

/// `PAYFIP_HARNESS_LEDGER=postgres` runs the set-up on a fresh PostgreSQL database (from
/// `ENCAISSE_TEST_POSTGRES_URL`) instead of an SQLite file: the same journeys, API,
/// notifications, stages and runtime, on the other backend.
const BACKEND_ENV: &str = "PAYFIP_HARNESS_LEDGER";

fn open_ledger(dir: &std::path::Path) -> (Ledger, Option<encaisse_ledger::testing::Fixture>) {
    if std::env::var(BACKEND_ENV).is_ok_and(|b| b == "postgres") {
        let fixture = encaisse_ledger::testing::Fixture::postgres("payfip harness")
            .expect("PAYFIP_HARNESS_LEDGER=postgres needs ENCAISSE_TEST_POSTGRES_URL");
        (fixture.ledger.clone(), Some(fixture))
    } else {
        (Ledger::open(dir.join("ledger.sqlite")).unwrap(), None)
    }
}

fn budget() -> Budget {
    Budget {
        code: "principal".into(),
        cod_bud: "01".into(),
        cod_col: "123".into(),
        siret: "21940081700018".into(),
        label: "Budget principal".into(),
        payfip_numcli: Some(TITRES_NUMCLI.into()),
    }
}

fn regie() -> Regie {
    Regie {
        code: "regie-periscolaire".into(),
        label: "Régie périscolaire".into(),
        payfip_numcli: Some(REGIE_NUMCLI.into()),
        ics: None,
        creditor_name: None,
        creditor_iban: None,
        creditor_bic: None,
    }
}

fn tenant(id: &str, token: &str, gateway_base: &str) -> TenantPayfip {
    TenantPayfip {
        id: TenantId::new(id).unwrap(),
        payfip: PayfipTenantConfig {
            enabled: true,
            mode: PayfipMode::Test,
            public_base_url: Some(gateway_base.to_string()),
            return_url_prefixes: vec![RETURN_PREFIX.into()],
            ..PayfipTenantConfig::default()
        },
        budgets: vec![budget()],
        regies: vec![regie()],
        api_token: ApiToken::new(token),
    }
}

impl Harness {
    pub async fn start(setup: Setup) -> Harness {
        let ns = Namespace::new();
        let dir = tempfile::tempdir().unwrap();
        let (ledger, database) = open_ledger(dir.path());
        let sim = SimulatorHandle::start(setup.sim).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let gateway = GatewayConfig {
            abandon_grace_secs: setup.abandon_grace_secs,
            result_wait_secs: setup.result_wait_secs,
            idop_lifetime_secs: setup.idop_lifetime_secs,
            reconciliation: setup.reconciliation.clone().unwrap_or_default(),
            classic_result_networks: setup.classic_result_networks.clone(),
            ..sim.gateway_config()
        };
        let settings = Arc::new(PayfipSettings::new(
            gateway.clone(),
            [
                tenant("vitry", VITRY_TOKEN, &base),
                tenant("ivry", IVRY_TOKEN, &base),
            ],
        ));
        let client = Client::new().await;
        let payments = client.sink(&ns, "payments", "payment.#").await;
        let commands = client.sink(&ns, "commands", "payfip.confirm").await;
        ns.stage("payfip.register", &setup.tiers);
        ns.stage("payfip.confirm", &setup.tiers);
        let mut config = ns.config(&broker_url(BROKER), &setup.tiers);
        config.retry.max_attempts = setup.max_attempts;
        let mut runtime = Runtime::new(config, ledger.clone());
        let gw = Gateway::new(&gateway).unwrap();
        runtime.add_stage(Arc::new(RegisterStage::new(settings.clone())));
        runtime.add_stage(Arc::new(ConfirmStage::new(
            settings.clone(),
            ledger.clone(),
            gw.clone(),
        )));
        if setup.reconciliation.is_some() {
            runtime.add_source(Arc::new(Reconciler::new(settings.clone())));
        }
        let app = router(settings.clone(), ledger.clone(), runtime.publisher(), gw);
        let server = CancellationToken::new();
        let stop = server.clone();
        tokio::spawn(async move {
            // With the peer address, as the daemon's server gives it to the routes.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        let running = Running::start(runtime);
        wait_connected(&running.health).await;
        Harness {
            ns,
            client,
            ledger,
            sim,
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            settings,
            payments,
            commands,
            seen: Mutex::new(Vec::new()),
            running: Some(running),
            server,
            _dir: dir,
            _database: database,
        }
    }

    pub async fn stop(mut self) {
        self.server.cancel();
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Publishes a canonical event as a producer would.
    pub async fn publish<E: Event>(&self, event: &E) {
        self.client
            .publish_event(&self.ns.prefix, event, &event.message_id())
            .await;
    }

    /// Publishes an invoice and waits until `payfip.register` has it.
    pub async fn issue(&self, invoice: &InvoiceIssued) {
        self.publish(invoice).await;
        let (tenant, number, hash) = (
            invoice.invoice.tenant.clone(),
            invoice.invoice.number.clone(),
            invoice.content_hash.clone(),
        );
        wait_until("the invoice registered", Duration::from_secs(60), || {
            let (tenant, number, hash) = (tenant.clone(), number.clone(), hash.clone());
            async move {
                self.ledger
                    .inspect(move |tx| store::invoices_by_number(tx, &tenant, &number))
                    .await
                    .unwrap()
                    .iter()
                    .any(|i| i.content_hash == hash)
            }
        })
        .await;
    }

    /// `POST /api/v1/tenants/{tenant}/payments`.
    pub async fn start_payment(
        &self,
        tenant: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .http
            .post(format!("{}/api/v1/tenants/{tenant}/payments", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, json)
    }

    /// Starts a payment that must succeed; returns `(payment_id, redirect_url)`.
    pub async fn pay_link(&self, tenant: &str, number: &str) -> (String, String) {
        let token = if tenant == "ivry" {
            IVRY_TOKEN
        } else {
            VITRY_TOKEN
        };
        let (status, _, body) = self
            .start_payment(
                tenant,
                Some(token),
                serde_json::json!({
                    "invoice": number,
                    "return_url": format!("{RETURN_PREFIX}retour"),
                }),
            )
            .await;
        assert_eq!(status, 201, "payment start refused: {body}");
        (
            body["payment_id"].as_str().unwrap().to_string(),
            body["redirect_url"].as_str().unwrap().to_string(),
        )
    }

    /// A form POST to one of our endpoints; returns the status.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Takes what arrived on the `payment.#` sink into the collected list.
    async fn collect(&self) {
        for d in self.client.drain(&self.payments).await {
            let seen = Seen {
                routing_key: d.routing_key.to_string(),
                message_id: d
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&d.data).unwrap(),
            };
            self.seen.lock().unwrap().push(seen);
        }
    }

    /// Every result event seen so far for `payment_id` (copies included).
    pub async fn events_for(&self, payment_id: &str) -> Vec<Seen> {
        self.collect().await;
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.payment_id() == payment_id)
            .cloned()
            .collect()
    }

    /// Waits for the first result event of `payment_id`.
    pub async fn wait_event(&self, payment_id: &str, timeout: Duration) -> Seen {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(first) = self.events_for(payment_id).await.into_iter().next() {
                return first;
            }
            assert!(
                Instant::now() < deadline,
                "no result event for {payment_id} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits a while, then checks that exactly one message (one copy) carries the result of
    /// `payment_id`.
    pub async fn assert_exactly_one(&self, payment_id: &str, settle: Duration) -> Seen {
        tokio::time::sleep(settle).await;
        let all = self.events_for(payment_id).await;
        assert_eq!(
            all.len(),
            1,
            "result events for {payment_id}: {:#?}",
            all.iter().map(|s| &s.body).collect::<Vec<_>>()
        );
        all[0].clone()
    }

    pub async fn operation(&self, idop: &str) -> Option<Operation> {
        let idop = idop.to_string();
        self.ledger
            .inspect(move |tx| store::operation_by_idop(tx, &idop))
            .await
            .unwrap()
    }

    /// `payfip.confirm` commands published so far (a copy of each, on the test's own sink).
    pub async fn commands_published(&self) -> u32 {
        self.client.count(&self.commands).await
    }
}

/// A gateway whose notifications never arrive.
pub fn losing_notifications() -> SimulatorOptions {
    SimulatorOptions {
        notification: encaisse_payfip::sim::NotificationOptions {
            drop_rate: 1.0,
            ..Default::default()
        },
        ..SimulatorOptions::default()
    }
}

/// The idOp in a payment page URL.
pub fn idop_of(redirect_url: &str) -> String {
    let url = url::Url::parse(redirect_url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "idop")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

pub fn paris(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap()
}

/// A valid `invoice.issued` of `tenant` for `amount`, régie or titres.
pub fn invoice(
    tenant: &str,
    number: &str,
    amount: &str,
    collection: CollectionPath,
) -> InvoiceIssued {
    let total = Money::parse(amount).unwrap();
    InvoiceIssued {
        schema_version: 1,
        invoice: InvoiceRef {
            tenant: TenantId::new(tenant).unwrap(),
            exercice: 2026,
            number: number.into(),
        },
        source: SourceRef {
            application: "polyfac".into(),
            run_id: "run-1".into(),
            file: None,
            lines: None,
        },
        content_hash: format!("hash-{number}-{amount}"),
        issued_on: d(2026, 1, 31),
        period: 1,
        activity: "PERISCOLAIRE".into(),
        budget: "principal".into(),
        collection,
        regie: matches!(collection, CollectionPath::Regie).then(|| "regie-periscolaire".into()),
        family_code: "FAM0001".into(),
        payer: Payer {
            civilite: Civilite::Mme,
            last_name: "Martin".into(),
            first_name: "Claire".into(),
            address: Address {
                complement: None,
                street: "1 rue de la Paix".into(),
                locality: None,
                postal_code: "94400".into(),
                city: "Vitry-sur-Seine".into(),
            },
            email: Some("claire.martin@example.org".into()),
        },
        lines: vec![InvoiceLine {
            number: 1,
            product: "CANTINE".into(),
            cod_prod_loc: "CANT".into(),
            nature: "7067".into(),
            fonction: None,
            label: "Restauration scolaire".into(),
            quantity: Money::parse("1").unwrap().amount(),
            unit_price: total,
            amount: total,
        }],
        total,
        due_date: d(2026, 2, 28),
        payment_mode: PaymentMode::Tipi,
        mandate: None,
        online_payable: true,
    }
}

/// The `titre.accepted` of a PES Retour (prise en charge) or an acquit, dated `at`.
pub fn titre_accepted(
    invoice: &InvoiceIssued,
    id_pce: u32,
    source: TitreSource,
    at: DateTime<FixedOffset>,
) -> TitreAccepted {
    TitreAccepted {
        schema_version: 1,
        invoice: invoice.invoice.clone(),
        titre: TitreRef {
            budget: "principal".into(),
            exercice: 2026,
            bordereau_type: "01".into(),
            id_bord: 12,
            id_pce,
        },
        source,
        accepted_at: at,
        file: "PES_Retour_test.xml".into(),
    }
}
