//! Runtime configuration: the `[broker]` and `[retry]` sections of `encaisse.toml`.

use serde::{Deserialize, Serialize};

/// `[broker]`: how to reach RabbitMQ and how hard to push it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// AMQP URL. Overridden by `ENCAISSE_AMQP_URL`. Credentials belong in that variable,
    /// not in the file.
    #[serde(default = "default_url")]
    pub url: String,
    /// Prefix of every exchange and queue name (`encaisse` → `encaisse.helios.titres`).
    /// Lets several deployments, or tests, share one broker.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Unacknowledged deliveries per consumer (default 64); a stage's concurrency follows.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Most unconfirmed publishes in flight per publishing channel (default 256).
    #[serde(default = "default_confirm_window")]
    pub confirm_window: usize,
    /// AMQP heartbeat (default 30 s): how fast a dead broker is noticed.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u16,
    /// First delay before reconnecting after a broker loss (default 500 ms), doubled up to
    /// `reconnect_max_delay_ms`, with jitter. The daemon never gives up.
    #[serde(default = "default_reconnect_min_delay_ms")]
    pub reconnect_min_delay_ms: u64,
    /// Longest delay between reconnection attempts (default 30 000 ms).
    #[serde(default = "default_reconnect_max_delay_ms")]
    pub reconnect_max_delay_ms: u64,
    /// `x-delivery-limit` of every quorum work queue (default 20): a message redelivered
    /// this many times without an ack (it crashes the daemon, say) is dead-lettered to the
    /// stage's parking lot by the broker itself.
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
}

/// `[retry]`: what happens to transient failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay tiers in seconds (default 5, 30, 120, 600, 3600). Each is a durable queue per
    /// stage with that fixed TTL that dead-letters back to the stage's work queue; attempt n
    /// waits in tier min(n-1, last): exponential backoff across tiers.
    #[serde(default = "default_tiers")]
    pub tiers_secs: Vec<u64>,
    /// Attempts before a transient failure is parked (default 8, the first try included).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Quick in-process retries of a transient failure before it goes to a delay tier
    /// (default 2), with exponential delays from `in_process_min_delay_ms` (default 200).
    #[serde(default = "default_in_process_retries")]
    pub in_process_retries: u32,
    #[serde(default = "default_in_process_min_delay_ms")]
    pub in_process_min_delay_ms: u64,
}

/// Everything the runtime needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub broker: BrokerConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    /// On SIGTERM/SIGINT, how long in-flight messages may take to finish (default 20 s).
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
}

fn default_url() -> String {
    "amqp://guest:guest@127.0.0.1:5672/%2f".into()
}
fn default_prefix() -> String {
    "encaisse".into()
}
fn default_prefetch() -> u16 {
    64
}
fn default_confirm_window() -> usize {
    256
}
fn default_heartbeat_secs() -> u16 {
    30
}
fn default_reconnect_min_delay_ms() -> u64 {
    500
}
fn default_reconnect_max_delay_ms() -> u64 {
    30_000
}
fn default_delivery_limit() -> u32 {
    20
}
fn default_tiers() -> Vec<u64> {
    vec![5, 30, 120, 600, 3600]
}
fn default_max_attempts() -> u32 {
    8
}
fn default_in_process_retries() -> u32 {
    2
}
fn default_in_process_min_delay_ms() -> u64 {
    200
}
fn default_shutdown_grace_secs() -> u64 {
    20
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: default_url(),
            prefix: default_prefix(),
            prefetch: default_prefetch(),
            confirm_window: default_confirm_window(),
            heartbeat_secs: default_heartbeat_secs(),
            reconnect_min_delay_ms: default_reconnect_min_delay_ms(),
            reconnect_max_delay_ms: default_reconnect_max_delay_ms(),
            delivery_limit: default_delivery_limit(),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            tiers_secs: default_tiers(),
            max_attempts: default_max_attempts(),
            in_process_retries: default_in_process_retries(),
            in_process_min_delay_ms: default_in_process_min_delay_ms(),
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            broker: BrokerConfig::default(),
            retry: RetryConfig::default(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
        }
    }
}
