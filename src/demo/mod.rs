//! `encaisse demo`: the whole flow, end to end, in one process, against the real RabbitMQ.
//!
//! 1. Wipes the data directory (`--data-dir`, `ENCAISSE_DATA_DIR`, default `var/demo`; only
//!    an empty one or a previous demo's: [`wipe`]) and the demo's broker topology
//!    (`--broker-prefix`, default `encaisse-demo`).
//! 2. Starts the PayFiP simulator (`encaisse_payfip::sim`) on an ephemeral port, and the
//!    daemon (`commands::run::run_until`) with the configuration file plus the overlay
//!    `demo/encaisse-demo.toml` ([`config`]) on another.
//! 3. Drops two communes' exports (`demo/exports/`, dated for today: [`exports`]).
//! 4. Pays invoices online through the payment API and the simulator's pages ([`kiosque`]).
//! 5. Answers Vitry's PES Aller as the Trésorerie would ([`tresorerie`]), and Ivry's pain.008
//!    as its bank would ([`bank`]).
//! 6. Checks every expectation of [`scenario`] and prints a [`report`].
//!
//! Progress goes to the writer it is given (one line per step), the daemon's log to
//! `<data_dir>/encaisse-demo.log`. Exit code 0 only if every expectation held.

pub mod bank;
pub mod broker;
pub mod config;
pub mod exports;
pub mod files;
pub mod kiosque;
pub mod report;
pub mod scenario;
pub mod story;
pub mod tresorerie;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use encaisse_payfip::sim::{SimulatorHandle, SimulatorOptions};
use encaisse_schemas::ErrorClass;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::check::redact_url;
use crate::commands::run::{Embedding, EnvLookup, run_until};
use crate::config::load::{ENV_AMQP_URL, apply_overrides};
use crate::exit;

/// Default data directory of the demo (relative to where it is started).
pub const DEFAULT_DATA_DIR: &str = "var/demo";
/// Default broker prefix: never a production topology.
pub const DEFAULT_PREFIX: &str = "encaisse-demo";
/// The daemon's log, in the data directory.
pub const LOG_FILE: &str = "encaisse-demo.log";
/// How long the daemon may take to be ready (broker connected, topology declared).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the demo is run with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configuration file the overlay is merged over.
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub broker_prefix: String,
    /// Leave the daemon running after the report, until Ctrl-C.
    pub keep_running: bool,
}

/// Why the demo stopped before its report, or why its report is a failure.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "RabbitMQ is not reachable at {url}: {message}. Start it (scripts/setup.sh does) or point ENCAISSE_AMQP_URL at it."
    )]
    Broker { url: String, message: String },
    #[error("the PayFiP simulator cannot start: {0}")]
    Simulator(String),
    #[error("the daemon stopped with exit code {code} (see {log})")]
    Daemon { code: u8, log: String },
    /// A step's expectation did not hold and the story cannot go on.
    #[error("{step}: {message}")]
    Step { step: String, message: String },
}

impl DemoError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        DemoError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn step(step: impl Into<String>, message: impl Into<String>) -> Self {
        DemoError::Step {
            step: step.into(),
            message: message.into(),
        }
    }

    /// The exit code `encaisse demo` returns (README, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            DemoError::Config(_) => exit::CONFIG,
            DemoError::Io { .. } => exit::IO_ERROR,
            DemoError::Broker { .. } => exit::UNAVAILABLE,
            DemoError::Simulator(_) | DemoError::Daemon { .. } | DemoError::Step { .. } => {
                exit::FAILURE
            }
        }
    }

    /// Whether running the demo again may help.
    pub fn class(&self) -> ErrorClass {
        match self {
            DemoError::Broker { .. } | DemoError::Io { .. } => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// One line per step, numbered, with the time since the start.
pub struct Progress<'a> {
    out: &'a mut dyn Write,
    started: Instant,
    step: usize,
}

/// Steps the demo announces.
pub const STEPS: usize = 13;

impl<'a> Progress<'a> {
    pub fn new(out: &'a mut dyn Write) -> Self {
        Progress {
            out,
            started: Instant::now(),
            step: 0,
        }
    }

    /// Announces the next step.
    pub fn step(&mut self, text: &str) {
        self.step += 1;
        let _ = writeln!(
            self.out,
            "[{:>2}/{STEPS}] {:>5.1} s  {text}",
            self.step,
            self.started.elapsed().as_secs_f64()
        );
        let _ = self.out.flush();
    }

    /// A detail of the current step.
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "                {text}");
        let _ = self.out.flush();
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn out(&mut self) -> &mut dyn Write {
        self.out
    }
}

