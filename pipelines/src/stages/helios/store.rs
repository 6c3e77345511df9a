//! The Hélios tables of the ledger (`ledger/migrations/helios_000*.sql`, and
//! `postgres/helios_000*.sql`): numbering, planned files, the invoice ↔ titre mapping,
//! refusals, reports and queued events. Every function takes the caller's [`Tx`] (SQLite or
//! PostgreSQL; a write transaction for writes), so callers make several of them atomic.

use chrono::NaiveDate;
use encaisse_ledger::Tx;
use encaisse_ledger::sql::{Param, Row};
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

/// The counter kind of `IdBord` for a `TypBord` (`helios_counter.kind`).
fn id_bord_kind(typ_bord: &str) -> String {
    format!("id_bord:{typ_bord}")
}

/// The counter kind of `IdPce`.
const ID_PCE: &str = "id_pce";

/// Locks the counter row `kind` of (budget, exercice) until the transaction ends and returns
/// the last number used (created at its first use from `recorded`, a query of the largest
/// number the ledger already holds, over `?1`…`?4` and `extra` as `?6`). A second transaction planning
/// for the same budget waits here for the first to commit or roll back, then reads what it
/// left (an upsert's `DO UPDATE` works on the latest committed row and locks it): numbers
/// are never handed out twice and a rollback leaves no gap. On SQLite the single writer
/// already orders the transactions.
fn lock_counter(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    kind: &str,
    recorded: (&str, Option<&str>),
) -> Result<u32, HeliosError> {
    let (query, extra) = recorded;
    let sql = format!(
        "INSERT INTO helios_counter (tenant, cod_col, cod_bud, exercice, kind, last)
         VALUES (?1, ?2, ?3, ?4, ?5, ({query}))
         ON CONFLICT (tenant, cod_col, cod_bud, exercice, kind)
             DO UPDATE SET last = helios_counter.last
         RETURNING last"
    );
    let mut params: Vec<&dyn Param> = vec![
        &scope.tenant,
        &scope.cod_col,
        &scope.cod_bud,
        &exercice,
        &kind,
    ];
    if let Some(extra) = &extra {
        params.push(extra);
    }
    Ok(tx.query_one(&sql, &params, |r| r.get::<u32>(0))?)
}

/// Records `last` as the last number of counter `kind` used (never moves it back).
fn advance_counter(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    kind: &str,
    last: u32,
) -> Result<(), HeliosError> {
    tx.execute(
        "UPDATE helios_counter SET last = ?6
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND kind = ?5
           AND last < ?6",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &exercice,
            &kind,
            &last,
        ],
    )?;
    Ok(())
}

/// The next `IdBord` of (budget, exercice, `TypBord`): gapless, never reused. Locks the
/// budget's `IdBord` counter of that type until the transaction ends; the caller records
/// what it used with [`used_numbers`] in the same transaction.
pub fn next_id_bord(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    typ_bord: &str,
) -> Result<u32, HeliosError> {
    let last = lock_counter(
        tx,
        scope,
        exercice,
        &id_bord_kind(typ_bord),
        (
            "SELECT COALESCE(MAX(id_bord), 0) FROM helios_bordereau
             WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND typ_bord = ?6",
            Some(typ_bord),
        ),
    )?;
    Ok(last + 1)
}

/// The next `IdPce` of (budget, exercice): unique, never reused. Locks the budget's `IdPce`
/// counter until the transaction ends (take it after [`next_id_bord`]: one order everywhere).
pub fn next_id_pce(tx: &mut Tx<'_>, scope: Scope<'_>, exercice: u16) -> Result<u32, HeliosError> {
    let last = lock_counter(
        tx,
        scope,
        exercice,
        ID_PCE,
        (
            "SELECT COALESCE(MAX(id_pce), 0) FROM helios_titre
             WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4",
            None,
        ),
    )?;
    Ok(last + 1)
}

/// Records the last `IdBord` (of `typ_bord`) and `IdPce` a plan used, in the transaction
/// that holds their counters and stored its bordereaux and titres.
pub fn used_numbers(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    typ_bord: &str,
    last_id_bord: u32,
    last_id_pce: u32,
) -> Result<(), HeliosError> {
    advance_counter(tx, scope, exercice, &id_bord_kind(typ_bord), last_id_bord)?;
    advance_counter(tx, scope, exercice, ID_PCE, last_id_pce)
}

