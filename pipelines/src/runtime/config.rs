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
    /// Longest delay between reconnection attempts, jitter included (default 5 000 ms): a
    /// broker back from a restart is used within this delay. An attempt costs the broker one
    /// TCP connection, so a few seconds is cheap even for several daemons; 30 s (the
    /// earlier default, up to 60 s with the jitter then) left work waiting a minute after a
    /// short broker restart.
    #[serde(default = "default_reconnect_max_delay_ms")]
    pub reconnect_max_delay_ms: u64,
    /// `x-delivery-limit` of every quorum work queue (default 20): a message redelivered
    /// this many times without an ack (it crashes the daemon, say) is dead-lettered to the
    /// stage's parking lot by the broker itself.
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
    /// How long a publish waits for the broker to be (re)connected before it fails with a
    /// transient error (default 10 000 ms). Sources and HTTP handlers retry later.
    #[serde(default = "default_publish_wait_ms")]
    pub publish_wait_ms: u64,
    /// How long one TCP + AMQP connection attempt may take (default 10 000 ms).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
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
    /// First delay of the in-process retries (default 200 ms), doubled at each retry.
    #[serde(default = "default_in_process_min_delay_ms")]
    pub in_process_min_delay_ms: u64,
}

/// `[dedupe]`: how long the ledger remembers processed messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Records of processed messages (and the outputs kept for republishing) older than this
    /// many days are pruned (default 90; 0 keeps them forever). A message redelivered or
    /// replayed after that is handled again, so keep it longer than the longest a message can
    /// wait: the retry tiers (about 3 h with the defaults) plus the time ops may take to
    /// replay a parked message.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// How often the pruning runs (default 3 600 s).
    #[serde(default = "default_prune_interval_secs")]
    pub prune_interval_secs: u64,
}

/// Everything the runtime needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `[broker]`.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// `[retry]`.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `[dedupe]`.
    #[serde(default)]
    pub dedupe: DedupeConfig,
    /// On SIGTERM/SIGINT, how long in-flight messages may take to finish (default 20 s).
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
}

impl RuntimeConfig {
    /// Checks what serde cannot; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let b = &self.broker;
        let r = &self.retry;
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 200
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        };
        if !name_ok(&b.prefix) {
            return Err(format!(
                "broker.prefix {:?} must be 1 to 200 characters among a-z, A-Z, 0-9, '.', '-', '_'",
                b.prefix
            ));
        }
        if b.prefetch == 0 {
            return Err("broker.prefetch must be at least 1".into());
        }
        if b.confirm_window == 0 {
            return Err("broker.confirm_window must be at least 1".into());
        }
        if b.delivery_limit == 0 {
            return Err("broker.delivery_limit must be at least 1".into());
        }
        if b.reconnect_min_delay_ms == 0 {
            return Err("broker.reconnect_min_delay_ms must be at least 1".into());
        }
        if r.tiers_secs.is_empty() {
            return Err("retry.tiers_secs must list at least one delay".into());
        }
        if let Some(bad) = r.tiers_secs.iter().find(|s| **s == 0 || **s > 86_400 * 30) {
            return Err(format!(
                "retry.tiers_secs: {bad} is out of range (1 s to 30 days)"
            ));
        }
        let mut sorted = r.tiers_secs.clone();
        sorted.dedup();
        if sorted.len() != r.tiers_secs.len() {
            return Err("retry.tiers_secs lists the same delay twice in a row".into());
        }
        if r.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        Ok(())
    }
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
    5_000
}
fn default_delivery_limit() -> u32 {
    20
}
fn default_publish_wait_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}
fn default_retention_days() -> u32 {
    90
}
fn default_prune_interval_secs() -> u64 {
    3_600
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
            publish_wait_ms: default_publish_wait_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
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

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            retention_days: default_retention_days(),
            prune_interval_secs: default_prune_interval_secs(),
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            broker: BrokerConfig::default(),
            retry: RetryConfig::default(),
            dedupe: DedupeConfig::default(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
        }
    }
}
