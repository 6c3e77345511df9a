//! The supervisor: connect, check the broker, declare the topology, start one consumer per
//! stage, and on any broker loss tear everything down and start again with jittered
//! exponential backoff — forever, until shutdown.
//!
//! lapin's own auto-recovery is not enabled: it is still getting correctness fixes (see
//! `../shared/specs/middleware.md` §3.2), and a rebuild from our configuration is simple and
//! always correct. Handler tasks outlive the connection they came from: they finish, record
//! their result in the ledger, publish on the next connection (the publisher waits), and
//! their ack fails harmlessly — the broker redelivers and the ledger deduplicates.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use futures::future::BoxFuture;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::RuntimeConfig;
use super::drain::DrainConsumer;
use super::handling::StageRunner;
use super::headers::short;
use super::instance::{self, ClaimError};
use super::metrics;
use super::publisher::PublisherCore;
use super::topology::{self, StageQueues, TopologyError};
use super::{BrokerState, RuntimeError};

/// One stage's consumer settings.
pub struct StageConsumer {
    pub runner: Arc<StageRunner>,
    pub bindings: Vec<String>,
    pub prefetch: u16,
    /// Deliveries of this stage handled at once (shared across reconnections).
    pub permits: Arc<Semaphore>,
}

pub struct Supervisor {
    pub config: RuntimeConfig,
    pub consumers: Vec<Arc<StageConsumer>>,
    /// Consumers of drained queues (the parking lots for ops), started with the stages'.
    pub drains: Vec<Arc<DrainConsumer>>,
    pub health: watch::Sender<BrokerState>,
    pub slot: watch::Sender<Option<Arc<Connection>>>,
    pub publisher: Arc<PublisherCore>,
    /// Every handler task, across connections.
    pub handlers: TaskTracker,
    /// The sources' tasks (they stop on the shutdown token).
    pub sources: TaskTracker,
    /// The holder description when the prefix is claimed ([`super::Runtime::claim_prefix`]).
    pub claim: Option<String>,
}

/// Reconnection delays: from `reconnect_min_delay_ms`, doubling, jittered, endless, and never
/// longer than `reconnect_max_delay_ms`. The jitter adds up to the delay itself, so the
/// doubling stops at half the cap and the jittered value is clamped: the cap is a real
/// bound on how long a returning broker waits for the daemon.
pub fn reconnect_backoff(config: &RuntimeConfig) -> impl Iterator<Item = Duration> + use<> {
    let min = Duration::from_millis(config.broker.reconnect_min_delay_ms);
    let cap = Duration::from_millis(config.broker.reconnect_max_delay_ms).max(min);
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay((cap / 2).max(min))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .map(move |delay| delay.min(cap))
}

/// Sleeps `delay` unless shutdown comes first (then `false`).
async fn pause(delay: Option<Duration>, shutdown: &CancellationToken) -> bool {
    let delay = delay.unwrap_or(Duration::from_secs(1));
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.cancelled() => false,
    }
}

/// The broker URL with our heartbeat and connection timeout.
pub fn broker_uri(config: &RuntimeConfig) -> Result<AMQPUri, RuntimeError> {
    let mut uri: AMQPUri = config
        .broker
        .url
        .parse()
        .map_err(|e| RuntimeError::Config(format!("broker.url is not an AMQP URL: {e}")))?;
    uri.query.heartbeat = Some(config.broker.heartbeat_secs);
    uri.query.connection_timeout = Some(config.broker.connect_timeout_ms);
    Ok(uri)
}

async fn connect(uri: &AMQPUri, config: &RuntimeConfig) -> Result<Connection, String> {
    let name = format!("encaisse ({})", config.broker.prefix);
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let timeout = Duration::from_millis(config.broker.connect_timeout_ms.saturating_add(1000));
    match tokio::time::timeout(timeout, Connection::connect_uri(uri.clone(), properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// What a consumer loop needs to know of the queue it consumes and how to hand a delivery
/// over: a stage (its runner) or a drain (ops tooling reading the parking lots).
trait Consumed: Send + Sync + 'static {
    fn queue(&self) -> &str;
    fn label(&self) -> &str;
    fn prefetch(&self) -> u16;
    fn permits(&self) -> Arc<Semaphore>;
    fn handle(self: Arc<Self>, delivery: Delivery) -> BoxFuture<'static, ()>;
}

impl Consumed for StageConsumer {
    fn queue(&self) -> &str {
        &self.runner.queues.work
    }
    fn label(&self) -> &str {
        &self.runner.name
    }
    fn prefetch(&self) -> u16 {
        self.prefetch
    }
    fn permits(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }
    fn handle(self: Arc<Self>, delivery: Delivery) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.runner.handle(delivery).await })
    }
}