/// The invoice that already holds an ORMC debt number (`NumDette`, `Per`) in this exercice.
pub fn dette_holder(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    num_dette: &str,
    per: &str,
) -> Result<Option<String>, HeliosError> {
    Ok(tx.query_opt(
        "SELECT invoice_key FROM helios_titre
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND num_dette = ?5 AND per = ?6",
        &[&scope.tenant, &scope.cod_col, &scope.cod_bud, &exercice, &num_dette, &per],
        |r| r.get::<String>(0),
    )?)
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

/// Stores a planned file; returns its id. A name already planned for the tenant is
/// refused (the configuration's `file_name_pattern` names two bordereaux alike), without
/// failing the statement, so the refusal leaves a PostgreSQL transaction usable.
pub fn insert_file(tx: &mut Tx<'_>, f: &NewFile<'_>) -> Result<i64, HeliosError> {
    let date = f.date.to_string();
    let id = tx.query_opt(
        "INSERT INTO helios_file (tenant, budget, cod_col, cod_bud, exercice, typ_bord, file_name,
             bordereau_date, run_id, batch_group, bordereaux, pieces, total_cents, planned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (tenant, file_name) DO NOTHING
         RETURNING id",
        &[
            &f.tenant,
            &f.budget.code,
            &f.budget.cod_col,
            &f.budget.cod_bud,
            &f.exercice,
            &f.typ_bord,
            &f.file_name,
            &date,
            &f.run_id,
            &f.batch_group,
            &f.bordereaux,
            &f.pieces,
            &f.total_cents,
            &ledger_now(),
        ],
        |r| r.get::<i64>(0),
    )?;
    id.ok_or_else(|| {
        HeliosError::Corrupt(format!(
            "file name {} of tenant {} is already planned: file_name_pattern must name each bordereau once",
            f.file_name, f.tenant
        ))
    })
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
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    b: &NewBordereau<'_>,
) -> Result<(), HeliosError> {
    tx.execute(
        "INSERT INTO helios_bordereau (tenant, cod_col, cod_bud, exercice, typ_bord, id_bord, file_id, pieces, total_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &b.exercice,
            &b.typ_bord,
            &b.id_bord,
            &b.file_id,
            &b.pieces,
            &b.total_cents,
        ],
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

/// Stores a titre; `false` (nothing stored) when its invoice already has one, or its number
/// or ORMC article is taken: the statement does not fail, so the caller can say which and
/// a PostgreSQL transaction stays usable.
pub fn insert_titre(tx: &mut Tx<'_>, scope: Scope<'_>, t: &TitreRow) -> Result<bool, HeliosError> {
    let changed = tx.execute(
        "INSERT INTO helios_titre (tenant, cod_col, cod_bud, exercice, id_pce, typ_bord, id_bord, position,
             invoice_key, invoice_exercice, invoice_number, budget, payment_mode, sequence, num_dette, per, total_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT DO NOTHING",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &t.exercice,
            &t.id_pce,
            &t.typ_bord,
            &t.id_bord,
            &t.position,
            &t.invoice_key,
            &t.invoice_exercice,
            &t.invoice_number,
            &t.budget,
            &payment_mode_code(t.payment_mode),
            &t.sequence.map(SequenceType::as_str),
            &t.num_dette,
            &t.per,
            &t.total_cents,
        ],
    )?;
    Ok(changed == 1)
}

pub fn insert_titre_line(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    id_pce: u32,
    line: &encaisse_helios::aller::TitreLine,
) -> Result<(), HeliosError> {
    tx.execute(
        "INSERT INTO helios_titre_line (tenant, cod_col, cod_bud, exercice, id_pce, id_ligne, invoice_line, amount_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &exercice,
            &id_pce,
            &line.id_ligne,
            &line.invoice_line,
            &line.amount.cents(),
        ],
    )?;
    Ok(())
}

const TITRE_COLUMNS: &str = "exercice, id_pce, typ_bord, id_bord, position, invoice_key, invoice_exercice, \
     invoice_number, budget, payment_mode, sequence, num_dette, per, total_cents";

