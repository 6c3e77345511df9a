//! The raw broker baseline: N persistent messages through one durable quorum queue, with
//! the smallest correct lapin programs — a publisher with publisher confirms and a bounded
//! window of unconfirmed messages, and a consumer with manual acks and a prefetch — each on
//! its own connection, running at the same time. What the broker alone can carry on this
//! machine; the pipeline is compared with it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection};

use super::broker;
use super::error::{BenchError, Result};

/// How the baseline runs.
#[derive(Debug, Clone)]
pub struct BaselineSettings {
    pub amqp_url: String,
    /// Queue name (under the run's prefix, deleted at the end).
    pub queue: String,
    pub messages: u64,
    /// Body of every message (the size of a real `invoice.issued`).
    pub body: Vec<u8>,
    /// Most unconfirmed publishes in flight (the daemon's `confirm_window`).
    pub confirm_window: usize,
    /// Unacknowledged deliveries (the daemon's `prefetch`).
    pub prefetch: u16,
}

/// What the baseline measured.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BaselineResult {
    pub messages: u64,
    pub body_bytes: usize,
    /// From the first publish to the last confirmation.
    pub publish_secs: f64,
    /// From the first publish to the last ack.
    pub total_secs: f64,
    /// Messages through the queue per second: `messages / total_secs`.
    pub msgs_per_s: f64,
}

async fn declare(conn: &Connection, queue: &str) -> Result<()> {
    let channel = conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
    Ok(())
}

async fn publish_all(conn: &Connection, settings: &BaselineSettings) -> Result<Instant> {
    let channel = broker::confirm_channel(conn).await?;
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    let mut in_flight = VecDeque::with_capacity(settings.confirm_window);
    for _ in 0..settings.messages {
        if in_flight.len() >= settings.confirm_window.max(1)
            && let Some(oldest) = in_flight.pop_front()
        {
            confirmed(oldest).await?;
        }
        let confirm = channel
            .basic_publish(
                "".into(),
                settings.queue.as_str().into(),
                BasicPublishOptions::default(),
                &settings.body,
                properties.clone(),
            )
            .await?;
        in_flight.push_back(confirm);
    }
    while let Some(oldest) = in_flight.pop_front() {
        confirmed(oldest).await?;
    }
    Ok(Instant::now())
}

async fn confirmed(confirm: lapin::PublisherConfirm) -> Result<()> {
    if confirm.await?.is_ack() {
        Ok(())
    } else {
        Err(BenchError::Daemon(
            "the broker nacked a baseline message".into(),
        ))
    }
}

async fn consume_all(conn: &Connection, settings: &BaselineSettings) -> Result<Instant> {
    let channel = conn.create_channel().await?;
    channel
        .basic_qos(settings.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            settings.queue.as_str().into(),
            "encaisse-bench-baseline".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut received = 0u64;
    while received < settings.messages {
        let Some(delivery) = consumer.next().await else {
            return Err(BenchError::Daemon(format!(
                "the baseline consumer was cancelled after {received} messages"
            )));
        };
        delivery?.ack(BasicAckOptions::default()).await?;
        received += 1;
    }
    Ok(Instant::now())
}

/// Runs the baseline and deletes its queue.
pub async fn run(settings: &BaselineSettings) -> Result<BaselineResult> {
    let publisher = broker::connect(&settings.amqp_url).await?;
    let consumer = broker::connect(&settings.amqp_url).await?;
    declare(&publisher, &settings.queue).await?;
    let started = Instant::now();
    let (published, consumed) = tokio::try_join!(
        publish_all(&publisher, settings),
        consume_all(&consumer, settings)
    )?;
    let channel = publisher.create_channel().await?;
    channel
        .queue_delete(
            settings.queue.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await?;
    let _ = publisher.close(200, "OK".into()).await;
    let _ = consumer.close(200, "OK".into()).await;
    let total = consumed
        .duration_since(started)
        .max(Duration::from_micros(1));
    Ok(BaselineResult {
        messages: settings.messages,
        body_bytes: settings.body.len(),
        publish_secs: published.duration_since(started).as_secs_f64(),
        total_secs: total.as_secs_f64(),
        msgs_per_s: settings.messages as f64 / total.as_secs_f64(),
    })
}
