//! Writing what was planned: each planned PES Aller file is rendered again from the ledger
//! (numbers, date, order, invoices) — the same bytes every time — streamed to a temporary
//! file and published atomically to `<tenant>/helios/outbox` (`stage_file`,
//! `Ledger::emit_staged`), then marked written with a journal fact per invoice, in one
//! transaction. Reports wait the same way.
//!
//! Memory does not grow with the run: the writer reads the file's titres and their invoices
//! from the ledger in chunks ([`CHUNK`]) on each of its passes, and the bytes go to disk as
//! they are made.
//!
//! Called at every handler call of `helios.titres` (reading the ledger only when this
//! process may have left something unwritten, and always after planning) and by the
//! `helios.titres.flush` source (always): a crash anywhere between planning and marking
//! leaves a plan that the next call writes — never a second bordereau, never a gap.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use encaisse_helios::aller::reduction::{ReductionTitre, TYP_BORD_REDUCTION, pes_reduction_bytes};
use encaisse_helios::aller::{
    Bordereau, OwnedTitre, WriteError, WriteSummary, write_pes_aller_split,
};
use encaisse_ledger::files::{StagedFile, stage_file};
use encaisse_ledger::{Ledger, Tx};

use super::error::{HeliosError, read_tx, write_tx};
use super::metrics;
use super::plan::STAGE;
use super::reduction_store;
use super::settings::TenantHelios;
use super::store::{self, FileRow, ledger_now};

/// What the process knows of a tenant directory's planned outputs.
#[derive(Default)]
struct TenantState {
    /// One writer at a time: two calls writing the same planned file at once would race on
    /// its temporary file.
    lock: tokio::sync::Mutex<()>,
    /// `false` once a pass found nothing to write, until this process plans again: spares
    /// every message a ledger read. Starts `true` (the ledger may hold plans of a previous
    /// run of the daemon).
    maybe_pending: AtomicBool,
    /// The same for the events queued in `helios_event` (`refusal::hand_over`): `true`
    /// once this process queued some, or while a pass found some not yet marked handed.
    events_pending: Arc<AtomicBool>,
}

/// Process-wide, so the stage and the flush source share it.
fn tenant_state(dir: &Path) -> Arc<TenantState> {
    static STATES: OnceLock<Mutex<HashMap<PathBuf, Arc<TenantState>>>> = OnceLock::new();
    let states = STATES.get_or_init(Mutex::default);
    let fresh = || {
        Arc::new(TenantState {
            lock: tokio::sync::Mutex::new(()),
            maybe_pending: AtomicBool::new(true),
            events_pending: Arc::new(AtomicBool::new(true)),
        })
    };
    match states.lock() {
        Ok(mut map) => map.entry(dir.to_path_buf()).or_insert_with(fresh).clone(),
        // A poisoned map only means another task panicked while holding it.
        Err(_) => fresh(),
    }
}

/// Whether `tenant`'s queued events may wait to be handed over (shared by every component
/// of this process writing under `data_dir`).
pub fn events_flag(data_dir: &Path, tenant: &TenantHelios) -> Arc<AtomicBool> {
    let helios_dir = data_dir.join(tenant.id.as_str()).join("helios");
    tenant_state(&helios_dir).events_pending.clone()
}

/// When to look in the ledger for planned outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Always (after planning, and in the flush source).
    Ledger,
    /// Only if this process may have left something unwritten.
    IfPending,
}

/// What a pass wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<String>,
    pub reports: Vec<String>,
}

/// Writes every planned and unwritten file and report of `tenant`. Stops at the first
/// failure (the rest waits for the next call).
pub async fn complete_pending(
    ledger: &Ledger,
    data_dir: &Path,
    tenant: &TenantHelios,
    check: Check,
) -> Result<Written, HeliosError> {
    let helios_dir = data_dir.join(tenant.id.as_str()).join("helios");
    let state = tenant_state(&helios_dir);
    if check == Check::IfPending && !state.maybe_pending.load(Ordering::SeqCst) {
        return Ok(Written::default());
    }
    let _held = state.lock.lock().await;
    // Set before reading: a plan committed from now on is seen by this pass or flagged by
    // the call that planned it (which checks the ledger itself).
    state.maybe_pending.store(false, Ordering::SeqCst);
    let result = write_all(ledger, data_dir, &helios_dir, tenant).await;
    if result.is_err() {
        state.maybe_pending.store(true, Ordering::SeqCst);
    }
    result
}

