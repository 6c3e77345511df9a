//! The runs' input: a generated Polyfac export of exactly N invoices
//! (`encaisse_polyfac::generate`), and the same export read back with the adapter, outside
//! the daemon, to know what the daemon should have made of it.

use std::fs::File;
use std::io::BufWriter;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Datelike;
use encaisse_polyfac::generate::{ExportSpec, GeneratedExport, write_export};
use encaisse_polyfac::{
    ExportItem, ExportReader, ReadOptions, RunContext, SourceMapping, TenantCatalogue, enrich,
    prescan,
};
use encaisse_schemas::{InvoiceIssued, SequenceType, TenantId};

use super::error::{BenchError, Result};
use crate::config::Config;

/// A generated export file.
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    pub path: PathBuf,
    /// File name, as the inbox will see it.
    pub name: String,
    pub tally: GeneratedExport,
    pub bytes: u64,
}

impl GeneratedFile {
    /// Renames the export into the tenant's `polyfac/inbox` (an atomic rename: the watcher
    /// never sees half a file).
    pub fn drop_into(&self, config: &Config, tenant: &str) -> Result<PathBuf> {
        let target = config
            .data_dir
            .join(tenant)
            .join("polyfac")
            .join("inbox")
            .join(&self.name);
        std::fs::rename(&self.path, &target)
            .map_err(|e| BenchError::io(format!("moving the export to {}", target.display()), e))?;
        Ok(target)
    }

    /// Where `polyfac.ingest` archives it once read.
    pub fn archived(&self, config: &Config, tenant: &str) -> PathBuf {
        config
            .data_dir
            .join(tenant)
            .join("polyfac")
            .join("archive")
            .join(&self.name)
    }
}

/// Today in Europe/Paris (the daemon's calendar).
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive()
}

/// What to generate: `invoices` whole invoices billed in December of the current year, so
/// that every direct debit falls due after today (Hélios refuses a debit date already past)
/// and the bordereau of today belongs to the invoices' exercice.
pub fn spec(invoices: u64) -> ExportSpec {
    let mut spec = ExportSpec::with_invoices(invoices);
    spec.exercice = u16::try_from(today().year()).unwrap_or(spec.exercice);
    spec.period = 12;
    spec
}

/// Writes an export of `invoices` invoices to `dir/name`.
pub fn generate(dir: &Path, name: &str, invoices: u64) -> Result<GeneratedFile> {
    let path = dir.join(name);
    let file = File::create(&path).map_err(|e| BenchError::io(path.display().to_string(), e))?;
    let tally = write_export(&spec(invoices), BufWriter::with_capacity(1 << 20, file))
        .map_err(|e| BenchError::io(path.display().to_string(), e))?;
    Ok(GeneratedFile {
        bytes: super::procstat::file_size(&path),
        path,
        name: name.to_string(),
        tally,
    })
}

/// A configured tenant and its `[tenants.helios]` section.
pub fn helios_tenant<'a>(
    config: &'a Config,
    tenant: &str,
) -> Result<(
    &'a crate::config::TenantConfig,
    &'a encaisse_helios::config::HeliosTenantConfig,
)> {
    let t = config
        .tenant(tenant)
        .ok_or_else(|| BenchError::Setup(format!("no tenant {tenant} in the configuration")))?;
    let helios = t
        .helios
        .as_ref()
        .ok_or_else(|| BenchError::Setup(format!("tenant {tenant} has no [tenants.helios]")))?;
    Ok((t, helios))
}

/// The catalogue and source mapping of a configured tenant, as `polyfac.ingest` builds them.
pub fn catalogue(config: &Config, tenant: &str) -> Result<(Arc<TenantCatalogue>, SourceMapping)> {
    let t = config
        .tenant(tenant)
        .ok_or_else(|| BenchError::Setup(format!("no tenant {tenant} in the configuration")))?;
    let catalogue = TenantCatalogue::new(
        t.id.clone(),
        t.budgets.clone(),
        t.activities.clone(),
        t.products.clone(),
        t.regies.clone(),
    )
    .map_err(|issues| BenchError::Setup(format!("catalogue: {issues:?}")))?;
    let mapping = match config.sources.get(&t.source) {
        Some(mapping) => mapping.clone(),
        None => SourceMapping::polyfac_default(),
    };
    Ok((Arc::new(catalogue), mapping))
}

/// What reading an export back found.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadTally {
    pub valid: u64,
    pub rejected: u64,
}

/// Reads `file` as `polyfac.ingest` does (same mapping, catalogue, run id) and hands each
/// valid invoice, enriched into `invoice.issued`, to `each` until it breaks. Direct debits
/// without a sequence get `RCUR` (the daemon asks its mandate history; the writer only needs
/// one).
pub fn read_invoices(
    file: &Path,
    config: &Config,
    tenant: &str,
    mut each: impl FnMut(InvoiceIssued) -> ControlFlow<()>,
) -> Result<ReadTally> {
    let (catalogue, mapping) = catalogue(config, tenant)?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BenchError::Setup(format!("{}: no file name", file.display())))?
        .to_string();
    let open = || File::open(file).map_err(|e| BenchError::io(file.display().to_string(), e));
    let scan = prescan(std::io::BufReader::new(open()?), &mapping, &name)
        .map_err(|e| BenchError::Setup(format!("{name}: {e}")))?;
    let tenant_id =
        TenantId::new(tenant).map_err(|e| BenchError::Setup(format!("tenant {tenant}: {e}")))?;
    let ctx = RunContext::for_file(tenant_id, "polyfac", &name, &scan.file_sha256);
    let options = ReadOptions {
        file_name: name.clone(),
        today: today(),
        prescan: Some(scan),
    };
    let mut tally = ReadTally::default();
    let reader = ExportReader::new(
        std::io::BufReader::new(open()?),
        &mapping,
        catalogue,
        options,
    );
    for item in reader {
        match item.map_err(|e| BenchError::Setup(format!("{name}: {e}")))? {
            ExportItem::Valid(invoice) => {
                tally.valid += 1;
                let event = enrich(&invoice, &ctx, |_rum| {
                    Ok::<_, std::convert::Infallible>(SequenceType::Rcur)
                })
                .map_err(|e| -> BenchError { match e {} })?;
                if each(event).is_break() {
                    break;
                }
            }
            ExportItem::Invalid(_) => tally.rejected += 1,
            ExportItem::Summary(_) => break,
        }
    }
    Ok(tally)
}
