//! `encaisse-bench`: the benchmark against the raw broker, and the chaos run
//! (`docs/benchmark.md`).
//!
//! ```text
//! cargo run --release --bin encaisse-bench -- [--invoices N] [--json]
//! cargo run --release --bin encaisse-bench -- chaos [N]      # what scripts/chaos.sh runs
//! ```
//!
//! Exit codes: 0 done (chaos: every check held), 1 a check failed or the run could not
//! finish, 2 bad command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use encaisse::bench::broker::Rabbitmqctl;
use encaisse::bench::chaos::{self, ChaosOptions};
use encaisse::bench::daemon::DaemonProgram;
use encaisse::bench::{self, BenchOptions, DEFAULT_AMQP_URL};
use encaisse::logging::{self, LogFormat};

/// The harness's log filter (the daemon's is `ENCAISSE_LOG`).
const LOG_ENV: &str = "ENCAISSE_BENCH_LOG";
/// Its progress, and the warnings of the libraries it runs in process (the simulator).
const DEFAULT_LOG: &str = "encaisse::bench=info,warn";

/// Benchmark of encaisse against the raw broker (default), or the chaos run.
#[derive(Debug, Parser)]
#[command(
    name = "encaisse-bench",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SIGKILL the daemon and restart the broker while invoices flow, then check the end
    /// state strictly (exit 0 only when every check holds).
    Chaos(ChaosArgs),
    /// Run the daemon (what `encaisse run` does) with a configuration file: the benchmark
    /// starts itself this way unless `--encaisse` names the binary.
    #[command(hide = true)]
    Daemon {
        #[arg(long)]
        config: PathBuf,
    },
}

/// What every run shares.
#[derive(Debug, Args)]
struct Common {
    /// The broker (the daemon and the baseline use it).
    #[arg(long, env = "ENCAISSE_AMQP_URL", default_value = DEFAULT_AMQP_URL)]
    amqp_url: String,
    /// The RabbitMQ node `rabbitmqctl` talks to (queue depths; the chaos run's restart).
    #[arg(long, env = "ENCAISSE_BENCH_RABBITMQ_NODE")]
    rabbitmq_node: Option<String>,
    /// The `encaisse` binary to run as the daemon; default: this program re-executed as
    /// `encaisse-bench daemon` (the same code as `encaisse run`, always the current build).
    #[arg(long, env = "ENCAISSE_BENCH_DAEMON")]
    encaisse: Option<PathBuf>,
    /// Where the run's work directory goes (default: the system's temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory (export, ledger, PES files, daemon log).
    #[arg(long)]
    keep: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Invoices in the generated export (and messages of the baseline).
    #[arg(long, default_value_t = 100_000)]
    invoices: u64,
    /// Online payments of the notification latency benchmark.
    #[arg(long, default_value_t = 2_000)]
    payments: usize,
    /// Payments paid at the same time (1 measures latency without queueing).
    #[arg(long, default_value_t = 1)]
    notify_concurrency: usize,
    /// Titres of PES writing alone (default: the invoices, at most 100 000).
    #[arg(long)]
    pes_titres: Option<u64>,
    /// The daemon's `[polyfac] max_downstream_backlog` (default: the daemon's own default);
    /// a huge value measures a run without back-pressure.
    #[arg(long)]
    max_downstream_backlog: Option<u64>,
    /// The daemon's `[polyfac] bundle_size` (default: the daemon's own default); 1 runs
    /// every invoice as its own message, to measure what bundles buy.
    #[arg(long)]
    bundle_size: Option<usize>,
    /// The daemon's `[polyfac] publish_batch_size` (default: the daemon's own default).
    #[arg(long)]
    publish_batch_size: Option<usize>,
    /// Run the daemon on PostgreSQL: a server (`postgres://user@host/postgres`) where the
    /// run creates a fresh database for the ledger, dropped at the end.
    #[arg(long, env = "ENCAISSE_BENCH_LEDGER_URL")]
    ledger_url: Option<String>,
    /// Daemons sharing the work (2 or more need `--ledger-url`: they share its PostgreSQL
    /// ledger, the broker prefix and the data directory, as a cluster does).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ChaosArgs {
    /// Invoices in the generated export.
    #[arg(default_value_t = 20_000)]
    invoices: u64,
    /// How long the broker stays stopped, in seconds.
    #[arg(long, default_value_t = 3)]
    broker_down_secs: u64,
    /// Longest wait for each step, in seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Daemons sharing the work (2 or more: a cluster run on `--ledger-url`).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// A PostgreSQL server where a cluster run creates its fresh ledger database
    /// (`postgres://postgres@127.0.0.1:5432/postgres`).
    #[arg(long, env = "ENCAISSE_BENCH_LEDGER_URL")]
    ledger_url: Option<String>,
    /// The broker node a cluster run restarts (`rabbitmqctl -n`); default: `--rabbitmq-node`.
    #[arg(long)]
    restart_node: Option<String>,
    #[command(flatten)]
    common: Common,
}

