//! What a message drained from a parking lot is: which stage failed, why, how often, where a
//! replay must go — read from the runtime's failure headers or, for a message the broker
//! itself dead-lettered (delivery limit), from its `x-death` header.

use lapin::types::{AMQPValue, FieldTable};

use super::decode;
use super::wire::{self, WireError};
use crate::runtime::Drained;
use crate::runtime::headers as h;

pub use encaisse_ledger::ops::{ParkedBy, ParkedRecord};

/// One entry of the broker's `x-death` header (most recent first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub queue: String,
    pub reason: String,
    pub count: i64,
    /// Unix seconds.
    pub time: Option<i64>,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
}

/// The broker's dead-lettering history of a message.
pub fn deaths(headers: Option<&FieldTable>) -> Vec<Death> {
    let Some(AMQPValue::FieldArray(items)) = headers.and_then(|t| t.inner().get("x-death")) else {
        return Vec::new();
    };
    items
        .as_slice()
        .iter()
        .filter_map(|item| match item {
            AMQPValue::FieldTable(t) => Some(t),
            _ => None,
        })
        .map(|t| {
            let get = |k: &str| t.inner().get(k);
            Death {
                queue: get("queue").and_then(wire::text).unwrap_or_default(),
                reason: get("reason").and_then(wire::text).unwrap_or_default(),
                count: get("count").and_then(wire::integer).unwrap_or(1),
                time: get("time").and_then(wire::integer),
                exchange: get("exchange").and_then(wire::text),
                routing_key: match get("routing-keys") {
                    Some(AMQPValue::FieldArray(keys)) => {
                        keys.as_slice().first().and_then(wire::text)
                    }
                    _ => None,
                },
            }
        })
        .collect()
}

/// The stage whose parking lot `queue` is (`P.helios.titres.parked` → `helios.titres`).
pub fn stage_of(prefix: &str, queue: &str) -> Option<String> {
    queue
        .strip_prefix(prefix)?
        .strip_prefix('.')?
        .strip_suffix(".parked")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn rfc3339_from_secs(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0).map(encaisse_ledger::clock::format)
}

fn secs_of(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|at| at.timestamp())
}

/// Whether the broker parked the message: its latest dead-lettering is from the work queue
/// for a reason other than a TTL (`delivery_limit`; `rejected` or `maxlen` if a policy ever
/// causes them) and is not older than the runtime's own parking of it, if any.
fn broker_death<'a>(
    deaths: &'a [Death],
    work_queue: &str,
    runtime_parked_at: Option<&str>,
) -> Option<&'a Death> {
    let latest = deaths.first()?;
    let from_work = latest.queue == work_queue && latest.reason != "expired";
    let newer = match (runtime_parked_at.and_then(secs_of), latest.time) {
        (Some(parked), Some(died)) => died >= parked,
        (Some(_), None) => false,
        (None, _) => true,
    };
    (from_work && newer).then_some(latest)
}

