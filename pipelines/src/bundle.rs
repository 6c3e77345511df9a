//! Bundles: several events of one routing key carried in one AMQP message.
//!
//! Why: a billing run of 100,000 invoices otherwise crosses the broker 300,000 times (one
//! `invoice.issued` per invoice for each of `helios.titres`, `payfip.register` and
//! `polyfac.export`), and each crossing costs a quorum-queue write, a delivery, an ack and
//! a publisher confirm — more CPU, measured, than the stages' own work. A bundle carries up
//! to `[polyfac] bundle_size` events of one routing key; it is published on the same
//! exchange with the same routing key as its items, so it reaches exactly the queues they
//! would have reached, and the runtime of each stage unpacks it and handles every item as
//! the message it stands for: deduplicated on the item's own id, the stage's handler, the
//! item's own processed record, its own delay tier or place in the parking lot. A bundle
//! changes the cost, not the semantics: a parked item is one invoice in the parking lot,
//! listed and replayed alone, and a stage never sees a bundle.
//!
//! On the wire: AMQP `type` [`TYPE`], content type JSON, header [`ITEMS_HEADER`] (how many
//! items) and `encaisse-tenant` when every item has the same one. The body:
//!
//! ```json
//! {"bundle_version": 1,
//!  "items": [{"message_id": "…", "message_type": "invoice.issued",
//!             "headers": {"encaisse-tenant": {"text": "vitry"}, "encaisse-schema-version": {"int": 1}},
//!             "body": { …the event, byte for byte… }}]}
//! ```
//!
//! Only JSON bodies travel in bundles (every canonical event is JSON); an item whose body
//! is not JSON is published alone.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::runtime::headers;
use crate::runtime::outbox::StoredHeader;
use crate::stage::{HeaderValue, Incoming, Outgoing, StageError};

/// The AMQP `type` of a bundle.
pub const TYPE: &str = "encaisse.bundle";
/// Header: how many items the bundle carries.
pub const ITEMS_HEADER: &str = "encaisse-bundle-items";
/// The only envelope version so far.
pub const VERSION: u32 = 1;
/// Most items a bundle may carry: a bigger one is refused (poison), so one message cannot
/// make a stage hold an unbounded number of items.
pub const MAX_ITEMS: usize = 10_000;

#[derive(Serialize)]
struct BundleOut<'a> {
    bundle_version: u32,
    items: Vec<ItemOut<'a>>,
}

#[derive(Serialize)]
struct ItemOut<'a> {
    message_id: &'a str,
    message_type: &'a str,
    headers: BTreeMap<&'a str, StoredHeader>,
    body: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleIn<'a> {
    bundle_version: u32,
    #[serde(borrow)]
    items: Vec<ItemIn<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemIn<'a> {
    message_id: String,
    message_type: String,
    #[serde(default)]
    headers: BTreeMap<String, StoredHeader>,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Packs `messages` into bundles of at most `max_items` (`max_items` ≤ 1: unchanged).
/// Messages are grouped by exchange and routing key, groups in the order their first
/// message came, items in their own order; a group (or a tail) of one message, and a
/// message whose body is not JSON, go out alone.
pub fn pack(messages: Vec<Outgoing>, max_items: usize) -> Vec<Outgoing> {
    if max_items <= 1 || messages.len() <= 1 {
        return messages;
    }
    let mut groups: Vec<Vec<Outgoing>> = Vec::new();
    let mut alone = Vec::new();
    for message in messages {
        if json_body(&message.body).is_none() {
            alone.push(message);
            continue;
        }
        let same_route = |g: &Vec<Outgoing>| {
            g.first().is_some_and(|first| {
                first.exchange == message.exchange && first.routing_key == message.routing_key
            })
        };
        match groups.iter_mut().find(|g| same_route(g)) {
            Some(group) => group.push(message),
            None => groups.push(vec![message]),
        }
    }
    let mut packed = Vec::new();
    for group in groups {
        for chunk in group.chunks(max_items) {
            match chunk {
                [one] => packed.push(one.clone()),
                items => packed.push(bundle_of(items)),
            }
        }
    }
    packed.extend(alone);
    packed
}

fn json_body(body: &[u8]) -> Option<&RawValue> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str::<&RawValue>(text).ok()
}

