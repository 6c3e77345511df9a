//! `titre.rejected` v1 was widened for local refusals (`source: local`, no `titre`): the
//! messages written before must still read the same, with the same message id.

use encaisse_schemas::{Event, TitreRejected, TitreSource, decode, encode, message_id_for};

/// A `titre.rejected` as `helios.returns` published it before the change.
const FROM_THE_ACQUIT: &str = r#"{
  "schema_version": 1,
  "invoice": {"tenant": "vitry", "exercice": 2026, "number": "F1"},
  "titre": {"budget": "principal", "exercice": 2026, "bordereau_type": "06", "id_bord": 12, "id_pce": 345},
  "source": "acquit",
  "code": "ACQUIT_KO",
  "text": "Bordereau rejete",
  "rejected_at": "2026-02-05T09:00:00+01:00",
  "file": "PES_ACQUIT.xml"
}"#;

#[test]
fn a_message_from_before_reads_the_same_with_the_same_id() {
    let event: TitreRejected = decode(FROM_THE_ACQUIT.as_bytes()).unwrap();
    assert_eq!(event.source, TitreSource::Acquit);
    assert_eq!(
        event.titre.as_ref().map(|t| t.reference()).as_deref(),
        Some("2026/06/12/345")
    );
    assert_eq!(
        event.message_id(),
        message_id_for("titre.rejected", "vitry/2026/F1#2026/06/12/345#ACQUIT_KO")
    );
    // Written back, it is the same message (the titre is kept).
    let again: serde_json::Value = serde_json::from_slice(&encode(&event)).unwrap();
    let before: serde_json::Value = serde_json::from_str(FROM_THE_ACQUIT).unwrap();
    assert_eq!(again, before);
}

#[test]
fn a_local_refusal_has_no_titre_and_a_key_of_its_own() {
    let local = r#"{
      "schema_version": 1,
      "invoice": {"tenant": "vitry", "exercice": 2026, "number": "F2"},
      "source": "local",
      "code": "LOCAL-RULES",
      "text": "Not sent to Hélios: payer.address.postal_code: \"9440\" is not 5 digits",
      "rejected_at": "2026-03-10T09:30:00+01:00",
      "file": "vitry/helios/rejected/run-1-principal.refused.txt"
    }"#;
    let event: TitreRejected = decode(local.as_bytes()).unwrap();
    assert_eq!(event.source, TitreSource::Local);
    assert_eq!(event.titre, None);
    assert_eq!(event.business_key(), "vitry/2026/F2#local#LOCAL-RULES");
    let body: serde_json::Value = serde_json::from_slice(&encode(&event)).unwrap();
    assert!(body.get("titre").is_none(), "no titre key: {body}");
    assert_eq!(body["source"], "local");
}
