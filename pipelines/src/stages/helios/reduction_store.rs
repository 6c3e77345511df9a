//! The credit-note tables of the ledger (`ledger/migrations/helios_0003.sql`): each credit
//! note received, its fate, and the lines of its réduction titre.

use encaisse_helios::aller::reduction::ReductionLine;
use encaisse_ledger::rusqlite::{Connection, OptionalExtension};
use encaisse_schemas::{CreditNoteIssued, Money};

use super::error::HeliosError;
use super::store::{FileRow, ledger_now};

/// The state of a credit note.
pub const WAITING: &str = "waiting";
pub const REFUSED: &str = "refused";
pub const PLANNED: &str = "planned";

/// The content hash a credit note was first received with, if it was.
pub fn known_hash(
    c: &Connection,
    tenant: &str,
    note_key: &str,
) -> Result<Option<String>, HeliosError> {
    Ok(c.query_row(
        "SELECT content_hash FROM helios_reduction WHERE tenant = ?1 AND note_key = ?2",
        (tenant, note_key),
        |r| r.get(0),
    )
    .optional()?)
}

/// Records a credit note as received, waiting for its decision.
pub fn insert_waiting(
    c: &Connection,
    note: &CreditNoteIssued,
    body: &[u8],
) -> Result<(), HeliosError> {
    c.execute(
        "INSERT INTO helios_reduction (tenant, note_key, origin_key, content_hash, body, state,
             total_cents, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'waiting', ?6, ?7)",
        (
            note.note.invoice.tenant.as_str(),
            note.note.invoice.key(),
            note.origin.key(),
            &note.note.content_hash,
            body,
            note.credited().cents(),
            ledger_now(),
        ),
    )?;
    Ok(())
}

/// The credit notes of `tenant` still waiting for their original's titre, in arrival order.
pub fn waiting(c: &Connection, tenant: &str) -> Result<Vec<CreditNoteIssued>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT note_key, body FROM helios_reduction WHERE tenant = ?1 AND state = 'waiting'
         ORDER BY received_at, note_key",
    )?;
    let rows = stmt
        .query_map([tenant], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(key, body)| decode(&key, &body))
        .collect()
}

fn decode(key: &str, body: &[u8]) -> Result<CreditNoteIssued, HeliosError> {
    encaisse_schemas::decode(body)
        .map_err(|e| HeliosError::Corrupt(format!("credit note {key} in helios_reduction: {e}")))
}

/// Marks a credit note refused, with the reason.
pub fn mark_refused(
    c: &Connection,
    tenant: &str,
    note_key: &str,
    reason: &str,
) -> Result<(), HeliosError> {
    c.execute(
        "UPDATE helios_reduction SET state = 'refused', reason = ?3 WHERE tenant = ?1 AND note_key = ?2",
        (tenant, note_key, reason),
    )?;
    Ok(())
}

/// Marks a credit note's réduction titre rejected by the Trésorerie (no-op for a key that
/// is not a credit note): it no longer counts against what remains of its original.
pub fn mark_rejected(
    c: &Connection,
    tenant: &str,
    note_key: &str,
    reason: &str,
) -> Result<(), HeliosError> {
    c.execute(
        "UPDATE helios_reduction SET state = 'rejected', reason = ?3
         WHERE tenant = ?1 AND note_key = ?2 AND state = 'planned'",
        (tenant, note_key, reason),
    )?;
    Ok(())
}

/// Marks a credit note planned as réduction titre `id_pce` of `exercice`, reducing titre
/// `origin_id_pce`, with its lines.
pub fn mark_planned(
    c: &Connection,
    tenant: &str,
    note_key: &str,
    (exercice, id_pce, origin_id_pce): (u16, u32, u32),
    lines: &[ReductionLine],
) -> Result<(), HeliosError> {
    c.execute(
        "UPDATE helios_reduction SET state = 'planned', exercice = ?3, id_pce = ?4, origin_id_pce = ?5
         WHERE tenant = ?1 AND note_key = ?2",
        (tenant, note_key, exercice, id_pce, origin_id_pce),
    )?;
    for l in lines {
        c.execute(
            "INSERT INTO helios_reduction_line (tenant, note_key, id_ligne, id_ligne_orig,
                 amount_cents, cod_prod_loc, nature, fonction, label)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            encaisse_ledger::rusqlite::params![
                tenant,
                note_key,
                l.id_ligne,
                l.id_ligne_orig,
                l.amount.cents(),
                l.cod_prod_loc,
                l.nature,
                l.fonction,
                l.label,
            ],
        )?;
    }
    Ok(())
}

