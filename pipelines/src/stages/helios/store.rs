//! The Hélios tables of the ledger (`ledger/migrations/helios_000*.sql`): numbering,
//! planned files, the invoice ↔ titre mapping, refusals, reports and queued events. Every function takes
//! a connection (a write transaction for writes), so callers make several of them atomic.

use chrono::NaiveDate;
use encaisse_ledger::rusqlite::{Connection, OptionalExtension};
use encaisse_schemas::TitreRejected;
use encaisse_schemas::events::{PaymentMode, SequenceType};
use encaisse_schemas::tenant::Budget;

use super::error::HeliosError;

/// Now in the ledger's time format (`encaisse_ledger::clock`).
pub use encaisse_ledger::clock::now as ledger_now;

/// A budget as Hélios numbers it, for one tenant.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub tenant: &'a str,
    pub cod_col: &'a str,
    pub cod_bud: &'a str,
}

impl<'a> Scope<'a> {
    pub fn of(tenant: &'a str, budget: &'a Budget) -> Self {
        Scope {
            tenant,
            cod_col: &budget.cod_col,
            cod_bud: &budget.cod_bud,
        }
    }
}

/// The next `IdBord` of (budget, exercice, `TypBord`): gapless, never reused.
pub fn next_id_bord(
    c: &Connection,
    scope: Scope<'_>,
    exercice: u16,
    typ_bord: &str,
) -> Result<u32, HeliosError> {
    let last: u32 = c.query_row(
        "SELECT COALESCE(MAX(id_bord), 0) FROM helios_bordereau
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND typ_bord = ?5",
        (
            scope.tenant,
            scope.cod_col,
            scope.cod_bud,
            exercice,
            typ_bord,
        ),
        |r| r.get(0),
    )?;
    Ok(last + 1)
}

/// The next `IdPce` of (budget, exercice): unique, never reused.
pub fn next_id_pce(c: &Connection, scope: Scope<'_>, exercice: u16) -> Result<u32, HeliosError> {
    let last: u32 = c.query_row(
        "SELECT COALESCE(MAX(id_pce), 0) FROM helios_titre
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4",
        (scope.tenant, scope.cod_col, scope.cod_bud, exercice),
        |r| r.get(0),
    )?;
    Ok(last + 1)
}

/// The invoice that already holds an ORMC debt number (`NumDette`, `Per`) in this exercice.
pub fn dette_holder(
    c: &Connection,
    scope: Scope<'_>,
    exercice: u16,
    num_dette: &str,
    per: &str,
) -> Result<Option<String>, HeliosError> {
    Ok(c.query_row(
        "SELECT invoice_key FROM helios_titre
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND num_dette = ?5 AND per = ?6",
        (scope.tenant, scope.cod_col, scope.cod_bud, exercice, num_dette, per),
        |r| r.get(0),
    )
    .optional()?)
}

/// A planned PES Aller file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub id: i64,
    pub tenant: String,
    pub budget: String,
    pub cod_col: String,
    pub cod_bud: String,
    pub exercice: u16,
    pub typ_bord: String,
    pub file_name: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub batch_group: String,
    pub bordereaux: u32,
    pub pieces: u32,
    pub total_cents: i64,
}

/// A new file, before its id is known.
pub struct NewFile<'a> {
    pub tenant: &'a str,
    pub budget: &'a Budget,
    pub exercice: u16,
    pub typ_bord: &'a str,
    pub file_name: &'a str,
    pub date: NaiveDate,
    pub run_id: &'a str,
    pub batch_group: &'a str,
    pub bordereaux: u32,
    pub pieces: u32,
    pub total_cents: i64,
}