async fn write_all(
    ledger: &Ledger,
    data_dir: &Path,
    helios_dir: &Path,
    tenant: &TenantHelios,
) -> Result<Written, HeliosError> {
    let id = tenant.id.to_string();
    let (files, reports) = read_tx(ledger, move |tx| {
        let files = store::unwritten_files(tx, &id)?;
        let reports = store::unwritten_reports(tx, &id)?;
        Ok((files, reports))
    })
    .await?;
    let mut written = Written::default();
    for file in files {
        let result = write_file(ledger, helios_dir, tenant, &file).await;
        if let Err(e) = &result {
            metrics::emission_failed(tenant.id.as_str(), e.kind());
        }
        result?;
        written.files.push(file.file_name);
    }
    for report in reports {
        let path = data_dir.join(&report.path);
        ledger
            .emit_file(
                tenant.id.as_str(),
                "helios_report",
                &path,
                report.bytes,
                STAGE,
            )
            .await?;
        let report_id = report.id;
        write_tx(ledger, move |tx| store::mark_report_written(tx, report_id)).await?;
        tracing::warn!(tenant = %tenant.id, report = %path.display(), "Report of refused invoices written.");
        written.reports.push(report.path);
    }
    let id = tenant.id.to_string();
    let (pending, last) = read_tx(ledger, move |tx| {
        let pending = store::unwritten_count(tx, &id)?;
        let last = store::last_written_at(tx, &id)?;
        Ok((pending, last))
    })
    .await?;
    metrics::unwritten(tenant.id.as_str(), pending);
    if let Some(at) = last {
        metrics::last_emission(tenant.id.as_str(), &at);
    }
    Ok(written)
}

/// Titres read from the ledger at a time while rendering.
pub const CHUNK: usize = 1000;

/// The transaction the writer's passes share, one chunk read at a time.
type SharedTx<'r, 't> = RefCell<&'r mut Tx<'t>>;

/// The titres of one bordereau of a planned file, read from the ledger on demand: the
/// writer iterates them (three times; it needs a `Clone` iterable) without the run in
/// memory. A ledger or decoding failure ends the iteration and is kept in `failure`.
struct LedgerTitres<'a, 'r, 't> {
    tx: &'a SharedTx<'r, 't>,
    file: &'a FileRow,
    id_bord: u32,
    failure: &'a RefCell<Option<HeliosError>>,
}

impl Clone for LedgerTitres<'_, '_, '_> {
    fn clone(&self) -> Self {
        *self
    }
}

impl Copy for LedgerTitres<'_, '_, '_> {}

impl<'a, 'r, 't> IntoIterator for LedgerTitres<'a, 'r, 't> {
    type Item = OwnedTitre;
    type IntoIter = TitreChunks<'a, 'r, 't>;

    fn into_iter(self) -> TitreChunks<'a, 'r, 't> {
        TitreChunks {
            source: self,
            after: -1,
            buffer: VecDeque::new(),
            done: false,
        }
    }
}

/// One pass over a bordereau's titres, [`CHUNK`] at a time.
struct TitreChunks<'a, 'r, 't> {
    source: LedgerTitres<'a, 'r, 't>,
    /// Position of the last titre read.
    after: i64,
    buffer: VecDeque<OwnedTitre>,
    done: bool,
}

impl TitreChunks<'_, '_, '_> {
    fn fetch(&mut self) -> Result<(), HeliosError> {
        let LedgerTitres {
            tx, file, id_bord, ..
        } = self.source;
        let mut tx = tx.try_borrow_mut().map_err(|_| {
            HeliosError::Corrupt("the PES writer read two bordereaux at once".into())
        })?;
        let rows = store::titres_to_render(&mut tx, file, STAGE, id_bord, self.after, CHUNK)?;
        self.done = rows.len() < CHUNK;
        for row in rows {
            let payload = row.payload.ok_or_else(|| {
                HeliosError::Corrupt(format!(
                    "invoice {} of planned file {} is not in its billing run",
                    row.invoice_key, file.file_name
                ))
            })?;
            let invoice = encaisse_schemas::decode(&payload).map_err(|e| {
                HeliosError::Corrupt(format!("batch item {}: {e}", row.invoice_key))
            })?;
            self.after = i64::from(row.position);
            self.buffer.push_back(OwnedTitre {
                invoice,
                id_pce: row.id_pce,
                sequence: row.sequence,
                asap_pdf: None,
            });
        }
        Ok(())
    }
}

impl Iterator for TitreChunks<'_, '_, '_> {
    type Item = OwnedTitre;

    fn next(&mut self) -> Option<OwnedTitre> {
        if self.buffer.is_empty()
            && !self.done
            && let Err(e) = self.fetch()
        {
            self.done = true;
            self.buffer.clear();
            if let Ok(mut failure) = self.source.failure.try_borrow_mut() {
                failure.get_or_insert(e);
            }
        }
        self.buffer.pop_front()
    }
}

/// Renders a planned file from the ledger, streamed to its temporary name next to `path`,
/// on one blocking thread; checks it is the file that was planned.
async fn render(
    ledger: &Ledger,
    tenant: &TenantHelios,
    file: &FileRow,
    path: &Path,
) -> Result<StagedFile, HeliosError> {
    let (tenant, file, path) = (tenant.clone(), file.clone(), path.to_path_buf());
    read_tx(ledger, move |tx| {
        let (staged, summary) = stage_file(&path, |out| render_into(tx, &tenant, &file, out))?;
        check_rendered(&file, &summary)?;
        Ok(staged)
    })
    .await
}