fn titre_row(r: &Row<'_>) -> Result<TitreRow, HeliosError> {
    let payment_mode: String = r.get(9)?;
    let sequence: Option<String> = r.get(10)?;
    Ok(TitreRow {
        exercice: r.get(0)?,
        id_pce: r.get(1)?,
        typ_bord: r.get(2)?,
        id_bord: r.get(3)?,
        position: r.get(4)?,
        invoice_key: r.get(5)?,
        invoice_exercice: r.get(6)?,
        invoice_number: r.get(7)?,
        budget: r.get(8)?,
        payment_mode: parse_payment_mode(&payment_mode)?,
        sequence: parse_sequence(sequence.as_deref())?,
        num_dette: r.get(11)?,
        per: r.get(12)?,
        total_cents: r.get(13)?,
    })
}

fn titres_where(
    tx: &mut Tx<'_>,
    condition: &str,
    params: &[&dyn Param],
) -> Result<Vec<TitreRow>, HeliosError> {
    let mut titres = Vec::new();
    tx.query_each(
        &format!("SELECT {TITRE_COLUMNS} FROM helios_titre WHERE {condition}"),
        params,
        |r| {
            titres.push(titre_row(r)?);
            Ok::<_, HeliosError>(())
        },
    )?;
    Ok(titres)
}

/// A number the adapter read from a return file, as a ledger integer (one beyond what the
/// ledger can hold matches nothing).
fn number(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(-1)
}

/// The titres of a bordereau, in their order in it.
pub fn titres_of_bordereau(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    typ_bord: &str,
    id_bord: u64,
) -> Result<Vec<TitreRow>, HeliosError> {
    titres_where(
        tx,
        "tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND typ_bord = ?5 AND id_bord = ?6
         ORDER BY position",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &exercice,
            &typ_bord,
            &number(id_bord),
        ],
    )
}

/// One titre by its pièce number (and bordereau: a PES Retour names both).
pub fn titre_of_piece(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    typ_bord: &str,
    id_bord: u64,
    id_pce: u64,
) -> Result<Option<TitreRow>, HeliosError> {
    Ok(titres_where(
        tx,
        "tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND id_pce = ?5
         AND typ_bord = ?6 AND id_bord = ?7",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &exercice,
            &number(id_pce),
            &typ_bord,
            &number(id_bord),
        ],
    )?
    .pop())
}

/// The ORMC article with this debt number and period (latest exercice first).
pub fn titre_of_dette(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    num_dette: &str,
    per: &str,
) -> Result<Option<TitreRow>, HeliosError> {
    Ok(titres_where(
        tx,
        "tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND num_dette = ?4 AND per = ?5
         ORDER BY exercice DESC LIMIT 1",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &num_dette,
            &per,
        ],
    )?
    .pop())
}

