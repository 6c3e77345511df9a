//! The configuration file, `encaisse.toml` (reference: `docs/configuration.md`).
//!
//! These structs are the documentation: every field has a doc comment, defaults live in
//! functions, units are in the names, and every table refuses unknown keys
//! (`deny_unknown_fields`), so a typo is an error naming the key instead of a setting
//! silently ignored. Adapter sections are the adapters' own types, composed here by type.
//!
//! * [`load`] reads the file, names the key of any syntax or type error, and applies the
//!   environment overrides (`ENCAISSE_DATA_DIR`, `ENCAISSE_AMQP_URL`).
//! * [`check`] cross-checks what types alone cannot (references between sections,
//!   identifiers, directories) and lists every problem as `field: message`.

pub mod check;
pub mod console;
pub mod load;
pub mod rules;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use encaisse_helios::config::HeliosTenantConfig;
use encaisse_payfip::config::{GatewayConfig, PayfipTenantConfig};
use encaisse_pipelines::runtime::{BrokerConfig, DedupeConfig, RetryConfig, RuntimeConfig};
use encaisse_pipelines::stages::inbox::InboxWatchConfig;
use encaisse_pipelines::stages::polyfac::PolyfacStagesConfig;
use encaisse_polyfac::config::SourceMapping;
use encaisse_schemas::TenantId;
use encaisse_schemas::tenant::{Activity, Budget, Product, Regie};
use encaisse_sepa::config::SepaTenantConfig;
use serde::{Deserialize, Serialize};

pub use check::check;
pub use load::{LoadError, Loaded, load, load_str};

/// Name of the source every tenant uses unless it says otherwise: Polyfac's default export
/// contract (`../shared/specs/polyfac.md`), built in, so it needs no `[sources.polyfac]`.
pub const DEFAULT_SOURCE: &str = "polyfac";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory holding the ledger (`ledger.sqlite`) and each tenant's file directories
    /// (`<tenant>/polyfac/inbox`, …). Relative paths are relative to the directory the daemon
    /// is started from. Overridden by `ENCAISSE_DATA_DIR`. Default `var/encaisse`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Who may read the files and directories the daemon writes (ledger and its WAL, PES
    /// Aller, pain.008, REGLEMENTS, PES_ACQUIT_RETOUR, reports, archived and rejected
    /// files): `owner` (default: files `0600`, directories `0700`) or `group` (`0640` /
    /// `0750`, inboxes `0770`), for a transfer tool running under another account of the
    /// daemon's group.
    #[serde(default)]
    pub file_access: FileAccess,
    /// Where the ledger lives (`[ledger]`, [`LedgerConfig`]). Absent: the SQLite file in
    /// `data_dir`.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// Several daemons on one PostgreSQL ledger and one broker prefix (`[cluster]`,
    /// `encaisse_pipelines::runtime::lease::ClusterConfig`): the time to live of the leases
    /// on once-only work and of inbox claims. Refused with an SQLite ledger, which one daemon
    /// holds. Absent: the defaults, and with a PostgreSQL ledger the daemons share the work
    /// all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<encaisse_pipelines::runtime::lease::ClusterConfig>,
    /// How to reach RabbitMQ and how hard to push it (`encaisse_pipelines::runtime::BrokerConfig`).
    #[serde(default)]
    pub broker: BrokerConfig,
    /// What happens to transient failures: delay tiers, attempts
    /// (`encaisse_pipelines::runtime::RetryConfig`).
    #[serde(default)]
    pub retry: RetryConfig,
    /// How long the ledger remembers processed messages (deduplication), and how often it
    /// prunes them (`encaisse_pipelines::runtime::DedupeConfig`).
    #[serde(default)]
    pub dedupe: DedupeConfig,
    /// On SIGTERM/SIGINT, how long in-flight messages may take to finish before the daemon
    /// exits anyway (default 20 s).
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// The HTTP server (health, readiness, metrics, and later the payment API).
    #[serde(default)]
    pub http: HttpConfig,
    /// The web console for ops and finance (`[console]`, `console::ConsoleConfig`). Absent:
    /// no console.
    #[serde(default)]
    pub console: console::ConsoleConfig,
    /// The DGFiP PayFiP gateway, shared by every tenant (`encaisse_payfip::config::GatewayConfig`).
    /// Absent: the adapter's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payfip: Option<GatewayConfig>,
    /// Source applications' export formats by name (`[sources.<name>]`,
    /// `encaisse_polyfac::config::SourceMapping`). A tenant names its source; `polyfac` (Polyfac's
    /// default contract) is built in and need not be listed.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceMapping>,
    /// The Polyfac stages: inbox watching, invoices per confirmed publish, REGLEMENTS
    /// flushing (`encaisse_pipelines::stages::polyfac::PolyfacStagesConfig`). Absent: the
    /// defaults.
    #[serde(default)]
    pub polyfac: PolyfacStagesConfig,
    /// The Hélios stages, shared by every tenant: how `helios.returns` watches each tenant's
    /// `helios/inbox` for the Trésorerie's files (`encaisse_pipelines::stages::inbox::InboxWatchConfig`).
    /// Absent: the defaults. Each commune's own Hélios settings are `[tenants.helios]`.
    #[serde(default)]
    pub helios: InboxWatchConfig,
    /// The SEPA stages, shared by every tenant: how `sepa.returns` watches each tenant's
    /// `bank/inbox` for the bank's files (`encaisse_pipelines::stages::inbox::InboxWatchConfig`).
    /// Absent: the defaults. Each commune's own direct-debit settings are `[tenants.sepa]`.
    #[serde(default)]
    pub sepa: InboxWatchConfig,
    /// The communes served by this deployment, one `[[tenants]]` table each.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
}

