//! A parked message kept exactly: the AMQP properties in their wire encoding (so every header
//! keeps its AMQP type — the broker's `x-death` array of tables, timestamps, integers), a
//! fingerprint that recognises a redelivery of the same message, and read-only views of the
//! headers for people and JSON.

use lapin::BasicProperties;
use lapin::protocol::basic::{gen_properties, parse_properties};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The properties could not be encoded or decoded (a bug or a damaged ledger row).
#[derive(Debug, thiserror::Error)]
#[error("AMQP properties: {0}")]
pub struct WireError(String);

impl WireError {
    /// Retry class: permanent (the same bytes fail the same way).
    pub fn class(&self) -> encaisse_schemas::ErrorClass {
        encaisse_schemas::ErrorClass::Permanent
    }
}

/// The AMQP 0-9-1 basic property list as it travels in a content header (flags, then each
/// property present, headers as a field table).
pub fn encode_properties(properties: &BasicProperties) -> Result<Vec<u8>, WireError> {
    let context = gen_properties::<Vec<u8>>(properties)(Vec::new().into())
        .map_err(|e| WireError(format!("cannot encode: {e:?}")))?;
    Ok(context.write)
}

/// The inverse of [`encode_properties`].
pub fn decode_properties(bytes: &[u8]) -> Result<BasicProperties, WireError> {
    match parse_properties(bytes) {
        Ok(([], properties)) => Ok(properties),
        Ok((rest, _)) => Err(WireError(format!(
            "{} bytes left after the property list",
            rest.len()
        ))),
        Err(e) => Err(WireError(format!("cannot decode: {e:?}"))),
    }
}

/// Headers the broker adds or changes when it delivers the same stored message again: a
/// quorum queue sets `x-delivery-count` on a redelivery. They are left out of the
/// fingerprint, and a replay does not republish them.
pub const DELIVERY_HEADERS: &[&str] = &["x-delivery-count"];

/// The properties without [`DELIVERY_HEADERS`].
pub fn without_delivery_headers(properties: &BasicProperties) -> BasicProperties {
    let Some(headers) = properties.headers() else {
        return properties.clone();
    };
    let mut kept = FieldTable::default();
    for (key, value) in headers.inner() {
        if !DELIVERY_HEADERS.contains(&key.as_str()) {
            kept.insert(key.clone(), value.clone());
        }
    }
    properties.clone().with_headers(kept)
}

/// The fingerprint of a drained message: the same stored message delivered twice (a lost
/// ack) has the same one, whatever the broker added on the redelivery.
pub fn message_fingerprint(
    queue: &str,
    properties: &BasicProperties,
    body: &[u8],
) -> Result<String, WireError> {
    let stable = encode_properties(&without_delivery_headers(properties))?;
    Ok(fingerprint(queue, &stable, body))
}

/// SHA-256 (hex) of the queue, the encoded properties and the body, each length-prefixed.
pub fn fingerprint(queue: &str, properties: &[u8], body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [queue.as_bytes(), properties, body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hex::encode(hash.finalize())
}

/// A header value as text when it is one (long or short string).
pub fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// A header value as an integer when it is one (any width, or digits in a string).
pub fn integer(value: &AMQPValue) -> Option<i64> {
    Some(match value {
        AMQPValue::ShortShortInt(i) => i64::from(*i),
        AMQPValue::ShortShortUInt(i) => i64::from(*i),
        AMQPValue::ShortInt(i) => i64::from(*i),
        AMQPValue::ShortUInt(i) => i64::from(*i),
        AMQPValue::LongInt(i) => i64::from(*i),
        AMQPValue::LongUInt(i) => i64::from(*i),
        AMQPValue::LongLongInt(i) => *i,
        AMQPValue::Timestamp(t) => i64::try_from(*t).ok()?,
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => text(value)?.trim().parse().ok()?,
        _ => return None,
    })
}

/// A header of a field table, as text.
pub fn header_text(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    text(headers?.inner().get(name)?)
}

/// A header of a field table, as an integer.
pub fn header_integer(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    integer(headers?.inner().get(name)?)
}

/// A JSON view of an AMQP value, for `dlq show`: strings as strings (bytes that are not
/// UTF-8 as `{"bytes_hex": …}`), numbers as numbers, timestamps as RFC 3339, tables and
/// arrays recursively. Read-only: replays use the stored encoding, never this view.
pub fn to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(_)
        | AMQPValue::ShortShortUInt(_)
        | AMQPValue::ShortInt(_)
        | AMQPValue::ShortUInt(_)
        | AMQPValue::LongInt(_)
        | AMQPValue::LongUInt(_)
        | AMQPValue::LongLongInt(_) => json!(integer(value)),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(d) => json!(d),
        AMQPValue::DecimalValue(d) => json!(format!("{d:?}")),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => match std::str::from_utf8(s.as_bytes()) {
            Ok(text) => json!(text),
            Err(_) => json!({ "bytes_hex": hex::encode(s.as_bytes()) }),
        },
        AMQPValue::ByteArray(b) => json!({ "bytes_hex": hex::encode(b.as_slice()) }),
        AMQPValue::Timestamp(t) => i64::try_from(*t)
            .ok()
            .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
            .map(|at| json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
            .unwrap_or_else(|| json!(t)),
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(to_json).collect())
        }
        AMQPValue::FieldTable(table) => table_to_json(table),
        AMQPValue::Void => Value::Null,
    }
}

