//! The outputs kept with a processed message (`processed_message.outputs`), so that a
//! redelivery republishes exactly what the first run published.
//!
//! Format (JSON array, one object per message): `exchange` (null = work exchange),
//! `routing_key`, `message_id`, `message_type`, `headers` (`{"name": {"text": ".."} |
//! {"int": n} | {"bool": b}}`), and `body` (UTF-8 text, the usual case for canonical JSON
//! events) or `body_bytes` (array of bytes otherwise).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::stage::{HeaderValue, Outgoing};

/// A header value as stored (outbox) or carried in a bundle (`crate::bundle`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum StoredHeader {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl StoredHeader {
    pub(crate) fn of(value: &HeaderValue) -> Self {
        match value {
            HeaderValue::Text(s) => StoredHeader::Text(s.clone()),
            HeaderValue::Int(i) => StoredHeader::Int(*i),
            HeaderValue::Bool(b) => StoredHeader::Bool(*b),
        }
    }

    pub(crate) fn into_value(self) -> HeaderValue {
        match self {
            StoredHeader::Text(s) => HeaderValue::Text(s),
            StoredHeader::Int(i) => HeaderValue::Int(i),
            StoredHeader::Bool(b) => HeaderValue::Bool(b),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMessage {
    exchange: Option<String>,
    routing_key: String,
    message_id: String,
    message_type: String,
    headers: BTreeMap<String, StoredHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body_bytes: Option<Vec<u8>>,
}

/// Encodes the outputs for the ledger.
pub fn encode(outputs: &[Outgoing]) -> Result<Vec<u8>, serde_json::Error> {
    let stored: Vec<StoredMessage> = outputs
        .iter()
        .map(|o| {
            let (body, body_bytes) = match std::str::from_utf8(&o.body) {
                Ok(text) => (Some(text.to_string()), None),
                Err(_) => (None, Some(o.body.to_vec())),
            };
            StoredMessage {
                exchange: o.exchange.clone(),
                routing_key: o.routing_key.clone(),
                message_id: o.message_id.clone(),
                message_type: o.message_type.clone(),
                headers: o
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), StoredHeader::of(v)))
                    .collect(),
                body,
                body_bytes,
            }
        })
        .collect();
    serde_json::to_vec(&stored)
}

/// Decodes outputs stored by [`encode`]. An empty column means no outputs.
pub fn decode(stored: &[u8]) -> Result<Vec<Outgoing>, serde_json::Error> {
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    let stored: Vec<StoredMessage> = serde_json::from_slice(stored)?;
    Ok(stored
        .into_iter()
        .map(|s| Outgoing {
            exchange: s.exchange,
            routing_key: s.routing_key,
            message_id: s.message_id,
            message_type: s.message_type,
            headers: s
                .headers
                .into_iter()
                .map(|(k, v)| (k, v.into_value()))
                .collect(),
            body: match (s.body, s.body_bytes) {
                (Some(text), _) => Bytes::from(text),
                (None, Some(bytes)) => Bytes::from(bytes),
                (None, None) => Bytes::new(),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_round_trip_exactly() {
        let mut headers = BTreeMap::new();
        headers.insert("encaisse-tenant".into(), HeaderValue::Text("vitry".into()));
        headers.insert("encaisse-schema-version".into(), HeaderValue::Int(1));
        headers.insert("flag".into(), HeaderValue::Bool(true));
        let outputs = vec![
            Outgoing {
                exchange: None,
                routing_key: "payment.received".into(),
                message_id: "id-1".into(),
                message_type: "payment.received".into(),
                headers,
                body: Bytes::from_static(br#"{"schema_version":1}"#),
            },
            Outgoing {
                exchange: Some(String::new()),
                routing_key: "q".into(),
                message_id: "id-2".into(),
                message_type: "raw".into(),
                headers: BTreeMap::new(),
                body: Bytes::from_static(&[0xff, 0x00, 0x80]),
            },
        ];
        let encoded = encode(&outputs).unwrap();
        assert_eq!(decode(&encoded).unwrap(), outputs);
        assert!(decode(b"").unwrap().is_empty());
        assert!(decode(b"{").is_err());
    }
}
