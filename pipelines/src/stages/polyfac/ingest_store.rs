//! Ledger tables of `polyfac.ingest` (`ledger/migrations/polyfac_0001.sql`, `_0004`): the invoices
//! published (`polyfac_issued`), the runs closed (`polyfac_run`) and the invoices rejected at
//! validation (`polyfac_rejected`). Every function takes the [`Tx`] of `Ledger::transact` /
//! `Ledger::inspect` and runs the same SQL on SQLite and PostgreSQL.

use encaisse_ledger::{LedgerError, Tx};
use encaisse_schemas::{CollectionPath, Money, RunBudgetCount};

use std::collections::HashMap;

/// What the ledger remembers of an invoice already published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedBefore {
    pub content_hash: String,
    pub run_id: String,
    pub file: String,
}

/// The published record of `invoice_key`, if any.
pub fn issued_before(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<IssuedBefore>, LedgerError> {
    Ok(issued_before_many(tx, tenant, &[invoice_key.to_string()])?.remove(invoice_key))
}

/// Keys looked up per statement by [`issued_before_many`] (well under SQLite's and
/// PostgreSQL's parameter limits).
const KEYS_PER_LOOKUP: usize = 500;

/// The published records of `invoice_keys` (those found), in a few statements: a batch of a
/// big export asked one statement per invoice, and on PostgreSQL those round trips were most
/// of the ingest's time.
pub fn issued_before_many(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_keys: &[String],
) -> Result<HashMap<String, IssuedBefore>, LedgerError> {
    let mut found = HashMap::new();
    for chunk in invoice_keys.chunks(KEYS_PER_LOOKUP) {
        let placeholders: Vec<String> = (2..chunk.len() + 2).map(|n| format!("?{n}")).collect();
        let sql = format!(
            "SELECT invoice_key, content_hash, run_id, file FROM polyfac_issued
             WHERE tenant = ?1 AND invoice_key IN ({})",
            placeholders.join(", ")
        );
        let mut params: Vec<&dyn encaisse_ledger::sql::Param> = Vec::with_capacity(chunk.len() + 1);
        params.push(&tenant);
        for key in chunk {
            params.push(key);
        }
        tx.query_each(&sql, &params, |r| {
            found.insert(
                r.get(0)?,
                IssuedBefore {
                    content_hash: r.get(1)?,
                    run_id: r.get(2)?,
                    file: r.get(3)?,
                },
            );
            Ok::<_, LedgerError>(())
        })?;
    }
    Ok(found)
}

/// One published invoice, recorded once the broker confirmed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRecord {
    pub tenant: String,
    pub invoice_key: String,
    pub content_hash: String,
    pub run_id: String,
    pub file: String,
    pub lines: (u64, u64),
    pub budget: String,
    /// Activity code (the reconciliation is per budget and activity).
    pub activity: String,
    pub collection: CollectionPath,
    pub total: Money,
    pub message_id: String,
    /// A credit note's original invoice key; `None` for an invoice.
    pub origin_key: Option<String>,
    /// The payer's last name as a search key ([`encaisse_schemas::text::search_key`]): the
    /// console finds invoices by name through an index on it.
    pub payer_key: String,
}

pub fn collection_text(c: CollectionPath) -> &'static str {
    match c {
        CollectionPath::Titres => "titres",
        CollectionPath::Regie => "regie",
    }
}

fn collection_from_text(text: &str) -> Result<CollectionPath, LedgerError> {
    match text {
        "titres" => Ok(CollectionPath::Titres),
        "regie" => Ok(CollectionPath::Regie),
        other => Err(LedgerError::Corrupt(format!(
            "polyfac_issued.collection: unexpected value {other:?}"
        ))),
    }
}

/// Records a published invoice and its payer's search key (idempotent: a second record of
/// the same invoice keeps the first, also when two transactions record it at once — the
/// second waits for the first's row and inserts nothing). Returns whether this call recorded
/// it.
pub fn record_issued(tx: &mut Tx<'_>, r: &IssuedRecord, at: &str) -> Result<bool, LedgerError> {
    Ok(record_issued_many(tx, &[r], at)? == 1)
}

