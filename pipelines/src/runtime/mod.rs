//! The AMQP runtime (DESIGN §3).
//!
//! ```text
//! Runtime::new(RuntimeConfig, Ledger)
//!     .add_stage(Arc<dyn Stage>)      // consumes <prefix>.<stage>, retries, parks, dedupes
//!     .add_source(Arc<dyn Source>)    // a task that publishes (inbox watcher, HTTP, timers)
//!     .add_drain(Arc<dyn Drain>)      // consumes other declared queues as they are (parking lots)
//!     .run(shutdown_token)            // supervises until the token is cancelled
//! ```
//!
//! How it works, module by module: [`topology`] (names, arguments, idempotent declaration),
//! [`publisher`] (confirmed publishing), [`handling`] (one delivery: dedupe, handler,
//! outbox, retry tiers, parking), [`supervisor`] (connection loop and consumers),
//! `bundled` (a bundle's items, each as its own message), [`sources`] (source restarts, dedupe pruning), [`drain`] (queues read as they are, for
//! ops), [`headers`], [`outbox`], [`metrics`].
//! The operator's view is in `docs/runtime.md`.

pub mod backlog;
mod bundled;
pub mod burst;
pub mod config;
pub mod drain;
pub mod handling;
pub mod headers;
pub mod instance;
pub mod lease;
pub mod metrics;
pub mod outbox;
pub mod publisher;
pub mod sources;
pub mod supervisor;
pub mod topology;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use encaisse_ledger::Ledger;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{BrokerConfig, DedupeConfig, RetryConfig, RuntimeConfig};
pub use drain::{Drain, DrainError, Drained};
pub use topology::StageQueues;

use crate::stage::{ErrorClass, Outgoing, Stage};

/// Why publishing failed. Always transient from the caller's point of view except
/// `Unroutable` (a topology bug: no queue bound for the routing key).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("broker is not connected")]
    NotConnected,
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("message {message_id} with routing key {routing_key} is unroutable: no queue is bound")]
    Unroutable {
        message_id: String,
        routing_key: String,
    },
    #[error("publishing failed: {0}")]
    Channel(String),
    #[error("runtime is shutting down")]
    ShuttingDown,
    /// The message cannot be put on the wire (a name longer than AMQP allows).
    #[error("message {message_id} cannot be published: {reason}")]
    Invalid { message_id: String, reason: String },
}

impl PublishError {
    /// Retry class: `Unroutable` and `Invalid` are permanent (fix the topology or the
    /// stage), everything else transient.
    pub fn class(&self) -> ErrorClass {
        match self {
            PublishError::Unroutable { .. } | PublishError::Invalid { .. } => ErrorClass::Permanent,
            _ => ErrorClass::Transient,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// Label of `encaisse_publish_failed_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PublishError::NotConnected => "not_connected",
            PublishError::Nacked => "nacked",
            PublishError::Unroutable { .. } => "unroutable",
            PublishError::Channel(_) => "channel",
            PublishError::ShuttingDown => "shutting_down",
            PublishError::Invalid { .. } => "invalid",
        }
    }
}

/// Why the runtime stopped with an error (never because the broker went away: it retries
/// that forever).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "topology conflict on {queue}: {message} (an existing queue was declared with other arguments; see docs/runtime.md, 'Changing the topology')"
    )]
    TopologyConflict { queue: String, message: String },
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    #[error("ledger: {0}")]
    Ledger(#[from] encaisse_ledger::LedgerError),
    /// Another daemon holds the queue prefix ([`Runtime::claim_prefix`]).
    #[error(
        "another encaisse daemon holds the broker prefix {prefix} ({holder}); one daemon per prefix: stop it first, or give this one its own broker.prefix"
    )]
    PrefixHeld { prefix: String, holder: String },
}

impl RuntimeError {
    /// Retry class: a topology conflict or a bad configuration needs a person (permanent);
    /// a ledger failure may pass (transient: restarting the daemon may help).
    pub fn class(&self) -> ErrorClass {
        match self {
            RuntimeError::Ledger(e) if e.is_transient() => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// Publishes with publisher confirms, `mandatory`, persistent delivery, within the bounded
/// window of unconfirmed messages. Cloneable; usable from sources and HTTP handlers.
/// Returns once every message is confirmed by the broker.
///
/// While the broker is away it waits up to `broker.publish_wait_ms` for the supervisor to
/// reconnect, then fails with [`PublishError::NotConnected`] (transient: try again later).
/// Messages of one call are published in order; on error, some may have been published:
/// publishing the same messages again is safe (same ids, consumers deduplicate).
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<publisher::PublisherCore>,
}

impl Publisher {
    pub async fn publish(&self, messages: Vec<Outgoing>) -> Result<(), PublishError> {
        self.inner.publish(&messages).await
    }

    /// Back-pressure ([`backlog`]): waits while a work queue that messages with one of
    /// `routing_keys` are routed to holds more than `bound` ready messages. `source` names
    /// the waiting source in logs and in the `encaisse_downstream_backlog_waiting` gauge.
    /// Returns at once if the depths cannot be read or `shutdown` is cancelled.
    pub async fn wait_for_downstream(
        &self,
        routing_keys: &[&str],
        bound: u64,
        source: &str,
        shutdown: &CancellationToken,
    ) {
        let queues = self.inner.downstream.queues_for(routing_keys);
        backlog::wait_below(self.inner.connection(), &queues, bound, source, shutdown).await;
    }
}

/// Broker connection state, for `/readyz` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    Connecting,
    Connected,
    /// Connected but the broker applies flow control (memory or disk alarm).
    Blocked,
    Disconnected,
}

/// Watches the broker state.
#[derive(Clone)]
pub struct Health {
    rx: tokio::sync::watch::Receiver<BrokerState>,
}

impl Health {
    pub fn state(&self) -> BrokerState {
        *self.rx.borrow()
    }

