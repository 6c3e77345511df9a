//! `encaisse preview --tenant T [--source S] [--json] FILE`: what the daemon would do with an
//! export, without the broker and without writing anything — the invoices it would publish
//! (per budget and collection path), the rejection report with hints, the duplicates.
//!
//! The file is read by `polyfac.ingest`'s own code (`encaisse_pipelines::stages::polyfac::
//! preview`); the ledger's decisions run on an in-memory copy of the tenant's rows of the
//! existing ledger, opened read-only (or on an empty one when there is none yet).
//!
//! Exit codes: 0 every invoice would be published; 65 some would be rejected, or the file
//! whole; 66 no such file; 74 the file or the ledger cannot be read; 78 the configuration
//! is unusable; 2 an unknown tenant or source.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use encaisse_ledger::sandbox::sandbox;
use encaisse_pipelines::stages::polyfac::paris_today;
use encaisse_pipelines::stages::polyfac::preview::{
    LEDGER_TABLES, Preview, PreviewError, PreviewOutcome, PreviewTenant, preview_file,
};

use super::dlq_table::{Table, write_json};
use crate::config::{self, Config, TenantConfig};
use crate::{exit, wiring};

/// `encaisse preview …`
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The tenant whose inbox the file would be dropped in.
    #[arg(long)]
    pub tenant: String,
    /// The source the file comes from (a `[sources.<name>]` key); default: the tenant's.
    #[arg(long)]
    pub source: Option<String>,
    /// Print one JSON document (invoices, rejects, duplicates, counts) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The export file.
    pub file: PathBuf,
}

/// Runs `encaisse preview`; returns the exit code.
pub async fn run(
    config_path: &Path,
    args: &PreviewArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let loaded = match super::check::load_or_report(config_path, err) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let config = loaded.config;
    let report = config::check::check_settings(&config, &config::check::env_value);
    if !report.is_ok() {
        for issue in &report.issues {
            let _ = writeln!(err, "{issue}");
        }
        let _ = writeln!(
            err,
            "{}: configuration is not usable (encaisse check)",
            config_path.display()
        );
        return exit::CONFIG;
    }
    let Some(tenant) = config.tenant(&args.tenant) else {
        let _ = writeln!(err, "encaisse preview: unknown tenant {:?}", args.tenant);
        return exit::USAGE;
    };
    let source = args.source.clone().unwrap_or_else(|| tenant.source.clone());
    if source != config::DEFAULT_SOURCE && !config.sources.contains_key(&source) {
        let _ = writeln!(err, "encaisse preview: unknown source {source:?}");
        return exit::USAGE;
    }
    match std::fs::metadata(&args.file) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            let _ = writeln!(err, "{}: not a file", args.file.display());
            return exit::IO_ERROR;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = writeln!(err, "{}: no such file", args.file.display());
            return exit::NOT_FOUND;
        }
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", args.file.display());
            return exit::IO_ERROR;
        }
    }
    let outcome = {
        let (config, tenant, source, file) = (
            config.clone(),
            tenant.clone(),
            source.clone(),
            args.file.clone(),
        );
        tokio::task::spawn_blocking(move || preview(&config, &tenant, &source, &file)).await
    };
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(Failure::Config(message))) => {
            let _ = writeln!(err, "encaisse preview: {message}");
            return exit::CONFIG;
        }
        Ok(Err(Failure::Read(e))) => {
            let _ = writeln!(err, "encaisse preview: {e}");
            return exit::IO_ERROR;
        }
        Err(e) => {
            let _ = writeln!(err, "encaisse preview: {e}");
            return exit::FAILURE;
        }
    };
    let code = match &outcome {
        PreviewOutcome::Read(p) if p.rejects.is_empty() => exit::OK,
        _ => exit::DATA_ERROR,
    };
    let written = if args.json {
        write_json(out, &outcome)
    } else {
        write_human(out, &outcome)
    };
    if let Err(e) = written {
        let _ = writeln!(err, "encaisse preview: cannot write the result: {e}");
        return exit::IO_ERROR;
    }
    code
}

enum Failure {
    Config(String),
    Read(PreviewError),
}

