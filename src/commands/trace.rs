//! `encaisse trace <invoice> [--tenant T] [--json]`: the life of an invoice from the ledger,
//! in time order — export file and lines, titre, files written, payments and rejects with
//! their references, messages handled, parked messages about it.
//!
//! Exit codes: 0 found; 2 the invoice is ambiguous (several tenants or exercices: give the
//! full key or `--tenant`); 66 unknown invoice; 74 ledger missing or unreadable; 78
//! configuration unusable.

use std::io::Write;
use std::path::Path;

use clap::Args;
use encaisse_pipelines::stages::ops::since::short_time;
use encaisse_pipelines::stages::ops::trace::{self, Trace, TraceError};

use super::dlq_table::{Table, codes, open, or_dash, write_json};

/// `encaisse trace …`
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The invoice: `tenant/exercice/number`, or `exercice/number` or `number` (with
    /// `--tenant` when several tenants could have it).
    pub invoice: String,
    /// The tenant, when the invoice is not given as a full key.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Print JSON for scripts instead of a timeline.
    #[arg(long)]
    pub json: bool,
}

/// Runs `encaisse trace`; returns the exit code.
pub async fn run(config: &Path, args: &TraceArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let (_, ledger) = match open(config, err) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let (given, tenant) = (args.invoice.clone(), args.tenant.clone());
    let result = ledger
        .read(move |c| {
            Ok(match trace::resolve(c, &given, tenant.as_deref()) {
                Ok(key) => trace::trace(c, &key).map_err(TraceError::from),
                Err(e) => Err(e),
            })
        })
        .await;
    let traced = match result {
        Ok(Ok(traced)) => traced,
        Ok(Err(e)) => {
            let code = match e {
                TraceError::NotFound(_) => codes::NOT_FOUND,
                TraceError::Ambiguous { .. } => codes::USAGE,
                TraceError::Ledger(_) => codes::IO_ERROR,
            };
            let _ = writeln!(err, "encaisse trace: {e}");
            return code;
        }
        Err(e) => {
            let _ = writeln!(err, "encaisse trace: ledger: {e}");
            return codes::IO_ERROR;
        }
    };
    if args.json {
        let _ = write_json(out, &traced);
    } else {
        let _ = write_timeline(out, &traced);
    }
    codes::OK
}

fn write_timeline(out: &mut dyn Write, t: &Trace) -> std::io::Result<()> {
    writeln!(out, "Invoice {} (tenant {})", t.invoice, t.tenant)?;
    let mut table = Table::new(vec!["AT (UTC)", "SOURCE", "STAGE", "WHAT"]).with_max_width(200);
    for step in &t.steps {
        table.row(vec![
            short_time(&step.at),
            step.source.to_string(),
            or_dash(step.stage.as_deref()),
            step.summary.clone(),
        ]);
    }
    if table.is_empty() {
        writeln!(out, "No fact recorded yet.")?;
    } else {
        table.write(out)?;
    }
    if !t.files.is_empty() {
        writeln!(out, "\nFiles")?;
        for f in &t.files {
            writeln!(
                out,
                "  {}  {}  {} bytes  sha256 {}",
                f.kind, f.path, f.bytes, f.sha256
            )?;
        }
    }
    let waiting = t
        .parked
        .iter()
        .filter(|p| p.state.as_str() == "parked")
        .count();
    if waiting > 0 {
        writeln!(
            out,
            "\n{waiting} message(s) about this invoice still parked: encaisse dlq show <ID>"
        )?;
    }
    Ok(())
}
