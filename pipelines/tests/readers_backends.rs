//! `encaisse trace`'s reader (`stages::ops::trace`) on both ledger backends: an invoice found
//! by its full key or its number, and its life told from the journal, the messages handled,
//! the files written and the parked messages. The reader also reads the hélios area's
//! credit notes; until that area has its PostgreSQL tables the test gives it an empty one.

use encaisse_ledger::files::NewFile;
use encaisse_ledger::ops::{ParkedBy, ParkedRecord};
use encaisse_ledger::testing::Fixture;
use encaisse_ledger::{CoreStore, InvoiceFact, LedgerError, OpsStore, ProcessedMessage};
use encaisse_pipelines::stages::ops::trace::{self, TraceError};

encaisse_ledger::on_both_backends!(an_invoice_is_found_and_its_life_told);

fn fact(key: &str, at: &str, kind: &str, detail: serde_json::Value) -> InvoiceFact {
    InvoiceFact {
        invoice_key: key.into(),
        tenant: key.split('/').next().unwrap().into(),
        at: at.into(),
        kind: kind.into(),
        detail: detail.to_string(),
        dedupe_key: Some(format!("{key}:{kind}")),
    }
}

async fn an_invoice_is_found_and_its_life_told(f: &Fixture) {
    f.ledger
        .transact(|tx| {
            if tx.is_postgres() {
                tx.execute_script(
                    "CREATE TABLE IF NOT EXISTS helios_reduction (tenant text NOT NULL,
                         note_key text NOT NULL, origin_key text NOT NULL,
                         received_at text NOT NULL)",
                )?;
            }
            for f in [
                fact(
                    "vitry/2026/F_1",
                    "2026-01-31T09:00:00+01:00",
                    "issued",
                    serde_json::json!({"file": "FACT.csv"}),
                ),
                fact(
                    "vitry/2026/F_1",
                    "2026-02-01T10:00:00Z",
                    "pain008_emitted",
                    serde_json::json!({"file": "PRLV_1.xml", "end_to_end_id": "2026-F_1-1"}),
                ),
                fact(
                    "ivry/2026/F_1",
                    "2026-01-31T08:00:00Z",
                    "issued",
                    serde_json::json!({}),
                ),
                fact(
                    "vitry/2025/FX1",
                    "2025-12-01T08:00:00Z",
                    "issued",
                    serde_json::json!({}),
                ),
            ] {
                tx.record_fact(&f)?;
            }
            for path in [
                "/d/vitry/bank/outbox/PRLV_1.xml",
                "/d/vitry/bank/outbox/XPRLV_1.xml",
            ] {
                tx.record_file(&NewFile {
                    tenant: "vitry".into(),
                    kind: "pain008".into(),
                    path: path.into(),
                    sha256: format!("sha-{path}"),
                    bytes: 10,
                    written_at: "2026-02-01T10:00:01Z".into(),
                    caused_by: "sepa.batch:run-1".into(),
                })?;
            }
            tx.record_processed(&ProcessedMessage {
                stage: "sepa.batch".into(),
                message_id: "m-1".into(),
                message_type: Some("invoice.issued".into()),
                tenant: Some("vitry".into()),
                invoice_key: Some("vitry/2026/F_1".into()),
                processed_at: "2026-01-31T08:30:00Z".into(),
                outputs: Vec::new(),
            })?;
            tx.record_parked(&ParkedRecord {
                fingerprint: "fp-2".into(),
                queue: "p.sepa.batch.parked".into(),
                stage: "sepa.batch".into(),
                parked_by: ParkedBy::Runtime,
                origin_queue: "p.sepa.batch".into(),
                origin_exchange: Some("p.events".into()),
                origin_routing_key: None,
                message_id: Some("m-2".into()),
                message_type: Some("credit_note.issued".into()),
                tenant: Some("vitry".into()),
                invoice_key: Some("vitry/2026/F_1".into()),
                error_class: "permanent".into(),
                error_kind: "bad_note".into(),
                error: "bad note".into(),
                attempts: 1,
                first_failure_at: None,
                last_failure_at: None,
                parked_at: "2026-02-02T08:00:00Z".into(),
                stored_at: "2026-02-02T08:00:00Z".into(),
                properties: Vec::new(),
                body: b"{}".to_vec(),
            })?;
            Ok::<_, LedgerError>(())
        })
        .await
        .unwrap();
    let (ambiguous, by_tenant, by_year, missing, traced) = f
        .ledger
        .inspect(|tx| {
            let ambiguous = trace::resolve(tx, "F_1", None);
            let by_tenant = trace::resolve(tx, "F_1", Some("vitry"));
            let by_year = trace::resolve(tx, "2026/F_1", Some("ivry"));
            // `_` is a character, not a wildcard: FX1 is not F_1.
            let missing = trace::resolve(tx, "F_9", None);
            let traced = trace::trace(tx, "vitry/2026/F_1")?;
            Ok::<_, LedgerError>((ambiguous, by_tenant, by_year, missing, traced))
        })
        .await
        .unwrap();
    assert!(
        matches!(&ambiguous, Err(TraceError::Ambiguous { candidates, .. })
            if candidates == &["ivry/2026/F_1", "vitry/2026/F_1"]),
        "{ambiguous:?}"
    );
    assert_eq!(by_tenant.unwrap(), "vitry/2026/F_1");
    assert_eq!(by_year.unwrap(), "ivry/2026/F_1");
    assert!(
        matches!(missing, Err(TraceError::NotFound(_))),
        "{missing:?}"
    );
    let kinds: Vec<(&str, &str)> = traced
        .steps
        .iter()
        .map(|s| (s.source, s.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("journal", "issued"),
            ("message", "handled"),
            ("journal", "pain008_emitted"),
            ("file", "file_emitted"),
            ("parked", "parked"),
        ]
    );
    assert_eq!(traced.files.len(), 1, "XPRLV_1.xml is another file");
    assert_eq!(traced.files[0].path, "/d/vitry/bank/outbox/PRLV_1.xml");
    assert_eq!(traced.parked.len(), 1);
}
