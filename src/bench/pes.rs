//! PES Aller writing alone: the run's own invoices (the export read back with the Polyfac
//! adapter, checked by Hélios's rules), numbered and held in memory, then written by the
//! adapter's writer (`encaisse_helios::aller::write_pes_aller_split`) into one file per
//! budget, split into bordereaux of at most 99 999 pièces, as `helios.titres` would. Only
//! the writing is timed: three passes over the titres, the XML, the ASAP PES Facture of TIP
//! invoices (a PES document gzipped and base64-encoded into a PJ), a buffered file without
//! fsync. The same titres without the TIP ones are written again, to show the ASAP's cost.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use encaisse_helios::aller::{Bordereau, MAX_PIECES, OwnedTitre, Titre, titre_shape};
use encaisse_helios::config::HeliosTenantConfig;
use encaisse_schemas::tenant::Budget;
use encaisse_schemas::{PaymentMode, SequenceType};

use super::error::{BenchError, Result};
use super::export;
use crate::config::Config;

/// What PES writing alone measured.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PesResult {
    pub titres: u64,
    /// Of which TIP titres carrying an ASAP PES Facture (gzip + base64 PJ).
    pub asap_titres: u64,
    pub files: u64,
    pub bordereaux: u64,
    pub bytes: u64,
    pub secs: f64,
    pub titres_per_s: f64,
    /// The same titres without the TIP ones (no ASAP).
    pub titres_without_asap: u64,
    pub titres_per_s_without_asap: f64,
}

/// One timed writing pass.
#[derive(Debug, Default)]
struct Pass {
    titres: u64,
    attachments: u64,
    files: u64,
    bordereaux: u64,
    bytes: u64,
    secs: f64,
}

/// The titres of one budget.
struct BudgetTitres<'a> {
    budget: &'a Budget,
    titres: Vec<OwnedTitre>,
}

/// Reads up to `max_titres` titres from `export_file` and writes them to `out_dir` (the
/// files are removed once measured).
pub fn run(
    export_file: &Path,
    config: &Config,
    tenant: &str,
    max_titres: u64,
    out_dir: &Path,
) -> Result<PesResult> {
    let (t, helios) = export::helios_tenant(config, tenant)?;
    let date = export::today();
    let mut by_budget: BTreeMap<String, BudgetTitres<'_>> = BTreeMap::new();
    let mut taken = 0u64;
    let mut exercice = None;
    export::read_invoices(export_file, config, tenant, |invoice| {
        let Some(budget) = t.budgets.iter().find(|b| b.code == invoice.budget) else {
            return ControlFlow::Continue(());
        };
        let group = by_budget
            .entry(budget.code.clone())
            .or_insert_with(|| BudgetTitres {
                budget,
                titres: Vec::new(),
            });
        let id_pce = u32::try_from(group.titres.len() + 1).unwrap_or(u32::MAX);
        let bordereau = Bordereau {
            config: helios,
            budget,
            exercice: invoice.invoice.exercice,
            id_bord: 1 + u32::try_from(group.titres.len() / MAX_PIECES).unwrap_or(0),
            date,
        };
        let sequence =
            (invoice.payment_mode == PaymentMode::Prelevement).then_some(SequenceType::Rcur);
        let titre = Titre {
            invoice: &invoice,
            id_pce,
            sequence,
            asap_pdf: None,
        };
        // Invoices Hélios refuses (a postal code of 4 digits, say) are not written, as in the
        // daemon.
        if titre_shape(&bordereau, &titre).is_err() {
            return ControlFlow::Continue(());
        }
        exercice.get_or_insert(invoice.invoice.exercice);
        group.titres.push(OwnedTitre {
            invoice,
            id_pce,
            sequence,
            asap_pdf: None,
        });
        taken += 1;
        if taken >= max_titres {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    let exercice = exercice.ok_or_else(|| BenchError::Setup("no titre to write".into()))?;
    let all = write_pass(&by_budget, helios, exercice, date, out_dir, |_| true)?;
    let without_asap = write_pass(&by_budget, helios, exercice, date, out_dir, |t| {
        t.invoice.payment_mode != PaymentMode::Tip
    })?;
    Ok(PesResult {
        titres: all.titres,
        asap_titres: all.attachments,
        files: all.files,
        bordereaux: all.bordereaux,
        bytes: all.bytes,
        secs: all.secs,
        titres_per_s: all.titres as f64 / all.secs.max(1e-9),
        titres_without_asap: without_asap.titres,
        titres_per_s_without_asap: without_asap.titres as f64 / without_asap.secs.max(1e-9),
    })
}

/// Writes the titres `keep` selects, one file per budget, and times the writing.
fn write_pass(
    by_budget: &BTreeMap<String, BudgetTitres<'_>>,
    helios: &HeliosTenantConfig,
    exercice: u16,
    date: chrono::NaiveDate,
    out_dir: &Path,
    keep: impl Fn(&OwnedTitre) -> bool,
) -> Result<Pass> {
    let mut pass = Pass::default();
    for (code, group) in by_budget {
        let titres: Vec<&OwnedTitre> = group.titres.iter().filter(|t| keep(t)).collect();
        let split: Vec<(Bordereau<'_>, std::slice::Iter<'_, &OwnedTitre>)> = titres
            .chunks(MAX_PIECES)
            .enumerate()
            .map(|(i, chunk)| {
                (
                    Bordereau {
                        config: helios,
                        budget: group.budget,
                        exercice,
                        id_bord: 1 + u32::try_from(i).unwrap_or(0),
                        date,
                    },
                    chunk.iter(),
                )
            })
            .collect();
        let path = out_dir.join(format!("pes-alone-{code}.xml"));
        let started = Instant::now();
        let file =
            File::create(&path).map_err(|e| BenchError::io(path.display().to_string(), e))?;
        let (out, summary) = encaisse_helios::aller::write_pes_aller_split(
            BufWriter::with_capacity(1 << 20, file),
            &split,
        )
        .map_err(|e| BenchError::Setup(format!("PES writing: {e}")))?;
        out.into_inner()
            .map_err(|e| BenchError::io(path.display().to_string(), e.into_error()))?;
        pass.secs += started.elapsed().as_secs_f64();
        pass.titres += summary.pieces as u64;
        pass.attachments += summary.attachments as u64;
        pass.files += 1;
        pass.bordereaux += summary.bordereaux.len() as u64;
        pass.bytes += super::procstat::file_size(&path);
        let _ = std::fs::remove_file(&path);
    }
    Ok(pass)
}
