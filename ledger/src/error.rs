/// A ledger failure. The database variants are transient from a message's point of view (disk
/// full, database locked by an operator's tool, writer restarting): the message is retried,
/// never parked, because the data was fine. [`LedgerError::Conflict`],
/// [`LedgerError::Corrupt`] and [`LedgerError::Unsupported`] are not: retrying changes
/// nothing. Business refusals are not ledger errors: a stage returns its own error from
/// [`crate::Ledger::write_with`].
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL ledger's failure: a lost connection, a serialization failure or
    /// deadlock (`40001`, `40P01`), a statement refused. Transient, as SQLite's are.
    #[error("ledger database error (PostgreSQL): {}", postgres_detail(.0))]
    Postgres(#[from] postgres::Error),
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
    /// The request contradicts what the ledger recorded: a file path emitted with other
    /// bytes, a batch group announced with another count or holding more items than
    /// announced, a reservation changed concurrently. Not a database failure, and not a
    /// business refusal (those are the stage's own errors).
    #[error("ledger conflict: {0}")]
    Conflict(String),
    /// The ledger holds a value this code never writes (an unknown enum text, an unparsable
    /// date or amount, a row that should have been written earlier in the same flow).
    #[error("ledger holds unexpected data: {0}")]
    Corrupt(String),
    /// The database cannot serve as a ledger (a journal mode it refuses), or the operation
    /// has no implementation for its backend yet (an area not ported to PostgreSQL).
    #[error("ledger unsupported: {0}")]
    Unsupported(String),
}

impl LedgerError {
    /// Whether retrying later can help. A conflict, corrupt data or an unsupported database
    /// stay what they are.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            LedgerError::Conflict(_) | LedgerError::Corrupt(_) | LedgerError::Unsupported(_)
        )
    }

    /// Short machine kind (groups parked messages, labels metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerError::Conflict(_) => "ledger_conflict",
            LedgerError::Corrupt(_) => "ledger_corrupt",
            LedgerError::Unsupported(_) => "ledger_unsupported",
            _ => "ledger",
        }
    }
}

/// The server's own message and SQLSTATE: the driver's `Display` alone says "db error".
pub(crate) fn postgres_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}