/// Builds the tenant as the daemon would and previews `file` on a sandbox of its ledger.
fn preview(
    config: &Config,
    tenant: &TenantConfig,
    source: &str,
    file: &Path,
) -> Result<PreviewOutcome, Failure> {
    let polyfac = wiring::polyfac_tenant(config, tenant, source).map_err(Failure::Config)?;
    let helios = wiring::tenant_helios(tenant);
    let sepa = wiring::tenant_sepa(tenant);
    let ledger_path = config
        .ledger_file()
        .map_err(|message| Failure::Config(format!("ledger.url: {message}")))?;
    let existing = ledger_path.is_file().then_some(ledger_path.as_path());
    let ledger = sandbox(existing, tenant.id.as_str(), LEDGER_TABLES)
        .map_err(|e| Failure::Read(PreviewError::Ledger(e)))?;
    let setup = PreviewTenant {
        polyfac: &polyfac,
        helios: helios.as_ref(),
        sepa: sepa.as_ref(),
        today: paris_today(),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    preview_file(file, &name, &setup, &ledger).map_err(Failure::Read)
}

fn write_human(out: &mut dyn Write, outcome: &PreviewOutcome) -> std::io::Result<()> {
    match outcome {
        PreviewOutcome::Unreadable {
            file,
            reason,
            hints,
            ..
        } => {
            writeln!(
                out,
                "{file}: the whole file would be rejected (polyfac/rejected): {reason}"
            )?;
            for hint in hints {
                writeln!(out, "hint: {hint}")?;
            }
            Ok(())
        }
        PreviewOutcome::Read(preview) => write_preview(out, preview),
    }
}

fn write_preview(out: &mut dyn Write, p: &Preview) -> std::io::Result<()> {
    let s = &p.summary;
    writeln!(
        out,
        "{} for tenant {} (source {}), run {}: {} lines, encoding {}",
        p.file,
        p.tenant,
        p.source,
        p.run_id,
        s.lines,
        s.encoding.label()
    )?;
    writeln!(
        out,
        "would publish {} invoice(s); rejected {}; duplicates {} (already issued, not published again)",
        p.invoices.len(),
        p.rejected_invoices(),
        p.duplicates.len()
    )?;
    if !p.groups.is_empty() {
        writeln!(out, "\nPer budget and collection path")?;
        let mut table = Table::new(vec!["BUDGET", "PATH", "INVOICES", "TOTAL"]);
        for g in &p.groups {
            table.row(vec![
                g.budget.clone(),
                g.collection.to_string(),
                g.invoices.to_string(),
                g.total.to_dot_string(),
            ]);
        }
        table.write(out)?;
    }
    if !p.invoices.is_empty() {
        writeln!(out, "\nInvoices")?;
        let mut table = Table::new(vec![
            "NUMBER", "LINES", "ACTIVITY", "BUDGET", "PATH", "MODE", "SEQ", "TOTAL",
        ]);
        for i in &p.invoices {
            table.row(vec![
                i.number.clone(),
                format!("{}–{}", i.lines.0, i.lines.1),
                i.activity.clone(),
                i.budget.clone(),
                i.collection.to_string(),
                format!("{:?}", i.payment_mode).to_uppercase(),
                i.sequence
                    .map_or("-".to_string(), |s| format!("{s:?}").to_uppercase()),
                i.total.to_dot_string(),
            ]);
        }
        table.write(out)?;
    }
    if !p.credit_notes.is_empty() {
        writeln!(
            out,
            "\nCredit notes (each reduces its original, decided when it is sent)"
        )?;
        let mut table = Table::new(vec!["NUMBER", "LINES", "REDUCES", "CREDITED"]);
        for c in &p.credit_notes {
            table.row(vec![
                c.number.clone(),
                format!("{}–{}", c.lines.0, c.lines.1),
                format!("{}/{}", c.origin_exercice, c.origin),
                c.credited.to_dot_string(),
            ]);
        }
        table.write(out)?;
    }
    if !p.rejects.is_empty() {
        writeln!(out, "\nRejected")?;
        let mut table = Table::new(vec![
            "LINE", "NUMBER", "COLUMN", "FIELD", "RULE", "BY", "MESSAGE",
        ])
        .with_max_width(160);
        for r in &p.rejects {
            table.row(vec![
                r.line.to_string(),
                r.number.clone(),
                r.column.clone(),
                r.field.clone(),
                r.rule.clone(),
                r.stage.to_string(),
                r.message.clone(),
            ]);
        }
        table.write(out)?;
    }
    if !p.duplicates.is_empty() {
        writeln!(out, "\nDuplicates")?;
        let mut table = Table::new(vec!["LINES", "NUMBER", "WHY"]).with_max_width(160);
        for d in &p.duplicates {
            table.row(vec![
                format!("{}–{}", d.lines.0, d.lines.1),
                d.number.clone(),
                d.message.clone(),
            ]);
        }
        table.write(out)?;
    }
    for warning in &p.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    Ok(())
}
