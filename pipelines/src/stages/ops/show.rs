//! `encaisse dlq show`: one parked message as a JSON view — why it failed, in domain terms,
//! its failure history, the actions taken, its properties and headers, and its body with
//! personal data masked unless revealed. The CLI prints this view as JSON or as text.

use serde_json::{Value, json};

use super::decode;
use super::parked::{self, Death};
use super::store::{Action, ParkedMessage, ParkedSummary};
use super::wire::{self, WireError};

fn rfc3339_secs(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// First failure, the broker's dead-letterings (delay tiers, delivery limit) oldest first,
/// last failure, parking.
fn history(message: &ParkedMessage, deaths: &[Death]) -> Vec<Value> {
    let mut events = Vec::new();
    if let Some(at) = &message.first_failure_at {
        events.push(json!({"at": at, "event": "first failure"}));
    }
    for d in deaths.iter().rev() {
        events.push(json!({
            "at": d.time.and_then(rfc3339_secs),
            "event": format!(
                "broker dead-lettered it from {} ({}, {} time(s))",
                d.queue, d.reason, d.count
            ),
        }));
    }
    if let Some(at) = &message.last_failure_at {
        events.push(json!({"at": at, "event": "last failure"}));
    }
    events.push(json!({
        "at": message.summary.parked_at,
        "event": format!(
            "parked by the {} after attempt {}",
            message.summary.parked_by, message.summary.attempts
        ),
    }));
    events
}

/// The body for display: JSON with personal data masked (unless `reveal`); a body that is
/// not JSON cannot be masked field by field, so it is shown only when revealed.
fn body_view(body: &[u8], reveal: bool) -> Value {
    match decode::body_json(body) {
        Some(mut value) => {
            if !reveal {
                decode::mask_personal(&mut value);
            }
            value
        }
        None if reveal => match std::str::from_utf8(body) {
            Ok(text) => json!({ "text": text }),
            Err(_) => json!({ "bytes_hex": hex::encode(body) }),
        },
        None => json!({
            "hidden": format!("{} bytes, not JSON: shown only with --reveal", body.len())
        }),
    }
}

/// The whole view of a parked message.
pub fn view(
    message: &ParkedMessage,
    earlier: &[ParkedSummary],
    actions: &[Action],
    reveal: bool,
) -> Result<Value, WireError> {
    let properties = wire::decode_properties(&message.properties)?;
    let headers = properties.headers().as_ref();
    let deaths = parked::deaths(headers);
    let domain = decode::body_json(&message.body)
        .as_ref()
        .map(decode::domain)
        .unwrap_or_default();
    let s = &message.summary;
    let short = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|v| v.as_str().to_string());
    Ok(json!({
        "id": s.id,
        "state": s.state,
        "stage": s.stage,
        "group": s.group,
        "error_class": s.error_class,
        "error_kind": s.error_kind,
        "error": s.error,
        "attempts": s.attempts,
        "parked_at": s.parked_at,
        "parked_by": s.parked_by,
        "tenant": s.tenant.clone().or(domain.tenant.clone()),
        "invoice": s.invoice.clone().or(domain.invoice.clone()),
        "message_id": s.message_id,
        "message_type": s.message_type,
        "resolved_at": s.resolved_at,
        "resolved_by": s.resolved_by,
        "resolution_reason": s.resolution_reason,
        "origin": {
            "queue": message.origin_queue,
            "exchange": message.origin_exchange,
            "routing_key": message.origin_routing_key,
        },
        "parking_lot": message.queue,
        "first_failure_at": message.first_failure_at,
        "last_failure_at": message.last_failure_at,
        "stored_at": message.stored_at,
        "domain": domain,
        "history": history(message, &deaths),
        "earlier_parkings": earlier,
        "actions": actions,
        "properties": {
            "content_type": short(properties.content_type()),
            "delivery_mode": properties.delivery_mode(),
            "timestamp": properties.timestamp().and_then(|t| i64::try_from(t).ok()).and_then(rfc3339_secs),
            "app_id": short(properties.app_id()),
            "correlation_id": short(properties.correlation_id()),
        },
        "headers": headers.map(wire::table_to_json).unwrap_or(Value::Null),
        "body": body_view(&message.body, reveal),
        "personal_data_masked": !reveal,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_are_not_json_are_hidden_unless_revealed() {
        assert_eq!(
            body_view(b"Jeanne Dupont;FR76...", false)["hidden"],
            "21 bytes, not JSON: shown only with --reveal"
        );
        assert_eq!(body_view(b"plain", true)["text"], "plain");
        assert_eq!(body_view(&[0xff, 0x00], true)["bytes_hex"], "ff00");
        let masked = body_view(br#"{"payer":{"last_name":"Dupont"}}"#, false);
        assert_eq!(masked["payer"]["last_name"], "D.");
    }
}