/// The titre of an invoice, if it has one.
pub fn titre_of_invoice(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<TitreRow>, HeliosError> {
    Ok(titres_where(
        tx,
        "tenant = ?1 AND invoice_key = ?2",
        &[&tenant, &invoice_key],
    )?
    .pop())
}

/// Locks the titre of an invoice until the transaction ends (PostgreSQL; SQLite's single
/// writer already orders transactions), for decisions that read what remains of it.
pub fn lock_titre(tx: &mut Tx<'_>, tenant: &str, invoice_key: &str) -> Result<(), HeliosError> {
    if tx.is_postgres() {
        tx.query_opt(
            "SELECT id_pce FROM helios_titre WHERE tenant = ?1 AND invoice_key = ?2 FOR UPDATE",
            &[&tenant, &invoice_key],
            |r| r.get::<i64>(0),
        )?;
    }
    Ok(())
}

/// The `TypBord` of the bordereaux of the file named `nom_fic` (an acquit's `NomFic`),
/// tolerating a missing or added `.xml`.
pub fn typ_bord_of_file(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    nom_fic: &str,
) -> Result<Option<String>, HeliosError> {
    let bare = nom_fic.strip_suffix(".xml").unwrap_or(nom_fic);
    let with = format!("{bare}.xml");
    Ok(tx.query_opt(
        "SELECT typ_bord FROM helios_file
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND file_name IN (?4, ?5)",
        &[&scope.tenant, &scope.cod_col, &scope.cod_bud, &bare, &with],
        |r| r.get::<String>(0),
    )?)
}

/// The bordereau types under which `exercice/id_bord` exists.
pub fn typ_bords_of(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    exercice: u16,
    id_bord: u64,
) -> Result<Vec<String>, HeliosError> {
    Ok(tx.query_all(
        "SELECT typ_bord FROM helios_bordereau
         WHERE tenant = ?1 AND cod_col = ?2 AND cod_bud = ?3 AND exercice = ?4 AND id_bord = ?5
         ORDER BY typ_bord",
        &[
            &scope.tenant,
            &scope.cod_col,
            &scope.cod_bud,
            &exercice,
            &number(id_bord),
        ],
        |r| r.get::<String>(0),
    )?)
}

const FILE_COLUMNS: &str = "id, tenant, budget, cod_col, cod_bud, exercice, typ_bord, file_name, \
     bordereau_date, run_id, batch_group, bordereaux, pieces, total_cents";

fn file_row(r: &Row<'_>) -> Result<FileRow, HeliosError> {
    let date: String = r.get(8)?;
    let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d")
        .map_err(|_| HeliosError::Corrupt(format!("helios_file.bordereau_date {date:?}")))?;
    Ok(FileRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        budget: r.get(2)?,
        cod_col: r.get(3)?,
        cod_bud: r.get(4)?,
        exercice: r.get(5)?,
        typ_bord: r.get(6)?,
        file_name: r.get(7)?,
        date,
        run_id: r.get(9)?,
        batch_group: r.get(10)?,
        bordereaux: r.get(11)?,
        pieces: r.get(12)?,
        total_cents: r.get(13)?,
    })
}

/// Files planned and not written yet, oldest first.
pub fn unwritten_files(tx: &mut Tx<'_>, tenant: &str) -> Result<Vec<FileRow>, HeliosError> {
    let mut files = Vec::new();
    tx.query_each(
        &format!(
            "SELECT {FILE_COLUMNS} FROM helios_file WHERE tenant = ?1 AND written_at IS NULL ORDER BY id"
        ),
        &[&tenant],
        |r| {
            files.push(file_row(r)?);
            Ok::<_, HeliosError>(())
        },
    )?;
    Ok(files)
}