pub fn insert_file(c: &Connection, f: &NewFile<'_>) -> Result<i64, HeliosError> {
    c.execute(
        "INSERT INTO helios_file (tenant, budget, cod_col, cod_bud, exercice, typ_bord, file_name,
             bordereau_date, run_id, batch_group, bordereaux, pieces, total_cents, planned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        (
            f.tenant,
            &f.budget.code,
            &f.budget.cod_col,
            &f.budget.cod_bud,
            f.exercice,
            f.typ_bord,
            f.file_name,
            f.date.to_string(),
            f.run_id,
            f.batch_group,
            f.bordereaux,
            f.pieces,
            f.total_cents,
            ledger_now(),
        ),
    )
    .map_err(|e| match e {
        encaisse_ledger::rusqlite::Error::SqliteFailure(err, _)
            if err.code == encaisse_ledger::rusqlite::ErrorCode::ConstraintViolation =>
        {
            HeliosError::Corrupt(format!(
                "file name {} of tenant {} is already planned: file_name_pattern must name each bordereau once",
                f.file_name, f.tenant
            ))
        }
        other => HeliosError::from(other),
    })?;
    Ok(c.last_insert_rowid())
}

/// A bordereau of a planned file.
pub struct NewBordereau<'a> {
    pub exercice: u16,
    pub typ_bord: &'a str,
    pub id_bord: u32,
    pub file_id: i64,
    pub pieces: u32,
    pub total_cents: i64,
}

pub fn insert_bordereau(
    c: &Connection,
    scope: Scope<'_>,
    b: &NewBordereau<'_>,
) -> Result<(), HeliosError> {
    c.execute(
        "INSERT INTO helios_bordereau (tenant, cod_col, cod_bud, exercice, typ_bord, id_bord, file_id, pieces, total_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        (
            scope.tenant,
            scope.cod_col,
            scope.cod_bud,
            b.exercice,
            b.typ_bord,
            b.id_bord,
            b.file_id,
            b.pieces,
            b.total_cents,
        ),
    )?;
    Ok(())
}

/// A titre as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitreRow {
    pub exercice: u16,
    pub id_pce: u32,
    pub typ_bord: String,
    pub id_bord: u32,
    pub position: u32,
    pub invoice_key: String,
    pub invoice_exercice: u16,
    pub invoice_number: String,
    pub budget: String,
    pub payment_mode: PaymentMode,
    pub sequence: Option<SequenceType>,
    pub num_dette: Option<String>,
    pub per: Option<String>,
    pub total_cents: i64,
}

pub fn payment_mode_code(mode: PaymentMode) -> &'static str {
    match mode {
        PaymentMode::Prelevement => "PRELEVEMENT",
        PaymentMode::Tip => "TIP",
        PaymentMode::Tipi => "TIPI",
        PaymentMode::Autre => "AUTRE",
    }
}

fn parse_payment_mode(text: &str) -> Result<PaymentMode, HeliosError> {
    Ok(match text {
        "PRELEVEMENT" => PaymentMode::Prelevement,
        "TIP" => PaymentMode::Tip,
        "TIPI" => PaymentMode::Tipi,
        "AUTRE" => PaymentMode::Autre,
        other => {
            return Err(HeliosError::Corrupt(format!(
                "helios_titre.payment_mode {other:?}"
            )));
        }
    })
}

fn parse_sequence(text: Option<&str>) -> Result<Option<SequenceType>, HeliosError> {
    Ok(match text {
        None => None,
        Some("FRST") => Some(SequenceType::Frst),
        Some("RCUR") => Some(SequenceType::Rcur),
        Some("FNAL") => Some(SequenceType::Fnal),
        Some("OOFF") => Some(SequenceType::Ooff),
        Some(other) => {
            return Err(HeliosError::Corrupt(format!(
                "helios_titre.sequence {other:?}"
            )));
        }
    })
}

