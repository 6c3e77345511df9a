/// A ledger failure. Every variant is transient from a message's point of view (disk full,
/// database locked by an operator's tool, writer restarting): the message is retried, never
/// parked, because the data was fine.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("ledger I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ledger migration {area}/{version} failed: {message}")]
    Migration {
        area: &'static str,
        version: u32,
        message: String,
    },
    #[error("ledger commit failed: {0}")]
    Commit(String),
    #[error("ledger writer is not running")]
    WriterGone,
    /// A consistency rule of the ledger was broken by the request (not a database failure).
    #[error("ledger conflict: {0}")]
    Conflict(String),
}

impl LedgerError {
    /// Whether retrying later can help. Only [`LedgerError::Conflict`] cannot.
    pub fn is_transient(&self) -> bool {
        !matches!(self, LedgerError::Conflict(_))
    }
}
