//! `encaisse run`: configuration → directories → ledger → runtime with its stages → HTTP →
//! wait for SIGTERM/SIGINT → graceful stop → exit 0.
//!
//! With an SQLite ledger, one daemon per data directory and per broker prefix: a second one
//! exits with [`exit::ALREADY_RUNNING`] naming the holder (module [`crate::instance`], and
//! the runtime's prefix claim). With a PostgreSQL ledger several daemons share the ledger,
//! the prefix and the data directory; their once-only work runs under leases
//! (`encaisse_pipelines::runtime::lease`).
//!
//! The daemon never exits because the broker is down: the runtime reconnects forever and logs
//! each attempt, and `/readyz` answers 503 meanwhile.

use std::sync::Arc;
use std::time::Duration;

use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{Runtime, RuntimeError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::check::redact_url;
use crate::config::{self, Loaded};
use crate::http::{AppState, HttpLimits, Server};
use crate::instance::{self, DataDirLock, InstanceError};
use crate::{dirs, exit, metrics, signals, wiring};
use encaisse_pipelines::runtime::lease::Coordination;

/// Extra time, past `shutdown_grace_secs`, that the runtime gets to return after a stop
/// request before the process exits anyway with [`exit::FAILURE`].
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// Runs the daemon until a signal (or a fatal runtime error); returns the exit code.
pub async fn run(loaded: Loaded) -> u8 {
    limit_malloc_arenas();
    let shutdown = CancellationToken::new();
    if let Err(e) = signals::spawn(shutdown.clone()) {
        tracing::error!(error = %e, "Cannot install the signal handlers.");
        return exit::FAILURE;
    }
    run_until(loaded, Embedding::default(), shutdown).await
}

/// glibc arenas the daemon's allocations may spread over, unless `MALLOC_ARENA_MAX` says
/// otherwise. glibc's default (8 per core) let each busy thread — Tokio workers, blocking
/// ledger reads, the ledger writer — grow an arena of its own, whose freed memory is not
/// shared: the peak resident memory grew with the run (docs/benchmark.md, "Memory"). Two
/// arenas measured 30 % less peak at 30,000 invoices, at no measurable cost in throughput.
const MALLOC_ARENAS: i32 = 2;

/// Caps the glibc malloc arenas at [`MALLOC_ARENAS`] (other C libraries: nothing to do).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes effect for
        // arenas created from now on and is safe to call at any time.
        let done = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
        if done != 1 {
            tracing::warn!("Could not cap the malloc arenas; memory may grow with the run.");
        }
    }
}

/// Reads a variable of the environment (or stands for it).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What a process embedding the daemon (`encaisse demo`) gives it instead of what it would
/// make itself.
#[derive(Default)]
pub struct Embedding {
    /// An HTTP listener already bound (to learn its port before the configuration is
    /// final); `None` binds `[http] listen`.
    pub listener: Option<TcpListener>,
    /// Where the payment API tokens named by `[tenants.api] token_env` are read; `None`:
    /// the environment.
    pub tokens: Option<EnvLookup>,
}

