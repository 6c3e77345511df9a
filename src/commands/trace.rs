//! `encaisse trace <invoice> [--tenant T] [--json]`: the life of an invoice from the ledger,
//! in time order — export file and lines, titre, files written, payments and rejects with
//! their references, messages handled, parked messages about it.
//!
//! `encaisse trace --file NAME [--line N] [--tenant T] [--json]`: the invoices of an export
//! rejected at validation, by line — the only way to find those without invoice number or
//! readable exercice, which no journal can key.
//!
//! Exit codes: 0 found; 2 the invoice is ambiguous (several tenants or exercices: give the
//! full key or `--tenant`); 66 unknown invoice, or no rejected invoice in that file (line);
//! 74 ledger missing or unreadable; 78 configuration unusable.

use std::io::Write;
use std::path::Path;

use clap::Args;
use encaisse_pipelines::stages::ops::since::short_time;
use encaisse_pipelines::stages::ops::trace::{self, Trace, TraceError};
use encaisse_pipelines::stages::polyfac::ingest_store;

use super::dlq_table::{Table, codes, open, or_dash, write_json};

/// `encaisse trace …`
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The invoice: `tenant/exercice/number`, or `exercice/number` or `number` (with
    /// `--tenant` when several tenants could have it).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub invoice: Option<String>,
    /// Instead of an invoice: the invoices of this export (its name in the inbox) rejected
    /// at validation, numbered or not.
    #[arg(long)]
    pub file: Option<String>,
    /// With `--file`: only the invoice covering this line of the export.
    #[arg(long, requires = "file")]
    pub line: Option<u64>,
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
    if let Some(file) = &args.file {
        return file_rejects(&ledger, file, args, out, err).await;
    }
    let given = args.invoice.clone().unwrap_or_default();
    let tenant = args.tenant.clone();
    let result = ledger
        .inspect(move |tx| {
            Ok::<_, encaisse_ledger::LedgerError>(
                match trace::resolve(tx, &given, tenant.as_deref()) {
                    Ok(key) => trace::trace(tx, &key).map_err(TraceError::from),
                    Err(e) => Err(e),
                },
            )
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

/// `trace --file NAME [--line N]`: the rejected invoices of an export, by line.
async fn file_rejects(
    ledger: &encaisse_ledger::Ledger,
    file: &str,
    args: &TraceArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let (file, tenant, line) = (file.to_string(), args.tenant.clone(), args.line);
    let found = ledger
        .inspect(move |tx| ingest_store::file_rejects(tx, &file, tenant.as_deref(), line))
        .await;
    let rows = match found {
        Ok(rows) => rows,
        Err(e) => {
            let _ = writeln!(err, "encaisse trace: ledger: {e}");
            return codes::IO_ERROR;
        }
    };
    if rows.is_empty() {
        let at = args
            .line
            .map(|l| format!(" at line {l}"))
            .unwrap_or_default();
        let _ = writeln!(
            err,
            "encaisse trace: no invoice of file {:?} rejected at validation{at} in the ledger",
            args.file.as_deref().unwrap_or_default()
        );
        return codes::NOT_FOUND;
    }
    let written = if args.json {
        write_json(out, &rows)
    } else {
        let mut table = Table::new(vec![
            "TENANT",
            "LINES",
            "INVOICE",
            "RULE",
            "COLUMN",
            "MESSAGE",
            "READ AT (UTC)",
        ])
        .with_max_width(200);
        for r in &rows {
            let number = match (r.number.as_str(), r.exercice) {
                ("", _) => "(no number)".to_string(),
                (n, Some(e)) => format!("{e}/{n}"),
                (n, None) => n.to_string(),
            };
            table.row(vec![
                r.tenant.clone(),
                format!("{}–{}", r.lines.0, r.lines.1),
                number,
                r.rules.clone(),
                or_dash(Some(r.column.as_str()).filter(|c| !c.is_empty())),
                r.message.clone(),
                short_time(&r.recorded_at),
            ]);
        }
        table.write(out)
    };
    if let Err(e) = written {
        let _ = writeln!(err, "encaisse trace: cannot write the result: {e}");
        return codes::IO_ERROR;
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
