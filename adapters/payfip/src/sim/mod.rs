//! A local PayFiP gateway, faithful to the WSDL and to spec §8, with fault injection.
//!
//! Same paths as the DGFiP (only the host changes):
//! * `POST /tpa/services/securite` — the SOAP service (three operations, recorded fault
//!   shapes and codes); `GET /tpa/services/securite?wsdl` serves the WSDL, and its XSDs are
//!   served by their relative names (`/tpa/services/PaiementSecuriseService_schema1.xsd`);
//! * `GET /tpa/paiementws.web?idop=…` — the payment page: a form choosing the outcome
//!   (P, V, R, Z, A) that posts to `POST /tpa/paiementws.web` (`idop`, `resultrans`), which
//!   completes the payment, POSTs `idop=…` to `urlnotif` and redirects the browser to
//!   `urlredirect?idop=…`;
//! * `GET /tpa/paiement.web?…` — the classic URL: a form choosing the outcome, then the
//!   result (echoed parameters + `resultrans`, `numauto`, `dattrans`, `heurtrans`) sent to
//!   `urlcl`.
//!
//! Behaviours the spec marks unverified are options ([`SimulatorOptions`]): HTTP status of
//! faults, idOp lifetime, validation codes other than A2/R3/P1/P5, notification delivery.
//! Tests drive it through a [`SimulatorHandle`] (ephemeral port, outcomes, counters, clock);
//! the CLI calls [`serve`]. E-mail addresses are never logged in clear.

mod classic;
mod html;
mod page;
mod soap;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::result::Resultrans;

pub use state::{Counters, SimOperation};

/// How the simulator behaves. Every field has a default; [`SimulatorOptions::default`] is a
/// well-behaved gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorOptions {
    /// Folder holding `PaiementSecuriseService.wsdl` and its XSDs (default: the shared specs,
    /// `<specs>/payfip`).
    #[serde(default = "default_contract_dir")]
    pub contract_dir: PathBuf,
    /// Rewrite the WSDL's `soap:address` to this simulator's URL when serving it, as a JAX-WS
    /// endpoint does, so that a WSDL-driven client (zeep) calls the simulator.
    #[serde(default = "default_true")]
    pub rewrite_wsdl_address: bool,
    /// Serve the WSDL and its XSDs under `/tpa/services/` (read from `contract_dir` at
    /// start). `false` runs without the contract files — the SOAP service itself needs
    /// none — and answers 404 for them: `encaisse demo` on a machine without the shared
    /// specs. Default: whether `contract_dir`'s default holds the WSDL (the official
    /// contract is not in the repository: docs/schemas.md).
    #[serde(default = "default_serve_contract")]
    pub serve_contract: bool,
    /// Public base URL of the simulator (`http://payfip-sim:8091`), used in the served WSDL;
    /// default: taken from the request's `Host` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// HTTP status of SOAP faults (500 inferred, not recorded \[U\]).
    #[serde(default = "default_fault_http_status")]
    pub fault_http_status: u16,
    /// How long an idOp can open the payment page, in seconds (15 min \[U\]); later: `P4`.
    #[serde(default = "crate::config::default_idop_lifetime_secs")]
    pub idop_lifetime_secs: u64,
    /// An idOp without a result is purged after this many seconds (the nightly job, ~1 day);
    /// afterwards its result query answers `P1`.
    #[serde(default = "default_purge_after_secs")]
    pub purge_after_secs: u64,
    /// Smallest amount accepted, in cents (below: `M3` \[U\]).
    #[serde(default = "crate::config::default_min_amount_cents")]
    pub min_amount_cents: i64,
    /// Largest web-service amount, in cents (above: `M5` \[U\]).
    #[serde(default = "crate::config::default_max_amount_cents")]
    pub max_amount_cents: i64,
    /// Largest classic-URL amount, in cents.
    #[serde(default = "crate::config::default_classic_max_amount_cents")]
    pub classic_max_amount_cents: i64,
    /// `saisie` letters the web service accepts (others: `S1` \[U\]).
    #[serde(default = "default_ws_saisie")]
    pub ws_saisie: Vec<String>,
    /// `saisie` letters the classic URL accepts.
    #[serde(default = "default_classic_saisie")]
    pub classic_saisie: Vec<String>,
    /// Client numbers the gateway knows, with their labels.
    #[serde(default)]
    pub clients: Vec<SimClient>,
    /// Accept any well-formed numcli (default). When false, an unknown numcli gets `T2` \[U\].
    /// `recupererDetailClient` on an unknown numcli answers generic labels when true.
    #[serde(default = "default_true")]
    pub accept_unknown_clients: bool,
    /// Titres debts known to the gateway, for the classic URL.
    #[serde(default)]
    pub debts: Vec<SimDebt>,
    /// Classic URL outside test mode: refuse debts not in `debts`, with another amount, or
    /// already paid (spec §4.5). In test mode no debt is looked up (spec §2.4).
    #[serde(default)]
    pub classic_require_known_debt: bool,
    /// Echo `exer` on two digits (`20` for `2019`) as the recorded fixture shows \[U\].
    #[serde(default)]
    pub truncate_exer_echo: bool,
    /// After an `A` (abandoned) result, the page may be opened again while the idOp lives
    /// (eopayment: "idop is still active") \[U\].
    #[serde(default = "default_true")]
    pub allow_retry_after_abandon: bool,
    /// Outcome chosen at once when the payment page is opened (no form): for headless tests
    /// and benchmarks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_outcome: Option<SimOutcome>,
    /// Delay added to every SOAP answer, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Random extra delay up to this many milliseconds.
    #[serde(default)]
    pub latency_jitter_ms: u64,
    /// Share of SOAP calls (0 to 1) answered as an outage instead.
    #[serde(default)]
    pub http_500_rate: f64,
    /// What an outage looks like.
    #[serde(default)]
    pub outage: OutageKind,
    /// Seed of the simulator's pseudo-random choices (rates, jitter), for reproducible runs.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Server-to-server notification (`urlnotif`) behaviour.
    #[serde(default)]
    pub notification: NotificationOptions,
    /// How the browser returns to `urlredirect`: `get` (303 to `?idop=`) or `post` (a form).
    #[serde(default)]
    pub redirect_method: ReturnMethod,
    /// How the classic result is sent to `urlcl` server-side: `post` (form) or `get` (query).
    #[serde(default = "default_post")]
    pub classic_result_method: ReturnMethod,
    /// Server-side calls of `urlcl` per classic result (0, 1, 2 …) \[U\].
    #[serde(default = "default_one")]
    pub classic_server_calls: u32,
    /// Also send the browser to `urlcl` with the result (a second delivery) \[U\].
    #[serde(default = "default_true")]
    pub classic_browser_return: bool,
}

