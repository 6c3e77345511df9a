//! What can stop a benchmark or a chaos run.

use encaisse_schemas::ErrorClass;

/// A failure of the benchmark or chaos harness (not of encaisse itself: the chaos run's
/// failed checks are a [`BenchError::Check`] naming every check that did not hold).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The broker could not be reached or refused an operation.
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    /// A file or directory of the work directory, or a process, could not be used.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon's ledger could not be read.
    #[error("ledger: {0}")]
    Ledger(#[from] encaisse_ledger::rusqlite::Error),
    /// A portable query on the daemon's ledger failed.
    #[error("ledger: {0}")]
    Query(#[from] encaisse_ledger::LedgerError),
    /// The benchmark's own setting or generated data is unusable (a bug of the harness).
    #[error("set-up: {0}")]
    Setup(String),
    /// The daemon did not do what was expected in time, or exited.
    #[error("daemon: {0}")]
    Daemon(String),
    /// An HTTP call to the daemon failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The chaos run's end state is wrong: one line per failed check.
    #[error("{} check(s) failed:\n{}", .0.len(), .0.join("\n"))]
    Check(Vec<String>),
}

impl BenchError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }

    /// Broker, I/O, ledger and HTTP failures may pass on a second run (another session
    /// restarted the shared broker, a disk filled up); a wrong set-up or a failed check
    /// will not.
    pub fn class(&self) -> ErrorClass {
        match self {
            BenchError::Broker(_)
            | BenchError::Io { .. }
            | BenchError::Ledger(_)
            | BenchError::Query(_)
            | BenchError::Http(_)
            | BenchError::Daemon(_) => ErrorClass::Transient,
            BenchError::Setup(_) | BenchError::Check(_) => ErrorClass::Permanent,
        }
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;
