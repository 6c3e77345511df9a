//! Deduplication and outbox: `processed_message(stage, message_id)`.
//!
//! The AMQP runtime records a message here, in the same transaction as the stage's ledger
//! effects, before it publishes the stage's outputs and acks the input. A redelivered message
//! (lost ack, crash, broker restart, replay) finds its row and the runtime republishes the
//! stored outputs — same ids, so consumers downstream deduplicate them in turn — instead of
//! running the stage again.
//!
//! Rows are pruned after a retention period ([`Ledger::prune_processed`]): a message
//! redelivered after that is handled again, so the retention must exceed the longest time
//! a message can spend in the broker (retry tiers, parking lot, then a replay).

use rusqlite::{Connection, OptionalExtension};

use crate::error::LedgerError;
use crate::store::Ledger;
use crate::stores::CoreStore;

/// One processed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedMessage {
    /// Stage name (`helios.titres`).
    pub stage: String,
    /// AMQP `message_id` (or the id derived by the runtime when the message had none).
    pub message_id: String,
    /// AMQP `type` property (`invoice.issued`).
    pub message_type: Option<String>,
    /// `encaisse-tenant` header.
    pub tenant: Option<String>,
    /// `tenant/exercice/number` when the message concerned an invoice.
    pub invoice_key: Option<String>,
    /// RFC 3339 UTC.
    pub processed_at: String,
    /// The outputs published for this message, encoded by the runtime (JSON), so that a
    /// redelivery republishes exactly the same messages.
    pub outputs: Vec<u8>,
}

fn row_to_processed(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProcessedMessage> {
    Ok(ProcessedMessage {
        stage: r.get(0)?,
        message_id: r.get(1)?,
        message_type: r.get(2)?,
        tenant: r.get(3)?,
        invoice_key: r.get(4)?,
        processed_at: r.get(5)?,
        outputs: r.get::<_, Option<Vec<u8>>>(6)?.unwrap_or_default(),
    })
}

const SELECT: &str =
    "SELECT stage, message_id, message_type, tenant, invoice_key, processed_at, outputs
     FROM processed_message WHERE stage = ?1 AND message_id = ?2";

impl Ledger {
    /// The record of `(stage, message_id)`, if that message was already processed.
    pub async fn processed(
        &self,
        stage: &str,
        message_id: &str,
    ) -> Result<Option<ProcessedMessage>, LedgerError> {
        let (stage, message_id) = (stage.to_string(), message_id.to_string());
        self.inspect(move |tx| tx.processed(&stage, &message_id))
            .await
    }

    /// Same as [`Ledger::processed`], on a connection the caller holds (inside a write).
    pub fn processed_in(
        c: &Connection,
        stage: &str,
        message_id: &str,
    ) -> Result<Option<ProcessedMessage>, LedgerError> {
        Ok(c.prepare_cached(SELECT)?
            .query_row((stage, message_id), row_to_processed)
            .optional()?)
    }

    /// Records `message` as processed inside the caller's write transaction. Returns `false`
    /// (and changes nothing) when the message was already recorded: the caller must then
    /// drop its own effects and use the stored outputs.
    pub fn record_processed_in(
        c: &Connection,
        message: &ProcessedMessage,
    ) -> Result<bool, LedgerError> {
        let inserted = c
            .prepare_cached(
                "INSERT INTO processed_message
                 (stage, message_id, message_type, tenant, invoice_key, processed_at, outputs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (stage, message_id) DO NOTHING",
            )?
            .execute((
                &message.stage,
                &message.message_id,
                &message.message_type,
                &message.tenant,
                &message.invoice_key,
                &message.processed_at,
                &message.outputs,
            ))?;
        Ok(inserted == 1)
    }

    /// Deletes the records processed before `before` (RFC 3339 UTC, compared as text, which
    /// orders correctly for the runtime's fixed `YYYY-MM-DDTHH:MM:SS.ffffffZ` format).
    /// Returns how many rows went.
    pub async fn prune_processed(&self, before: &str) -> Result<usize, LedgerError> {
        let before = before.to_string();
        self.transact(move |tx| tx.prune_processed(&before)).await
    }
}

/// [`CoreStore::prune_processed`] on SQLite.
pub(crate) fn prune_in(c: &Connection, before: &str) -> Result<usize, LedgerError> {
    Ok(c.execute(
        "DELETE FROM processed_message WHERE processed_at < ?1",
        [before],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, at: &str, outputs: &[u8]) -> ProcessedMessage {
        ProcessedMessage {
            stage: "demo.stage".into(),
            message_id: id.into(),
            message_type: Some("invoice.issued".into()),
            tenant: Some("vitry".into()),
            invoice_key: Some("vitry/2026/F1".into()),
            processed_at: at.into(),
            outputs: outputs.to_vec(),
        }
    }

    #[tokio::test]
    async fn first_record_wins_and_pruning_keeps_recent_rows() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let first = record("m1", "2026-01-01T00:00:00.000000Z", b"[1]");
        let again = record("m1", "2026-01-02T00:00:00.000000Z", b"[2]");
        let (a, b) = (first.clone(), again.clone());
        assert!(
            ledger
                .write(move |c| Ledger::record_processed_in(c, &a))
                .await
                .unwrap()
        );
        assert!(
            !ledger
                .write(move |c| Ledger::record_processed_in(c, &b))
                .await
                .unwrap()
        );
        let stored = ledger.processed("demo.stage", "m1").await.unwrap();
        assert_eq!(
            stored,
            Some(first),
            "the first record and its outputs are kept"
        );
        assert_eq!(ledger.processed("other", "m1").await.unwrap(), None);

        let recent = record("m2", "2026-03-01T00:00:00.000000Z", b"[]");
        ledger
            .write(move |c| Ledger::record_processed_in(c, &recent))
            .await
            .unwrap();
        let pruned = ledger
            .prune_processed("2026-02-01T00:00:00.000000Z")
            .await
            .unwrap();
        assert_eq!(pruned, 1);
        assert_eq!(ledger.processed("demo.stage", "m1").await.unwrap(), None);
        assert!(
            ledger
                .processed("demo.stage", "m2")
                .await
                .unwrap()
                .is_some()
        );
    }
}
