//! Configuration of the payfip adapter (sections of `encaisse.toml`). Every field is
//! documented; defaults live in functions. Facts the spec marks unverified are settings, with
//! the assumption written next to them (and in `docs/payfip.md`).

use std::time::Duration;

use encaisse_schemas::tenant::ConfigIssue;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::commission::{Tariff, check_tariffs, default_tariffs};
use crate::fields::{AmountBounds, Saisie};
use crate::result::ResultPolicy;

/// `[payfip]`: the DGFiP gateway (URLs, timeouts, amount bounds, modes, commission tariffs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// SOAP endpoint of the web service (`creerPaiementSecurise`, …). Point it at
    /// `encaisse payfip-sim` to test locally.
    #[serde(default = "default_soap_url")]
    pub soap_url: String,
    /// Payment page the family's browser is sent to, `?idop=<idOp>` appended.
    #[serde(default = "default_payment_page_url")]
    pub payment_page_url: String,
    /// Classic TIPI/PayFiP URL (`paiement.web`) for titres.
    #[serde(default = "default_classic_url")]
    pub classic_url: String,
    /// Public base URL of this daemon as the gateway and browsers reach it
    /// (`https://encaisse.example.fr`): `urlnotif`, `urlredirect` and `urlcl` are built on it.
    /// The domain must be declared to the DGFiP (activation takes 24 h to several days).
    /// Required for online payments; a tenant may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<String>,
    /// Time allowed to open the TCP/TLS connection to the gateway, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed for a whole SOAP call, in milliseconds (eopayment uses 15 s).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Largest response body read from the gateway, in bytes (its answers are < 2 KiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Smallest amount accepted, in cents (1.00 €: eopayment, SchoolBusManager, code `M3`).
    #[serde(default = "default_min_amount_cents")]
    pub min_amount_cents: i64,
    /// Largest amount accepted by the web service, in cents. The official figure is not
    /// public \[U\]: 99 999.99 € as in SchoolBusManager (eopayment allows 100 000 €).
    #[serde(default = "default_max_amount_cents")]
    pub max_amount_cents: i64,
    /// Largest amount accepted on the classic URL, in cents: 9 999.99 € ("sommes inférieures
    /// à 10 000 €" in the TIPI era; current figure unknown \[U\]).
    #[serde(default = "default_classic_max_amount_cents")]
    pub classic_max_amount_cents: i64,
    /// `saisie` letters of the web service per mode (`T`/`X`/`W`, confirmed by four clients).
    #[serde(default = "default_ws_saisie")]
    pub ws_saisie: SaisieCodes,
    /// `saisie` letters of the classic URL per mode. Sources conflict on production (`A`, `M`
    /// or `X`, spec §2.3) \[U\]: `T`/`X`/`A` by default (eopayment 3.15); confirm with the
    /// comptable's adhesion form.
    #[serde(default = "default_classic_saisie")]
    pub classic_saisie: SaisieCodes,
    /// How long after creation an idOp can open the payment page, in seconds (15 min per
    /// eopayment's comment; unverified \[U\]). The payments API refuses to reuse an older one.
    #[serde(default = "default_idop_lifetime_secs")]
    pub idop_lifetime_secs: u64,
    /// How long after creation a `P5` ("result not known") still means "waiting", in seconds;
    /// past it the operation is expired (eopayment: 120 min).
    #[serde(default = "default_result_wait_secs")]
    pub result_wait_secs: u64,
    /// How long after its transaction time an `A` (abandoned) result is not final, in seconds:
    /// the idOp may still be used (eopayment: 2 min).
    #[serde(default = "default_abandon_grace_secs")]
    pub abandon_grace_secs: u64,
    /// Minimum time between two payment attempts for the same invoice, in seconds, while an
    /// earlier idOp may still complete (eopayment: 20 min).
    #[serde(default = "default_attempt_lock_secs")]
    pub attempt_lock_secs: u64,
    /// Commission tariffs, dated, per payment means (see `commission` in the crate docs).
    #[serde(default = "default_tariffs")]
    pub tariffs: Vec<Tariff>,
    /// How the `refdet` of a titre is composed from its place in Hélios, for the classic URL:
    /// placeholders `{exercice}`, `{bordereau_type}`, `{id_bord}`, `{id_pce}`, each with an
    /// optional zero-padded width (`{id_pce:8}`), and literal letters or digits. The DGFiP's
    /// rule is not public (spec §4.1, §9.1) \[U\]: the default
    /// `{exercice}{id_bord:6}{id_pce:8}` (18 digits, the shape of the public examples) is an
    /// assumption to confirm with the comptable; see [`crate::attempt::titre_refdet`].
    #[serde(default = "default_titre_refdet_template")]
    pub titre_refdet_template: String,
    /// Whole days after the prise en charge (PES Retour) before a titre can be paid online:
    /// the DGFiP loads titres into PayFiP the day after (« J+1 », spec §1) — 1 by default.
    #[serde(default = "default_titre_payable_after_days")]
    pub titre_payable_after_days: u32,
    /// Networks allowed to deliver classic results (`/payfip/{tenant}/classic`), as CIDR
    /// blocks or single addresses (`["192.0.2.0/24", "2001:db8::1"]`); empty (the default):
    /// any. A result from elsewhere is recorded nowhere — the family's browser still gets
    /// its page and its way back to the Kiosque. The address checked is the TCP peer's:
    /// behind a reverse proxy it is the proxy's, so filter there instead (forwarded headers
    /// are not trusted). Even from an allowed network a classic result is only a claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classic_result_networks: Vec<String>,
    /// The reconciliation job that asks the gateway about operations left without a result
    /// (`[payfip.reconciliation]`).
    #[serde(default)]
    pub reconciliation: ReconciliationConfig,
}

