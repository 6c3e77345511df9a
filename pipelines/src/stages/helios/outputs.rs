//! Writing what was planned: each planned PES Aller file is rendered again from the ledger
//! (numbers, date, order, invoices) — the same bytes every time — emitted atomically to
//! `<tenant>/helios/outbox` (`Ledger::emit_file`), then marked written with a journal fact
//! per invoice, in one transaction. Reports wait the same way.
//!
//! Called at every handler call of `helios.titres` (reading the ledger only when this
//! process may have left something unwritten, and always after planning) and by the
//! `helios.titres.flush` source (always): a crash anywhere between planning and marking
//! leaves a plan that the next call writes — never a second bordereau, never a gap.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use encaisse_helios::aller::{Bordereau, OwnedTitre, PesFile, write_pes_aller_split};
use encaisse_ledger::Ledger;
use encaisse_ledger::batch::{BatchKey, items};
use encaisse_ledger::files::sha256_hex;
use encaisse_ledger::journal::InvoiceFact;
use encaisse_schemas::events::InvoiceIssued;

use super::error::{HeliosError, read_tx, write_tx};
use super::metrics;
use super::plan::{STAGE, decode_item};
use super::settings::TenantHelios;
use super::store::{self, FileRow, TitreRow, ledger_now};

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
}