/// The demo tokens of the payment API, used when the variables `[tenants.api] token_env`
/// names are not set (the Kiosque famille and the daemon share them).
fn tokens() -> EnvLookup {
    Arc::new(|name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| {
                Some(format!(
                    "demo-{}-kiosque-famille",
                    name.to_ascii_lowercase()
                ))
            })
    })
}

/// Removes and recreates the data directory; returns whether it held a previous run.
///
/// Only a directory that is absent, empty, or holds a previous demo run (its
/// [`LOG_FILE`]) is wiped: `ENCAISSE_DATA_DIR` may point at a real deployment's data, which
/// the demo must never erase.
pub fn wipe(data_dir: &Path) -> Result<bool, DemoError> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries.count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(DemoError::io(format!("reading {}", data_dir.display()), e)),
    };
    let previous_demo = data_dir.join(LOG_FILE).is_file();
    if entries > 0 && !previous_demo {
        return Err(DemoError::io(
            format!(
                "{} is not a demo data directory (it has files but no {LOG_FILE}); the demo wipes its data directory, so it refuses this one: choose another with --data-dir (or unset ENCAISSE_DATA_DIR)",
                data_dir.display()
            ),
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    if entries > 0 {
        std::fs::remove_dir_all(data_dir)
            .map_err(|e| DemoError::io(format!("wiping {}", data_dir.display()), e))?;
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| DemoError::io(format!("creating {}", data_dir.display()), e))?;
    Ok(previous_demo)
}

/// Runs the demo (the data directory must exist: [`wipe`]); returns the exit code.
pub async fn run(options: &Options, out: &mut dyn Write) -> u8 {
    let mut progress = Progress::new(out);
    let shutdown = CancellationToken::new();
    if let Err(e) = crate::signals::spawn(shutdown.clone()) {
        tracing::error!(error = %e, "Cannot install the signal handlers.");
    }
    let mut sim = None;
    let mut cleanup = None;
    // Ctrl-C stops the daemon (the signal handler cancels `shutdown`) and the story with it.
    let outcome = tokio::select! {
        outcome = start_and_tell(options, &mut progress, &shutdown, &mut sim, &mut cleanup) => outcome,
        () = shutdown.cancelled() => Err(DemoError::step("interrupted", "stop requested (Ctrl-C)")),
    };
    let code = match outcome {
        Ok((report, daemon)) => {
            let _ = report.print(progress.out());
            let ok = report.failed().is_empty();
            if options.keep_running && !shutdown.is_cancelled() {
                let bin = this_binary();
                let _ = writeln!(
                    progress.out(),
                    "\nThe daemon keeps running (Ctrl-C stops it). In another terminal:\n  \
                     ENCAISSE_DATA_DIR={} {bin} dlq list --group\n  \
                     ENCAISSE_DATA_DIR={} {bin} trace vitry/{}/PERI-000104",
                    options.data_dir.display(),
                    options.data_dir.display(),
                    exports::Dates {
                        today: story::today()
                    }
                    .exercice()
                );
                let _ = progress.out().flush();
                shutdown.cancelled().await;
            }
            shutdown.cancel();
            let _ = daemon.await;
            if ok { exit::OK } else { exit::FAILURE }
        }
        Err(e) => {
            shutdown.cancel();
            let _ = writeln!(
                progress.out(),
                "\nencaisse demo failed: {e}\nThe daemon's log: {}",
                options.data_dir.join(LOG_FILE).display()
            );
            tracing::error!(error = %e, class = ?e.class(), "The demo failed.");
            e.exit_code()
        }
    };
    if let Some(sim) = sim {
        let _ = sim.shutdown().await;
    }
    if let Some(config) = cleanup
        && let Err(e) = broker::reset(&config).await
    {
        tracing::warn!(error = %e, "Cannot remove the demo's broker topology.");
    }
    code
}

/// How to call this binary from the current directory (`target/debug/encaisse`), for hints.
fn this_binary() -> String {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    match (exe, cwd) {
        (Some(exe), Some(cwd)) => exe
            .strip_prefix(&cwd)
            .map_or_else(|_| exe.display().to_string(), |p| p.display().to_string()),
        _ => "encaisse".to_string(),
    }
}

type Started = (report::Report, tokio::task::JoinHandle<u8>);

/// Starts the simulator and the daemon, then tells the story. `sim` and `cleanup` are
/// filled as soon as there is something to stop or remove.
async fn start_and_tell(
    options: &Options,
    progress: &mut Progress<'_>,
    shutdown: &CancellationToken,
    sim: &mut Option<SimulatorHandle>,
    cleanup: &mut Option<crate::config::Config>,
) -> Result<Started, DemoError> {
    let validation = files::Validation::probe();
    let specs = encaisse_xml::specs::specs_dir();
    let simulator = SimulatorHandle::start(SimulatorOptions {
        serve_contract: specs.join("payfip").is_dir(),
        ..SimulatorOptions::default()
    })
    .await
    .map_err(|e| DemoError::Simulator(e.to_string()))?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| DemoError::io("binding the daemon's HTTP port", e))?;
    let listen = listener
        .local_addr()
        .map_err(|e| DemoError::io("reading the daemon's HTTP port", e))?;
    let runtime = config::Runtime {
        data_dir: options.data_dir.clone(),
        broker_prefix: options.broker_prefix.clone(),
        listen,
        simulator: simulator.base_url(),
    };
    let sim_url = simulator.base_url();
    *sim = Some(simulator);
    let mut loaded =
        config::build(&options.config, &runtime).map_err(|e| DemoError::Config(e.to_string()))?;
    // The broker URL may come from the environment, as for `encaisse run`; the data
    // directory is the demo's own.
    apply_overrides(&mut loaded, |name| {
        (name == ENV_AMQP_URL)
            .then(|| std::env::var_os(name))
            .flatten()
    })
    .map_err(|e| DemoError::Config(e.to_string()))?;
    let lookup = tokens();
    let check = crate::config::check(&loaded.config, &|name| lookup(name));
    if !check.is_ok() {
        let problems: Vec<String> = check
            .issues
            .iter()
            .map(|i| format!("{}: {}", i.field, i.message))
            .collect();
        return Err(DemoError::Config(format!(
            "the demo configuration is not usable: {}",
            problems.join("; ")
        )));
    }
    let config = loaded.config.clone();
    let url = redact_url(&config.broker.url);

    let cleared = broker::reset(&config)
        .await
        .map_err(|e| DemoError::Broker {
            url: url.clone(),
            message: e.to_string(),
        })?;
    *cleanup = (!options.keep_running).then(|| config.clone());
    progress.step(&format!(
        "RabbitMQ at {url}: reachable; demo topology {}.* reset ({cleared} queues)",
        config.broker.prefix
    ));

    let daemon = tokio::spawn(run_until(
        loaded,
        Embedding {
            listener: Some(listener),
            tokens: Some(tokens()),
        },
        shutdown.clone(),
    ));
    let base = format!("http://{listen}");
    let ready = files::wait_ready(&base, READY_TIMEOUT, &daemon).await;
    if !ready {
        shutdown.cancel();
        let code = daemon.await.unwrap_or(exit::FAILURE);
        return Err(DemoError::Daemon {
            code,
            log: options.data_dir.join(LOG_FILE).display().to_string(),
        });
    }
    progress.step(&format!(
        "Daemon ready on {base} (config {} + {}); PayFiP simulator on {sim_url}",
        options.config.display(),
        config::OVERLAY_PATH
    ));

    let mut story = story::Story::new(
        config,
        base,
        validation,
        options.data_dir.clone(),
        shutdown.clone(),
    )?;
    let report = story.tell(progress).await;
    match report {
        Ok(report) => Ok((report, daemon)),
        Err(e) => {
            shutdown.cancel();
            let _ = daemon.await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_or_previous_demo_directory_is_wiped() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("fresh");
        assert!(!wipe(&fresh).unwrap());
        assert!(fresh.is_dir());
        std::fs::write(fresh.join(LOG_FILE), "log").unwrap();
        std::fs::write(fresh.join("ledger.sqlite"), "x").unwrap();
        assert!(wipe(&fresh).unwrap());
        assert!(!fresh.join("ledger.sqlite").exists());

        let production = tmp.path().join("production");
        std::fs::create_dir_all(&production).unwrap();
        std::fs::write(production.join("ledger.sqlite"), "precious").unwrap();
        let err = wipe(&production).unwrap_err();
        assert!(
            err.to_string().contains("not a demo data directory"),
            "{err}"
        );
        assert_eq!(err.exit_code(), exit::IO_ERROR);
        assert!(production.join("ledger.sqlite").exists());
    }
}