fn ctl(common: &Common) -> Rabbitmqctl {
    Rabbitmqctl {
        node: common.rabbitmq_node.clone(),
    }
}

fn print_json(value: &impl serde::Serialize) -> bool {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            println!("{text}");
            true
        }
        Err(e) => {
            eprintln!("encaisse-bench: {e}");
            false
        }
    }
}

async fn bench(args: BenchArgs) -> ExitCode {
    let daemon = match DaemonProgram::choose(args.common.encaisse.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("encaisse-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = BenchOptions {
        invoices: args.invoices,
        payments: args.payments,
        notify_concurrency: args.notify_concurrency,
        pes_titres: args.pes_titres,
        amqp_url: args.common.amqp_url.clone(),
        rabbitmqctl: ctl(&args.common),
        work_root: args.common.work_dir.clone(),
        keep: args.common.keep,
        daemon,
        max_downstream_backlog: args.max_downstream_backlog,
        bundle_size: args.bundle_size,
        publish_batch_size: args.publish_batch_size,
        ledger_admin_url: args.ledger_url.clone(),
        instances: args.instances,
    };
    match bench::run(&options).await {
        Ok(report) if args.common.json => {
            if print_json(&report) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(report) => {
            print!("{}", bench::report::table(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("encaisse-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn chaos(args: ChaosArgs) -> ExitCode {
    let daemon = match DaemonProgram::choose(args.common.encaisse.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("encaisse-bench chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cluster = match (args.instances, &args.ledger_url) {
        (0 | 1, _) => None,
        (instances, Some(url)) => Some(chaos::cluster::ClusterRun {
            instances,
            ledger_admin_url: url.clone(),
            restart_node: args.restart_node.clone(),
        }),
        (_, None) => {
            eprintln!(
                "encaisse-bench chaos: --instances 2 or more needs --ledger-url postgres://…"
            );
            return ExitCode::FAILURE;
        }
    };
    let options = ChaosOptions {
        cluster,
        invoices: args.invoices,
        amqp_url: args.common.amqp_url.clone(),
        rabbitmqctl: ctl(&args.common),
        work_root: args.common.work_dir.clone(),
        keep: args.common.keep,
        daemon,
        broker_down: Duration::from_secs(args.broker_down_secs),
        timeout: Duration::from_secs(args.timeout_secs),
    };
    match chaos::run(&options).await {
        Ok(report) => {
            let printed = if args.common.json {
                print_json(&report)
            } else {
                print!("{}", report.summary());
                true
            };
            if printed && report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("encaisse-bench chaos: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `encaisse run` does (src/main.rs), for the re-executed daemon.
async fn daemon(config: PathBuf) -> ExitCode {
    if let Some(warning) = logging::init(LogFormat::Human) {
        tracing::warn!("{warning}.");
    }
    match encaisse::config::load(&config) {
        Ok(loaded) => ExitCode::from(encaisse::commands::run::run(loaded).await),
        Err(e) => {
            tracing::error!(
                error = %encaisse::commands::check::describe_load_error(&e),
                "Configuration is not usable."
            );
            ExitCode::from(encaisse::exit::CONFIG)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Some(Command::Daemon { config }) = cli.command {
        return daemon(config).await;
    }
    // The harness's own progress goes to standard error; results to standard output.
    let filter = tracing_subscriber::EnvFilter::try_from_env(LOG_ENV)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    match cli.command {
        Some(Command::Chaos(args)) => chaos(args).await,
        _ => bench(cli.bench).await,
    }
}