/// The bordereau numbers of a planned file, in order.
pub fn bordereaux_of_file(tx: &mut Tx<'_>, file_id: i64) -> Result<Vec<u32>, HeliosError> {
    Ok(tx.query_all(
        "SELECT id_bord FROM helios_bordereau WHERE file_id = ?1 ORDER BY id_bord",
        &[&file_id],
        |r| r.get::<u32>(0),
    )?)
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

/// On PostgreSQL, refreshes the planner's statistics of the tables a PES file is rendered
/// from, just filled by the billing run. A new database (or a server without autovacuum)
/// knows nothing of them yet, and the planner then joined each page of titres to its
/// invoices by scanning the whole group: 3.5 s per page of 500 for a 16,640-titre file,
/// against 2 ms once analysed. Nothing to do on SQLite (its planner needs no statistics for
/// these indexed lookups).
pub fn refresh_statistics(tx: &mut Tx<'_>) -> Result<(), HeliosError> {
    if tx.is_postgres() {
        tx.execute_script("ANALYZE batch_item, helios_titre")?;
    }
    Ok(())
}

/// At most `limit` titres of bordereau `id_bord` of `file`, after position `after`
/// (`-1`: from the first), in position order: rendering reads a file in such chunks, so
/// it never holds a whole billing run.
pub fn titres_to_render(
    tx: &mut Tx<'_>,
    file: &FileRow,
    stage: &str,
    id_bord: u32,
    after: i64,
    limit: usize,
) -> Result<Vec<TitreToRender>, HeliosError> {
    let mut titres = Vec::new();
    tx.query_each(
        "SELECT t.position, t.id_pce, t.sequence, t.invoice_key, b.payload
         FROM helios_titre t
         LEFT JOIN batch_item b ON b.stage = ?1 AND b.tenant = t.tenant AND b.item_key = t.invoice_key
              AND b.run_id = ?2 AND b.group_key = ?3
         WHERE t.tenant = ?4 AND t.cod_col = ?5 AND t.cod_bud = ?6 AND t.exercice = ?7
           AND t.typ_bord = ?8 AND t.id_bord = ?9 AND t.position > ?10
         ORDER BY t.position LIMIT ?11",
        &[
            &stage,
            &file.run_id,
            &file.batch_group,
            &file.tenant,
            &file.cod_col,
            &file.cod_bud,
            &file.exercice,
            &file.typ_bord,
            &id_bord,
            &after,
            &i64::try_from(limit).unwrap_or(i64::MAX),
        ],
        |r| {
            let sequence: Option<String> = r.get(2)?;
            titres.push(TitreToRender {
                position: r.get(0)?,
                id_pce: r.get(1)?,
                sequence: parse_sequence(sequence.as_deref())?,
                invoice_key: r.get(3)?,
                payload: r.get(4)?,
            });
            Ok::<_, HeliosError>(())
        },
    )?;
    Ok(titres)
}

/// One `titre_emitted` journal fact per titre of `file` (made in SQL from its titres, so a
/// run of any size is journalled without loading it); a fact already recorded is kept.
/// One statement per bordereau, reading its titres in position order from
/// `helios_titre_bordereau`: one statement for the whole file, ordered by bordereau and
/// position, made SQLite sort every titre of the file (a temporary B-tree of their facts).
/// The detail is the JSON the stage has always written: compact, keys in alphabetical
/// order. SQLite builds it with `json_object`; PostgreSQL's `json_build_object` spaces its
/// output, so there the text is assembled from `to_json` literals (which escape as JSON).
pub fn record_emitted_facts(
    tx: &mut Tx<'_>,
    file: &FileRow,
    stage: &str,
    at: &str,
) -> Result<usize, HeliosError> {
    let detail = if tx.is_postgres() {
        "'{\"bordereau_type\":' || to_json(t.typ_bord)::text || ',\"budget\":' || to_json(t.budget)::text
         || ',\"exercice\":' || t.exercice || ',\"file\":' || to_json(CAST(?2 AS TEXT))::text
         || ',\"id_bord\":' || t.id_bord || ',\"id_pce\":' || t.id_pce
         || ',\"stage\":' || to_json(CAST(?3 AS TEXT))::text || '}'"
    } else {
        "json_object('bordereau_type', t.typ_bord, 'budget', t.budget, 'exercice', t.exercice,
                     'file', ?2, 'id_bord', t.id_bord, 'id_pce', t.id_pce, 'stage', ?3)"
    };
    let sql = format!(
        "INSERT INTO invoice_event (invoice_key, tenant, at, kind, detail, dedupe_key)
         SELECT t.invoice_key, t.tenant, ?1, 'titre_emitted', {detail},
                CAST(?3 AS TEXT) || ':emitted:' || t.invoice_key
         FROM helios_titre t
         WHERE t.tenant = ?4 AND t.cod_col = ?5 AND t.cod_bud = ?6 AND t.exercice = ?7
           AND t.typ_bord = ?8 AND t.id_bord = ?9
         ORDER BY t.position
         ON CONFLICT (dedupe_key) DO NOTHING"
    );
    let mut recorded = 0;
    for id_bord in bordereaux_of_file(tx, file.id)? {
        recorded += tx.execute(
            &sql,
            &[
                &at,
                &file.file_name,
                &stage,
                &file.tenant,
                &file.cod_col,
                &file.cod_bud,
                &file.exercice,
                &file.typ_bord,
                &id_bord,
            ],
        )?;
    }
    Ok(recorded)
}

/// Marks a file written; `false` when it already was (another call, or another daemon,
/// wrote it: the second `UPDATE` waits for the first and then matches no row).
pub fn mark_file_written(tx: &mut Tx<'_>, id: i64, sha256: &str) -> Result<bool, HeliosError> {
    let n = tx.execute(
        "UPDATE helios_file SET written_at = ?2, sha256 = ?3 WHERE id = ?1 AND written_at IS NULL",
        &[&id, &ledger_now(), &sha256],
    )?;
    Ok(n == 1)
}