fn render_into(
    tx: &mut Tx<'_>,
    tenant: &TenantHelios,
    file: &FileRow,
    out: &mut dyn std::io::Write,
) -> Result<WriteSummary, HeliosError> {
    let budget = tenant.budget(&file.budget).ok_or_else(|| {
        HeliosError::Setup(format!(
            "budget {:?} of planned file {} is no longer configured",
            file.budget, file.file_name
        ))
    })?;
    if (budget.cod_col.as_str(), budget.cod_bud.as_str())
        != (file.cod_col.as_str(), file.cod_bud.as_str())
    {
        return Err(HeliosError::Setup(format!(
            "budget {:?} changed its CodCol/CodBud since file {} was planned",
            file.budget, file.file_name
        )));
    }
    if file.typ_bord == TYP_BORD_REDUCTION {
        return render_reductions(tx, tenant, budget, file, out);
    }
    let failure = RefCell::new(None);
    store::refresh_statistics(tx)?;
    let ids = store::bordereaux_of_file(tx, file.id)?;
    let shared = RefCell::new(tx);
    let split: Vec<(Bordereau<'_>, LedgerTitres<'_, '_, '_>)> = ids
        .into_iter()
        .map(|id_bord| {
            (
                Bordereau {
                    config: &tenant.config,
                    budget,
                    exercice: file.exercice,
                    id_bord,
                    date: file.date,
                },
                LedgerTitres {
                    tx: &shared,
                    file,
                    id_bord,
                    failure: &failure,
                },
            )
        })
        .collect();
    let written = write_pes_aller_split(out, &split);
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    Ok(written?.1)
}

/// A file of réduction titres (one bordereau of type 02): small, rendered in memory.
fn render_reductions(
    tx: &mut Tx<'_>,
    tenant: &TenantHelios,
    budget: &encaisse_schemas::tenant::Budget,
    file: &FileRow,
    out: &mut dyn std::io::Write,
) -> Result<WriteSummary, HeliosError> {
    let mut summary = None;
    for id_bord in store::bordereaux_of_file(tx, file.id)? {
        let rows = reduction_store::reductions_to_render(tx, file, id_bord)?;
        let titres: Vec<ReductionTitre<'_>> = rows
            .iter()
            .map(|r| ReductionTitre {
                credit_note: &r.note.note,
                id_pce: r.id_pce,
                original_id_pce: r.origin_id_pce,
                original_number: &r.note.origin.number,
                lines: &r.lines,
            })
            .collect();
        let bordereau = Bordereau {
            config: &tenant.config,
            budget,
            exercice: file.exercice,
            id_bord,
            date: file.date,
        };
        let pes = pes_reduction_bytes(&bordereau, &titres)?;
        out.write_all(&pes.bytes).map_err(WriteError::Io)?;
        summary = Some(pes.summary);
    }
    summary.ok_or_else(|| {
        HeliosError::Corrupt(format!("planned file {} has no bordereau", file.file_name))
    })
}

/// The rendered file must be the planned one (name, pièces, total); otherwise the
/// configuration changed under the plan, or the plan is corrupt.
fn check_rendered(file: &FileRow, summary: &WriteSummary) -> Result<(), HeliosError> {
    if summary.file_name != file.file_name
        || summary.pieces != file.pieces as usize
        || summary.total.cents() != file.total_cents
    {
        return Err(HeliosError::Corrupt(format!(
            "planned file {} ({} pièces, {} cents) renders as {} ({} pièces, {}): the configuration changed since it was planned",
            file.file_name,
            file.pieces,
            file.total_cents,
            summary.file_name,
            summary.pieces,
            summary.total
        )));
    }
    Ok(())
}

async fn write_file(
    ledger: &Ledger,
    helios_dir: &Path,
    tenant: &TenantHelios,
    file: &FileRow,
) -> Result<(), HeliosError> {
    let path = helios_dir.join("outbox").join(&file.file_name);
    let staged = render(ledger, tenant, file, &path).await?;
    let (sha, size) = (staged.sha256.clone(), staged.bytes);
    ledger
        .emit_staged(
            tenant.id.as_str(),
            "pes_aller",
            staged,
            &format!("{STAGE} run {}", file.run_id),
        )
        .await?;
    let written_file = file.clone();
    let newly = write_tx(ledger, move |tx| {
        if !store::mark_file_written(tx, written_file.id, &sha)? {
            return Ok(false);
        }
        store::record_emitted_facts(tx, &written_file, STAGE, &ledger_now())?;
        Ok(true)
    })
    .await?;
    if newly {
        metrics::emitted(
            tenant.id.as_str(),
            u64::from(file.bordereaux),
            u64::from(file.pieces),
        );
        tracing::info!(
            tenant = %tenant.id,
            file = %file.file_name,
            run = %file.run_id,
            budget = %file.budget,
            exercice = file.exercice,
            bordereaux = file.bordereaux,
            titres = file.pieces,
            bytes = size,
            "PES Aller file written to the outbox."
        );
    }
    Ok(())
}