/// `[payfip.reconciliation]`: finding results whose notification was lost (the spec's
/// "rattrapage", §3.3: notifications can be lost), and closing attempts that never end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationConfig {
    /// Whether the daemon runs the job at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Pause between two sweeps, in seconds.
    #[serde(default = "default_reconcile_interval_secs")]
    pub interval_secs: u64,
    /// Age of an operation without a result before the job asks about it, in seconds; by
    /// default the idOp lifetime (15 min): a younger one may still be on the payment page.
    #[serde(default = "default_idop_lifetime_secs")]
    pub min_age_secs: u64,
    /// Minimum time between two questions about the same operation, in seconds (a question
    /// answered `P5` is retried by the confirmation stage's delay tiers meanwhile).
    #[serde(default = "default_requery_after_secs")]
    pub requery_after_secs: u64,
    /// Most operations asked about per sweep (the oldest first).
    #[serde(default = "default_reconcile_batch")]
    pub batch_size: u32,
    /// Classic-URL attempts (titres) have no status query: one without a result after this
    /// many seconds is closed (no event; a later, verified result is still accepted).
    #[serde(default = "default_classic_result_wait_secs")]
    pub classic_result_wait_secs: u64,
    /// A classic result saying "paid" is unsigned: it is only a claim. For this many seconds
    /// after it the payments API answers `payment_in_progress` for the titre (the family does
    /// not pay twice while the Trésorerie's confirmation is on its way); afterwards a new
    /// attempt is allowed again, so a forged claim cannot block a titre for long.
    #[serde(default = "default_classic_claim_hold_secs")]
    pub classic_claim_hold_secs: u64,
    /// A claim that no PES Retour émargement (`OrgEma` 10) confirmed within this many seconds
    /// is reported to ops (`encaisse_payfip_claims_total{outcome="unconfirmed"}`, a warning,
    /// and a `payfip_claim_unconfirmed` fact in `encaisse trace`). TIPI payments are émargés
    /// within a few working days; 10 days leaves room for holidays.
    #[serde(default = "default_classic_claim_confirm_secs")]
    pub classic_claim_confirm_secs: u64,
}

fn default_true() -> bool {
    true
}
fn default_reconcile_interval_secs() -> u64 {
    300
}
fn default_requery_after_secs() -> u64 {
    900
}
fn default_reconcile_batch() -> u32 {
    500
}
fn default_classic_result_wait_secs() -> u64 {
    86_400
}
fn default_classic_claim_hold_secs() -> u64 {
    5 * 86_400
}
fn default_classic_claim_confirm_secs() -> u64 {
    10 * 86_400
}
fn default_titre_refdet_template() -> String {
    "{exercice}{id_bord:6}{id_pce:8}".into()
}
fn default_titre_payable_after_days() -> u32 {
    1
}

