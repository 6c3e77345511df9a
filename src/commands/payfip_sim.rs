//! `encaisse payfip-sim`: runs the local PayFiP gateway simulator
//! (`encaisse_payfip::sim`, faithful to the WSDL and spec §8) until SIGTERM/SIGINT.
//!
//! ```text
//! encaisse payfip-sim --listen 127.0.0.1:8091 [--options sim.toml]
//!     [--latency-ms 200] [--http-500-rate 0.1] [--drop-rate 0.2] [--notify-delay-ms 500]
//!     [--notify-copies 2] [--auto-outcome P] [--public-url http://payfip-sim:8091] [--seed 7]
//! ```
//!
//! `--options` reads a TOML file of `SimulatorOptions` (every field defaulted, unknown keys
//! refused); the flags override it. Point `[payfip] soap_url`, `payment_page_url` and
//! `classic_url` at `http://<listen>/tpa/…` to use it from the daemon.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use encaisse_payfip::Resultrans;
use encaisse_payfip::sim::{SimError, SimOutcome, SimulatorOptions, serve};
use tokio_util::sync::CancellationToken;

use crate::{exit, signals};

/// Options of `encaisse payfip-sim`.
#[derive(Debug, Args)]
pub struct PayfipSimArgs {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8091")]
    pub listen: SocketAddr,
    /// TOML file of simulator options (`latency_ms = 200`, `[notification] copies = 2`, …).
    #[arg(long, value_name = "FILE")]
    pub options: Option<PathBuf>,
    /// Delay added to every SOAP answer, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub latency_ms: Option<u64>,
    /// Share of SOAP calls (0 to 1) answered as an outage (HTTP 500).
    #[arg(long, value_name = "RATE")]
    pub http_500_rate: Option<f64>,
    /// Share of payments (0 to 1) whose notification is never sent.
    #[arg(long, value_name = "RATE")]
    pub drop_rate: Option<f64>,
    /// Delay before each notification, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub notify_delay_ms: Option<u64>,
    /// Notifications sent per payment (2 = one duplicate).
    #[arg(long, value_name = "N")]
    pub notify_copies: Option<u32>,
    /// Outcome chosen as soon as a payment page opens (P, V, R, Z, A), for headless runs.
    #[arg(long, value_name = "LETTER", value_parser = parse_outcome)]
    pub auto_outcome: Option<SimOutcome>,
    /// The simulator's public URL, written into the WSDL it serves.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Seed of the simulator's random choices (rates, jitter).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

fn parse_outcome(text: &str) -> Result<SimOutcome, String> {
    Resultrans::parse(text)
        .map(SimOutcome::from)
        .ok_or_else(|| format!("{text:?} is not one of P, V, R, Z, A"))
}

/// Why the options cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

impl PayfipSimArgs {
    /// The simulator options: the file's, then the flags.
    pub fn simulator_options(&self) -> Result<SimulatorOptions, OptionsError> {
        let mut options = match &self.options {
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| OptionsError::Read {
                    path: shown.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| OptionsError::Parse {
                    path: shown,
                    message: e.to_string(),
                })?
            }
            None => SimulatorOptions::default(),
        };
        if let Some(v) = self.latency_ms {
            options.latency_ms = v;
        }
        if let Some(v) = self.http_500_rate {
            options.http_500_rate = v;
        }
        if let Some(v) = self.drop_rate {
            options.notification.drop_rate = v;
        }
        if let Some(v) = self.notify_delay_ms {
            options.notification.delay_ms = v;
        }
        if let Some(v) = self.notify_copies {
            options.notification.copies = v;
        }
        if let Some(v) = self.auto_outcome {
            options.auto_outcome = Some(v);
        }
        if let Some(v) = &self.public_url {
            options.public_url = Some(v.clone());
        }
        if let Some(v) = self.seed {
            options.seed = v;
        }
        Ok(options)
    }
}

/// Runs the simulator; returns the exit code.
pub async fn run(args: &PayfipSimArgs) -> u8 {
    let options = match args.simulator_options() {
        Ok(options) => options,
        Err(e) => {
            tracing::error!(error = %e, "PayFiP simulator options are not usable.");
            return exit::CONFIG;
        }
    };
    let shutdown = CancellationToken::new();
    if let Err(e) = signals::spawn(shutdown.clone()) {
        tracing::error!(error = %e, "Cannot install the signal handlers.");
        return exit::FAILURE;
    }
    match serve(args.listen, options, shutdown.cancelled_owned()).await {
        Ok(()) => {
            tracing::info!("PayFiP simulator stopped.");
            exit::OK
        }
        Err(e @ SimError::Bind { .. }) => {
            tracing::error!(error = %e, "PayFiP simulator cannot listen.");
            exit::IO_ERROR
        }
        Err(e @ (SimError::Options(_) | SimError::Contract { .. })) => {
            tracing::error!(error = %e, "PayFiP simulator cannot start.");
            exit::CONFIG
        }
        Err(e) => {
            tracing::error!(error = %e, "PayFiP simulator failed.");
            exit::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn flags_override_the_options_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sim.toml");
        std::fs::write(
            &file,
            "latency_ms = 200\nseed = 3\n[notification]\ncopies = 2\ndelay_ms = 10\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "encaisse",
            "payfip-sim",
            "--listen",
            "127.0.0.1:0",
            "--options",
            file.to_str().unwrap(),
            "--notify-copies",
            "3",
            "--drop-rate",
            "0.5",
            "--auto-outcome",
            "V",
        ])
        .unwrap();
        let Command::PayfipSim(args) = cli.command else {
            panic!("payfip-sim expected");
        };
        let options = args.simulator_options().unwrap();
        assert_eq!(options.latency_ms, 200);
        assert_eq!(options.seed, 3);
        assert_eq!(options.notification.copies, 3);
        assert_eq!(options.notification.delay_ms, 10);
        assert_eq!(options.notification.drop_rate, 0.5);
        assert_eq!(options.auto_outcome, Some(SimOutcome::V));
        assert!(Cli::try_parse_from(["encaisse", "payfip-sim", "--auto-outcome", "Q"]).is_err());
        std::fs::write(&file, "latency = 1\n").unwrap();
        assert!(matches!(
            args.simulator_options(),
            Err(OptionsError::Parse { .. })
        ));
    }
}