/// A client number known to the simulated gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimClient {
    pub numcli: String,
    #[serde(default)]
    pub libelle_n1: String,
    #[serde(default)]
    pub libelle_n2: String,
    #[serde(default)]
    pub libelle_n3: String,
}

/// A titres debt the simulated gateway knows (loaded "from Hélios").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDebt {
    pub numcli: String,
    pub exer: String,
    pub refdet: String,
    /// Amount in cents.
    pub montant_cents: i64,
}

/// A payment outcome, as chosen on the page (`resultrans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SimOutcome {
    P,
    V,
    R,
    Z,
    A,
}

impl From<SimOutcome> for Resultrans {
    fn from(o: SimOutcome) -> Self {
        match o {
            SimOutcome::P => Resultrans::P,
            SimOutcome::V => Resultrans::V,
            SimOutcome::R => Resultrans::R,
            SimOutcome::Z => Resultrans::Z,
            SimOutcome::A => Resultrans::A,
        }
    }
}

impl From<Resultrans> for SimOutcome {
    fn from(r: Resultrans) -> Self {
        match r {
            Resultrans::P => SimOutcome::P,
            Resultrans::V => SimOutcome::V,
            Resultrans::R => SimOutcome::R,
            Resultrans::Z => SimOutcome::Z,
            Resultrans::A => SimOutcome::A,
        }
    }
}

/// What a simulated outage answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageKind {
    /// HTTP 500 with an HTML error page (a proxy or application server error).
    #[default]
    Html,
    /// HTTP 500 with a `TechIndisponibiliteErreur` SOAP fault.
    TechFault,
}

/// GET or POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnMethod {
    #[default]
    Get,
    Post,
}

/// When the notification leaves relative to the browser redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOrder {
    /// Notification delivered (or failed) before the browser gets its redirect.
    #[default]
    BeforeRedirect,
    /// Redirect first; the notification leaves in the background afterwards.
    AfterRedirect,
}