/// A JSON object of a field table (keys sorted, as the table keeps them).
pub fn table_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString, ShortString};

    fn death(queue: &str, reason: &str, count: i64, time: u64) -> AMQPValue {
        let mut t = FieldTable::default();
        t.insert(
            "queue".into(),
            AMQPValue::LongString(LongString::from(queue)),
        );
        t.insert(
            "reason".into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        t.insert("count".into(), AMQPValue::LongLongInt(count));
        t.insert("time".into(), AMQPValue::Timestamp(time));
        AMQPValue::FieldTable(t)
    }

    fn parked_properties() -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert("encaisse-attempt".into(), AMQPValue::LongLongInt(3));
        headers.insert(
            "encaisse-error".into(),
            AMQPValue::LongString(LongString::from("tenant « ivry » unknown")),
        );
        headers.insert("flag".into(), AMQPValue::Boolean(true));
        headers.insert("small".into(), AMQPValue::ShortShortUInt(7));
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![
                death("p.s.retry.5s", "expired", 2, 1_790_000_100),
                death("p.s", "delivery_limit", 1, 1_790_000_000),
            ])),
        );
        BasicProperties::default()
            .with_message_id(ShortString::from("m-1"))
            .with_type(ShortString::from("invoice.issued"))
            .with_content_type(ShortString::from("application/json"))
            .with_delivery_mode(2)
            .with_priority(4)
            .with_correlation_id(ShortString::from("c-9"))
            .with_timestamp(1_790_000_000)
            .with_app_id(ShortString::from("polyfac"))
            .with_headers(headers)
    }

    #[test]
    fn properties_round_trip_with_every_type_kept() {
        let properties = parked_properties();
        let bytes = encode_properties(&properties).unwrap();
        let back = decode_properties(&bytes).unwrap();
        assert_eq!(back, properties);
        assert_eq!(
            encode_properties(&back).unwrap(),
            bytes,
            "encoding is stable"
        );
        assert_eq!(
            decode_properties(&encode_properties(&BasicProperties::default()).unwrap()).unwrap(),
            BasicProperties::default()
        );
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let bytes = encode_properties(&parked_properties()).unwrap();
        assert!(decode_properties(&bytes[..bytes.len() - 3]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_properties(&longer).is_err());
    }

    #[test]
    fn fingerprint_changes_with_any_part() {
        let a = fingerprint("q", b"props", b"body");
        assert_eq!(a, fingerprint("q", b"props", b"body"));
        assert_ne!(a, fingerprint("q2", b"props", b"body"));
        assert_ne!(a, fingerprint("q", b"props!", b"body"));
        assert_ne!(a, fingerprint("q", b"props", b"body!"));
        // Moving a byte from one part to the next is another message.
        assert_ne!(fingerprint("q", b"ab", b"c"), fingerprint("q", b"a", b"bc"));
    }

    #[test]
    fn a_redelivery_has_the_same_fingerprint() {
        let first = parked_properties();
        let mut headers = first.headers().clone().unwrap();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(1));
        let again = first.clone().with_headers(headers);
        let fp = |p: &BasicProperties| message_fingerprint("q", p, b"{}").unwrap();
        assert_eq!(fp(&first), fp(&again));
        let mut headers = first.headers().clone().unwrap();
        headers.insert("encaisse-attempt".into(), AMQPValue::LongLongInt(4));
        assert_ne!(fp(&first), fp(&first.clone().with_headers(headers)));
        assert_eq!(without_delivery_headers(&again), first);
    }

    #[test]
    fn json_view_shows_headers_in_plain_terms() {
        let properties = parked_properties();
        let view = table_to_json(properties.headers().as_ref().unwrap());
        assert_eq!(view["encaisse-attempt"], 3);
        assert_eq!(view["encaisse-error"], "tenant « ivry » unknown");
        assert_eq!(view["small"], 7);
        assert_eq!(view["x-death"][1]["reason"], "delivery_limit");
        assert_eq!(view["x-death"][0]["time"], "2026-09-21T14:15:00Z");
        assert_eq!(
            header_integer(properties.headers().as_ref(), "encaisse-attempt"),
            Some(3)
        );
        let bad = AMQPValue::LongString(LongString::from(vec![0xff, 0xfe]));
        assert_eq!(to_json(&bad), json!({"bytes_hex": "fffe"}));
    }
}