impl Default for ReconciliationConfig {
    fn default() -> Self {
        ReconciliationConfig {
            enabled: true,
            interval_secs: default_reconcile_interval_secs(),
            min_age_secs: default_idop_lifetime_secs(),
            requery_after_secs: default_requery_after_secs(),
            batch_size: default_reconcile_batch(),
            classic_result_wait_secs: default_classic_result_wait_secs(),
            classic_claim_hold_secs: default_classic_claim_hold_secs(),
            classic_claim_confirm_secs: default_classic_claim_confirm_secs(),
        }
    }
}

impl ReconciliationConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        for (field, value) in [
            ("interval_secs", self.interval_secs),
            ("batch_size", u64::from(self.batch_size)),
            ("classic_result_wait_secs", self.classic_result_wait_secs),
            ("classic_claim_hold_secs", self.classic_claim_hold_secs),
            (
                "classic_claim_confirm_secs",
                self.classic_claim_confirm_secs,
            ),
        ] {
            if value == 0 {
                issues.push(ConfigIssue::new(
                    format!("{prefix}.{field}"),
                    "must be greater than 0",
                ));
            }
        }
        if self.classic_claim_hold_secs > self.classic_claim_confirm_secs {
            issues.push(ConfigIssue::new(
                format!("{prefix}.classic_claim_hold_secs"),
                "must not be longer than classic_claim_confirm_secs (the titre is freed at the latest when its claim is reported)",
            ));
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.max(1))
    }

    pub fn min_age(&self) -> chrono::Duration {
        chrono::Duration::seconds(clamp_secs(self.min_age_secs))
    }

    pub fn requery_after(&self) -> chrono::Duration {
        chrono::Duration::seconds(clamp_secs(self.requery_after_secs))
    }

    pub fn classic_result_wait(&self) -> chrono::Duration {
        chrono::Duration::seconds(clamp_secs(self.classic_result_wait_secs))
    }

    pub fn classic_claim_hold(&self) -> chrono::Duration {
        chrono::Duration::seconds(clamp_secs(self.classic_claim_hold_secs))
    }

    pub fn classic_claim_confirm(&self) -> chrono::Duration {
        chrono::Duration::seconds(clamp_secs(self.classic_claim_confirm_secs))
    }
}

/// The `saisie` letter of each mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaisieCodes {
    /// Test: no real money, dummy references accepted.
    pub test: String,
    /// Activation: a real payment made to validate the set-up before opening.
    pub activation: String,
    /// Production.
    pub production: String,
}

impl SaisieCodes {
    /// The letter of `mode`.
    pub fn code(&self, mode: PayfipMode) -> Result<Saisie, crate::fields::FieldError> {
        Saisie::new(match mode {
            PayfipMode::Test => &self.test,
            PayfipMode::Activation => &self.activation,
            PayfipMode::Production => &self.production,
        })
    }

    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        let all = [
            ("test", &self.test),
            ("activation", &self.activation),
            ("production", &self.production),
        ];
        for (name, value) in all {
            if Saisie::new(value).is_err() {
                issues.push(ConfigIssue::new(
                    format!("{prefix}.{name}"),
                    format!("{value:?} must be one capital letter"),
                ));
            }
        }
        if self.test == self.activation
            || self.test == self.production
            || self.activation == self.production
        {
            issues.push(ConfigIssue::new(
                prefix,
                "test, activation and production letters must differ",
            ));
        }
    }
}

/// A tenant's stage of adhesion to PayFiP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayfipMode {
    /// Test payments only (`saisie` test letter); no money moves.
    #[default]
    Test,
    /// Real payments used to validate the set-up with the DGFiP.
    Activation,
    /// Live.
    Production,
}