/// What earlier réduction titres (planned, not rejected) took off each line of the
/// original, by `IdLigne`.
pub fn reduced_so_far(
    c: &Connection,
    tenant: &str,
    origin_key: &str,
) -> Result<Vec<(u32, i64)>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT l.id_ligne_orig, SUM(l.amount_cents)
         FROM helios_reduction r JOIN helios_reduction_line l
              ON l.tenant = r.tenant AND l.note_key = r.note_key
         WHERE r.tenant = ?1 AND r.origin_key = ?2 AND r.state = 'planned'
         GROUP BY l.id_ligne_orig",
    )?;
    let rows = stmt
        .query_map((tenant, origin_key), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The lines of a titre as written (`IdLigne`, invoice line, amount).
pub fn titre_lines(
    c: &Connection,
    scope: super::store::Scope<'_>,
    exercice: u16,
    id_pce: u32,
) -> Result<Vec<(u32, u32, Money)>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT id_ligne, invoice_line, amount_cents FROM helios_titre_line
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND id_pce = ?5
         ORDER BY id_ligne",
    )?;
    let rows = stmt
        .query_map(
            (scope.tenant, scope.cod_col, scope.cod_bud, exercice, id_pce),
            |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
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
    c: &Connection,
    stage: &str,
    tenant: &str,
    item_key: &str,
) -> Result<Option<Vec<u8>>, HeliosError> {
    Ok(c.query_row(
        "SELECT payload FROM batch_item WHERE stage = ?1 AND tenant = ?2 AND item_key = ?3",
        (stage, tenant, item_key),
        |r| r.get(0),
    )
    .optional()?)
}

/// Whether `polyfac.ingest` published `invoice_key` (the ledger is shared by the stages).
pub fn issued_by_ingest(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
) -> Result<bool, HeliosError> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM polyfac_issued WHERE tenant = ?1 AND invoice_key = ?2)",
        (tenant, invoice_key),
        |r| r.get(0),
    )?)
}

/// Why the original was refused before numbering, if it was.
pub fn refusal_of(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<String>, HeliosError> {
    Ok(c.query_row(
        "SELECT field || ': ' || rule FROM helios_refused WHERE tenant = ?1 AND invoice_key = ?2",
        (tenant, invoice_key),
        |r| r.get(0),
    )
    .optional()?)
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
    c: &Connection,
    file: &FileRow,
    id_bord: u32,
) -> Result<Vec<ReductionToRender>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT r.note_key, r.body, r.id_pce, r.origin_id_pce
         FROM helios_titre t JOIN helios_reduction r ON r.tenant = t.tenant AND r.note_key = t.invoice_key
         WHERE t.tenant = ?1 AND t.cod_col = ?2 AND t.cod_bud = ?3 AND t.exercice = ?4
           AND t.typ_bord = ?5 AND t.id_bord = ?6
         ORDER BY t.position",
    )?;
    let rows = stmt
        .query_map(
            (
                &file.tenant,
                &file.cod_col,
                &file.cod_bud,
                file.exercice,
                &file.typ_bord,
                id_bord,
            ),
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, u32>(3)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (key, body, id_pce, origin_id_pce) in rows {
        let lines = lines_of(c, &file.tenant, &key)?;
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
    c: &Connection,
    tenant: &str,
    note_key: &str,
) -> Result<Vec<ReductionLine>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT id_ligne, id_ligne_orig, amount_cents, cod_prod_loc, nature, fonction, label
         FROM helios_reduction_line WHERE tenant = ?1 AND note_key = ?2 ORDER BY id_ligne",
    )?;
    let rows = stmt
        .query_map((tenant, note_key), |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(id_ligne, id_ligne_orig, cents, cod_prod_loc, nature, fonction, label)| {
                Ok(ReductionLine {
                    id_ligne,
                    id_ligne_orig,
                    cod_prod_loc,
                    nature,
                    fonction,
                    amount: Money::from_cents(cents).map_err(|e| {
                        HeliosError::Corrupt(format!("helios_reduction_line amount: {e}"))
                    })?,
                    label,
                })
            },
        )
        .collect()
}