    pub fn is_connected(&self) -> bool {
        self.state() == BrokerState::Connected
    }
}

/// What a source gets to work with.
#[derive(Clone)]
pub struct SourceContext {
    pub publisher: Publisher,
    pub ledger: Ledger,
    pub shutdown: CancellationToken,
}

/// A long-running task that feeds the broker (an inbox watcher, a reconciliation timer).
/// The runtime restarts it with backoff if it returns an error; it must return `Ok` when
/// `ctx.shutdown` is cancelled.
pub trait Source: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>>;
}

/// The runtime: owns connection, topology, consumers, publisher and sources.
pub struct Runtime {
    config: RuntimeConfig,
    ledger: Ledger,
    stages: Vec<Arc<dyn Stage>>,
    sources: Vec<Arc<dyn Source>>,
    drains: Vec<Arc<dyn Drain>>,
    health_tx: watch::Sender<BrokerState>,
    slot_tx: watch::Sender<Option<Arc<lapin::Connection>>>,
    publisher: Publisher,
    claim: Option<String>,
    coordination: lease::Coordination,
}

impl Runtime {
    pub fn new(config: RuntimeConfig, ledger: Ledger) -> Self {
        let (health_tx, _) = watch::channel(BrokerState::Connecting);
        let (slot_tx, slot_rx) = watch::channel(None);
        let core = publisher::PublisherCore::new(
            config.broker.prefix.clone(),
            Duration::from_millis(config.broker.publish_wait_ms),
            config.broker.confirm_window,
            slot_rx,
        );
        Runtime {
            config,
            ledger,
            stages: Vec::new(),
            sources: Vec::new(),
            drains: Vec::new(),
            health_tx,
            slot_tx,
            publisher: Publisher {
                inner: Arc::new(core),
            },
            claim: None,
            coordination: lease::Coordination::single(),
        }
    }

    /// Makes this runtime the only one on its prefix: on every connection it claims
    /// `P.instance` (module [`instance`]) before declaring anything, and stops with
    /// [`RuntimeError::PrefixHeld`] when another process holds it. `holder` (pid, host,
    /// data directory) is what a refused process reads about this one.
    pub fn claim_prefix(&mut self, holder: impl Into<String>) -> &mut Self {
        self.claim = Some(holder.into());
        self
    }

    /// How this daemon shares its once-only work ([`lease`]): alone (the default, an SQLite
    /// ledger) or with other daemons on one PostgreSQL ledger, each source then running
    /// under a lease named after it.
    pub fn coordinate(&mut self, coordination: lease::Coordination) -> &mut Self {
        self.coordination = coordination;
        self
    }

    pub fn add_stage(&mut self, stage: Arc<dyn Stage>) -> &mut Self {
        let queues = StageQueues::new(
            &self.config.broker.prefix,
            stage.name(),
            &self.config.retry.tiers_secs,
        );
        self.publisher
            .inner
            .downstream
            .add(queues.work, stage.bindings());
        self.stages.push(stage);
        self
    }

    /// Adds a queue consumed outside this runtime to those the sources' back-pressure
    /// watches ([`Publisher::wait_for_downstream`]), with the patterns binding it to the
    /// work exchange. The stages' work queues are watched without this.
    pub fn watch_downstream(&mut self, queue: impl Into<String>, patterns: &[&str]) -> &mut Self {
        self.publisher.inner.downstream.add(
            queue.into(),
            patterns.iter().map(|p| (*p).to_string()).collect(),
        );
        self
    }

    pub fn add_source(&mut self, source: Arc<dyn Source>) -> &mut Self {
        self.sources.push(source);
        self
    }

    /// Adds a drain: a consumer of queues the stages declare but do not consume (the
    /// parking lots), which sees each message as it came and acks it once taken.
    pub fn add_drain(&mut self, drain: Arc<dyn Drain>) -> &mut Self {
        self.drains.push(drain);
        self
    }