pub fn insert_titre(c: &Connection, scope: Scope<'_>, t: &TitreRow) -> Result<(), HeliosError> {
    c.prepare_cached(
        "INSERT INTO helios_titre (tenant, cod_col, cod_bud, exercice, id_pce, typ_bord, id_bord, position,
             invoice_key, invoice_exercice, invoice_number, budget, payment_mode, sequence, num_dette, per, total_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(encaisse_ledger::rusqlite::params![
            scope.tenant,
            scope.cod_col,
            scope.cod_bud,
            t.exercice,
            t.id_pce,
            t.typ_bord,
            t.id_bord,
            t.position,
            t.invoice_key,
            t.invoice_exercice,
            t.invoice_number,
            t.budget,
            payment_mode_code(t.payment_mode),
            t.sequence.map(SequenceType::as_str),
            t.num_dette,
            t.per,
            t.total_cents,
        ])?;
    Ok(())
}

pub fn insert_titre_line(
    c: &Connection,
    scope: Scope<'_>,
    exercice: u16,
    id_pce: u32,
    line: &encaisse_helios::aller::TitreLine,
) -> Result<(), HeliosError> {
    c.prepare_cached(
        "INSERT INTO helios_titre_line (tenant, cod_col, cod_bud, exercice, id_pce, id_ligne, invoice_line, amount_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute((
            scope.tenant,
            scope.cod_col,
            scope.cod_bud,
            exercice,
            id_pce,
            line.id_ligne,
            line.invoice_line,
            line.amount.cents(),
        ))?;
    Ok(())
}

const TITRE_COLUMNS: &str = "exercice, id_pce, typ_bord, id_bord, position, invoice_key, invoice_exercice, \
     invoice_number, budget, payment_mode, sequence, num_dette, per, total_cents";

type RawTitre = (
    (u16, u32, String, u32, u32, String, u16),
    (String, String, String, Option<String>),
    (Option<String>, Option<String>, i64),
);

fn raw_titre(
    r: &encaisse_ledger::rusqlite::Row<'_>,
) -> encaisse_ledger::rusqlite::Result<RawTitre> {
    Ok((
        (
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ),
        (r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
        (r.get(11)?, r.get(12)?, r.get(13)?),
    ))
}

fn typed_titre(raw: RawTitre) -> Result<TitreRow, HeliosError> {
    let (
        (exercice, id_pce, typ_bord, id_bord, position, invoice_key, invoice_exercice),
        (invoice_number, budget, payment_mode, sequence),
        (num_dette, per, total_cents),
    ) = raw;
    Ok(TitreRow {
        exercice,
        id_pce,
        typ_bord,
        id_bord,
        position,
        invoice_key,
        invoice_exercice,
        invoice_number,
        budget,
        payment_mode: parse_payment_mode(&payment_mode)?,
        sequence: parse_sequence(sequence.as_deref())?,
        num_dette,
        per,
        total_cents,
    })
}

fn titres_where(
    c: &Connection,
    condition: &str,
    params: impl encaisse_ledger::rusqlite::Params,
) -> Result<Vec<TitreRow>, HeliosError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {TITRE_COLUMNS} FROM helios_titre WHERE {condition}"
    ))?;
    let raws = stmt
        .query_map(params, raw_titre)?
        .collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(typed_titre).collect()
}

/// The titres of a bordereau, in their order in it.
pub fn titres_of_bordereau(
    c: &Connection,
    scope: Scope<'_>,
    exercice: u16,
    typ_bord: &str,
    id_bord: u64,
) -> Result<Vec<TitreRow>, HeliosError> {
    titres_where(
        c,
        "tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND typ_bord = ?5 AND id_bord = ?6
         ORDER BY position",
        (
            scope.tenant,
            scope.cod_col,
            scope.cod_bud,
            exercice,
            typ_bord,
            id_bord as i64,
        ),
    )
}

/// One titre by its pièce number (and bordereau: a PES Retour names both).
pub fn titre_of_piece(
    c: &Connection,
    scope: Scope<'_>,
    exercice: u16,
    typ_bord: &str,
    id_bord: u64,
    id_pce: u64,
) -> Result<Option<TitreRow>, HeliosError> {
    Ok(titres_where(
        c,
        "tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND id_pce = ?5
         AND typ_bord = ?6 AND id_bord = ?7",
        (
            scope.tenant,
            scope.cod_col,
            scope.cod_bud,
            exercice,
            id_pce as i64,
            typ_bord,
            id_bord as i64,
        ),
    )?
    .pop())
}

