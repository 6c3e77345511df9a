//! The command line (`encaisse --help`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;

/// Carries a commune's receivables from its billing application to the DGFiP collection
/// channels (PayFiP, Hélios PES V2, SEPA direct debit) and brings every payment back.
///
/// Exit codes: 0 ok, 1 failure, 2 bad command line, 65 invoices rejected (preview), 66
/// unknown ID, invoice, file or tenant (dlq, trace, preview, report), 69 broker unreachable,
/// 74 file or directory error, 75 another daemon holds the data directory or the broker
/// prefix (run), 78 configuration error.
#[derive(Debug, Parser)]
#[command(name = "encaisse", version, about, long_about)]
pub struct Cli {
    /// Configuration file, for every subcommand (so that `encaisse dlq list` on a server
    /// reads the daemon's own file when ENCAISSE_CONFIG is set in the ops shell).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "ENCAISSE_CONFIG",
        value_name = "FILE",
        default_value = "config/encaisse.toml"
    )]
    pub config: PathBuf,

    /// Log format on standard error: `human` (default) or `json` (one object per line).
    /// The level filter comes from ENCAISSE_LOG (default `info`, e.g. `encaisse=debug,info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGTERM or SIGINT (then finish in-flight work and exit 0).
    Run,
    /// Check the configuration file; exit 78 naming each problem, 0 with a summary.
    Check(CheckArgs),
    /// Inspect, replay or discard parked messages (docs/operating.md).
    Dlq(crate::commands::dlq::DlqArgs),
    /// Show the life of an invoice, from export to Trésorerie and back.
    Trace(crate::commands::trace::TraceArgs),
    /// Read an export as the daemon would and show what it would publish and reject,
    /// without the broker and writing nothing (exit 0 all valid, 65 some rejected).
    Preview(crate::commands::preview::PreviewArgs),
    /// Direct-debit mandates: import the history of mandates migrated from another tool.
    Mandates(crate::commands::mandates::MandatesArgs),
    /// The ledger itself: `migrate --to postgres://…` copies the SQLite ledger into an
    /// empty PostgreSQL database, for several daemons.
    Ledger(crate::commands::ledger::LedgerArgs),
    /// The web console for ops and finance: `hash-password` makes a `[[console.users]]`
    /// password hash from standard input.
    Console(crate::commands::console::ConsoleArgs),
    /// Reports for finance: `reconciliation --tenant T --month YYYY-MM [--csv]`.
    Report(crate::commands::report::ReportArgs),
    /// Run a local simulator of the DGFiP PayFiP gateway (fault injection by options).
    PayfipSim(crate::commands::payfip_sim::PayfipSimArgs),
    /// Run the end-to-end demonstration against RabbitMQ: two communes' exports, online
    /// payments through a PayFiP simulator, the Trésorerie's and the bank's answers, and a
    /// report (data in var/demo, wiped first).
    Demo(crate::commands::demo::DemoArgs),
    /// Print the shell completion script (e.g. `encaisse completions bash >
    /// /etc/bash_completion.d/encaisse`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff: `encaisse man | man -l -`).
    Man,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also connect to the broker (exit 69 if it cannot be reached).
    #[arg(long)]
    pub connect: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_global_options() {
        let cli = Cli::try_parse_from(["encaisse", "check"]).unwrap();
        assert_eq!(cli.config, PathBuf::from("config/encaisse.toml"));
        assert_eq!(cli.log_format, LogFormat::Human);
        let cli = Cli::try_parse_from([
            "encaisse",
            "check",
            "--connect",
            "--config",
            "x.toml",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.config, PathBuf::from("x.toml"));
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(matches!(
            cli.command,
            Command::Check(CheckArgs { connect: true })
        ));
    }

    #[test]
    fn the_configuration_file_may_come_from_encaisse_config() {
        let config = Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == "config")
            .and_then(|a| a.get_env().map(|e| e.to_os_string()));
        assert_eq!(config, Some("ENCAISSE_CONFIG".into()));
    }

    #[test]
    fn payfip_sim_takes_its_options() {
        let cli = Cli::try_parse_from(["encaisse", "payfip-sim", "--listen", "127.0.0.1:0"]);
        assert!(matches!(cli.unwrap().command, Command::PayfipSim(_)));
    }
}