/// Rows per statement of [`record_issued_many`] (14 parameters a row).
const ROWS_PER_INSERT: usize = 200;

/// [`record_issued`] for a whole batch, a few multi-row statements instead of two or three
/// per invoice (on PostgreSQL each is a round trip). Returns how many were new.
pub fn record_issued_many(
    tx: &mut Tx<'_>,
    records: &[&IssuedRecord],
    at: &str,
) -> Result<usize, LedgerError> {
    let mut inserted = 0;
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let named: Vec<&&IssuedRecord> = chunk.iter().filter(|r| !r.payer_key.is_empty()).collect();
        if !named.is_empty() {
            let mut params: Vec<&dyn encaisse_ledger::sql::Param> = Vec::new();
            for r in &named {
                params.extend([
                    &r.tenant as &dyn encaisse_ledger::sql::Param,
                    &r.payer_key,
                    &r.invoice_key,
                ]);
            }
            tx.execute(
                &format!(
                    "INSERT INTO invoice_payer_name (tenant, name_key, invoice_key) VALUES {}
                     ON CONFLICT (tenant, name_key, invoice_key) DO NOTHING",
                    encaisse_ledger::sql::value_rows(named.len(), 3)
                ),
                &params,
            )?;
        }
        let numbers: Vec<[i64; 2]> = chunk
            .iter()
            .map(|r| [line_number(r.lines.0), line_number(r.lines.1)])
            .collect();
        let collections: Vec<&str> = chunk
            .iter()
            .map(|r| collection_text(r.collection))
            .collect();
        let cents: Vec<i64> = chunk.iter().map(|r| r.total.cents()).collect();
        let mut params: Vec<&dyn encaisse_ledger::sql::Param> = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            params.extend([
                &r.tenant as &dyn encaisse_ledger::sql::Param,
                &r.invoice_key,
                &r.content_hash,
                &r.run_id,
                &r.file,
                &numbers[i][0],
                &numbers[i][1],
                &r.budget,
                &collections[i],
                &cents[i],
                &r.message_id,
                &at,
                &r.origin_key,
                &r.activity,
            ]);
        }
        inserted += tx.execute(
            &format!(
                "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id, file,
                     first_line, last_line, budget, collection, total_cents, message_id,
                     published_at, origin_key, activity)
                 VALUES {}
                 ON CONFLICT (tenant, invoice_key) DO NOTHING",
                encaisse_ledger::sql::value_rows(chunk.len(), 14)
            ),
            &params,
        )?;
    }
    Ok(inserted)
}

/// A line number or count as the ledger's integer (saturating: no file has 2^63 lines).
fn line_number(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Invoices a run published (now or in an earlier attempt), per budget and collection path,
/// in a stable order: the counts of `billing_run.closed`.
pub fn run_counts(
    tx: &mut Tx<'_>,
    tenant: &str,
    run_id: &str,
) -> Result<Vec<RunBudgetCount>, LedgerError> {
    let rows = tx.query_all(
        "SELECT budget, collection, count(*), CAST(sum(total_cents) AS BIGINT) FROM polyfac_issued
         WHERE tenant = ?1 AND run_id = ?2 AND origin_key IS NULL
         GROUP BY budget, collection ORDER BY budget, collection",
        &[&tenant, &run_id],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<u32>(2)?,
                r.get::<i64>(3)?,
            ))
        },
    )?;
    rows.into_iter()
        .map(|(budget, collection, invoices, cents)| {
            Ok(RunBudgetCount {
                budget,
                collection: collection_from_text(&collection)?,
                invoices,
                total: Money::from_cents(cents).map_err(|e| {
                    LedgerError::Corrupt(format!("run {run_id}: total out of range: {e}"))
                })?,
            })
        })
        .collect()
}