/// The ORMC article with this debt number and period (latest exercice first).
pub fn titre_of_dette(
    c: &Connection,
    scope: Scope<'_>,
    num_dette: &str,
    per: &str,
) -> Result<Option<TitreRow>, HeliosError> {
    Ok(titres_where(
        c,
        "tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND num_dette = ?4 AND per = ?5
         ORDER BY exercice DESC LIMIT 1",
        (scope.tenant, scope.cod_col, scope.cod_bud, num_dette, per),
    )?
    .pop())
}

/// The titre of an invoice, if it has one.
pub fn titre_of_invoice(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<TitreRow>, HeliosError> {
    Ok(titres_where(c, "tenant = ?1 AND invoice_key = ?2", (tenant, invoice_key))?.pop())
}

/// The `TypBord` of the bordereaux of the file named `nom_fic` (an acquit's `NomFic`),
/// tolerating a missing or added `.xml`.
pub fn typ_bord_of_file(
    c: &Connection,
    scope: Scope<'_>,
    nom_fic: &str,
) -> Result<Option<String>, HeliosError> {
    let bare = nom_fic.strip_suffix(".xml").unwrap_or(nom_fic);
    let with = format!("{bare}.xml");
    Ok(c.query_row(
        "SELECT typ_bord FROM helios_file
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND file_name IN (?4, ?5)",
        (scope.tenant, scope.cod_col, scope.cod_bud, bare, &with),
        |r| r.get(0),
    )
    .optional()?)
}

/// The bordereau types under which `exercice/id_bord` exists.
pub fn typ_bords_of(
    c: &Connection,
    scope: Scope<'_>,
    exercice: u16,
    id_bord: u64,
) -> Result<Vec<String>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT typ_bord FROM helios_bordereau
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND id_bord = ?5
         ORDER BY typ_bord",
    )?;
    let rows = stmt
        .query_map(
            (
                scope.tenant,
                scope.cod_col,
                scope.cod_bud,
                exercice,
                id_bord as i64,
            ),
            |r| r.get(0),
        )?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(rows)
}

const FILE_COLUMNS: &str = "id, tenant, budget, cod_col, cod_bud, exercice, typ_bord, file_name, \
     bordereau_date, run_id, batch_group, bordereaux, pieces, total_cents";

fn file_row(c: &Connection, id: i64) -> Result<FileRow, HeliosError> {
    let raw = c.query_row(
        &format!("SELECT {FILE_COLUMNS} FROM helios_file WHERE id = ?1"),
        [id],
        |r| {
            Ok((
                (
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, u16>(5)?,
                    r.get::<_, String>(6)?,
                ),
                (
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, u32>(11)?,
                    r.get::<_, u32>(12)?,
                    r.get::<_, i64>(13)?,
                ),
            ))
        },
    )?;
    let (
        (id, tenant, budget, cod_col, cod_bud, exercice, typ_bord),
        (file_name, date, run_id, batch_group, bordereaux, pieces, total_cents),
    ) = raw;
    let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
        .map_err(|_| HeliosError::Corrupt(format!("helios_file.bordereau_date {date:?}")))?;
    Ok(FileRow {
        id,
        tenant,
        budget,
        cod_col,
        cod_bud,
        exercice,
        typ_bord,
        file_name,
        date,
        run_id,
        batch_group,
        bordereaux,
        pieces,
        total_cents,
    })
}

/// Files planned and not written yet, oldest first.
pub fn unwritten_files(c: &Connection, tenant: &str) -> Result<Vec<FileRow>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT id FROM helios_file WHERE tenant = ?1 AND written_at IS NULL ORDER BY id",
    )?;
    let ids = stmt
        .query_map([tenant], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    ids.into_iter().map(|id| file_row(c, id)).collect()
}

/// The bordereau numbers of a planned file, in order.
pub fn bordereaux_of_file(c: &Connection, file_id: i64) -> Result<Vec<u32>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT id_bord FROM helios_bordereau WHERE file_id = ?1 ORDER BY id_bord",
    )?;
    let ids = stmt
        .query_map([file_id], |r| r.get::<_, u32>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ids)
}

