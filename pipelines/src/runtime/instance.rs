//! One daemon per queue prefix: the daemon claims `P.instance`, an exclusive queue that
//! lives as long as its connection, and declares it again after every reconnection.
//!
//! A second daemon on the same prefix gets `RESOURCE_LOCKED` and stops: two daemons would
//! split the deliveries of every work queue and number the bordereaux and pièces twice.
//! Exclusive queues vanish with the connection that declared them, so a daemon that dies
//! (or loses the broker) frees the prefix at once; no heartbeat or expiry is involved.
//!
//! Who holds the claim cannot be read from an exclusive queue by another connection, so the
//! holder also leaves its description (pid, host, start time, data directory) as the single
//! message of `P.instance.holder`, which the refused daemon reads without taking it. A
//! daemon that finds its own description there is reconnecting while the broker still keeps
//! its previous connection (until the heartbeat timeout): the supervisor retries.

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection};

/// The longest holder description read back (pid, host, time and a data directory path).
const MAX_HOLDER_BYTES: usize = 4096;

/// Why the prefix could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another daemon holds the prefix (permanent while it runs).
    #[error("another encaisse daemon holds the broker prefix {prefix} ({holder})")]
    Held { prefix: String, holder: String },
    /// The broker went away or refused for a passing reason: retried with the connection.
    #[error("broker error while claiming {name}: {source}")]
    Broker {
        name: String,
        #[source]
        source: lapin::Error,
    },
}

/// `P.instance`.
pub fn claim_queue(prefix: &str) -> String {
    format!("{prefix}.instance")
}

/// `P.instance.holder`.
pub fn holder_queue(prefix: &str) -> String {
    format!("{prefix}.instance.holder")
}

fn is_locked(error: &lapin::Error) -> bool {
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED)))
}

/// Claims `prefix` for this connection, leaving `holder` for a refused daemon to read.
pub async fn claim(connection: &Connection, prefix: &str, holder: &str) -> Result<(), ClaimError> {
    let name = claim_queue(prefix);
    let broker = |name: &str| {
        let name = name.to_string();
        move |source| ClaimError::Broker { name, source }
    };
    let channel = connection.create_channel().await.map_err(broker(&name))?;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(name.as_str().into(), exclusive, FieldTable::default())
        .await
    {
        Ok(_) => {}
        Err(e) if is_locked(&e) => {
            return Err(ClaimError::Held {
                prefix: prefix.to_string(),
                holder: read_holder(connection, prefix).await,
            });
        }
        Err(e) => return Err(broker(&name)(e)),
    }
    let holder_name = holder_queue(prefix);
    let mut args = FieldTable::default();
    // One message: the latest holder's description (the default overflow drops the head).
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    channel
        .queue_declare(
            holder_name.as_str().into(),
            QueueDeclareOptions::default(),
            args,
        )
        .await
        .map_err(broker(&holder_name))?;
    channel
        .basic_publish(
            ShortString::from(""),
            holder_name.as_str().into(),
            BasicPublishOptions::default(),
            holder.as_bytes(),
            BasicProperties::default().with_content_type("text/plain".into()),
        )
        .await
        .map_err(broker(&holder_name))?;
    let _ = channel.close(200, "OK".into()).await;
    Ok(())
}

/// The description the holder left, read without acknowledging it (closing the channel
/// puts it back), or why it is unknown.
async fn read_holder(connection: &Connection, prefix: &str) -> String {
    let unknown = "its pid and host are unknown: see the broker's connections named \
                   `encaisse (<prefix>)`";
    let Ok(channel) = connection.create_channel().await else {
        return unknown.to_string();
    };
    let got = channel
        .basic_get(
            holder_queue(prefix).as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await;
    let description = match got {
        Ok(Some(message)) => {
            let bytes = &message.delivery.data;
            // Bounded: the broker is not trusted to hand back what was written.
            let text =
                String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_HOLDER_BYTES)]).into_owned();
            Some(text)
        }
        _ => None,
    };
    let _ = channel.close(200, "OK".into()).await;
    description.unwrap_or_else(|| unknown.to_string())
}