fn default_soap_url() -> String {
    "https://www.payfip.gouv.fr/tpa/services/securite".into()
}
fn default_payment_page_url() -> String {
    "https://www.payfip.gouv.fr/tpa/paiementws.web".into()
}
fn default_classic_url() -> String {
    "https://www.payfip.gouv.fr/tpa/paiement.web".into()
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_request_timeout_ms() -> u64 {
    15_000
}
fn default_max_response_bytes() -> u64 {
    1 << 20
}
pub(crate) fn default_min_amount_cents() -> i64 {
    100
}
pub(crate) fn default_max_amount_cents() -> i64 {
    9_999_999
}
pub(crate) fn default_classic_max_amount_cents() -> i64 {
    999_999
}
fn default_ws_saisie() -> SaisieCodes {
    SaisieCodes {
        test: "T".into(),
        activation: "X".into(),
        production: "W".into(),
    }
}
fn default_classic_saisie() -> SaisieCodes {
    SaisieCodes {
        test: "T".into(),
        activation: "X".into(),
        production: "A".into(),
    }
}
pub(crate) fn default_idop_lifetime_secs() -> u64 {
    900
}
fn default_result_wait_secs() -> u64 {
    7_200
}
fn default_abandon_grace_secs() -> u64 {
    120
}
fn default_attempt_lock_secs() -> u64 {
    1_200
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            soap_url: default_soap_url(),
            payment_page_url: default_payment_page_url(),
            classic_url: default_classic_url(),
            public_base_url: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            request_timeout_ms: default_request_timeout_ms(),
            max_response_bytes: default_max_response_bytes(),
            min_amount_cents: default_min_amount_cents(),
            max_amount_cents: default_max_amount_cents(),
            classic_max_amount_cents: default_classic_max_amount_cents(),
            ws_saisie: default_ws_saisie(),
            classic_saisie: default_classic_saisie(),
            idop_lifetime_secs: default_idop_lifetime_secs(),
            result_wait_secs: default_result_wait_secs(),
            abandon_grace_secs: default_abandon_grace_secs(),
            attempt_lock_secs: default_attempt_lock_secs(),
            tariffs: default_tariffs(),
            titre_refdet_template: default_titre_refdet_template(),
            titre_payable_after_days: default_titre_payable_after_days(),
            classic_result_networks: Vec::new(),
            reconciliation: ReconciliationConfig::default(),
        }
    }
}

/// A CIDR block, or a single address as a block of one.
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an address nor a CIDR block (192.0.2.0/24)"))
}

/// An absolute `http(s)` URL, or a description of what is wrong with it.
pub(crate) fn http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("{value:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{value:?} must be an absolute http(s) URL"));
    }
    Ok(url)
}

fn check_url(prefix: &str, field: &str, value: &str, issues: &mut Vec<ConfigIssue>) {
    if let Err(message) = http_url(value) {
        issues.push(ConfigIssue::new(format!("{prefix}.{field}"), message));
    }
}

