//! Logs: `tracing` to standard error, human-readable or JSON lines, filtered by
//! `ENCAISSE_LOG` (default `info`). Colours only when standard error is a terminal, so files
//! and journald get no escape codes.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Variable holding the log filter (`info`, `encaisse_pipelines=debug,info`, …).
pub const ENV_LOG: &str = "ENCAISSE_LOG";
/// Filter used when `ENCAISSE_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message` and the event's fields).
    Json,
}

/// Installs the global subscriber. Returns a warning to log once logging works when
/// `ENCAISSE_LOG` could not be parsed (the default filter is used instead).
pub fn init(format: LogFormat) -> Option<String> {
    init_with(
        format,
        BoxMakeWriter::new(std::io::stderr),
        std::io::stderr().is_terminal(),
    )
}

/// [`init`] with another destination: `encaisse demo` writes the daemon's log to a file
/// and keeps the terminal for its own progress lines.
pub fn init_with(format: LogFormat, writer: BoxMakeWriter, ansi: bool) -> Option<String> {
    let (filter, warning) = match std::env::var(ENV_LOG) {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_FILTER),
                Some(format!(
                    "{ENV_LOG} is invalid ({e}); using {DEFAULT_FILTER:?}"
                )),
            ),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Human => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // Already installed (a test harness did it): keep that one.
    let _ = installed;
    warning
}
