//! AMQP headers and properties: conversion between lapin's field tables and the stage's
//! [`HeaderValue`] map, and the failure headers of ARCHITECTURE.md.

use std::collections::BTreeMap;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::stage::HeaderValue;

pub const ATTEMPT: &str = "encaisse-attempt";
pub const ERROR: &str = "encaisse-error";
pub const ERROR_CLASS: &str = "encaisse-error-class";
pub const ERROR_KIND: &str = "encaisse-error-kind";
pub const STAGE: &str = "encaisse-stage";
pub const ORIGIN_QUEUE: &str = "encaisse-origin-queue";
pub const ORIGIN_EXCHANGE: &str = "encaisse-origin-exchange";
pub const ORIGIN_ROUTING_KEY: &str = "encaisse-origin-routing-key";
pub const FIRST_FAILURE_AT: &str = "encaisse-first-failure-at";
pub const LAST_FAILURE_AT: &str = "encaisse-last-failure-at";
pub const PARKED_AT: &str = "encaisse-parked-at";
/// Set by `encaisse dlq replay` on the message it republishes (RFC 3339 UTC).
pub const REPLAYED_AT: &str = "encaisse-replayed-at";
/// Set by `encaisse dlq replay`: who replayed it (`$USER` or `--by`).
pub const REPLAYED_BY: &str = "encaisse-replayed-by";
pub const TENANT: &str = "encaisse-tenant";
pub const INVOICE: &str = "encaisse-invoice";

/// Longest error text put in a header. Headers travel in one frame with the properties; the
/// rest of the text is in the logs.
const MAX_ERROR_BYTES: usize = 4096;

/// A short string for AMQP, or an error naming what was too long (lapin's `From<&str>`
/// panics above 255 bytes).
pub fn short(value: &str, what: &str) -> Result<ShortString, String> {
    ShortString::try_new(value).map_err(|_| {
        format!(
            "{what} is {} bytes long; AMQP short strings hold at most 255",
            value.len()
        )
    })
}

