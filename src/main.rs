//! `encaisse`: the daemon and its ops CLI. Exit codes: [`encaisse::exit`].

use std::process::ExitCode;

use clap::Parser;
use encaisse::cli::{Cli, Command};
use encaisse::commands::{
    check, console, demo, dlq, ledger, mandates, manual, payfip_sim, preview, report, run, trace,
};
use encaisse::{config, exit, logging};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The demo logs to a file in its data directory, which it wipes first; completions and
    // man print a document on standard output.
    if !matches!(
        cli.command,
        Command::Demo(_) | Command::Completions { .. } | Command::Man
    ) && let Some(warning) = logging::init(cli.log_format)
    {
        tracing::warn!("{warning}.");
    }
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let code = match &cli.command {
        Command::Run => match config::load(&cli.config) {
            Ok(loaded) => run::run(loaded).await,
            Err(e) => {
                tracing::error!(
                    error = %check::describe_load_error(&e),
                    "Configuration is not usable."
                );
                exit::CONFIG
            }
        },
        Command::Check(args) => check::run(&cli.config, args.connect, &mut out, &mut err).await,
        Command::Dlq(args) => dlq::run(&cli.config, args, &mut out, &mut err).await,
        Command::Trace(args) => trace::run(&cli.config, args, &mut out, &mut err).await,
        Command::Preview(args) => preview::run(&cli.config, args, &mut out, &mut err).await,
        Command::Mandates(args) => mandates::run(&cli.config, args, &mut out, &mut err).await,
        Command::Ledger(args) => ledger::run(&cli.config, args, &mut out, &mut err).await,
        Command::Console(args) => {
            console::run(args, &mut std::io::stdin().lock(), &mut out, &mut err)
        }
        Command::Report(args) => report::run(&cli.config, args, &mut out, &mut err).await,
        Command::PayfipSim(args) => payfip_sim::run(args).await,
        Command::Demo(args) => demo::run(&cli.config, cli.log_format, args, &mut out).await,
        Command::Completions { shell } => manual::completions(*shell, &mut out),
        Command::Man => manual::man(&mut out, &mut err),
    };
    ExitCode::from(code)
}
