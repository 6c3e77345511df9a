//! The `Event` trait: what every canonical message declares about itself, and the derived
//! deterministic message id.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::InvoiceRef;
use crate::tenant::TenantId;

/// Namespace of the UUIDv5 message ids (a fixed random UUID; never change it, or every
/// deduplication record in every ledger stops matching).
pub const MESSAGE_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x5d1f_6a0e_8f3b_4f0c_9a47_2c1e_7b6d_e0a3);

/// A canonical message of encaisse. Its JSON form is published on the work exchange with
/// the AMQP `type` property set to [`Event::TYPE`] and a `message_id` derived from its
/// business key, so that re-publishing the same fact always yields the same id.
pub trait Event: Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync {
    /// Routing key and AMQP `type` (`invoice.issued`).
    const TYPE: &'static str;
    /// Schema version carried in the body (`schema_version`) and in the JSON Schema file.
    const SCHEMA_VERSION: u16;

    fn tenant(&self) -> &TenantId;

    /// The invoice this message is about, when there is one (for tracing and grouping).
    fn invoice(&self) -> Option<&InvoiceRef>;

    /// What makes this fact unique: two messages with the same business key are the same
    /// fact. Must be deterministic and must not include times of processing.
    fn business_key(&self) -> String;

    /// The AMQP routing key. Defaults to the type; an event may refine it
    /// (`invoice.issued.titres`) so that a queue binds only what it needs.
    fn routing_key(&self) -> String {
        Self::TYPE.to_string()
    }

    /// Deterministic `message_id`: UUIDv5 of `TYPE` + business key.
    fn message_id(&self) -> String {
        message_id_for(Self::TYPE, &self.business_key())
    }
}

/// The deterministic message id of a fact of type `event_type` with `business_key`.
pub fn message_id_for(event_type: &str, business_key: &str) -> String {
    let name = format!("{event_type}\n{business_key}");
    uuid::Uuid::new_v5(&MESSAGE_ID_NAMESPACE, name.as_bytes()).to_string()
}

/// Why a message body could not be turned into an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not this event's shape.
    #[error("body is not a valid {event_type} message: {source}")]
    Malformed {
        event_type: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Well-formed, but a schema version this build does not know.
    #[error("{event_type} schema_version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        event_type: &'static str,
        found: u64,
        supported: u16,
    },
}

/// Decodes a JSON body into `E`, checking `schema_version` first so that a message from a
/// newer producer gets a clear error rather than a confusing missing-field one.
///
/// Two passes over the bytes, neither building a `serde_json::Value`: the first reads only
/// `schema_version` (skipping everything else), the second the event itself. Going through
/// a `Value` cost an allocation per field of every message the daemon consumes.
pub fn decode<E: Event>(body: &[u8]) -> Result<E, DecodeError> {
    /// Only the version; every other field is skipped without being kept.
    #[derive(serde::Deserialize)]
    struct Version {
        #[serde(default)]
        schema_version: Option<u64>,
    }
    let malformed = |source| DecodeError::Malformed {
        event_type: E::TYPE,
        source,
    };
    let version: Version = serde_json::from_slice(body).map_err(malformed)?;
    if let Some(found) = version.schema_version
        && found != u64::from(E::SCHEMA_VERSION)
    {
        return Err(DecodeError::UnsupportedVersion {
            event_type: E::TYPE,
            found,
            supported: E::SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(body).map_err(malformed)
}

/// Encodes an event as its JSON body.
pub fn encode<E: Event>(event: &E) -> Vec<u8> {
    // Serialising our own types to JSON cannot fail: no maps with non-string keys, no
    // custom serialisers that error.
    serde_json::to_vec(event).unwrap_or_else(|_| b"{}".to_vec())
}