/// An invoice refused before numbering.
pub fn insert_refused(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
    run_id: &str,
    budget: &str,
    field: &str,
    rule: &str,
) -> Result<(), HeliosError> {
    tx.execute(
        "INSERT INTO helios_refused (tenant, invoice_key, run_id, budget, field, rule, refused_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, invoice_key) DO UPDATE SET run_id = excluded.run_id,
             field = excluded.field, rule = excluded.rule, refused_at = excluded.refused_at",
        &[
            &tenant,
            &invoice_key,
            &run_id,
            &budget,
            &field,
            &rule,
            &ledger_now(),
        ],
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
    tx: &mut Tx<'_>,
    tenant: &str,
    path: &str,
    bytes: &[u8],
) -> Result<(), HeliosError> {
    tx.execute(
        "INSERT INTO helios_report (tenant, path, bytes, planned_at) VALUES (?1, ?2, ?3, ?4)",
        &[&tenant, &path, &bytes, &ledger_now()],
    )?;
    Ok(())
}

pub fn unwritten_reports(tx: &mut Tx<'_>, tenant: &str) -> Result<Vec<ReportRow>, HeliosError> {
    Ok(tx.query_all(
        "SELECT id, path, bytes FROM helios_report WHERE tenant = ?1 AND written_at IS NULL ORDER BY id",
        &[&tenant],
        |r| {
            Ok(ReportRow {
                id: r.get(0)?,
                path: r.get(1)?,
                bytes: r.get(2)?,
            })
        },
    )?)
}

pub fn mark_report_written(tx: &mut Tx<'_>, id: i64) -> Result<(), HeliosError> {
    tx.execute(
        "UPDATE helios_report SET written_at = ?2 WHERE id = ?1 AND written_at IS NULL",
        &[&id, &ledger_now()],
    )?;
    Ok(())
}

/// How many files of a tenant wait to be written (a gauge for ops).
pub fn unwritten_count(tx: &mut Tx<'_>, tenant: &str) -> Result<u64, HeliosError> {
    Ok(tx.query_one(
        "SELECT CAST((SELECT count(*) FROM helios_file WHERE tenant = ?1 AND written_at IS NULL)
              + (SELECT count(*) FROM helios_report WHERE tenant = ?1 AND written_at IS NULL) AS BIGINT)",
        &[&tenant],
        |r| r.get::<u64>(0),
    )?)
}

/// When the tenant's last PES Aller file was written (RFC 3339), if any.
pub fn last_written_at(tx: &mut Tx<'_>, tenant: &str) -> Result<Option<String>, HeliosError> {
    Ok(tx.query_one(
        "SELECT max(written_at) FROM helios_file WHERE tenant = ?1",
        &[&tenant],
        |r| r.get::<Option<String>>(0),
    )?)
}

/// Queues an event to publish (`helios_event`); the same message id again is a no-op.
pub fn insert_event(
    tx: &mut Tx<'_>,
    tenant: &str,
    kind: &str,
    message_id: &str,
    body: &[u8],
) -> Result<(), HeliosError> {
    tx.execute(
        "INSERT INTO helios_event (message_id, tenant, kind, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (message_id) DO NOTHING",
        &[&message_id, &tenant, &kind, &body, &ledger_now()],
    )?;
    Ok(())
}

/// The tenant's events not handed to the runtime yet, in the order they were queued (by
/// time, then message id: the table has no row number PostgreSQL shares).
pub fn pending_events(tx: &mut Tx<'_>, tenant: &str) -> Result<Vec<TitreRejected>, HeliosError> {
    let rows = tx.query_all(
        "SELECT message_id, kind, body FROM helios_event
         WHERE tenant = ?1 AND handed_at IS NULL ORDER BY created_at, message_id",
        &[&tenant],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<Vec<u8>>(2)?,
            ))
        },
    )?;
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
    tx: &mut Tx<'_>,
    message_ids: &[String],
) -> Result<(), encaisse_ledger::LedgerError> {
    let at = ledger_now();
    for id in message_ids {
        tx.execute(
            "UPDATE helios_event SET handed_at = ?2 WHERE message_id = ?1 AND handed_at IS NULL",
            &[id, &at],
        )?;
    }
    Ok(())
}
