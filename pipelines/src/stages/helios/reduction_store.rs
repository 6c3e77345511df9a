//! The credit-note tables of the ledger (`ledger/migrations/helios_0003.sql`): each credit
//! note received, its fate, and the lines of its réduction titre.

use encaisse_helios::aller::reduction::ReductionLine;
use encaisse_ledger::Tx;
use encaisse_schemas::{CreditNoteIssued, Money};

use super::error::HeliosError;
use super::store::{FileRow, ledger_now};

/// The state of a credit note.
pub const WAITING: &str = "waiting";
pub const REFUSED: &str = "refused";
pub const PLANNED: &str = "planned";

/// The content hash a credit note was first received with, if it was.
pub fn known_hash(
    tx: &mut Tx<'_>,
    tenant: &str,
    note_key: &str,
) -> Result<Option<String>, HeliosError> {
    Ok(tx.query_opt(
        "SELECT content_hash FROM helios_reduction WHERE tenant = ?1 AND note_key = ?2",
        &[&tenant, &note_key],
        |r| r.get::<String>(0),
    )?)
}

/// Records a credit note as received, waiting for its decision; `false` when it was
/// already recorded (received again, possibly by another daemon at the same time: the
/// second insert waits for the first and then does nothing).
pub fn insert_waiting(
    tx: &mut Tx<'_>,
    note: &CreditNoteIssued,
    body: &[u8],
) -> Result<bool, HeliosError> {
    let changed = tx.execute(
        "INSERT INTO helios_reduction (tenant, note_key, origin_key, content_hash, body, state,
             total_cents, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'waiting', ?6, ?7)
         ON CONFLICT (tenant, note_key) DO NOTHING",
        &[
            &note.note.invoice.tenant.as_str(),
            &note.note.invoice.key(),
            &note.origin.key(),
            &note.note.content_hash,
            &body,
            &note.credited().cents(),
            &ledger_now(),
        ],
    )?;
    Ok(changed == 1)
}

/// The credit notes of `tenant` still waiting for their original's titre, in arrival order.
pub fn waiting(tx: &mut Tx<'_>, tenant: &str) -> Result<Vec<CreditNoteIssued>, HeliosError> {
    let rows = tx.query_all(
        "SELECT note_key, body FROM helios_reduction WHERE tenant = ?1 AND state = 'waiting'
         ORDER BY received_at, note_key",
        &[&tenant],
        |r| Ok((r.get::<String>(0)?, r.get::<Vec<u8>>(1)?)),
    )?;
    rows.into_iter()
        .map(|(key, body)| decode(&key, &body))
        .collect()
}

/// Locks a waiting credit note's row until the transaction ends; `false` when it is no
/// longer waiting (another transaction decided it meanwhile): only one decides it.
pub fn lock_waiting(tx: &mut Tx<'_>, tenant: &str, note_key: &str) -> Result<bool, HeliosError> {
    let sql = if tx.is_postgres() {
        "SELECT 1 FROM helios_reduction WHERE tenant = ?1 AND note_key = ?2 AND state = 'waiting'
         FOR UPDATE"
    } else {
        "SELECT 1 FROM helios_reduction WHERE tenant = ?1 AND note_key = ?2 AND state = 'waiting'"
    };
    Ok(tx
        .query_opt(sql, &[&tenant, &note_key], |r| r.get::<i64>(0))?
        .is_some())
}

fn decode(key: &str, body: &[u8]) -> Result<CreditNoteIssued, HeliosError> {
    encaisse_schemas::decode(body)
        .map_err(|e| HeliosError::Corrupt(format!("credit note {key} in helios_reduction: {e}")))
}

/// Marks a credit note refused, with the reason.
pub fn mark_refused(
    tx: &mut Tx<'_>,
    tenant: &str,
    note_key: &str,
    reason: &str,
) -> Result<(), HeliosError> {
    tx.execute(
        "UPDATE helios_reduction SET state = 'refused', reason = ?3 WHERE tenant = ?1 AND note_key = ?2",
        &[&tenant, &note_key, &reason],
    )?;
    Ok(())
}