    /// A publisher that works once (and whenever) the broker is connected.
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    pub fn health(&self) -> Health {
        Health {
            rx: self.health_tx.subscribe(),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The queues of every added stage (for `encaisse check`, docs and tests).
    pub fn stage_queues(&self) -> Vec<StageQueues> {
        self.stages
            .iter()
            .map(|s| {
                StageQueues::new(
                    &self.config.broker.prefix,
                    s.name(),
                    &self.config.retry.tiers_secs,
                )
            })
            .collect()
    }

    fn check(&self) -> Result<(), RuntimeError> {
        self.config.validate().map_err(RuntimeError::Config)?;
        supervisor::broker_uri(&self.config)?;
        let mut names = BTreeSet::new();
        for stage in &self.stages {
            let name = stage.name();
            let valid = !name.is_empty()
                && name.len() <= 100
                && name.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                });
            if !valid {
                return Err(RuntimeError::Config(format!(
                    "stage name {name:?} must be 1 to 100 characters among a-z, 0-9, '.', '_', '-'"
                )));
            }
            if !names.insert(name.to_string()) {
                return Err(RuntimeError::Config(format!("stage {name} is added twice")));
            }
            if let Some(pattern) = stage
                .bindings()
                .iter()
                .find(|p| p.is_empty() || p.len() > 255)
            {
                return Err(RuntimeError::Config(format!(
                    "stage {name}: binding {pattern:?} must be 1 to 255 bytes"
                )));
            }
        }
        Ok(())
    }

    /// Runs until `shutdown` is cancelled, then stops consuming, lets in-flight messages
    /// finish (bounded by `config.shutdown_grace_secs`) and returns `Ok`.
    ///
    /// Never returns because the broker went away (it reconnects forever); returns an error
    /// for an invalid configuration, a topology conflict (a queue exists with other
    /// arguments) or a broker that cannot do at-least-once dead-lettering.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RuntimeError> {
        self.check()?;
        metrics::describe();
        for drain in &self.drains {
            metrics::register_drain(drain.name());
        }
        let handlers = TaskTracker::new();
        let sources = TaskTracker::new();
        let consumers = self
            .stages
            .iter()
            .map(|stage| {
                let concurrency = stage
                    .concurrency()
                    .unwrap_or(usize::from(self.config.broker.prefetch))
                    .clamp(1, usize::from(u16::MAX));
                let prefetch = match stage.concurrency() {
                    Some(_) => u16::try_from(concurrency).unwrap_or(u16::MAX),
                    None => self.config.broker.prefetch,
                };
                Arc::new(supervisor::StageConsumer {
                    runner: Arc::new(handling::StageRunner {
                        stage: stage.clone(),
                        name: stage.name().to_string(),
                        queues: StageQueues::new(
                            &self.config.broker.prefix,
                            stage.name(),
                            &self.config.retry.tiers_secs,
                        ),
                        publisher: self.publisher.inner.clone(),
                        ledger: self.ledger.clone(),
                        committer: burst::BurstCommitter::start(
                            self.ledger.clone(),
                            stage.name().to_string(),
                        ),
                        retry: self.config.retry.clone(),
                        shutdown: shutdown.clone(),
                    }),
                    bindings: stage.bindings(),
                    prefetch,
                    permits: Arc::new(Semaphore::new(concurrency)),
                })
            })
            .collect();
        let stage_queues = self.stage_queues();
        let drains: Vec<_> = self
            .drains
            .iter()
            .flat_map(|d| {
                drain::DrainConsumer::for_drain(d, &stage_queues, &self.config, &shutdown)
            })
            .collect();
        drain::check_queues(&drains, &stage_queues).map_err(RuntimeError::Config)?;
        let context = SourceContext {
            publisher: self.publisher.clone(),
            ledger: self.ledger.clone(),
            shutdown: shutdown.clone(),
        };
        // Every source is once-only work: with several daemons each runs under its lease.
        let pruning: Arc<dyn Source> = Arc::new(sources::Pruning::new(self.config.dedupe.clone()));
        for source in self.sources.iter().chain(std::iter::once(&pruning)) {
            sources.spawn(lease::scope(
                self.coordination.clone(),
                sources::supervise(
                    lease::Leased::wrap(source.clone(), &self.coordination),
                    context.clone(),
                    self.config.clone(),
                ),
            ));
        }
        let supervisor = supervisor::Supervisor {
            config: self.config.clone(),
            consumers,
            drains,
            health: self.health_tx.clone(),
            slot: self.slot_tx.clone(),
            publisher: self.publisher.inner.clone(),
            handlers,
            sources,
            claim: self.claim.clone(),
        };
        let result = supervisor.run(shutdown.clone()).await;
        if result.is_err() {
            // Fatal: stop the sources too.
            shutdown.cancel();
            self.publisher.inner.close();
        }
        result
    }
}
