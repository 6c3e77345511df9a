//! `encaisse ledger migrate --to postgres://…`: copies the SQLite ledger of the configuration
//! (or `--from FILE`) into an empty PostgreSQL database, with the daemon stopped, then prints
//! the rows of every table on both sides and the `[ledger] url` to configure
//! (`encaisse_ledger::transfer`, docs/scaling.md).
//!
//! Exit codes: 0 copied; 65 the target is not empty, a table cannot be copied (its area has
//! no PostgreSQL table yet) or the counts differ — nothing is committed; 74 the SQLite file
//! or the PostgreSQL server cannot be opened; 75 a daemon runs on the data directory; 78
//! configuration unusable or `--to` not a PostgreSQL URL.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use encaisse_ledger::transfer::{self, Copied, TransferError};
use encaisse_ledger::{Ledger, LedgerUrl};

use crate::exit;
use crate::instance::{DataDirLock, InstanceError};

/// `encaisse ledger …`
#[derive(Debug, Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    pub command: LedgerCommand,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Copy the SQLite ledger into an empty PostgreSQL database (the daemon stopped): every
    /// table in one transaction, row counts compared, then the `[ledger] url` to configure.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL ledger to fill (`postgres://user@host/database`; the password from
    /// the URL or PGPASSWORD-style settings of the server). Must be empty.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// The SQLite ledger file; default: the configuration's (`[ledger] url`, or
    /// `<data_dir>/ledger.sqlite`).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Rows per INSERT.
    #[arg(long, default_value_t = transfer::BATCH_ROWS)]
    pub batch_rows: usize,
}

/// Runs `encaisse ledger …`; returns the exit code.
pub async fn run(config: &Path, args: &LedgerArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match &args.command {
        LedgerCommand::Migrate(args) => migrate(config, args, out, err).await,
    }
}

async fn migrate(
    config: &Path,
    args: &MigrateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let target = match LedgerUrl::parse(&args.to) {
        Ok(url @ LedgerUrl::Postgres(_)) => url,
        Ok(_) => {
            let _ = writeln!(err, "--to: the target must be a postgres:// URL");
            return exit::CONFIG;
        }
        Err(e) => {
            let _ = writeln!(err, "--to: {e}");
            return exit::CONFIG;
        }
    };
    // The daemon must be stopped: its data directory's lock is held while copying.
    let (source, _lock) = match &args.from {
        Some(path) => (path.clone(), None),
        None => {
            let loaded = match crate::config::load(config) {
                Ok(loaded) => loaded,
                Err(e) => {
                    let _ = writeln!(err, "{e}");
                    return exit::CONFIG;
                }
            };
            let path = match loaded.config.ledger_file() {
                Ok(path) => path,
                Err(message) => {
                    let _ = writeln!(err, "ledger.url: {message}");
                    return exit::CONFIG;
                }
            };
            match DataDirLock::acquire(&loaded.config.data_dir) {
                Ok(lock) => (path, Some(lock)),
                Err(e @ InstanceError::Held { .. }) => {
                    let _ = writeln!(err, "{e}");
                    return exit::ALREADY_RUNNING;
                }
                Err(e) => {
                    let _ = writeln!(err, "{e}");
                    return exit::IO_ERROR;
                }
            }
        }
    };
    let redacted = target.redacted();
    match copy(source, target, args.batch_rows).await {
        Ok(copied) => {
            let _ = print_counts(out, &copied);
            let _ = writeln!(
                out,
                "\nCopied. Configure the daemons with:\n\n[ledger]\nurl = \"{redacted}\"\n\n(or ENCAISSE_LEDGER_URL, where a password belongs)."
            );
            exit::OK
        }
        Err((code, message)) => {
            let _ = writeln!(err, "ledger migrate: {message}");
            code
        }
    }
}

/// Opens both ledgers (on a blocking thread: the PostgreSQL client blocks, and connecting
/// applies its migrations) and copies in one transaction of the target.
async fn copy(
    source: PathBuf,
    target: LedgerUrl,
    batch_rows: usize,
) -> Result<Vec<Copied>, (u8, String)> {
    let opened = tokio::task::spawn_blocking(move || {
        let conn = transfer::open_source(&source).map_err(|e| (exit::IO_ERROR, e.to_string()))?;
        let ledger = Ledger::open_url(&target)
            .map_err(|e| (exit::IO_ERROR, format!("{}: {e}", target.redacted())))?;
        Ok::<_, (u8, String)>((conn, ledger))
    })
    .await
    .unwrap_or_else(|_| Err((exit::FAILURE, "opening the ledgers panicked".to_string())));
    let (conn, ledger) = opened?;
    ledger
        .transact(move |tx| transfer::copy_into(&conn, tx, batch_rows))
        .await
        .map_err(|e| {
            let code = match e {
                TransferError::Ledger(_) | TransferError::Source(_) => exit::IO_ERROR,
                _ => exit::DATA_ERROR,
            };
            (code, e.to_string())
        })
}

fn print_counts(out: &mut dyn Write, copied: &[Copied]) -> std::io::Result<()> {
    let width = copied
        .iter()
        .map(|c| c.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:<width$}  {:>10}  {:>10}",
        "table", "sqlite", "postgres"
    )?;
    for c in copied {
        writeln!(
            out,
            "{:<width$}  {:>10}  {:>10}",
            c.table, c.source_rows, c.target_rows
        )?;
    }
    let total: u64 = copied.iter().map(|c| c.source_rows).sum();
    writeln!(out, "{:<width$}  {:>10}  {:>10}", "total", total, total)
}