/// Runs the daemon until `shutdown` is cancelled (or a fatal runtime error); returns the
/// exit code.
pub async fn run_until(loaded: Loaded, embedding: Embedding, shutdown: CancellationToken) -> u8 {
    let Embedding { listener, tokens } = embedding;
    let config = &loaded.config;
    tracing::info!(
        config = %loaded.path.display(),
        version = env!("CARGO_PKG_VERSION"),
        overrides = ?loaded.overrides,
        broker = %redact_url(&config.broker.url),
        "Starting encaisse."
    );
    // A token the embedding provides counts as set (the demo's own tokens).
    let report = match &tokens {
        Some(env) => config::check(config, &|name: &str| env(name)),
        None => config::check(config, &config::check::env_value),
    };
    for warning in &report.warnings {
        tracing::warn!(field = %warning.field, "Configuration warning: {}.", warning.message);
    }
    if !report.is_ok() {
        for issue in &report.issues {
            tracing::error!(field = %issue.field, "Configuration error: {}.", issue.message);
        }
        tracing::error!(
            problems = report.issues.len(),
            "Configuration is not usable; run `encaisse check` for details."
        );
        return exit::CONFIG;
    }

    config.file_access.apply();
    let all_dirs = match dirs::create_all(&config.data_dir, config.tenants.iter().map(|t| &t.id)) {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, "Cannot create the data directories.");
            return exit::IO_ERROR;
        }
    };
    let url = match config.ledger_url() {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(field = "ledger.url", "Configuration error: {e}.");
            return exit::CONFIG;
        }
    };
    let coordination = config.coordination(&url);
    // One daemon per SQLite ledger: the data directory's lock, held until the daemon returns
    // (the kernel frees it if the process dies), and the broker prefix's exclusive queue.
    // Daemons sharing a PostgreSQL ledger share the prefix and the data directory too: their
    // once-only work runs under leases instead.
    let _lock = match &coordination {
        Coordination::Single { .. } => match DataDirLock::acquire(&config.data_dir) {
            Ok(lock) => {
                tracing::info!(path = %lock.path().display(), "Data directory locked.");
                Some(lock)
            }
            Err(e @ InstanceError::Held { .. }) => {
                tracing::error!(error = %e, "Another daemon runs on this data directory.");
                return exit::ALREADY_RUNNING;
            }
            Err(e) => {
                tracing::error!(error = %e, "Cannot lock the data directory.");
                return exit::IO_ERROR;
            }
        },
        Coordination::Shared { holder, ttl } => {
            tracing::info!(
                daemon = %holder,
                lease_ttl_ms = ttl.as_millis() as u64,
                "Sharing the ledger, the broker prefix and the data directory with other daemons."
            );
            None
        }
    };
    let ledger = match open_ledger(&url).await {
        Ok(ledger) => ledger,
        Err(e) => {
            tracing::error!(ledger = %url.redacted(), error = %e, "Cannot open the ledger.");
            return exit::IO_ERROR;
        }
    };
    tracing::info!(ledger = %url.redacted(), backend = ledger.backend(), "Ledger open.");

    // Installed before the stages are built: they describe their metrics and register the
    // counters alerts read at 0, which a recorder installed later would not see.
    let metrics_handle = metrics::handle();
    let mut runtime = Runtime::new(config.runtime(), ledger.clone());
    if let Coordination::Single { .. } = coordination {
        runtime.claim_prefix(format!(
            "{}, data directory {}",
            instance::holder_description(),
            config.data_dir.display()
        ));
    }
    runtime.coordinate(coordination);
    let ctx = wiring::Context {
        config,
        ledger: &ledger,
        data_dir: &config.data_dir,
    };
    if let Err(e) = wiring::install(&ctx, &mut runtime) {
        tracing::error!(error = %e, "Cannot build a stage from the configuration.");
        return exit::CONFIG;
    }

    let listener = match listener {
        Some(listener) => listener,
        None => match TcpListener::bind(config.http.listen).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(addr = %config.http.listen, error = %e, "Cannot listen for HTTP.");
                return exit::IO_ERROR;
            }
        },
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| config.http.listen.to_string(), |a| a.to_string());

    tokio::spawn(metrics::upkeep(metrics_handle.clone(), shutdown.clone()));

    let settings = match tokens {
        Some(env) => crate::payfip::settings_with_env(config, |name| env(name)),
        None => crate::payfip::settings(config),
    };
    let payfip_routes = match crate::payfip::routes(settings, &ledger, runtime.publisher()) {
        Ok(routes) => routes,
        Err(e) => {
            tracing::error!(error = %e, "Cannot build the PayFiP routes from the configuration.");
            return exit::CONFIG;
        }
    };
    let queues = runtime
        .stage_queues()
        .into_iter()
        .flat_map(|q| [q.work, q.parked])
        .collect();
    let console =
        match crate::console::start(config, &ledger, runtime.health(), queues, shutdown.clone())
            .await
        {
            Ok(console) => console,
            Err(code) => return code,
        };
    let state = AppState::new(runtime.health(), ledger, all_dirs, metrics_handle);
    let server = Server::new(state)
        .merge(payfip_routes)
        .with_limits(HttpLimits::from(&config.http));
    let http = tokio::spawn(server.serve(listener, shutdown.clone()));
    tracing::info!(addr = %addr, "HTTP server listening.");

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let code = supervise(runtime, shutdown.clone(), grace).await;
    shutdown.cancel();
    match tokio::time::timeout(STOP_MARGIN, http).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error."),
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed."),
        Err(_) => tracing::warn!("HTTP server did not stop in time."),
    }
    if let Some(console) = console {
        let _ = tokio::time::timeout(STOP_MARGIN, console).await;
    }
    if code == exit::OK {
        tracing::info!("Stopped.");
    }
    code
}

/// Opens the ledger `url` names (PostgreSQL connects and migrates on a thread of its own).
async fn open_ledger(
    url: &encaisse_ledger::LedgerUrl,
) -> Result<Ledger, encaisse_ledger::LedgerError> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || Ledger::open_url(&url))
        .await
        .map_err(|_| encaisse_ledger::LedgerError::WriterGone)?
}

/// Runs the runtime; once a stop is requested, bounds how long it may take.
async fn supervise(runtime: Runtime, shutdown: CancellationToken, grace: Duration) -> u8 {
    let mut task = tokio::spawn(runtime.run(shutdown.clone()));
    let outcome = tokio::select! {
        outcome = &mut task => outcome,
        () = shutdown.cancelled() => {
            match tokio::time::timeout(grace + STOP_MARGIN, &mut task).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::error!(
                        grace_secs = grace.as_secs(),
                        "Runtime did not stop within the grace period; exiting (unacked messages will be redelivered)."
                    );
                    return exit::FAILURE;
                }
            }
        }
    };
    match outcome {
        Ok(Ok(())) => exit::OK,
        Ok(Err(e @ RuntimeError::PrefixHeld { .. })) => {
            tracing::error!(error = %e, "Another daemon runs on this broker prefix.");
            exit::ALREADY_RUNNING
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Runtime stopped with an error.");
            exit::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %e, "Runtime task failed.");
            exit::FAILURE
        }
    }
}
