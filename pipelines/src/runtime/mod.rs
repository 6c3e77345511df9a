//! The AMQP runtime (DESIGN §3).
//!
//! ```text
//! Runtime::new(RuntimeConfig, Ledger)
//!     .add_stage(Arc<dyn Stage>)      // consumes <prefix>.<stage>, retries, parks, dedupes
//!     .add_source(Arc<dyn Source>)    // a task that publishes (inbox watcher, HTTP, timers)
//!     .run(shutdown_token)            // supervises until the token is cancelled
//! ```
//!
//! STATUS: the public API below is fixed; the engine is being implemented (issue 2).

pub mod config;

use std::sync::Arc;

use encaisse_ledger::Ledger;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

pub use config::{BrokerConfig, RetryConfig, RuntimeConfig};

use crate::stage::{Outgoing, Stage};

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
}

/// Why the runtime stopped with an error (never because the broker went away: it retries
/// that forever).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "topology conflict on {queue}: {message} (an existing queue was declared with other arguments; see ARCHITECTURE.md, 'Changing retry tiers')"
    )]
    TopologyConflict { queue: String, message: String },
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    #[error("ledger: {0}")]
    Ledger(#[from] encaisse_ledger::LedgerError),
}

/// Publishes with publisher confirms, `mandatory`, persistent delivery, within the bounded
/// window of unconfirmed messages. Cloneable; usable from sources and HTTP handlers.
/// Returns once every message is confirmed by the broker.
#[derive(Clone)]
pub struct Publisher {
    #[allow(dead_code)]
    inner: Arc<()>,
}

impl Publisher {
    pub async fn publish(&self, _messages: Vec<Outgoing>) -> Result<(), PublishError> {
        Err(PublishError::NotConnected)
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
    health_tx: tokio::sync::watch::Sender<BrokerState>,
    publisher: Publisher,
}

impl Runtime {
    pub fn new(config: RuntimeConfig, ledger: Ledger) -> Self {
        let (health_tx, _) = tokio::sync::watch::channel(BrokerState::Connecting);
        Runtime {
            config,
            ledger,
            stages: Vec::new(),
            sources: Vec::new(),
            health_tx,
            publisher: Publisher {
                inner: Arc::new(()),
            },
        }
    }

    pub fn add_stage(&mut self, stage: Arc<dyn Stage>) -> &mut Self {
        self.stages.push(stage);
        self
    }

    pub fn add_source(&mut self, source: Arc<dyn Source>) -> &mut Self {
        self.sources.push(source);
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

    /// Runs until `shutdown` is cancelled, then stops consuming, lets in-flight messages
    /// finish (bounded by `config.shutdown_grace_secs`) and returns `Ok`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RuntimeError> {
        let _ = (&self.stages, &self.sources);
        shutdown.cancelled().await;
        Err(RuntimeError::Config(
            "runtime engine not implemented yet".into(),
        ))
    }
}