impl GatewayConfig {
    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        check_url(prefix, "soap_url", &self.soap_url, &mut issues);
        check_url(
            prefix,
            "payment_page_url",
            &self.payment_page_url,
            &mut issues,
        );
        check_url(prefix, "classic_url", &self.classic_url, &mut issues);
        if let Some(base) = &self.public_base_url {
            check_url(prefix, "public_base_url", base, &mut issues);
        }
        for (field, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_response_bytes", self.max_response_bytes),
            ("idop_lifetime_secs", self.idop_lifetime_secs),
            ("result_wait_secs", self.result_wait_secs),
        ] {
            if value == 0 {
                issues.push(ConfigIssue::new(
                    format!("{prefix}.{field}"),
                    "must be greater than 0",
                ));
            }
        }
        if self.min_amount_cents < 1 {
            issues.push(ConfigIssue::new(
                format!("{prefix}.min_amount_cents"),
                "must be at least 1",
            ));
        }
        for (field, max) in [
            ("max_amount_cents", self.max_amount_cents),
            ("classic_max_amount_cents", self.classic_max_amount_cents),
        ] {
            if max < self.min_amount_cents {
                issues.push(ConfigIssue::new(
                    format!("{prefix}.{field}"),
                    format!(
                        "must not be below min_amount_cents ({})",
                        self.min_amount_cents
                    ),
                ));
            }
            if max > encaisse_schemas::money::MAX_ABS_CENTS {
                issues.push(ConfigIssue::new(
                    format!("{prefix}.{field}"),
                    "is too large",
                ));
            }
        }
        if self.result_wait_secs < self.idop_lifetime_secs {
            issues.push(ConfigIssue::new(
                format!("{prefix}.result_wait_secs"),
                "must not be shorter than idop_lifetime_secs (a payment may still be in progress)",
            ));
        }
        self.ws_saisie
            .validate(&format!("{prefix}.ws_saisie"), &mut issues);
        self.classic_saisie
            .validate(&format!("{prefix}.classic_saisie"), &mut issues);
        if self.tariffs.is_empty() {
            issues.push(ConfigIssue::new(
                format!("{prefix}.tariffs"),
                "at least one tariff is needed to compute commissions",
            ));
        }
        for (i, message) in check_tariffs(&self.tariffs) {
            issues.push(ConfigIssue::new(format!("{prefix}.tariffs[{i}]"), message));
        }
        if let Err(message) =
            crate::attempt::check_titre_refdet_template(&self.titre_refdet_template)
        {
            issues.push(ConfigIssue::new(
                format!("{prefix}.titre_refdet_template"),
                message,
            ));
        }
        for (i, network) in self.classic_result_networks.iter().enumerate() {
            if let Err(message) = parse_network(network) {
                issues.push(ConfigIssue::new(
                    format!("{prefix}.classic_result_networks[{i}]"),
                    message,
                ));
            }
        }
        self.reconciliation
            .validate(&format!("{prefix}.reconciliation"), &mut issues);
        issues
    }

    /// Whether a classic result may come from `peer` ([`GatewayConfig::classic_result_networks`]);
    /// an unparsable entry (refused by `encaisse check`) allows nothing.
    pub fn classic_result_allowed_from(&self, peer: std::net::IpAddr) -> bool {
        self.classic_result_networks.is_empty()
            || self
                .classic_result_networks
                .iter()
                .filter_map(|n| parse_network(n).ok())
                .any(|net| net.contains(&peer))
    }

    /// How long an attempt blocks another one for the same invoice.
    pub fn attempt_lock(&self) -> chrono::Duration {
        chrono::Duration::seconds(clamp_secs(self.attempt_lock_secs))
    }

    /// Amount bounds of the web service.
    pub fn ws_bounds(&self) -> AmountBounds {
        AmountBounds {
            min_cents: self.min_amount_cents,
            max_cents: self.max_amount_cents,
        }
    }

    /// Amount bounds of the classic URL.
    pub fn classic_bounds(&self) -> AmountBounds {
        AmountBounds {
            min_cents: self.min_amount_cents,
            max_cents: self.classic_max_amount_cents,
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How long an idOp can open the payment page.
    pub fn idop_lifetime(&self) -> chrono::Duration {
        chrono::Duration::seconds(clamp_secs(self.idop_lifetime_secs))
    }

    /// The waiting rules for results.
    pub fn result_policy(&self) -> ResultPolicy {
        ResultPolicy {
            result_wait: chrono::Duration::seconds(clamp_secs(self.result_wait_secs)),
            abandon_grace: chrono::Duration::seconds(clamp_secs(self.abandon_grace_secs)),
        }
    }

    /// The commission of a payment of `amount` by `channel` on `date` (Paris local date),
    /// from [`GatewayConfig::tariffs`].
    pub fn commission(
        &self,
        amount: encaisse_schemas::Money,
        channel: crate::commission::FeeChannel,
        date: chrono::NaiveDate,
    ) -> Result<encaisse_schemas::Money, crate::commission::CommissionError> {
        crate::commission::commission(&self.tariffs, amount, channel, date)
    }

    /// The public base URL for `tenant`: the tenant's override, else the gateway's.
    pub fn public_base_for<'a>(&'a self, tenant: &'a PayfipTenantConfig) -> Option<&'a str> {
        tenant
            .public_base_url
            .as_deref()
            .or(self.public_base_url.as_deref())
    }
}

fn clamp_secs(secs: u64) -> i64 {
    // Ten years is far beyond any gateway window and keeps chrono's range safe.
    secs.min(315_360_000) as i64
}

/// `[tenants.payfip]`: a commune's online payment settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayfipTenantConfig {
    /// Whether this commune takes online payments at all.
    #[serde(default)]
    pub enabled: bool,
    /// Stage of the commune's adhesion: `test`, `activation` or `production`; selects the
    /// `saisie` letter sent, and which letter a result must carry to be accepted (a test
    /// result is never accepted in production).
    #[serde(default)]
    pub mode: PayfipMode,
    /// This commune's public base URL when it differs from `[payfip] public_base_url`
    /// (each notification domain must be declared to the DGFiP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<String>,
    /// Prefixes a Kiosque famille `return_url` must start with (`https://kiosque.vitry.fr/`);
    /// a payment request with any other return URL is refused (no open redirect). Empty:
    /// every return URL is refused and the family lands on a plain result page.
    #[serde(default)]
    pub return_url_prefixes: Vec<String>,
    /// Words put before the invoice number in `objet` (`Facture` → `Facture F000123`),
    /// normalised to PayFiP's alphabet.
    #[serde(default = "default_objet_label")]
    pub objet_label: String,
}

fn default_objet_label() -> String {
    "Facture".into()
}

