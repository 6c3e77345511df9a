//! `encaisse demo`: the end-to-end demonstration (`crate::demo`), as the README's first
//! command runs it.
//!
//! ```text
//! encaisse [--config config/encaisse.toml] demo [--data-dir var/demo] [--broker-prefix encaisse-demo] [--keep-running]
//! ```
//!
//! The data directory is wiped first (it says so; only an empty one or a previous demo's,
//! never a deployment's), the daemon's log goes to
//! `<data_dir>/encaisse-demo.log`, progress and the report to standard output. Exit codes:
//! 0 every expectation held; 1 one did not (named), or the daemon stopped; 69 RabbitMQ
//! unreachable; 74 the data directory cannot be written or is not a demo's; 78 the
//! configuration is unusable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use clap::Args;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::load::ENV_DATA_DIR;
use crate::demo::{self, DEFAULT_DATA_DIR, DEFAULT_PREFIX, LOG_FILE, Options};
use crate::exit;
use crate::logging::{self, LogFormat};

/// Options of `encaisse demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo's ledger and files go: wiped at start, left for you to open
    /// (default: $ENCAISSE_DATA_DIR, else var/demo).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Prefix of the demo's queues and exchange on RabbitMQ (deleted before and after the run).
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_PREFIX)]
    pub broker_prefix: String,
    /// Leave the daemon running after the report, to explore with `encaisse dlq` and
    /// `encaisse trace` (Ctrl-C stops it).
    #[arg(long)]
    pub keep_running: bool,
}

impl DemoArgs {
    /// `--data-dir`, else `ENCAISSE_DATA_DIR`, else `var/demo`; made absolute.
    pub fn data_dir(&self, env: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
        let dir = self
            .data_dir
            .clone()
            .or_else(|| {
                env(ENV_DATA_DIR)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if dir.is_absolute() {
            dir
        } else {
            std::env::current_dir().map_or(dir.clone(), |cwd| cwd.join(&dir))
        }
    }
}

/// Runs `encaisse demo`; returns the exit code. Logging is set up here (to the data
/// directory's log file), not by `main`.
pub async fn run(config: &Path, format: LogFormat, args: &DemoArgs, out: &mut dyn Write) -> u8 {
    let data_dir = args.data_dir(|name| std::env::var_os(name));
    let _ = writeln!(
        out,
        "encaisse demo: two communes, from their billing exports to the Trésorerie, the bank and PayFiP, and back."
    );
    let existed = match demo::wipe(&data_dir) {
        Ok(existed) => existed,
        Err(e) => {
            let _ = writeln!(out, "encaisse demo failed: {e}");
            return e.exit_code();
        }
    };
    let _ = writeln!(
        out,
        "Data directory {} {}; the daemon's log goes to {LOG_FILE} there.",
        data_dir.display(),
        if existed {
            "wiped (it held a previous demo run)"
        } else {
            "ready (empty)"
        },
    );
    let log = data_dir.join(LOG_FILE);
    match std::fs::File::create(&log) {
        Ok(file) => {
            if let Some(warning) =
                logging::init_with(format, BoxMakeWriter::new(Mutex::new(file)), false)
            {
                tracing::warn!("{warning}.");
            }
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "encaisse demo failed: cannot create {}: {e}",
                log.display()
            );
            return exit::IO_ERROR;
        }
    }
    let options = Options {
        config: config.to_path_buf(),
        data_dir,
        broker_prefix: args.broker_prefix.clone(),
        keep_running: args.keep_running,
    };
    demo::run(&options, out).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn data_dir_comes_from_the_option_then_the_environment() {
        let cli = Cli::try_parse_from(["encaisse", "demo", "--keep-running"]).unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("demo expected");
        };
        assert!(args.keep_running);
        assert_eq!(args.broker_prefix, DEFAULT_PREFIX);
        assert!(args.data_dir(|_| None).ends_with("var/demo"));
        assert_eq!(
            args.data_dir(|_| Some("/srv/demo".into())),
            PathBuf::from("/srv/demo")
        );
        let cli = Cli::try_parse_from(["encaisse", "demo", "--data-dir", "/tmp/d"]).unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("demo expected");
        };
        assert_eq!(
            args.data_dir(|_| Some("/srv/demo".into())),
            PathBuf::from("/tmp/d")
        );
    }
}