/// A titre of a planned file with its invoice's stored payload (`None`: the invoice is not
/// in the file's billing run — a corrupt plan).
pub struct TitreToRender {
    pub position: u32,
    pub id_pce: u32,
    pub sequence: Option<SequenceType>,
    pub invoice_key: String,
    pub payload: Option<Vec<u8>>,
}

/// At most `limit` titres of bordereau `id_bord` of `file`, after position `after`
/// (`-1`: from the first), in position order: rendering reads a file in such chunks, so
/// it never holds a whole billing run.
pub fn titres_to_render(
    c: &Connection,
    file: &FileRow,
    stage: &str,
    id_bord: u32,
    after: i64,
    limit: usize,
) -> Result<Vec<TitreToRender>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT t.position, t.id_pce, t.sequence, t.invoice_key, b.payload
         FROM helios_titre t
         LEFT JOIN batch_item b ON b.stage = ?1 AND b.tenant = t.tenant AND b.item_key = t.invoice_key
              AND b.run_id = ?2 AND b.group_key = ?3
         WHERE t.tenant = ?4 AND t.cod_col = ?5 AND t.cod_bud = ?6 AND t.exercice = ?7
           AND t.typ_bord = ?8 AND t.id_bord = ?9 AND t.position > ?10
         ORDER BY t.position LIMIT ?11",
    )?;
    let rows = stmt
        .query_map(
            encaisse_ledger::rusqlite::params![
                stage,
                file.run_id,
                file.batch_group,
                file.tenant,
                file.cod_col,
                file.cod_bud,
                file.exercice,
                file.typ_bord,
                id_bord,
                after,
                i64::try_from(limit).unwrap_or(i64::MAX),
            ],
            |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(position, id_pce, sequence, invoice_key, payload)| {
            Ok(TitreToRender {
                position,
                id_pce,
                sequence: parse_sequence(sequence.as_deref())?,
                invoice_key,
                payload,
            })
        })
        .collect()
}

/// One `titre_emitted` journal fact per titre of `file` (made in SQL from its titres, so a
/// run of any size is journalled without loading it); a fact already recorded is kept.
/// The detail is the JSON the stage has always written (keys in alphabetical order).
pub fn record_emitted_facts(
    c: &Connection,
    file: &FileRow,
    stage: &str,
    at: &str,
) -> Result<usize, HeliosError> {
    Ok(c.prepare_cached(
        "INSERT INTO invoice_event (invoice_key, tenant, at, kind, detail, dedupe_key)
         SELECT t.invoice_key, t.tenant, ?1, 'titre_emitted',
                json_object('bordereau_type', t.typ_bord, 'budget', t.budget, 'exercice', t.exercice,
                            'file', ?2, 'id_bord', t.id_bord, 'id_pce', t.id_pce, 'stage', ?3),
                ?3 || ':emitted:' || t.invoice_key
         FROM helios_titre t JOIN helios_bordereau b
              ON b.tenant = t.tenant AND b.cod_col = t.cod_col AND b.cod_bud = t.cod_bud
             AND b.exercice = t.exercice AND b.typ_bord = t.typ_bord AND b.id_bord = t.id_bord
         WHERE b.file_id = ?4
         ORDER BY t.id_bord, t.position
         ON CONFLICT (dedupe_key) DO NOTHING",
    )?
    .execute((at, &file.file_name, stage, file.id))?)
}

/// Marks a file written; `false` when it already was (another call wrote it).
pub fn mark_file_written(c: &Connection, id: i64, sha256: &str) -> Result<bool, HeliosError> {
    let n = c.execute(
        "UPDATE helios_file SET written_at = ?2, sha256 = ?3 WHERE id = ?1 AND written_at IS NULL",
        (id, ledger_now(), sha256),
    )?;
    Ok(n == 1)
}

/// An invoice refused before numbering.
pub fn insert_refused(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
    run_id: &str,
    budget: &str,
    field: &str,
    rule: &str,
) -> Result<(), HeliosError> {
    c.execute(
        "INSERT INTO helios_refused (tenant, invoice_key, run_id, budget, field, rule, refused_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, invoice_key) DO UPDATE SET run_id = excluded.run_id,
             field = excluded.field, rule = excluded.rule, refused_at = excluded.refused_at",
        (
            tenant,
            invoice_key,
            run_id,
            budget,
            field,
            rule,
            ledger_now(),
        ),
    )?;
    Ok(())
}