/// One bundle of `items` (same exchange and routing key, JSON bodies: [`pack`] checked).
/// Its id is derived from its items' ids, so the same items make the same bundle again.
fn bundle_of(items: &[Outgoing]) -> Outgoing {
    let mut digest = Sha256::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        digest.update(item.message_id.as_bytes());
        digest.update(b"\n");
        if let Some(body) = json_body(&item.body) {
            out.push(ItemOut {
                message_id: &item.message_id,
                message_type: &item.message_type,
                headers: item
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), StoredHeader::of(v)))
                    .collect(),
                body,
            });
        }
    }
    let body = serde_json::to_vec(&BundleOut {
        bundle_version: VERSION,
        items: out,
    })
    .unwrap_or_default();
    let mut headers = BTreeMap::new();
    headers.insert(
        ITEMS_HEADER.to_string(),
        HeaderValue::Int(i64::try_from(items.len()).unwrap_or(i64::MAX)),
    );
    if let Some(tenant) = items[0].headers.get(headers::TENANT)
        && items
            .iter()
            .all(|i| i.headers.get(headers::TENANT) == Some(tenant))
    {
        headers.insert(headers::TENANT.to_string(), tenant.clone());
    }
    Outgoing {
        exchange: items[0].exchange.clone(),
        routing_key: items[0].routing_key.clone(),
        message_id: format!("bundle-{}", &hex::encode(digest.finalize())[..32]),
        message_type: TYPE.to_string(),
        headers,
        body: Bytes::from(body),
    }
}

/// Whether `message` is a bundle.
pub fn is_bundle(message: &Incoming) -> bool {
    message.message_type.as_deref() == Some(TYPE)
}

/// The items of a bundle, each as the message it stands for: its own id, type, headers and
/// body (a slice of the bundle's, byte for byte), with the bundle's exchange, routing key,
/// redelivery flag and attempt. A malformed bundle is poison; one of a later envelope
/// version is permanent (an older daemon reading a newer one's bundle: replay it once the
/// daemon is upgraded).
pub fn unpack(bundle: &Incoming) -> Result<Vec<Incoming>, StageError> {
    let malformed = |why: String| {
        StageError::poison(
            "malformed_bundle",
            format!(
                "bundle {}: {why}",
                bundle.message_id.as_deref().unwrap_or("(no message id)")
            ),
        )
    };
    let text = std::str::from_utf8(&bundle.body)
        .map_err(|e| malformed(format!("the body is not UTF-8 ({e})")))?;
    let parsed: BundleIn<'_> = serde_json::from_str(text).map_err(|e| malformed(format!("{e}")))?;
    if parsed.bundle_version != VERSION {
        return Err(StageError::permanent(
            "unsupported_bundle_version",
            format!(
                "bundle {}: envelope version {} (this daemon reads version {VERSION})",
                bundle.message_id.as_deref().unwrap_or("(no message id)"),
                parsed.bundle_version
            ),
        ));
    }
    match parsed.items.len() {
        0 => return Err(malformed("it carries no item".into())),
        n if n > MAX_ITEMS => {
            return Err(malformed(format!(
                "it carries {n} items, more than the {MAX_ITEMS} allowed"
            )));
        }
        _ => {}
    }
    Ok(parsed
        .items
        .into_iter()
        .map(|item| Incoming {
            message_id: Some(item.message_id),
            message_type: Some(item.message_type),
            exchange: bundle.exchange.clone(),
            routing_key: bundle.routing_key.clone(),
            headers: item
                .headers
                .into_iter()
                .map(|(k, v)| (k, v.into_value()))
                .collect(),
            body: bundle.body.slice_ref(item.body.get().as_bytes()),
            redelivered: bundle.redelivered,
            attempt: bundle.attempt,
        })
        .collect())
}

