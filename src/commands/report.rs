//! `encaisse report reconciliation --tenant T --month YYYY-MM [--csv]`: the month's
//! reconciliation, the same figures as the console's page (`ops::reconciliation`).

use std::io::Write;
use std::path::Path;

use clap::{Args, Subcommand};
use encaisse_pipelines::stages::ops::reconciliation::{self, Reconciliation};

use super::dlq_table::{Table, codes, open};

/// `encaisse report …`
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// A month's money per budget: invoiced, collected by channel, PayFiP commissions,
    /// rejects, reversals, outstanding.
    Reconciliation(ReconciliationArgs),
}

#[derive(Debug, Args)]
pub struct ReconciliationArgs {
    /// The tenant (`vitry`).
    #[arg(long)]
    pub tenant: String,
    /// The month, `YYYY-MM`.
    #[arg(long)]
    pub month: String,
    /// Print CSV (as the console's `.csv`) instead of a table.
    #[arg(long)]
    pub csv: bool,
}

/// Runs `encaisse report …`; returns the exit code.
pub async fn run(config: &Path, args: &ReportArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ReportCommand::Reconciliation(args) = &args.command;
    let bounds = match reconciliation::month_bounds(&args.month) {
        Ok(bounds) => bounds,
        Err(e) => {
            let _ = writeln!(err, "encaisse report reconciliation: {e}");
            return codes::USAGE;
        }
    };
    let (loaded, ledger) = match open(config, err) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    if loaded.config.tenant(&args.tenant).is_none() {
        let _ = writeln!(
            err,
            "encaisse report reconciliation: no tenant {:?} in {}",
            args.tenant,
            config.display()
        );
        return codes::NOT_FOUND;
    }
    let tenant = args.tenant.clone();
    let result = ledger
        .inspect(move |tx| reconciliation::reconcile(tx, &tenant, &bounds))
        .await;
    match result {
        Ok(r) if args.csv => {
            let _ = write!(out, "{}", reconciliation::to_csv(&r));
            codes::OK
        }
        Ok(r) => {
            let _ = write_table(out, &r);
            codes::OK
        }
        Err(e) => {
            let _ = writeln!(err, "encaisse report reconciliation: ledger: {e}");
            codes::IO_ERROR
        }
    }
}

fn write_table(out: &mut dyn Write, r: &Reconciliation) -> std::io::Result<()> {
    let euros = |cents: i64| rust_decimal::Decimal::new(cents, 2).to_string();
    writeln!(
        out,
        "Reconciliation of {} for {} (Europe/Paris)",
        r.tenant, r.month
    )?;
    let mut table = Table::new(vec![
        "BUDGET",
        "ACTIVITY",
        "INVOICES",
        "INVOICED",
        "CARD",
        "ONE-OFF DEBIT",
        "DIRECT DEBIT",
        "TIP",
        "COUNTER",
        "OTHER",
        "COLLECTED",
        "COMMISSIONS",
        "REJECTS",
        "REJECTED",
        "REVERSED",
        "OUTSTANDING",
    ]);
    for (budget, activity, f) in r.rows() {
        let mut row = vec![budget.to_string(), activity.unwrap_or("-").to_string()];
        row.extend(f.cells(euros));
        table.row(row);
    }
    table.write(out)
}
