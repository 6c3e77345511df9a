//! `encaisse run`: configuration → directories → ledger → runtime with its stages → HTTP →
//! wait for SIGTERM/SIGINT → graceful stop → exit 0.
//!
//! The daemon never exits because the broker is down: the runtime reconnects forever, the
//! broker state is logged at every change and `/readyz` answers 503 meanwhile.

use std::time::Duration;

use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{BrokerState, Health, Runtime};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::check::redact_url;
use crate::config::{self, Loaded};
use crate::http::{AppState, Server};
use crate::{dirs, exit, metrics, signals, wiring};

/// Extra time, past `shutdown_grace_secs`, that the runtime gets to return after a stop
/// request before the process exits anyway with [`exit::FAILURE`].
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// How often the broker state is sampled for logs and the `encaisse_broker_connected` gauge.
const BROKER_WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Runs the daemon until a signal (or a fatal runtime error); returns the exit code.
pub async fn run(loaded: Loaded) -> u8 {
    let config = &loaded.config;
    tracing::info!(
        config = %loaded.path.display(),
        version = env!("CARGO_PKG_VERSION"),
        overrides = ?loaded.overrides,
        "Starting encaisse."
    );
    let report = config::check(config, &config::check::env_is_set);
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

    let all_dirs = match dirs::create_all(&config.data_dir, config.tenants.iter().map(|t| &t.id)) {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, "Cannot create the data directories.");
            return exit::IO_ERROR;
        }
    };
    let ledger_path = dirs::ledger_path(&config.data_dir);
    let ledger = match Ledger::open(&ledger_path) {
        Ok(ledger) => ledger,
        Err(e) => {
            tracing::error!(path = %ledger_path.display(), error = %e, "Cannot open the ledger.");
            return exit::IO_ERROR;
        }
    };
    tracing::info!(path = %ledger_path.display(), "Ledger open.");

    let mut runtime = Runtime::new(config.runtime(), ledger.clone());
    let ctx = wiring::Context {
        config,
        ledger: &ledger,
        data_dir: &config.data_dir,
    };
    if let Err(e) = wiring::install(&ctx, &mut runtime) {
        tracing::error!(error = %e, "Cannot build a stage from the configuration.");
        return exit::CONFIG;
    }

    let listener = match TcpListener::bind(config.http.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(addr = %config.http.listen, error = %e, "Cannot listen for HTTP.");
            return exit::IO_ERROR;
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| config.http.listen.to_string(), |a| a.to_string());

    let shutdown = CancellationToken::new();
    if let Err(e) = signals::spawn(shutdown.clone()) {
        tracing::error!(error = %e, "Cannot install the signal handlers.");
        return exit::FAILURE;
    }
    let metrics_handle = metrics::handle();
    tokio::spawn(metrics::upkeep(metrics_handle.clone(), shutdown.clone()));
    tokio::spawn(watch_broker(
        runtime.health(),
        redact_url(&config.broker.url),
        shutdown.clone(),
    ));

    let state = AppState::new(runtime.health(), ledger, all_dirs, metrics_handle);
    let http = tokio::spawn(Server::new(state).serve(listener, shutdown.clone()));
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
    if code == exit::OK {
        tracing::info!("Stopped.");
    }
    code
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

/// Logs every change of the broker connection and keeps the gauge up to date.
async fn watch_broker(health: Health, url: String, shutdown: CancellationToken) {
    let mut last: Option<BrokerState> = None;
    let mut tick = tokio::time::interval(BROKER_WATCH_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = health.state();
        if last == Some(state) {
            continue;
        }
        ::metrics::gauge!("encaisse_broker_connected").set(if state == BrokerState::Connected {
            1.0
        } else {
            0.0
        });
        ::metrics::counter!("encaisse_broker_state_changes_total", "state" => state_name(state))
            .increment(1);
        match state {
            BrokerState::Connected => tracing::info!(broker = %url, "Broker connected."),
            BrokerState::Connecting => {
                tracing::info!(broker = %url, "Connecting to the broker.");
            }
            BrokerState::Blocked => tracing::warn!(
                broker = %url,
                "Broker is blocking publishers (memory or disk alarm); waiting."
            ),
            BrokerState::Disconnected => tracing::warn!(
                broker = %url,
                "Broker unreachable; the runtime keeps reconnecting and the daemon keeps running."
            ),
        }
        last = Some(state);
    }
}

fn state_name(state: BrokerState) -> &'static str {
    match state {
        BrokerState::Connecting => "connecting",
        BrokerState::Connected => "connected",
        BrokerState::Blocked => "blocked",
        BrokerState::Disconnected => "disconnected",
    }
}