/// The item as a message of its own, for its delay tier or the parking lot.
pub fn as_outgoing(item: &Incoming) -> Outgoing {
    Outgoing {
        exchange: Some(item.exchange.clone()),
        routing_key: item.routing_key.clone(),
        message_id: item.message_id.clone().unwrap_or_default(),
        message_type: item.message_type.clone().unwrap_or_default(),
        headers: item.headers.clone(),
        body: item.body.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::ErrorClass;

    fn event(id: &str, key: &str, tenant: &str, body: &str) -> Outgoing {
        let mut headers = BTreeMap::new();
        headers.insert(headers::TENANT.into(), HeaderValue::Text(tenant.into()));
        headers.insert("encaisse-schema-version".into(), HeaderValue::Int(1));
        Outgoing {
            exchange: None,
            routing_key: key.into(),
            message_id: id.into(),
            message_type: "invoice.issued".into(),
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    fn delivered(o: &Outgoing) -> Incoming {
        Incoming {
            message_id: Some(o.message_id.clone()),
            message_type: Some(o.message_type.clone()),
            exchange: "p".into(),
            routing_key: o.routing_key.clone(),
            headers: o.headers.clone(),
            body: o.body.clone(),
            redelivered: true,
            attempt: 2,
        }
    }

    #[test]
    fn items_come_back_byte_for_byte_as_the_messages_they_stand_for() {
        let messages = vec![
            event(
                "a",
                "invoice.issued.titres",
                "vitry",
                r#"{"n": 1,  "x":"é"}"#,
            ),
            event("b", "invoice.issued.regie", "vitry", r#"{"n":2}"#),
            event("c", "invoice.issued.titres", "vitry", r#"[1, 2]"#),
            event("d", "invoice.issued.titres", "ivry", r#"{"n":4}"#),
        ];
        let packed = pack(messages.clone(), 100);
        // titres (a, c, d) in one bundle, regie (b) alone.
        assert_eq!(packed.len(), 2);
        let bundle = &packed[0];
        assert_eq!(bundle.message_type, TYPE);
        assert_eq!(bundle.routing_key, "invoice.issued.titres");
        assert_eq!(bundle.headers.get(ITEMS_HEADER), Some(&HeaderValue::Int(3)));
        assert!(!bundle.headers.contains_key(headers::TENANT), "two tenants");
        assert_eq!(packed[1], messages[1]);
        let items = unpack(&delivered(bundle)).unwrap();
        let ids: Vec<_> = items
            .iter()
            .map(|i| i.message_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["a", "c", "d"]);
        for (item, original) in items.iter().zip([&messages[0], &messages[2], &messages[3]]) {
            assert_eq!(item.body, original.body);
            assert_eq!(item.headers, original.headers);
            assert_eq!(item.message_type.as_deref(), Some("invoice.issued"));
            assert_eq!(item.routing_key, "invoice.issued.titres");
            assert_eq!(item.exchange, "p");
            assert!(item.redelivered);
            assert_eq!(item.attempt, 2);
            assert_eq!(as_outgoing(item).body, original.body);
        }
        // Same items, same bundle id.
        assert_eq!(pack(messages, 100)[0].message_id, bundle.message_id);
    }

    #[test]
    fn groups_are_cut_at_the_size_and_non_json_bodies_go_alone() {
        let mut messages: Vec<Outgoing> = (0..5)
            .map(|i| event(&format!("m{i}"), "k", "vitry", "{}"))
            .collect();
        messages.push(event("raw", "k", "vitry", "not json"));
        let packed = pack(messages.clone(), 2);
        let sizes: Vec<_> = packed
            .iter()
            .map(|m| m.headers.get(ITEMS_HEADER).cloned())
            .collect();
        assert_eq!(
            sizes,
            [
                Some(HeaderValue::Int(2)),
                Some(HeaderValue::Int(2)),
                None,
                None
            ]
        );
        assert_eq!(packed[2].message_id, "m4");
        assert_eq!(packed[3].message_id, "raw");
        assert_eq!(
            packed[0].headers.get(headers::TENANT),
            Some(&HeaderValue::Text("vitry".into()))
        );
        assert_eq!(pack(messages.clone(), 1), messages);
    }

    #[test]
    fn a_bad_bundle_is_refused_with_its_reason() {
        let mut bad = delivered(&event("b1", "k", "vitry", "{}"));
        bad.message_type = Some(TYPE.into());
        for (body, class, words) in [
            ("{", ErrorClass::Poison, "EOF"),
            (
                r#"{"bundle_version":1,"items":[]}"#,
                ErrorClass::Poison,
                "no item",
            ),
            (
                r#"{"bundle_version":2,"items":[]}"#,
                ErrorClass::Permanent,
                "version 2",
            ),
            (
                r#"{"bundle_version":1,"items":[{"message_id":"x","message_type":"t","body":{},"extra":1}]}"#,
                ErrorClass::Poison,
                "extra",
            ),
        ] {
            bad.body = Bytes::from(body);
            let e = unpack(&bad).unwrap_err();
            assert_eq!(e.class, class, "{body}");
            assert!(e.message.contains(words), "{}", e.message);
            assert!(e.message.contains("b1"), "{}", e.message);
        }
    }
}