/// `[ledger]`: which database holds the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// `sqlite://<path>` (default `sqlite://<data_dir>/ledger.sqlite`) or
    /// `postgres://user@host/database`. Overridden by `ENCAISSE_LEDGER_URL` (where a
    /// password belongs). The daemon does not run on PostgreSQL yet: `check` names the areas
    /// still missing there (docs/scaling.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl Config {
    /// The ledger's URL: `[ledger] url`, or the SQLite file of `data_dir`.
    pub fn ledger_url(&self) -> Result<encaisse_ledger::LedgerUrl, encaisse_ledger::UrlError> {
        match &self.ledger.url {
            Some(text) => encaisse_ledger::LedgerUrl::parse(text),
            None => Ok(encaisse_ledger::LedgerUrl::default_for(&self.data_dir)),
        }
    }

    /// How this daemon shares its once-only work: with other daemons on a PostgreSQL ledger
    /// (leases and claims expiring after `[cluster] lease_ttl_ms`), alone on an SQLite one.
    pub fn coordination(
        &self,
        url: &encaisse_ledger::LedgerUrl,
    ) -> encaisse_pipelines::runtime::lease::Coordination {
        use encaisse_pipelines::runtime::lease::Coordination;
        match url {
            encaisse_ledger::LedgerUrl::Sqlite(_) => Coordination::single(),
            encaisse_ledger::LedgerUrl::Postgres(_) => {
                Coordination::shared(&self.cluster.clone().unwrap_or_default())
            }
        }
    }

    /// The ledger's URL if the daemon can run on it: `Err` (the problem with `ledger.url`,
    /// exit 78) for an unparsable URL or, as a safety net, a PostgreSQL ledger while some
    /// area of the ledger has no PostgreSQL store.
    pub fn usable_ledger_url(&self) -> Result<encaisse_ledger::LedgerUrl, String> {
        let url = self.ledger_url().map_err(|e| e.to_string())?;
        let missing = url.missing_areas();
        if missing.is_empty() {
            Ok(url)
        } else {
            Err(format!(
                "{} is a PostgreSQL ledger, and the areas {} have no PostgreSQL store; use an \
                 sqlite:// URL (docs/scaling.md)",
                url.redacted(),
                missing.join(", ")
            ))
        }
    }

    /// The SQLite ledger file, for the commands that read the file itself (`preview` copies
    /// it into its sandbox); `Err` for a PostgreSQL ledger, naming the command's limit.
    pub fn ledger_file(&self) -> Result<PathBuf, String> {
        match self.usable_ledger_url()? {
            encaisse_ledger::LedgerUrl::Sqlite(path) => Ok(path),
            url => Err(format!(
                "{} is a PostgreSQL ledger: this command reads an SQLite ledger file only",
                url.redacted()
            )),
        }
    }
}

/// `file_access`: who may read what the daemon writes. The files hold personal data
/// (IBANs, names, addresses, payments), so other accounts never get access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAccess {
    /// The daemon's account only: files `0600`, directories `0700`.
    #[default]
    Owner,
    /// Also read access for the daemon's group: files `0640`, directories `0750`; inboxes
    /// `0770`, so the group's transfer tool can drop files there.
    Group,
}