impl Default for PayfipTenantConfig {
    fn default() -> Self {
        PayfipTenantConfig {
            enabled: false,
            mode: PayfipMode::default(),
            public_base_url: None,
            return_url_prefixes: Vec::new(),
            objet_label: default_objet_label(),
        }
    }
}

impl PayfipTenantConfig {
    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if let Some(base) = &self.public_base_url {
            check_url(prefix, "public_base_url", base, &mut issues);
        }
        for (i, p) in self.return_url_prefixes.iter().enumerate() {
            match http_url(p) {
                Err(message) => issues.push(ConfigIssue::new(
                    format!("{prefix}.return_url_prefixes[{i}]"),
                    message,
                )),
                Ok(url) if url.path().is_empty() || !p.ends_with('/') => {
                    issues.push(ConfigIssue::new(
                        format!("{prefix}.return_url_prefixes[{i}]"),
                        format!(
                            "{p:?} must end with '/' (a bare host would also match evil-{}…)",
                            url.host_str().unwrap_or("")
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
        if self.objet_label.len() > 60 {
            issues.push(ConfigIssue::new(
                format!("{prefix}.objet_label"),
                "must be at most 60 characters (objet is limited to 100)",
            ));
        }
        issues
    }

    /// Whether `url` is an allowed Kiosque famille return URL.
    pub fn allows_return_url(&self, url: &str) -> bool {
        http_url(url).is_ok()
            && self
                .return_url_prefixes
                .iter()
                .any(|p| url.starts_with(p.as_str()))
    }
}

/// Cross-checks a tenant's settings against the gateway's: an enabled tenant needs a public
/// base URL (its own or the gateway's) for the notifications to reach us.
pub fn validate_tenant_with_gateway(
    gateway: &GatewayConfig,
    tenant: &PayfipTenantConfig,
    prefix: &str,
) -> Vec<ConfigIssue> {
    let mut issues = tenant.validate(prefix);
    if tenant.enabled && gateway.public_base_for(tenant).is_none() {
        issues.push(ConfigIssue::new(
            format!("{prefix}.public_base_url"),
            "an enabled tenant needs a public base URL (here or in [payfip]) for notifications",
        ));
    }
    if tenant.enabled && tenant.mode == PayfipMode::Production {
        issues.extend(plain_http_in_production(gateway, tenant, prefix));
    }
    issues
}

/// In production real payments and payers' addresses travel on these URLs: each must be
/// `https`. (Test and activation may point at `encaisse payfip-sim` over plain HTTP.) The
/// gateway's URLs are named under `[payfip]`, the public base where it is set.
fn plain_http_in_production(
    gateway: &GatewayConfig,
    tenant: &PayfipTenantConfig,
    prefix: &str,
) -> Vec<ConfigIssue> {
    let public_base = match &tenant.public_base_url {
        Some(url) => (format!("{prefix}.public_base_url"), url.as_str()),
        None => (
            "payfip.public_base_url".to_string(),
            gateway.public_base_url.as_deref().unwrap_or(""),
        ),
    };
    [
        ("payfip.soap_url".to_string(), gateway.soap_url.as_str()),
        (
            "payfip.payment_page_url".to_string(),
            gateway.payment_page_url.as_str(),
        ),
        (
            "payfip.classic_url".to_string(),
            gateway.classic_url.as_str(),
        ),
        public_base,
    ]
    .into_iter()
    .filter(|(_, url)| !url.is_empty() && http_url(url).is_ok_and(|u| u.scheme() != "https"))
    .map(|(field, _)| {
        ConfigIssue::new(
            field,
            format!("must be an https URL: {prefix} is in production mode"),
        )
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_serde_defaults() {
        assert!(GatewayConfig::default().validate("payfip").is_empty());
        assert_eq!(
            GatewayConfig::default().commission(
                encaisse_schemas::Money::parse("100.00").unwrap(),
                crate::commission::FeeChannel::Card,
                chrono::NaiveDate::from_ymd_opt(2019, 1, 1).unwrap()
            ),
            Ok(encaisse_schemas::Money::parse("0.35").unwrap())
        );
        let parsed: GatewayConfig = toml::from_str("").unwrap();
        assert_eq!(parsed, GatewayConfig::default());
        let tenant: PayfipTenantConfig = toml::from_str("").unwrap();
        assert_eq!(tenant, PayfipTenantConfig::default());
        assert!(tenant.validate("tenants[0].payfip").is_empty());
    }

    #[test]
    fn production_needs_https_everywhere_test_mode_does_not() {
        let gateway = GatewayConfig {
            soap_url: "http://127.0.0.1:8091/tpa/services/securite".into(),
            public_base_url: Some("http://encaisse.example.fr".into()),
            ..GatewayConfig::default()
        };
        let mut tenant = PayfipTenantConfig {
            enabled: true,
            ..PayfipTenantConfig::default()
        };
        assert!(validate_tenant_with_gateway(&gateway, &tenant, "tenants[0].payfip").is_empty());
        tenant.mode = PayfipMode::Production;
        let fields: Vec<String> =
            validate_tenant_with_gateway(&gateway, &tenant, "tenants[0].payfip")
                .into_iter()
                .map(|i| i.field)
                .collect();
        assert_eq!(fields, ["payfip.soap_url", "payfip.public_base_url"]);
        tenant.public_base_url = Some("https://paiement.vitry.fr".into());
        let gateway = GatewayConfig {
            public_base_url: None,
            ..GatewayConfig::default()
        };
        assert!(validate_tenant_with_gateway(&gateway, &tenant, "tenants[0].payfip").is_empty());
    }

    #[test]
    fn classic_result_networks() {
        let any = GatewayConfig::default();
        assert!(any.classic_result_allowed_from("203.0.113.9".parse().unwrap()));
        let gateway: GatewayConfig =
            toml::from_str(r#"classic_result_networks = ["192.0.2.0/24", "2001:db8::1"]"#).unwrap();
        assert!(gateway.validate("payfip").is_empty());
        assert!(gateway.classic_result_allowed_from("192.0.2.77".parse().unwrap()));
        assert!(gateway.classic_result_allowed_from("2001:db8::1".parse().unwrap()));
        assert!(!gateway.classic_result_allowed_from("192.0.3.1".parse().unwrap()));
        let bad: GatewayConfig =
            toml::from_str(r#"classic_result_networks = ["192.0.2.0/33"]"#).unwrap();
        let issues = bad.validate("payfip");
        assert_eq!(issues[0].field, "payfip.classic_result_networks[0]");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<GatewayConfig>("soap_urll = 'x'").unwrap_err();
        assert!(err.to_string().contains("soap_urll"));
        assert!(toml::from_str::<PayfipTenantConfig>("mod = 'test'").is_err());
    }

    #[test]
    fn issues_name_their_field() {
        let config: GatewayConfig = toml::from_str(
            r#"
            soap_url = "ftp://x"
            request_timeout_ms = 0
            min_amount_cents = 500
            max_amount_cents = 100
            ws_saisie = { test = "T", activation = "T", production = "w" }
            titre_refdet_template = "{exercice}-{id_pce}"
            [reconciliation]
            interval_secs = 0
            "#,
        )
        .unwrap();
        let fields: Vec<String> = config
            .validate("payfip")
            .into_iter()
            .map(|i| i.field)
            .collect();
        for expected in [
            "payfip.soap_url",
            "payfip.request_timeout_ms",
            "payfip.max_amount_cents",
            "payfip.ws_saisie.production",
            "payfip.ws_saisie",
            "payfip.titre_refdet_template",
            "payfip.reconciliation.interval_secs",
        ] {
            assert!(
                fields.iter().any(|f| f == expected),
                "{expected} in {fields:?}"
            );
        }
    }

    #[test]
    fn tenant_settings() {
        let tenant: PayfipTenantConfig = toml::from_str(
            r#"
            enabled = true
            mode = "production"
            return_url_prefixes = ["https://kiosque.vitry.fr/", "https://kiosque.ivry.fr"]
            "#,
        )
        .unwrap();
        let issues = tenant.validate("tenants[0].payfip");
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].field, "tenants[0].payfip.return_url_prefixes[1]");
        assert!(tenant.allows_return_url("https://kiosque.vitry.fr/paiement?x=1"));
        assert!(!tenant.allows_return_url("https://kiosque.vitry.fr.evil.com/"));
        let gateway = GatewayConfig::default();
        let issues = validate_tenant_with_gateway(&gateway, &tenant, "t");
        assert!(issues.iter().any(|i| i.field == "t.public_base_url"));
        assert_eq!(gateway.ws_saisie.code(tenant.mode).unwrap().as_str(), "W");
        assert_eq!(
            gateway.classic_saisie.code(tenant.mode).unwrap().as_str(),
            "A"
        );
    }
}