/// Reads a drained message. `prefix` is the broker prefix (to find the stage from the
/// parking lot's name); `now` is RFC 3339 UTC.
///
/// The stage and the origin queue come from the parking lot's name, not from headers: a
/// replay can then only ever go back to the work queue of the stage whose lot it was in.
pub fn classify(prefix: &str, message: &Drained, now: &str) -> Result<ParkedRecord, WireError> {
    let properties = wire::encode_properties(&message.properties)?;
    let headers = message.properties.headers().as_ref();
    let text = |name: &str| wire::header_text(headers, name);
    let stage = stage_of(prefix, &message.queue)
        .or_else(|| text(h::STAGE))
        .unwrap_or_else(|| message.queue.clone());
    let origin_queue = format!("{prefix}.{stage}");
    let deaths = deaths(headers);
    let runtime_parked_at = text(h::PARKED_AT);
    let attempts = wire::header_integer(headers, h::ATTEMPT)
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    let body = decode::body_json(&message.body);
    let domain = body.as_ref().map(decode::domain).unwrap_or_default();

    let (parked_by, class, kind, error, parked_at, origin_exchange, origin_routing_key) =
        match broker_death(&deaths, &origin_queue, runtime_parked_at.as_deref()) {
            Some(death) => (
                ParkedBy::Broker,
                "poison".to_string(),
                death.reason.clone(),
                format!(
                    "the broker dead-lettered the message from {} ({}): it was delivered up to the queue's x-delivery-limit without an ack, so it probably crashes or stalls the daemon; look at the logs around that time",
                    death.queue, death.reason
                ),
                death
                    .time
                    .and_then(rfc3339_from_secs)
                    .unwrap_or_else(|| now.to_string()),
                text(h::ORIGIN_EXCHANGE).or_else(|| death.exchange.clone()),
                text(h::ORIGIN_ROUTING_KEY).or_else(|| death.routing_key.clone()),
            ),
            None => (
                ParkedBy::Runtime,
                text(h::ERROR_CLASS).unwrap_or_else(|| "unknown".into()),
                text(h::ERROR_KIND).unwrap_or_else(|| "unknown".into()),
                text(h::ERROR).unwrap_or_else(|| "(no encaisse-error header)".into()),
                runtime_parked_at.clone().unwrap_or_else(|| now.to_string()),
                text(h::ORIGIN_EXCHANGE),
                text(h::ORIGIN_ROUTING_KEY),
            ),
        };
    Ok(ParkedRecord {
        fingerprint: wire::message_fingerprint(&message.queue, &message.properties, &message.body)?,
        queue: message.queue.clone(),
        stage,
        parked_by,
        origin_queue,
        origin_exchange,
        origin_routing_key,
        message_id: message
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str().to_string()),
        message_type: message
            .properties
            .kind()
            .as_ref()
            .map(|s| s.as_str().to_string()),
        tenant: text(h::TENANT).or(domain.tenant),
        invoice_key: text(h::INVOICE).or(domain.invoice),
        error_class: class,
        error_kind: kind,
        error,
        attempts,
        first_failure_at: text(h::FIRST_FAILURE_AT),
        last_failure_at: text(h::LAST_FAILURE_AT),
        parked_at,
        stored_at: now.to_string(),
        properties,
        body: message.body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use lapin::BasicProperties;
    use lapin::types::{FieldArray, LongString, ShortString};

    const NOW: &str = "2026-05-04T10:00:00.000000Z";

    fn put(t: &mut FieldTable, k: &str, v: &str) {
        t.insert(
            ShortString::from(k),
            AMQPValue::LongString(LongString::from(v)),
        );
    }

    fn death(queue: &str, reason: &str, time: u64) -> AMQPValue {
        let mut t = FieldTable::default();
        put(&mut t, "queue", queue);
        put(&mut t, "reason", reason);
        put(&mut t, "exchange", "p");
        t.insert("count".into(), AMQPValue::LongLongInt(1));
        t.insert("time".into(), AMQPValue::Timestamp(time));
        t.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
                LongString::from("invoice.issued.titres"),
            )])),
        );
        AMQPValue::FieldTable(t)
    }

    fn drained(headers: FieldTable, body: &str) -> Drained {
        Drained {
            queue: "p.helios.titres.parked".into(),
            exchange: String::new(),
            routing_key: "p.helios.titres.parked".into(),
            redelivered: false,
            properties: BasicProperties::default()
                .with_message_id("m-1".into())
                .with_type("invoice.issued".into())
                .with_headers(headers),
            body: Bytes::from(body.to_string()),
        }
    }

    const BODY: &str =
        r#"{"invoice":{"tenant":"ivry","exercice":2026,"number":"F7"},"total":"3.00"}"#;

    #[test]
    fn runtime_parked_message_is_read_from_the_failure_headers() {
        let mut t = FieldTable::default();
        put(&mut t, h::STAGE, "helios.titres");
        put(&mut t, h::ERROR_CLASS, "permanent");
        put(&mut t, h::ERROR_KIND, "unknown_tenant");
        put(&mut t, h::ERROR, "tenant ivry is not configured");
        put(&mut t, h::ORIGIN_EXCHANGE, "p");
        put(&mut t, h::ORIGIN_ROUTING_KEY, "invoice.issued.titres");
        put(&mut t, h::FIRST_FAILURE_AT, "2026-05-04T09:00:00.000000Z");
        put(&mut t, h::LAST_FAILURE_AT, "2026-05-04T09:30:00.000000Z");
        put(&mut t, h::PARKED_AT, "2026-05-04T09:30:00.000000Z");
        put(&mut t, h::TENANT, "ivry");
        t.insert(h::ATTEMPT.into(), AMQPValue::LongLongInt(2));
        // An older tier expiry in x-death does not make it broker-parked.
        t.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![death(
                "p.helios.titres.retry.5s",
                "expired",
                1_777_000_000,
            )])),
        );
        let message = drained(t, BODY);
        let r = classify("p", &message, NOW).unwrap();
        assert_eq!(r.parked_by, ParkedBy::Runtime);
        assert_eq!(r.stage, "helios.titres");
        assert_eq!(r.origin_queue, "p.helios.titres");
        assert_eq!(
            (r.error_class.as_str(), r.error_kind.as_str()),
            ("permanent", "unknown_tenant")
        );
        assert_eq!(r.error, "tenant ivry is not configured");
        assert_eq!(r.attempts, 2);
        assert_eq!(r.parked_at, "2026-05-04T09:30:00.000000Z");
        assert_eq!(
            r.origin_routing_key.as_deref(),
            Some("invoice.issued.titres")
        );
        assert_eq!(r.tenant.as_deref(), Some("ivry"));
        assert_eq!(
            r.invoice_key.as_deref(),
            Some("ivry/2026/F7"),
            "from the body"
        );
        assert_eq!(r.message_id.as_deref(), Some("m-1"));
        assert_eq!(r.stored_at, NOW);
        assert_eq!(
            wire::decode_properties(&r.properties).unwrap(),
            message.properties,
            "kept exactly"
        );
        assert_eq!(r.body, BODY.as_bytes());
    }

    #[test]
    fn broker_parked_message_is_read_from_x_death() {
        let mut t = FieldTable::default();
        t.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![death(
                "p.helios.titres",
                "delivery_limit",
                1_777_888_999,
            )])),
        );
        let r = classify("p", &drained(t, BODY), NOW).unwrap();
        assert_eq!(r.parked_by, ParkedBy::Broker);
        assert_eq!(
            (r.error_class.as_str(), r.error_kind.as_str()),
            ("poison", "delivery_limit")
        );
        assert!(r.error.contains("x-delivery-limit"), "{}", r.error);
        assert_eq!(r.parked_at, "2026-05-04T10:03:19.000000Z");
        assert_eq!(r.origin_queue, "p.helios.titres");
        assert_eq!(
            r.origin_routing_key.as_deref(),
            Some("invoice.issued.titres")
        );
        assert_eq!(r.attempts, 1);
    }

    #[test]
    fn stage_comes_from_the_parking_lot_name() {
        assert_eq!(
            stage_of("p", "p.helios.titres.parked").as_deref(),
            Some("helios.titres")
        );
        assert_eq!(stage_of("p", "q.helios.titres.parked"), None);
        assert_eq!(stage_of("p", "p.parked"), None);
        assert_eq!(stage_of("p", "p.helios.titres"), None);
    }

    #[test]
    fn a_message_without_headers_or_json_is_still_stored() {
        let mut message = drained(FieldTable::default(), "not json");
        message.properties = BasicProperties::default();
        let r = classify("p", &message, NOW).unwrap();
        assert_eq!(
            (r.error_class.as_str(), r.error_kind.as_str()),
            ("unknown", "unknown")
        );
        assert_eq!(r.parked_at, NOW);
        assert_eq!((r.tenant, r.invoice_key, r.message_id), (None, None, None));
    }
}