impl FileAccess {
    /// Makes every file and directory written from now on follow this choice (modes and
    /// process umask).
    pub fn apply(self) {
        encaisse_ledger::access::allow_group(self == FileAccess::Group);
    }
}

/// `[http]`: the daemon's HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on (default `127.0.0.1:8080`). Port 0 picks a free port,
    /// which the daemon logs (`HTTP server listening.` with `addr`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Seconds a client has to send the whole header block of a request (also how long an
    /// idle keep-alive connection stays open); then the connection is closed. Keeps clients
    /// that trickle their headers from holding connections.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds a request has, once its headers are read, to send its body and get its answer
    /// (the payments API's gateway call included); then `408` and the connection is closed.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes. Slow clients are cut by the timeouts above, so the bound is a safety net
    /// against descriptor exhaustion, not a queue for normal traffic.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// `[[tenants]]`: one commune, with its own identifiers and directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Identifier used in directories, routing headers and the ledger (`vitry`): 1–32 of
    /// `a-z`, `0-9`, `-`. Never change it once invoices flowed.
    pub id: TenantId,
    /// Name of the commune, for people (`Vitry-sur-Seine`).
    pub name: String,
    /// Which `[sources.<name>]` format its billing exports use (default `polyfac`, built in).
    #[serde(default = "default_source")]
    pub source: String,
    /// Other `[sources.<name>]` this tenant also receives (a crèche or séjours tool beside
    /// Polyfac). Each has its own inbox, `<tenant>/sources/<name>/inbox` (with `archive/`
    /// and `rejected/` beside it); the default `source` keeps `<tenant>/polyfac/inbox`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_sources: Vec<String>,
    /// Budgets as the Trésorerie knows them (`[[tenants.budgets]]`).
    #[serde(default)]
    pub budgets: Vec<Budget>,
    /// Activities billed, each tied to a budget and a collection path (`[[tenants.activities]]`).
    #[serde(default)]
    pub activities: Vec<Activity>,
    /// Products billed on invoice lines, each tied to an activity (`[[tenants.products]]`).
    #[serde(default)]
    pub products: Vec<Product>,
    /// Régies de recettes collecting some activities themselves (`[[tenants.regies]]`).
    #[serde(default)]
    pub regies: Vec<Regie>,
    /// The payment API used by the family portal (Kiosque famille) for this tenant. Absent:
    /// the API refuses this tenant's calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiConfig>,
    /// Hélios PES V2 settings (`encaisse_helios::config::HeliosTenantConfig`). Absent: the
    /// adapter's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helios: Option<HeliosTenantConfig>,
    /// Online payment settings (`encaisse_payfip::config::PayfipTenantConfig`). Absent: the
    /// adapter's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payfip: Option<PayfipTenantConfig>,
    /// Direct debit settings of the tenant's régies (`encaisse_sepa::config::SepaTenantConfig`).
    /// Absent: the tenant sends no pain.008 files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sepa: Option<SepaTenantConfig>,
}

/// `[tenants.api]`: how callers of the payment API authenticate for this tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Name of the environment variable holding the bearer token callers must present
    /// (`ENCAISSE_TOKEN_VITRY`). The token itself never goes in this file.
    pub token_env: String,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("var/encaisse")
}

fn default_shutdown_grace_secs() -> u64 {
    RuntimeConfig::default().shutdown_grace_secs
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_header_read_timeout_secs() -> u64 {
    10
}

fn default_request_timeout_secs() -> u64 {
    30
}

fn default_max_connections() -> usize {
    512
}

fn default_source() -> String {
    DEFAULT_SOURCE.to_string()
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            request_timeout_secs: default_request_timeout_secs(),
            max_connections: default_max_connections(),
        }
    }
}

impl Config {
    /// The runtime's configuration, assembled from `[broker]`, `[retry]`, `[dedupe]` and
    /// `shutdown_grace_secs`; settings the file does not expose keep the runtime's defaults.
    // `..default()` keeps this compiling and correct when the runtime grows a setting.
    #[allow(clippy::needless_update)]
    pub fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig {
            broker: self.broker.clone(),
            retry: self.retry.clone(),
            dedupe: self.dedupe.clone(),
            shutdown_grace_secs: self.shutdown_grace_secs,
            ..RuntimeConfig::default()
        }
    }

    /// The tenant with this id.
    pub fn tenant(&self, id: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.id.as_str() == id)
    }
}