/// Notification (`POST urlnotif`, form `idop=…`) behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationOptions {
    /// Share of payments (0 to 1) whose notification is never sent.
    #[serde(default)]
    pub drop_rate: f64,
    /// Delay before each notification, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Copies sent per payment (2 = one duplicate).
    #[serde(default = "default_one")]
    pub copies: u32,
    /// Before or after the browser redirect.
    #[serde(default)]
    pub order: NotifyOrder,
    /// Time allowed for the receiver to answer, in milliseconds.
    #[serde(default = "default_notify_timeout_ms")]
    pub timeout_ms: u64,
    /// Further attempts after a failed delivery (the real retry policy is unknown \[U\]).
    #[serde(default)]
    pub retries: u32,
    /// Pause between attempts, in milliseconds.
    #[serde(default = "default_retry_delay_ms")]
    pub retry_delay_ms: u64,
}

impl Default for NotificationOptions {
    fn default() -> Self {
        NotificationOptions {
            drop_rate: 0.0,
            delay_ms: 0,
            copies: 1,
            order: NotifyOrder::default(),
            timeout_ms: default_notify_timeout_ms(),
            retries: 0,
            retry_delay_ms: default_retry_delay_ms(),
        }
    }
}

fn default_contract_dir() -> PathBuf {
    encaisse_xml::specs::specs_dir().join("payfip")
}
fn default_serve_contract() -> bool {
    default_contract_dir().join(state::WSDL_FILE).is_file()
}
fn default_true() -> bool {
    true
}
fn default_one() -> u32 {
    1
}
fn default_post() -> ReturnMethod {
    ReturnMethod::Post
}
fn default_fault_http_status() -> u16 {
    500
}
fn default_purge_after_secs() -> u64 {
    86_400
}
fn default_ws_saisie() -> Vec<String> {
    vec!["T".into(), "X".into(), "W".into()]
}
fn default_classic_saisie() -> Vec<String> {
    vec!["T".into(), "X".into(), "A".into(), "M".into()]
}
fn default_seed() -> u64 {
    1
}
fn default_notify_timeout_ms() -> u64 {
    5_000
}
fn default_retry_delay_ms() -> u64 {
    1_000
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        SimulatorOptions {
            contract_dir: default_contract_dir(),
            rewrite_wsdl_address: true,
            serve_contract: default_serve_contract(),
            public_url: None,
            fault_http_status: default_fault_http_status(),
            idop_lifetime_secs: crate::config::default_idop_lifetime_secs(),
            purge_after_secs: default_purge_after_secs(),
            min_amount_cents: crate::config::default_min_amount_cents(),
            max_amount_cents: crate::config::default_max_amount_cents(),
            classic_max_amount_cents: crate::config::default_classic_max_amount_cents(),
            ws_saisie: default_ws_saisie(),
            classic_saisie: default_classic_saisie(),
            clients: Vec::new(),
            accept_unknown_clients: true,
            debts: Vec::new(),
            classic_require_known_debt: false,
            truncate_exer_echo: false,
            allow_retry_after_abandon: true,
            auto_outcome: None,
            latency_ms: 0,
            latency_jitter_ms: 0,
            http_500_rate: 0.0,
            outage: OutageKind::default(),
            seed: default_seed(),
            notification: NotificationOptions::default(),
            redirect_method: ReturnMethod::default(),
            classic_result_method: ReturnMethod::Post,
            classic_server_calls: 1,
            classic_browser_return: true,
        }
    }
}

impl SimulatorOptions {
    /// Problems with the options, one message each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, rate) in [
            ("http_500_rate", self.http_500_rate),
            ("notification.drop_rate", self.notification.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                problems.push(format!("{name} must be between 0 and 1 (got {rate})"));
            }
        }
        if !(400..=599).contains(&self.fault_http_status) && self.fault_http_status != 200 {
            problems.push(format!(
                "fault_http_status must be 200 or 4xx/5xx (got {})",
                self.fault_http_status
            ));
        }
        if self.min_amount_cents > self.max_amount_cents {
            problems.push("min_amount_cents is above max_amount_cents".into());
        }
        if let Some(url) = &self.public_url
            && let Err(e) = crate::config::http_url(url)
        {
            problems.push(format!("public_url: {e}"));
        }
        problems
    }
}