/// A run whose `billing_run.closed` was confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedRun {
    pub tenant: String,
    pub run_id: String,
    pub file: String,
    pub file_sha256: String,
    pub exercice: u16,
    pub lines: u64,
    pub invoices: u32,
    pub refused: u64,
    pub closed_message_id: String,
}

/// Whether the run's `billing_run.closed` was already confirmed.
pub fn run_closed(tx: &mut Tx<'_>, tenant: &str, run_id: &str) -> Result<bool, LedgerError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM polyfac_run WHERE tenant = ?1 AND run_id = ?2",
            &[&tenant, &run_id],
            |_| Ok(()),
        )?
        .is_some())
}

/// Records a closed run (idempotent).
pub fn record_run(tx: &mut Tx<'_>, run: &ClosedRun, at: &str) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO polyfac_run (tenant, run_id, file, file_sha256, exercice, lines, invoices,
             refused, closed_message_id, closed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (tenant, run_id) DO NOTHING",
        &[
            &run.tenant,
            &run.run_id,
            &run.file,
            &run.file_sha256,
            &run.exercice,
            &line_number(run.lines),
            &run.invoices,
            &line_number(run.refused),
            &run.closed_message_id,
            &at,
        ],
    )?;
    Ok(())
}

/// An invoice rejected at validation, as `polyfac_rejected` keeps it (`polyfac_0004.sql`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileReject {
    pub tenant: String,
    pub run_id: String,
    pub file: String,
    pub application: String,
    pub lines: (u64, u64),
    /// Empty when the export gives none.
    pub number: String,
    pub exercice: Option<u16>,
    /// The first broken rule, its column and message.
    pub rule: String,
    pub column: String,
    pub message: String,
    /// Every broken rule, comma-separated.
    pub rules: String,
    pub recorded_at: String,
}

/// Records a rejected invoice once per run and first line (a file read again after a crash
/// records nothing new).
pub fn record_reject(tx: &mut Tx<'_>, r: &FileReject) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO polyfac_rejected (tenant, run_id, file, application, first_line, last_line,
             number, exercice, rule, rules, column_name, message, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (tenant, run_id, first_line) DO NOTHING",
        &[
            &r.tenant,
            &r.run_id,
            &r.file,
            &r.application,
            &line_number(r.lines.0),
            &line_number(r.lines.1),
            &r.number,
            &r.exercice,
            &r.rule,
            &r.rules,
            &r.column,
            &r.message,
            &r.recorded_at,
        ],
    )?;
    Ok(())
}

/// The invoices of export `file` rejected at validation (every run of that name), of
/// `tenant` when given, covering `line` when given; in file order.
pub fn file_rejects(
    tx: &mut Tx<'_>,
    file: &str,
    tenant: Option<&str>,
    line: Option<u64>,
) -> Result<Vec<FileReject>, LedgerError> {
    let line = line.map(line_number);
    // The casts type the optional parameters for PostgreSQL (`?2 IS NULL` alone says none).
    tx.query_all(
        "SELECT tenant, run_id, file, application, first_line, last_line, number, exercice,
                rule, column_name, message, rules, recorded_at
         FROM polyfac_rejected
         WHERE file = ?1 AND (CAST(?2 AS TEXT) IS NULL OR tenant = ?2)
           AND (CAST(?3 AS BIGINT) IS NULL OR (first_line <= ?3 AND last_line >= ?3))
         ORDER BY recorded_at, tenant, run_id, first_line",
        &[&file, &tenant, &line],
        |r| {
            Ok(FileReject {
                tenant: r.get(0)?,
                run_id: r.get(1)?,
                file: r.get(2)?,
                application: r.get(3)?,
                lines: (r.get(4)?, r.get(5)?),
                number: r.get(6)?,
                exercice: r.get(7)?,
                rule: r.get(8)?,
                column: r.get(9)?,
                message: r.get(10)?,
                rules: r.get(11)?,
                recorded_at: r.get(12)?,
            })
        },
    )
}