/// Reads an AMQP value the way stages see headers. Values of other types (tables, arrays,
/// floats, the broker's `x-death`) are left out of the stage's view, not of the message:
/// retries and parking republish the original field table.
pub fn to_header_value(value: &AMQPValue) -> Option<HeaderValue> {
    Some(match value {
        AMQPValue::LongString(s) => HeaderValue::Text(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::ShortString(s) => HeaderValue::Text(s.as_str().to_string()),
        AMQPValue::Boolean(b) => HeaderValue::Bool(*b),
        AMQPValue::ShortShortInt(i) => HeaderValue::Int(i64::from(*i)),
        AMQPValue::ShortShortUInt(i) => HeaderValue::Int(i64::from(*i)),
        AMQPValue::ShortInt(i) => HeaderValue::Int(i64::from(*i)),
        AMQPValue::ShortUInt(i) => HeaderValue::Int(i64::from(*i)),
        AMQPValue::LongInt(i) => HeaderValue::Int(i64::from(*i)),
        AMQPValue::LongUInt(i) => HeaderValue::Int(i64::from(*i)),
        AMQPValue::LongLongInt(i) => HeaderValue::Int(*i),
        _ => return None,
    })
}

pub fn to_amqp_value(value: &HeaderValue) -> AMQPValue {
    match value {
        HeaderValue::Text(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        HeaderValue::Int(i) => AMQPValue::LongLongInt(*i),
        HeaderValue::Bool(b) => AMQPValue::Boolean(*b),
    }
}

/// The stage's view of a field table.
pub fn to_header_map(table: Option<&FieldTable>) -> BTreeMap<String, HeaderValue> {
    table
        .map(|t| {
            t.inner()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), to_header_value(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A field table from the stage's headers.
pub fn to_field_table(headers: &BTreeMap<String, HeaderValue>) -> Result<FieldTable, String> {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        table.insert(short(name, "header name")?, to_amqp_value(value));
    }
    Ok(table)
}

/// A text header of a field table.
pub fn text(table: Option<&FieldTable>, name: &str) -> Option<String> {
    match to_header_value(table?.inner().get(name)?)? {
        HeaderValue::Text(s) => Some(s),
        _ => None,
    }
}

/// The `encaisse-attempt` header (1 when absent or unreadable: a first try).
pub fn attempt(table: Option<&FieldTable>) -> u32 {
    table
        .and_then(|t| t.inner().get(ATTEMPT))
        .and_then(to_header_value)
        .and_then(|v| match v {
            HeaderValue::Int(i) => u32::try_from(i).ok(),
            HeaderValue::Text(s) => s.parse().ok(),
            HeaderValue::Bool(_) => None,
        })
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// What failed, for the failure headers.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub stage: &'a str,
    /// The attempt the message will carry (the failed one when parked, the next when retried).
    pub attempt: u32,
    pub error: &'a str,
    pub class: &'a str,
    pub kind: &'a str,
    pub origin_queue: &'a str,
    /// Exchange and routing key of the delivery that failed (kept from the first failure
    /// when the headers already carry them).
    pub exchange: &'a str,
    pub routing_key: &'a str,
    /// RFC 3339 UTC.
    pub now: &'a str,
    pub parked: bool,
}

fn put_text(table: &mut FieldTable, name: &'static str, value: &str) {
    table.insert(
        ShortString::from(name),
        AMQPValue::LongString(LongString::from(value)),
    );
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The original headers plus the failure headers. Origin and first-failure headers already
/// present are kept: they describe how the message was first routed and first failed.
pub fn with_failure(original: Option<&FieldTable>, failure: &Failure<'_>) -> FieldTable {
    let mut table = original.cloned().unwrap_or_default();
    let has = |t: &FieldTable, name: &str| t.contains_key(name);
    table.insert(
        ShortString::from(ATTEMPT),
        AMQPValue::LongLongInt(i64::from(failure.attempt)),
    );
    put_text(&mut table, ERROR, truncate(failure.error, MAX_ERROR_BYTES));
    put_text(&mut table, ERROR_CLASS, failure.class);
    put_text(&mut table, ERROR_KIND, failure.kind);
    put_text(&mut table, STAGE, failure.stage);
    put_text(&mut table, ORIGIN_QUEUE, failure.origin_queue);
    if !has(&table, ORIGIN_EXCHANGE) {
        put_text(&mut table, ORIGIN_EXCHANGE, failure.exchange);
    }
    if !has(&table, ORIGIN_ROUTING_KEY) {
        put_text(&mut table, ORIGIN_ROUTING_KEY, failure.routing_key);
    }
    if !has(&table, FIRST_FAILURE_AT) {
        put_text(&mut table, FIRST_FAILURE_AT, failure.now);
    }
    put_text(&mut table, LAST_FAILURE_AT, failure.now);
    if failure.parked {
        put_text(&mut table, PARKED_AT, failure.now);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(now: &'static str, parked: bool) -> Failure<'static> {
        Failure {
            stage: "s",
            attempt: 2,
            error: "gateway down",
            class: "transient",
            kind: "gateway_unavailable",
            origin_queue: "p.s",
            exchange: "",
            routing_key: "p.s",
            now,
            parked,
        }
    }

    #[test]
    fn first_failure_and_origin_survive_later_failures() {
        let mut original = FieldTable::default();
        put_text(&mut original, TENANT, "vitry");
        put_text(&mut original, ORIGIN_EXCHANGE, "p");
        put_text(&mut original, ORIGIN_ROUTING_KEY, "invoice.issued.titres");
        put_text(&mut original, FIRST_FAILURE_AT, "2026-01-01T00:00:00Z");
        let table = with_failure(Some(&original), &failure("2026-01-02T00:00:00Z", true));
        let t = Some(&table);
        assert_eq!(text(t, TENANT).as_deref(), Some("vitry"));
        assert_eq!(text(t, ORIGIN_EXCHANGE).as_deref(), Some("p"));
        assert_eq!(
            text(t, ORIGIN_ROUTING_KEY).as_deref(),
            Some("invoice.issued.titres")
        );
        assert_eq!(
            text(t, FIRST_FAILURE_AT).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            text(t, LAST_FAILURE_AT).as_deref(),
            Some("2026-01-02T00:00:00Z")
        );
        assert_eq!(text(t, PARKED_AT).as_deref(), Some("2026-01-02T00:00:00Z"));
        assert_eq!(attempt(t), 2);
    }

    #[test]
    fn attempt_defaults_to_one_and_long_strings_are_refused() {
        assert_eq!(attempt(None), 1);
        let mut t = FieldTable::default();
        put_text(&mut t, ATTEMPT, "3");
        assert_eq!(attempt(Some(&t)), 3);
        assert!(short(&"x".repeat(256), "routing key").is_err());
        assert_eq!(truncate("ééé", 3), "é");
    }
}