/// Process-wide, so the stage and the flush source share it.
fn tenant_state(dir: &Path) -> Arc<TenantState> {
    static STATES: OnceLock<Mutex<HashMap<PathBuf, Arc<TenantState>>>> = OnceLock::new();
    let states = STATES.get_or_init(Mutex::default);
    let fresh = || {
        Arc::new(TenantState {
            lock: tokio::sync::Mutex::new(()),
            maybe_pending: AtomicBool::new(true),
        })
    };
    match states.lock() {
        Ok(mut map) => map.entry(dir.to_path_buf()).or_insert_with(fresh).clone(),
        // A poisoned map only means another task panicked while holding it.
        Err(_) => fresh(),
    }
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
    let (files, reports) = read_tx(ledger, move |c| {
        let files = store::unwritten_files(c, &id)?;
        let reports = store::unwritten_reports(c, &id)?;
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
        write_tx(ledger, move |c| store::mark_report_written(c, report_id)).await?;
        tracing::warn!(tenant = %tenant.id, report = %path.display(), "Report of refused invoices written.");
        written.reports.push(report.path);
    }
    let id = tenant.id.to_string();
    let (pending, last) = read_tx(ledger, move |c| {
        let pending = store::unwritten_count(c, &id)?;
        let last = store::last_written_at(c, &id)?;
        Ok((pending, last))
    })
    .await?;
    metrics::unwritten(tenant.id.as_str(), pending);
    if let Some(at) = last {
        metrics::last_emission(tenant.id.as_str(), &at);
    }
    Ok(written)
}

/// Bytes reserved per titre for the rendered file (a titre with an ASAP PES Facture takes
/// about 3 KB, without about 1 KB).
const RESERVED_BYTES_PER_TITRE: usize = 4096;

/// What rendering a planned file needs from the ledger.
struct Loaded {
    bordereaux: Vec<(u32, Vec<TitreRow>)>,
    invoices: HashMap<String, InvoiceIssued>,
}

/// Reads a planned file's titres and invoices and renders it, on one blocking thread (a
/// large run's invoices are decoded and written by the same thread, so its memory is
/// reused rather than held by two).
async fn load_and_render(
    ledger: &Ledger,
    tenant: &TenantHelios,
    file: &FileRow,
) -> Result<(PesFile, Vec<TitreRow>), HeliosError> {
    let (tenant, file) = (tenant.clone(), file.clone());
    read_tx(ledger, move |c| {
        let loaded = load(c, &file)?;
        let titres: Vec<TitreRow> = loaded
            .bordereaux
            .iter()
            .flat_map(|(_, t)| t.iter().cloned())
            .collect();
        let rendered = render_blocking(&tenant, &file, loaded)?;
        Ok((rendered, titres))
    })
    .await
}

fn load(c: &encaisse_ledger::rusqlite::Connection, file: &FileRow) -> Result<Loaded, HeliosError> {
    let bordereaux = store::file_titres(c, file)?;
    let wanted: HashSet<&str> = bordereaux
        .iter()
        .flat_map(|(_, titres)| titres.iter().map(|t| t.invoice_key.as_str()))
        .collect();
    let key = BatchKey {
        stage: STAGE.to_string(),
        tenant: file.tenant.clone(),
        run_id: file.run_id.clone(),
        group: file.batch_group.clone(),
    };
    let mut invoices = HashMap::with_capacity(wanted.len());
    // Consumed while decoding: the payloads are freed as the invoices are made.
    for item in items(c, &key)? {
        if wanted.contains(item.item_key.as_str()) {
            let invoice = decode_item(&item)?;
            invoices.insert(item.item_key, invoice);
        }
    }
    drop(wanted);
    Ok(Loaded {
        bordereaux,
        invoices,
    })
}

fn render_blocking(
    tenant: &TenantHelios,
    file: &FileRow,
    mut loaded: Loaded,
) -> Result<PesFile, HeliosError> {
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
    let mut groups: Vec<(u32, Vec<OwnedTitre>)> = Vec::with_capacity(loaded.bordereaux.len());
    for (id_bord, titres) in &loaded.bordereaux {
        let mut owned = Vec::with_capacity(titres.len());
        for t in titres {
            let invoice = loaded.invoices.remove(&t.invoice_key).ok_or_else(|| {
                HeliosError::Corrupt(format!(
                    "invoice {} of planned file {} is not in its billing run",
                    t.invoice_key, file.file_name
                ))
            })?;
            owned.push(OwnedTitre {
                invoice,
                id_pce: t.id_pce,
                sequence: t.sequence,
                asap_pdf: None,
            });
        }
        groups.push((*id_bord, owned));
    }
    let split: Vec<(Bordereau<'_>, &[OwnedTitre])> = groups
        .iter()
        .map(|(id_bord, titres)| {
            (
                Bordereau {
                    config: &tenant.config,
                    budget,
                    exercice: file.exercice,
                    id_bord: *id_bord,
                    date: file.date,
                },
                titres.as_slice(),
            )
        })
        .collect();
    // Reserved generously: untouched pages cost no memory, and the buffer of a large file is
    // never copied while it grows.
    let reserve = (file.pieces as usize).saturating_mul(RESERVED_BYTES_PER_TITRE);
    let iterable: Vec<_> = split.iter().map(|(b, t)| (*b, t.iter())).collect();
    let (bytes, summary) = write_pes_aller_split(Vec::with_capacity(reserve), &iterable)?;
    let rendered = PesFile { summary, bytes };
    let summary = &rendered.summary;
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
    Ok(rendered)
}

async fn write_file(
    ledger: &Ledger,
    helios_dir: &Path,
    tenant: &TenantHelios,
    file: &FileRow,
) -> Result<(), HeliosError> {
    let (rendered, titres) = load_and_render(ledger, tenant, file).await?;
    let path = helios_dir.join("outbox").join(&file.file_name);
    let sha = sha256_hex(&rendered.bytes);
    let size = rendered.bytes.len();
    ledger
        .emit_file(
            tenant.id.as_str(),
            "pes_aller",
            &path,
            rendered.bytes,
            &format!("{STAGE} run {}", file.run_id),
        )
        .await?;
    let (file_id, file_name, tenant_id) = (file.id, file.file_name.clone(), tenant.id.to_string());
    let newly = write_tx(ledger, move |c| {
        if !store::mark_file_written(c, file_id, &sha)? {
            return Ok(false);
        }
        let at = ledger_now();
        for t in &titres {
            Ledger::record_invoice_fact_in(
                c,
                &InvoiceFact {
                    invoice_key: t.invoice_key.clone(),
                    tenant: tenant_id.clone(),
                    at: at.clone(),
                    kind: "titre_emitted".into(),
                    detail: serde_json::json!({
                        "stage": STAGE,
                        "file": file_name,
                        "budget": t.budget,
                        "exercice": t.exercice,
                        "bordereau_type": t.typ_bord,
                        "id_bord": t.id_bord,
                        "id_pce": t.id_pce,
                    })
                    .to_string(),
                    dedupe_key: Some(format!("{STAGE}:emitted:{}", t.invoice_key)),
                },
            )?;
        }
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
