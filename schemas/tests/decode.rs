//! `decode`: the schema version is checked before the shape, and each kind of bad body gets
//! its own error naming the event type.

use encaisse_schemas::{DecodeError, PaymentFailed, decode};

const FAILED: &str = r#"{
  "schema_version": 1,
  "invoice": {"tenant": "ivry", "exercice": 2026, "number": "CRE-000207"},
  "payment_id": "payfip:123456",
  "result": "A",
  "amount": "57.30",
  "failed_at": "2026-11-27T10:15:00+01:00",
  "reason": "page abandoned"
}"#;

#[test]
fn a_current_message_decodes() {
    let event: PaymentFailed = decode(FAILED.as_bytes()).unwrap();
    assert_eq!(event.invoice.number, "CRE-000207");
    assert_eq!(event.amount.to_string(), "57.30");
}

#[test]
fn a_newer_version_is_refused_by_name_before_its_shape_is_read() {
    // Version 2 with a field this build does not know: the version is what is reported.
    let newer = FAILED
        .replace("\"schema_version\": 1", "\"schema_version\": 2")
        .replace("\"reason\"", "\"channel\": \"CB\", \"reason\"");
    match decode::<PaymentFailed>(newer.as_bytes()) {
        Err(DecodeError::UnsupportedVersion {
            event_type,
            found,
            supported,
        }) => {
            assert_eq!((event_type, found, supported), ("payment.failed", 2, 1));
        }
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn malformed_bodies_name_the_event_and_the_problem() {
    let not_json = decode::<PaymentFailed>(b"REGLEMENTS;12,50").unwrap_err();
    assert!(
        matches!(not_json, DecodeError::Malformed { .. }),
        "{not_json}"
    );
    assert!(
        not_json.to_string().contains("payment.failed"),
        "{not_json}"
    );

    let missing = FAILED.replace("\"reason\": \"page abandoned\"", "\"extra\": 1");
    let missing = decode::<PaymentFailed>(missing.as_bytes()).unwrap_err();
    assert!(missing.to_string().contains("extra"), "{missing}");

    let text_version = FAILED.replace("\"schema_version\": 1", "\"schema_version\": \"1\"");
    let text_version = decode::<PaymentFailed>(text_version.as_bytes()).unwrap_err();
    assert!(
        matches!(text_version, DecodeError::Malformed { .. }),
        "{text_version}"
    );
}