/// Marks a credit note's réduction titre rejected by the Trésorerie (no-op for a key that
/// is not a credit note): it no longer counts against what remains of its original.
pub fn mark_rejected(
    tx: &mut Tx<'_>,
    tenant: &str,
    note_key: &str,
    reason: &str,
) -> Result<(), HeliosError> {
    tx.execute(
        "UPDATE helios_reduction SET state = 'rejected', reason = ?3
         WHERE tenant = ?1 AND note_key = ?2 AND state = 'planned'",
        &[&tenant, &note_key, &reason],
    )?;
    Ok(())
}

/// Marks a credit note planned as réduction titre `id_pce` of `exercice`, reducing titre
/// `origin_id_pce`, with its lines.
pub fn mark_planned(
    tx: &mut Tx<'_>,
    tenant: &str,
    note_key: &str,
    (exercice, id_pce, origin_id_pce): (u16, u32, u32),
    lines: &[ReductionLine],
) -> Result<(), HeliosError> {
    tx.execute(
        "UPDATE helios_reduction SET state = 'planned', exercice = ?3, id_pce = ?4, origin_id_pce = ?5
         WHERE tenant = ?1 AND note_key = ?2",
        &[&tenant, &note_key, &exercice, &id_pce, &origin_id_pce],
    )?;
    for l in lines {
        tx.execute(
            "INSERT INTO helios_reduction_line (tenant, note_key, id_ligne, id_ligne_orig,
                 amount_cents, cod_prod_loc, nature, fonction, label)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            &[
                &tenant,
                &note_key,
                &l.id_ligne,
                &l.id_ligne_orig,
                &l.amount.cents(),
                &l.cod_prod_loc,
                &l.nature,
                &l.fonction,
                &l.label,
            ],
        )?;
    }
    Ok(())
}

/// What earlier réduction titres (planned, not rejected) took off each line of the
/// original, by `IdLigne`.
pub fn reduced_so_far(
    tx: &mut Tx<'_>,
    tenant: &str,
    origin_key: &str,
) -> Result<Vec<(u32, i64)>, HeliosError> {
    Ok(tx.query_all(
        "SELECT l.id_ligne_orig, CAST(SUM(l.amount_cents) AS BIGINT)
         FROM helios_reduction r JOIN helios_reduction_line l
              ON l.tenant = r.tenant AND l.note_key = r.note_key
         WHERE r.tenant = ?1 AND r.origin_key = ?2 AND r.state = 'planned'
         GROUP BY l.id_ligne_orig",
        &[&tenant, &origin_key],
        |r| Ok((r.get::<u32>(0)?, r.get::<i64>(1)?)),
    )?)
}

/// The lines of a titre as written (`IdLigne`, invoice line, amount).
pub fn titre_lines(
    tx: &mut Tx<'_>,
    scope: super::store::Scope<'_>,
    exercice: u16,
    id_pce: u32,
) -> Result<Vec<(u32, u32, Money)>, HeliosError> {
    let rows = tx.query_all(
        "SELECT id_ligne, invoice_line, amount_cents FROM helios_titre_line
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND id_pce = ?5
         ORDER BY id_ligne",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &exercice,
            &id_pce,
        ],
        |r| Ok((r.get::<u32>(0)?, r.get::<u32>(1)?, r.get::<i64>(2)?)),
    )?;
    rows.into_iter()
        .map(|(id, line, cents)| {
            Money::from_cents(cents)
                .map(|m| (id, line, m))
                .map_err(|e| HeliosError::Corrupt(format!("helios_titre_line amount: {e}")))
        })
        .collect()
}