impl Consumed for DrainConsumer {
    fn queue(&self) -> &str {
        &self.queue
    }
    fn label(&self) -> &str {
        self.drain.name()
    }
    fn prefetch(&self) -> u16 {
        self.prefetch
    }
    fn permits(&self) -> Arc<Semaphore> {
        self.permits.clone()
    }
    fn handle(self: Arc<Self>, delivery: Delivery) -> BoxFuture<'static, ()> {
        Box::pin(async move { DrainConsumer::handle(&self, delivery).await })
    }
}

/// Consumes one queue until the session ends (`Ok`, with the channel: it is closed once the
/// in-flight deliveries are acked) or the channel/consumer dies (`Err`).
async fn consume<C: Consumed>(
    connection: Arc<Connection>,
    stage: Arc<C>,
    session: CancellationToken,
    handlers: TaskTracker,
) -> Result<Arc<Channel>, String> {
    let queue = stage.queue().to_string();
    let channel = Arc::new(
        connection
            .create_channel()
            .await
            .map_err(|e| e.to_string())?,
    );
    channel
        .basic_qos(stage.prefetch(), BasicQosOptions { global: false })
        .await
        .map_err(|e| e.to_string())?;
    let tag = format!("{}.{}", queue, uuid::Uuid::new_v4().simple());
    let mut consumer = channel
        .basic_consume(
            short(&queue, "queue name")?,
            short(&tag, "consumer tag")?,
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(stage = %stage.label(), queue = %queue, prefetch = stage.prefetch(), "Consumer started.");
    let permits = stage.permits();
    loop {
        let permit = tokio::select! {
            biased;
            _ = session.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.map_err(|e| e.to_string())?,
        };
        let next = tokio::select! {
            biased;
            _ = session.cancelled() => break,
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                let handler = stage.clone();
                // The channel lives as long as a delivery of it is in hand (its ack needs it).
                let channel = channel.clone();
                handlers.spawn(async move {
                    handler.handle(delivery).await;
                    drop(permit);
                    drop(channel);
                });
            }
            Some(Err(e)) => return Err(format!("consumer of {queue} failed: {e}")),
            None => return Err(format!("consumer of {queue} was cancelled by the broker")),
        }
    }
    // Stop the flow; deliveries already prefetched but not taken go back to the queue when
    // the channel closes (after the in-flight ones are acked).
    if let Ok(tag) = short(&tag, "consumer tag") {
        let cancel = channel.basic_cancel(tag, BasicCancelOptions::default());
        let _ = tokio::time::timeout(Duration::from_secs(5), cancel).await;
    }
    Ok(channel)
}

/// Closes the consumers' channels, then the publisher's, then the connection (reply 200).
///
/// The order matters: a channel dropped without `close` is closed by lapin in the
/// background, and when that races the connection's close it fails with "invalid channel
/// state: Closing", logged as an ERROR on a clean stop.
async fn close_in_order(
    connection: &Connection,
    channels: Vec<Arc<Channel>>,
    publisher: &PublisherCore,
) {
    let wait = Duration::from_secs(5);
    let closes = channels
        .iter()
        .map(|channel| channel.close(200, "encaisse shutting down".into()));
    let _ = tokio::time::timeout(wait, futures::future::join_all(closes)).await;
    let _ = tokio::time::timeout(wait, publisher.close_channel()).await;
    let _ =
        tokio::time::timeout(wait, connection.close(200, "encaisse shutting down".into())).await;
}

impl Supervisor {
    fn set_health(&self, state: BrokerState) {
        self.health.send_replace(state);
        metrics::connected(matches!(
            state,
            BrokerState::Connected | BrokerState::Blocked
        ));
    }

