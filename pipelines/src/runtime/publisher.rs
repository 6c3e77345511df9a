//! Confirmed publishing: one channel in confirm mode, rebuilt whenever it or the connection
//! dies; `mandatory`, persistent; at most `confirm_window` unconfirmed messages in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::{Mutex, Semaphore, watch};

use super::PublishError;
use super::headers::{short, to_field_table};
use super::metrics;
use crate::stage::Outgoing;

/// The connection the supervisor hands out once the topology is declared (`None` while the
/// broker is away).
pub type ConnectionSlot = watch::Receiver<Option<Arc<Connection>>>;

/// A message ready for the wire.
#[derive(Debug, Clone)]
pub struct Wire {
    pub exchange: String,
    pub routing_key: String,
    /// For errors and logs.
    pub message_id: String,
    pub properties: BasicProperties,
    pub body: Bytes,
}

/// `application/json`, persistent.
pub const CONTENT_TYPE: &str = "application/json";
pub const PERSISTENT: u8 = 2;

impl Wire {
    /// The wire form of a stage's output; `None` exchange = the work exchange `prefix`.
    pub fn from_outgoing(o: &Outgoing, prefix: &str) -> Result<Wire, PublishError> {
        let invalid = |reason: String| PublishError::Invalid {
            message_id: o.message_id.clone(),
            reason,
        };
        let exchange = o.exchange.clone().unwrap_or_else(|| prefix.to_string());
        short(&exchange, "exchange").map_err(invalid)?;
        short(&o.routing_key, "routing key").map_err(invalid)?;
        let properties = BasicProperties::default()
            .with_message_id(short(&o.message_id, "message_id").map_err(invalid)?)
            .with_type(short(&o.message_type, "message type").map_err(invalid)?)
            .with_content_type(ShortString::from(CONTENT_TYPE))
            .with_delivery_mode(PERSISTENT)
            .with_timestamp(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0))
            .with_headers(to_field_table(&o.headers).map_err(invalid)?);
        Ok(Wire {
            exchange,
            routing_key: o.routing_key.clone(),
            message_id: o.message_id.clone(),
            properties,
            body: o.body.clone(),
        })
    }
}

pub struct PublisherCore {
    prefix: String,
    wait: Duration,
    window: Arc<Semaphore>,
    window_size: usize,
    connection: ConnectionSlot,
    channel: Mutex<Option<Channel>>,
    closed: AtomicBool,
    /// The work queues sources wait on before publishing more ([`super::backlog`]).
    pub(crate) downstream: super::backlog::Downstream,
}

impl PublisherCore {
    pub fn new(prefix: String, wait: Duration, window: usize, connection: ConnectionSlot) -> Self {
        let window_size = window.clamp(1, Semaphore::MAX_PERMITS);
        PublisherCore {
            prefix,
            wait,
            window: Arc::new(Semaphore::new(window_size)),
            window_size,
            connection,
            channel: Mutex::new(None),
            closed: AtomicBool::new(false),
            downstream: super::backlog::Downstream::default(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The connection the publisher uses (for [`super::backlog`]'s depth reads).
    pub(crate) fn connection(&self) -> &ConnectionSlot {
        &self.connection
    }

    /// After shutdown: every publish fails with [`PublishError::ShuttingDown`].
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Closes the publishing channel (reply 200), before the connection is closed.
    pub async fn close_channel(&self) {
        if let Some(channel) = self.channel.lock().await.take()
            && channel.status().connected()
        {
            let _ = channel.close(200, "encaisse shutting down".into()).await;
        }
    }

    /// The publishing channel, opened (in confirm mode) on the current connection when the
    /// previous one is gone. Waits up to `wait` for the broker.
    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut cached = self.channel.lock().await;
        if let Some(channel) = cached.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *cached = None;
        let mut slot = self.connection.clone();
        let connection = tokio::time::timeout(
            self.wait,
            slot.wait_for(|c| c.as_ref().is_some_and(|c| c.status().connected())),
        )
        .await
        .map_err(|_| PublishError::NotConnected)?
        .map_err(|_| PublishError::ShuttingDown)?
        .clone()
        .ok_or(PublishError::NotConnected)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|_| PublishError::NotConnected)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| PublishError::Channel(e.to_string()))?;
        *cached = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes stage outputs; returns once the broker confirmed every one.
    pub async fn publish(&self, messages: &[Outgoing]) -> Result<(), PublishError> {
        let wires = messages
            .iter()
            .map(|m| Wire::from_outgoing(m, &self.prefix))
            .collect::<Result<Vec<_>, _>>()
            .inspect_err(|_| metrics::publish_failed("invalid"))?;
        self.publish_wire(&wires).await
    }

    /// Publishes messages already in wire form; returns once all are confirmed.
    pub async fn publish_wire(&self, wires: &[Wire]) -> Result<(), PublishError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(PublishError::ShuttingDown);
        }
        for chunk in wires.chunks(self.window_size) {
            let result = self.publish_chunk(chunk).await;
            if let Err(e) = &result {
                metrics::publish_failed(e.reason());
            }
            result?;
            metrics::confirmed(chunk.len());
        }
        Ok(())
    }

    async fn publish_chunk(&self, chunk: &[Wire]) -> Result<(), PublishError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let channel = self.channel().await?;
        // The whole chunk's permits at once: a caller never holds part of the window while
        // waiting for the rest (no deadlock between concurrent publishers).
        let permits = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        let _permits = self
            .window
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| PublishError::ShuttingDown)?;
        let mut confirms = Vec::with_capacity(chunk.len());
        for wire in chunk {
            let exchange =
                short(&wire.exchange, "exchange").map_err(|reason| PublishError::Invalid {
                    message_id: wire.message_id.clone(),
                    reason,
                })?;
            let routing_key = short(&wire.routing_key, "routing key").map_err(|reason| {
                PublishError::Invalid {
                    message_id: wire.message_id.clone(),
                    reason,
                }
            })?;
            let confirm = channel
                .basic_publish(
                    exchange,
                    routing_key,
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &wire.body,
                    wire.properties.clone(),
                )
                .await
                .map_err(|e| PublishError::Channel(e.to_string()))?;
            confirms.push((wire, confirm));
        }
        let mut first_error = None;
        for (wire, confirm) in confirms {
            let outcome = match confirm.await {
                Ok(Confirmation::Ack(None)) => Ok(()),
                Ok(Confirmation::Ack(Some(_returned))) => Err(PublishError::Unroutable {
                    message_id: wire.message_id.clone(),
                    routing_key: wire.routing_key.clone(),
                }),
                Ok(Confirmation::Nack(_)) => Err(PublishError::Nacked),
                Ok(Confirmation::NotRequested) => Err(PublishError::Channel(
                    "publisher confirms are not enabled on the channel".into(),
                )),
                Err(e) => Err(PublishError::Channel(e.to_string())),
            };
            if let Err(e) = outcome
                && first_error.is_none()
            {
                first_error = Some(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