/// A report waiting to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub id: i64,
    /// Relative to the data directory.
    pub path: String,
    pub bytes: Vec<u8>,
}

pub fn insert_report(
    c: &Connection,
    tenant: &str,
    path: &str,
    bytes: &[u8],
) -> Result<(), HeliosError> {
    c.execute(
        "INSERT INTO helios_report (tenant, path, bytes, planned_at) VALUES (?1, ?2, ?3, ?4)",
        (tenant, path, bytes, ledger_now()),
    )?;
    Ok(())
}

pub fn unwritten_reports(c: &Connection, tenant: &str) -> Result<Vec<ReportRow>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, path, bytes FROM helios_report WHERE tenant = ?1 AND written_at IS NULL ORDER BY id",
    )?;
    let rows = stmt
        .query_map([tenant], |r| {
            Ok(ReportRow {
                id: r.get(0)?,
                path: r.get(1)?,
                bytes: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn mark_report_written(c: &Connection, id: i64) -> Result<(), HeliosError> {
    c.execute(
        "UPDATE helios_report SET written_at = ?2 WHERE id = ?1 AND written_at IS NULL",
        (id, ledger_now()),
    )?;
    Ok(())
}

/// How many files of a tenant wait to be written (a gauge for ops).
pub fn unwritten_count(c: &Connection, tenant: &str) -> Result<u64, HeliosError> {
    let n: i64 = c.query_row(
        "SELECT (SELECT count(*) FROM helios_file WHERE tenant = ?1 AND written_at IS NULL)
              + (SELECT count(*) FROM helios_report WHERE tenant = ?1 AND written_at IS NULL)",
        [tenant],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// When the tenant's last PES Aller file was written (RFC 3339), if any.
pub fn last_written_at(c: &Connection, tenant: &str) -> Result<Option<String>, HeliosError> {
    Ok(c.query_row(
        "SELECT max(written_at) FROM helios_file WHERE tenant = ?1",
        [tenant],
        |r| r.get(0),
    )?)
}

/// Queues an event to publish (`helios_event`); the same message id again is a no-op.
pub fn insert_event(
    c: &Connection,
    tenant: &str,
    kind: &str,
    message_id: &str,
    body: &[u8],
) -> Result<(), HeliosError> {
    c.prepare_cached(
        "INSERT INTO helios_event (message_id, tenant, kind, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (message_id) DO NOTHING",
    )?
    .execute((message_id, tenant, kind, body, ledger_now()))?;
    Ok(())
}

/// The tenant's events not handed to the runtime yet, in the order they were queued.
pub fn pending_events(c: &Connection, tenant: &str) -> Result<Vec<TitreRejected>, HeliosError> {
    let mut stmt = c.prepare_cached(
        "SELECT message_id, kind, body FROM helios_event
         WHERE tenant = ?1 AND handed_at IS NULL ORDER BY rowid",
    )?;
    let rows = stmt
        .query_map([tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, kind, body)| {
            if kind != <TitreRejected as encaisse_schemas::Event>::TYPE {
                return Err(HeliosError::Corrupt(format!(
                    "helios_event {id} is a {kind:?}, which helios.titres never queues"
                )));
            }
            encaisse_schemas::decode(&body)
                .map_err(|e| HeliosError::Corrupt(format!("helios_event {id}: {e}")))
        })
        .collect()
}

/// Marks events handed (inside the runtime's dedupe transaction).
pub fn mark_events_handed(
    c: &Connection,
    message_ids: &[String],
) -> Result<(), encaisse_ledger::LedgerError> {
    let mut stmt = c.prepare_cached(
        "UPDATE helios_event SET handed_at = ?2 WHERE message_id = ?1 AND handed_at IS NULL",
    )?;
    let at = ledger_now();
    for id in message_ids {
        stmt.execute((id, &at))?;
    }
    Ok(())
}