    fn specs(&self) -> Vec<(StageQueues, Vec<String>)> {
        self.consumers
            .iter()
            .map(|c| (c.runner.queues.clone(), c.bindings.clone()))
            .collect()
    }

    /// Runs until `shutdown`; returns an error only for what retrying cannot fix.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), RuntimeError> {
        let uri = broker_uri(&self.config)?;
        let specs = self.specs();
        let mut delays = reconnect_backoff(&self.config);
        let mut probed = false;
        while !shutdown.is_cancelled() {
            self.set_health(BrokerState::Connecting);
            let connected = tokio::select! {
                c = connect(&uri, &self.config) => c,
                _ = shutdown.cancelled() => break,
            };
            let connection = match connected {
                Ok(c) => Arc::new(c),
                Err(error) => {
                    self.set_health(BrokerState::Disconnected);
                    tracing::warn!(%error, host = %uri.authority.host, port = uri.authority.port, "Broker connection failed; retrying.");
                    if !pause(delays.next(), &shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            let mut events = connection.events_listener();
            if let Some(holder) = &self.claim {
                match instance::claim(&connection, &self.config.broker.prefix, holder).await {
                    Ok(()) => {}
                    // Our own previous connection, not yet closed by the broker (a network
                    // cut it lost on our side only): it goes at the broker's heartbeat
                    // timeout, so this is a passing state.
                    Err(ClaimError::Held { holder: held, .. }) if &held == holder => {
                        let _ = connection
                            .close(200, "prefix still held by our previous connection".into())
                            .await;
                        self.set_health(BrokerState::Disconnected);
                        tracing::warn!(
                            "Our previous broker connection still holds the prefix; retrying once the broker drops it."
                        );
                        if !pause(delays.next(), &shutdown).await {
                            break;
                        }
                        continue;
                    }
                    Err(ClaimError::Held { prefix, holder }) => {
                        let _ = connection.close(200, "prefix held".into()).await;
                        self.set_health(BrokerState::Disconnected);
                        return Err(RuntimeError::PrefixHeld { prefix, holder });
                    }
                    Err(error @ ClaimError::Broker { .. }) => {
                        self.set_health(BrokerState::Disconnected);
                        tracing::warn!(%error, "Claiming the prefix failed; reconnecting.");
                        if !pause(delays.next(), &shutdown).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let prepared = async {
                if !probed {
                    topology::probe_at_least_once(&connection, &self.config.broker.prefix).await?;
                }
                topology::declare(&connection, &self.config, &specs).await
            };
            match prepared.await {
                Ok(()) => probed = true,
                Err(TopologyError::Conflict { name, message }) => {
                    let _ = connection.close(200, "topology conflict".into()).await;
                    self.set_health(BrokerState::Disconnected);
                    return Err(RuntimeError::TopologyConflict {
                        queue: name,
                        message,
                    });
                }
                Err(TopologyError::Unsupported(message)) => {
                    let _ = connection.close(200, "unsupported broker".into()).await;
                    self.set_health(BrokerState::Disconnected);
                    return Err(RuntimeError::Config(message));
                }
                Err(error @ TopologyError::Broker { .. }) => {
                    self.set_health(BrokerState::Disconnected);
                    tracing::warn!(%error, "Topology declaration failed; reconnecting.");
                    if !pause(delays.next(), &shutdown).await {
                        break;
                    }
                    continue;
                }
            }

            let session = shutdown.child_token();
            let mut consumers = JoinSet::new();
            for stage in &self.consumers {
                consumers.spawn(consume(
                    connection.clone(),
                    stage.clone(),
                    session.clone(),
                    self.handlers.clone(),
                ));
            }
            for drain in &self.drains {
                consumers.spawn(consume(
                    connection.clone(),
                    drain.clone(),
                    session.clone(),
                    self.handlers.clone(),
                ));
            }
            self.slot.send_replace(Some(connection.clone()));
            self.set_health(BrokerState::Connected);
            delays = reconnect_backoff(&self.config);
            tracing::info!(
                prefix = %self.config.broker.prefix,
                stages = self.consumers.len(),
                drained_queues = self.drains.len(),
                "Broker connected, topology declared, consumers started."
            );

            // Channels of the consumers that stopped for the shutdown, closed last.
            let mut stopped = Vec::new();
            let lost = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break None,
                    event = events.next() => match event {
                        Some(Event::ConnectionBlocked(reason)) => {
                            tracing::warn!(%reason, "Broker blocked the connection (resource alarm).");
                            self.set_health(BrokerState::Blocked);
                        }
                        Some(Event::ConnectionUnblocked) => {
                            tracing::info!("Broker unblocked the connection.");
                            self.set_health(BrokerState::Connected);
                        }
                        Some(Event::Error(e)) => break Some(e.to_string()),
                        Some(_) => {}
                        None => break Some("connection event stream ended".to_string()),
                    },
                    done = consumers.join_next(), if !consumers.is_empty() => match done {
                        Some(Ok(Ok(channel))) if shutdown.is_cancelled() => {
                            stopped.push(channel);
                            break None;
                        }
                        Some(Ok(Ok(_))) => break Some("a consumer stopped".to_string()),
                        Some(Ok(Err(e))) => break Some(e),
                        Some(Err(e)) => break Some(format!("a consumer task failed: {e}")),
                        None => {}
                    },
                }
            };

            match lost {
                None => {
                    session.cancel();
                    while let Some(done) = consumers.join_next().await {
                        if let Ok(Ok(channel)) = done {
                            stopped.push(channel);
                        }
                    }
                    self.drain().await;
                    self.publisher.close();
                    self.slot.send_replace(None);
                    close_in_order(&connection, stopped, &self.publisher).await;
                    self.set_health(BrokerState::Disconnected);
                    tracing::info!("Runtime stopped.");
                    return Ok(());
                }
                Some(reason) => {
                    self.slot.send_replace(None);
                    self.set_health(BrokerState::Disconnected);
                    metrics::reconnect();
                    session.cancel();
                    consumers.abort_all();
                    tracing::warn!(%reason, "Broker connection lost; rebuilding connection, topology and consumers.");
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        connection.close(200, "encaisse reconnecting".into()),
                    )
                    .await;
                    drop(connection);
                    if !pause(delays.next(), &shutdown).await {
                        break;
                    }
                }
            }
        }
        // Shutdown while disconnected.
        self.drain().await;
        self.publisher.close();
        self.set_health(BrokerState::Disconnected);
        tracing::info!("Runtime stopped.");
        Ok(())
    }

    /// Lets in-flight handlers (and the sources) finish within the grace period.
    async fn drain(&self) {
        self.handlers.close();
        self.sources.close();
        let grace = Duration::from_secs(self.config.shutdown_grace_secs);
        let in_flight = self.handlers.len();
        if in_flight > 0 {
            tracing::info!(
                in_flight,
                grace_secs = grace.as_secs(),
                "Waiting for in-flight messages."
            );
        }
        let both = async {
            self.handlers.wait().await;
            self.sources.wait().await;
        };
        if tokio::time::timeout(grace, both).await.is_err() {
            tracing::warn!(
                messages_still_running = self.handlers.len(),
                sources_still_running = self.sources.len(),
                "Grace period over; unfinished messages will be redelivered."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(min_ms: u64, max_ms: u64) -> RuntimeConfig {
        let mut config = RuntimeConfig::default();
        config.broker.reconnect_min_delay_ms = min_ms;
        config.broker.reconnect_max_delay_ms = max_ms;
        config
    }

    #[test]
    fn reconnection_delays_never_exceed_the_cap() {
        let delays: Vec<Duration> = reconnect_backoff(&config(500, 5_000)).take(200).collect();
        let cap = Duration::from_millis(5_000);
        assert!(delays.iter().all(|d| *d <= cap), "{delays:?}");
        assert!(delays[0] >= Duration::from_millis(500), "{delays:?}");
        assert!(
            delays[20..].iter().all(|d| *d >= cap / 2),
            "past the doubling, delays stay between half the cap and the cap: {delays:?}"
        );
    }

    #[test]
    fn a_cap_below_the_first_delay_is_the_first_delay() {
        let delays: Vec<Duration> = reconnect_backoff(&config(2_000, 500)).take(50).collect();
        assert!(
            delays.iter().all(|d| *d == Duration::from_millis(2_000)),
            "{delays:?}"
        );
    }
}