/// Why the simulator could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator options: {0}")]
    Options(String),
    #[error("cannot read the PayFiP contract file {path}: {source}")]
    Contract {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("simulator server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("simulator: {0}")]
    Operation(String),
}

impl SimError {
    /// Start-up problems are permanent (fix the options); a failing server may be restarted.
    pub fn is_transient(&self) -> bool {
        matches!(self, SimError::Serve(_))
    }
}

fn router(shared: Arc<state::Shared>) -> Router {
    Router::new()
        .route(
            "/tpa/services/securite",
            get(soap::wsdl_or_index).post(soap::endpoint),
        )
        .route("/tpa/services/{file}", get(soap::contract_file))
        .route("/tpa/paiementws.web", get(page::show).post(page::submit))
        .route(
            "/tpa/paiement.web",
            get(classic::show).post(classic::submit),
        )
        .layer(DefaultBodyLimit::max(soap::MAX_REQUEST_BYTES))
        .with_state(shared)
}

async fn run(
    listener: TcpListener,
    shared: Arc<state::Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(SimError::Serve)
}

async fn bind(listen: SocketAddr) -> Result<(TcpListener, SocketAddr), SimError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(SimError::Serve)?;
    Ok((listener, addr))
}

/// Runs the simulator on `listen` until `shutdown` resolves (the `encaisse payfip-sim`
/// entry point).
pub async fn serve(
    listen: SocketAddr,
    options: SimulatorOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    let (listener, addr) = bind(listen).await?;
    let shared = state::Shared::new(options)?;
    tracing::info!(%addr, "PayFiP simulator listening.");
    run(listener, shared, shutdown).await
}

/// A running simulator for tests: ephemeral port, outcome control, counters, clock.
pub struct SimulatorHandle {
    addr: SocketAddr,
    shared: Arc<state::Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), SimError>>>,
}

impl SimulatorHandle {
    /// Starts a simulator on `127.0.0.1` with an ephemeral port.
    pub async fn start(options: SimulatorOptions) -> Result<Self, SimError> {
        let (listener, addr) = bind(([127, 0, 0, 1], 0).into()).await?;
        let shared = state::Shared::new(options)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, shared.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(SimulatorHandle {
            addr,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The SOAP endpoint (`…/tpa/services/securite`).
    pub fn soap_url(&self) -> String {
        format!("{}/tpa/services/securite", self.base_url())
    }

    /// The payment page (`…/tpa/paiementws.web`).
    pub fn payment_page_url(&self) -> String {
        format!("{}/tpa/paiementws.web", self.base_url())
    }

    /// The classic URL (`…/tpa/paiement.web`).
    pub fn classic_url(&self) -> String {
        format!("{}/tpa/paiement.web", self.base_url())
    }

    /// A `[payfip]` configuration pointing at this simulator (other fields default).
    pub fn gateway_config(&self) -> crate::config::GatewayConfig {
        crate::config::GatewayConfig {
            soap_url: self.soap_url(),
            payment_page_url: self.payment_page_url(),
            classic_url: self.classic_url(),
            ..crate::config::GatewayConfig::default()
        }
    }

    /// What was called so far.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Changes the options of the running simulator (fault injection, outcomes…).
    pub fn update_options(&self, change: impl FnOnce(&mut SimulatorOptions)) {
        self.shared.update_options(change);
    }

    /// Chooses the outcome applied when the page is opened (`None`: show the form).
    pub fn set_auto_outcome(&self, outcome: Option<Resultrans>) {
        self.update_options(|o| o.auto_outcome = outcome.map(SimOutcome::from));
    }

    /// The next `n` SOAP calls answer as an outage.
    pub fn fail_next_soap_calls(&self, n: u64) {
        self.shared.fail_next(n);
    }

    /// Moves the simulator's clock forward (idOp lifetime, purge) without waiting.
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.shared.advance_clock(by);
    }

    /// The operation behind an idOp, if the gateway knows it.
    pub fn operation(&self, idop: &str) -> Option<SimOperation> {
        self.shared.operation(idop)
    }

    /// Completes a payment as the page's form would (`POST /tpa/paiementws.web`), including
    /// the notification; returns the URL the browser is sent to.
    pub async fn pay(&self, idop: &str, outcome: Resultrans) -> Result<String, SimError> {
        page::complete(&self.shared, idop, outcome)
            .await
            .map(|c| c.redirect_url)
            .map_err(|e| SimError::Operation(e.to_string()))
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        self.stop_now();
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| SimError::Operation(format!("server task: {e}")))?,
            None => Ok(()),
        }
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}
