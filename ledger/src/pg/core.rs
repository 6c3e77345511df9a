//! The core area's operations on PostgreSQL (`crate::stores::CoreStore`).

use crate::pg::Prepared;

use crate::error::LedgerError;
use crate::files::{EmittedFile, NewFile};
use crate::journal::InvoiceFact;
use crate::processed::ProcessedMessage;

pub(crate) fn processed(
    c: &mut Prepared<'_>,
    stage: &str,
    message_id: &str,
) -> Result<Option<ProcessedMessage>, LedgerError> {
    let row = c.query_opt(
        "SELECT stage, message_id, message_type, tenant, invoice_key, processed_at, outputs
         FROM processed_message WHERE stage = $1 AND message_id = $2",
        &[&stage, &message_id],
    )?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(ProcessedMessage {
        stage: r.try_get(0)?,
        message_id: r.try_get(1)?,
        message_type: r.try_get(2)?,
        tenant: r.try_get(3)?,
        invoice_key: r.try_get(4)?,
        processed_at: r.try_get(5)?,
        outputs: r.try_get::<_, Option<Vec<u8>>>(6)?.unwrap_or_default(),
    }))
}

/// `ON CONFLICT DO NOTHING`: a concurrent transaction inserting the same key waits for the
/// first to commit, then inserts nothing, so exactly one of them gets `true`.
pub(crate) fn record_processed(
    c: &mut Prepared<'_>,
    m: &ProcessedMessage,
) -> Result<bool, LedgerError> {
    let inserted = c.execute(
        "INSERT INTO processed_message
             (stage, message_id, message_type, tenant, invoice_key, processed_at, outputs)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (stage, message_id) DO NOTHING",
        &[
            &m.stage,
            &m.message_id,
            &m.message_type,
            &m.tenant,
            &m.invoice_key,
            &m.processed_at,
            &m.outputs,
        ],
    )?;
    Ok(inserted == 1)
}

pub(crate) fn prune_processed(c: &mut Prepared<'_>, before: &str) -> Result<usize, LedgerError> {
    let deleted = c.execute(
        "DELETE FROM processed_message WHERE processed_at < $1",
        &[&before],
    )?;
    Ok(deleted as usize)
}

fn to_file(r: &postgres::Row) -> Result<EmittedFile, LedgerError> {
    let bytes: i64 = r.try_get(5)?;
    Ok(EmittedFile {
        id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        kind: r.try_get(2)?,
        path: r.try_get::<_, String>(3)?.into(),
        sha256: r.try_get(4)?,
        bytes: u64::try_from(bytes)
            .map_err(|_| LedgerError::Corrupt(format!("a file of {bytes} bytes")))?,
        written_at: r.try_get(6)?,
    })
}

pub(crate) fn last_written(
    c: &mut Prepared<'_>,
) -> Result<Vec<(String, String, String)>, LedgerError> {
    let rows = c.query(
        "SELECT tenant, kind, max(written_at) FROM emitted_file GROUP BY tenant, kind",
        &[],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

pub(crate) fn file_by_path(
    c: &mut Prepared<'_>,
    path: &str,
) -> Result<Option<EmittedFile>, LedgerError> {
    let row = c.query_opt(
        "SELECT id, tenant, kind, path, sha256, bytes, written_at FROM emitted_file
         WHERE path = $1",
        &[&path],
    )?;
    row.as_ref().map(to_file).transpose()
}

pub(crate) fn record_file(
    c: &mut Prepared<'_>,
    file: &NewFile,
) -> Result<EmittedFile, LedgerError> {
    let bytes = i64::try_from(file.bytes)
        .map_err(|_| LedgerError::Unsupported(format!("{} bytes in one file", file.bytes)))?;
    c.execute(
        "INSERT INTO emitted_file (tenant, kind, path, sha256, bytes, written_at, caused_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (path) DO NOTHING",
        &[
            &file.tenant,
            &file.kind,
            &file.path,
            &file.sha256,
            &bytes,
            &file.written_at,
            &file.caused_by,
        ],
    )?;
    match file_by_path(c, &file.path)? {
        Some(row) => file.check_same(row),
        None => Err(LedgerError::Corrupt(format!(
            "{} is not recorded right after its insert",
            file.path
        ))),
    }
}

pub(crate) fn facts_of(
    c: &mut Prepared<'_>,
    invoice_key: &str,
) -> Result<Vec<InvoiceFact>, LedgerError> {
    let rows = c.query(
        "SELECT invoice_key, tenant, at, kind, detail, dedupe_key FROM invoice_event
         WHERE invoice_key = $1 ORDER BY at, id",
        &[&invoice_key],
    )?;
    rows.iter()
        .map(|r| {
            Ok(InvoiceFact {
                invoice_key: r.try_get(0)?,
                tenant: r.try_get(1)?,
                at: r.try_get(2)?,
                kind: r.try_get(3)?,
                detail: r.try_get(4)?,
                dedupe_key: r.try_get(5)?,
            })
        })
        .collect()
}

pub(crate) fn applied_migrations(c: &mut Prepared<'_>) -> Result<Vec<(String, u32)>, LedgerError> {
    let rows = c.query(
        "SELECT area, version FROM schema_migration ORDER BY area COLLATE \"C\", version",
        &[],
    )?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, super::count(r.try_get(1)?)?)))
        .collect()
}