/// The payload `stage` received for `item_key` (any run), if any.
pub fn batch_payload(
    tx: &mut Tx<'_>,
    stage: &str,
    tenant: &str,
    item_key: &str,
) -> Result<Option<Vec<u8>>, HeliosError> {
    Ok(tx.query_opt(
        "SELECT payload FROM batch_item WHERE stage = ?1 AND tenant = ?2 AND item_key = ?3",
        &[&stage, &tenant, &item_key],
        |r| r.get::<Vec<u8>>(0),
    )?)
}

/// Whether `polyfac.ingest` published `invoice_key` (the ledger is shared by the stages).
pub fn issued_by_ingest(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<bool, HeliosError> {
    Ok(tx.query_one(
        "SELECT EXISTS (SELECT 1 FROM polyfac_issued WHERE tenant = ?1 AND invoice_key = ?2)",
        &[&tenant, &invoice_key],
        |r| r.get::<bool>(0),
    )?)
}

/// Why the original was refused before numbering, if it was.
pub fn refusal_of(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<String>, HeliosError> {
    Ok(tx.query_opt(
        "SELECT field || ': ' || rule FROM helios_refused WHERE tenant = ?1 AND invoice_key = ?2",
        &[&tenant, &invoice_key],
        |r| r.get::<String>(0),
    )?)
}

/// One réduction titre of a planned file, as the writer needs it.
pub struct ReductionToRender {
    pub note: CreditNoteIssued,
    pub id_pce: u32,
    pub origin_id_pce: u32,
    pub lines: Vec<ReductionLine>,
}

/// The réduction titres of bordereau `id_bord` of `file`, in position order.
pub fn reductions_to_render(
    tx: &mut Tx<'_>,
    file: &FileRow,
    id_bord: u32,
) -> Result<Vec<ReductionToRender>, HeliosError> {
    let rows = tx.query_all(
        "SELECT r.note_key, r.body, r.id_pce, r.origin_id_pce
         FROM helios_titre t JOIN helios_reduction r ON r.tenant = t.tenant AND r.note_key = t.invoice_key
         WHERE t.tenant = ?1 AND t.cod_col = ?2 AND t.cod_bud = ?3 AND t.exercice = ?4
           AND t.typ_bord = ?5 AND t.id_bord = ?6
         ORDER BY t.position",
        &[
            &file.tenant,
            &file.cod_col,
            &file.cod_bud,
            &file.exercice,
            &file.typ_bord,
            &id_bord,
        ],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<Vec<u8>>(1)?,
                r.get::<u32>(2)?,
                r.get::<u32>(3)?,
            ))
        },
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for (key, body, id_pce, origin_id_pce) in rows {
        let lines = lines_of(tx, &file.tenant, &key)?;
        out.push(ReductionToRender {
            note: decode(&key, &body)?,
            id_pce,
            origin_id_pce,
            lines,
        });
    }
    Ok(out)
}

fn lines_of(
    tx: &mut Tx<'_>,
    tenant: &str,
    note_key: &str,
) -> Result<Vec<ReductionLine>, HeliosError> {
    let mut lines = Vec::new();
    tx.query_each(
        "SELECT id_ligne, id_ligne_orig, amount_cents, cod_prod_loc, nature, fonction, label
         FROM helios_reduction_line WHERE tenant = ?1 AND note_key = ?2 ORDER BY id_ligne",
        &[&tenant, &note_key],
        |r| {
            let cents: i64 = r.get(2)?;
            lines.push(ReductionLine {
                id_ligne: r.get(0)?,
                id_ligne_orig: r.get(1)?,
                cod_prod_loc: r.get(3)?,
                nature: r.get(4)?,
                fonction: r.get(5)?,
                amount: Money::from_cents(cents).map_err(|e| {
                    HeliosError::Corrupt(format!("helios_reduction_line amount: {e}"))
                })?,
                label: r.get(6)?,
            });
            Ok::<_, HeliosError>(())
        },
    )?;
    Ok(lines)
}
