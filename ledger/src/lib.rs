//! The ledger: an embedded SQLite database (`<data_dir>/ledger.sqlite`, WAL) holding what must
//! survive a restart (DESIGN §4), or a PostgreSQL database for the areas already ported
//! there ([`stores`], docs/scaling.md).
//!
//! Writes go through one writer thread that **group-commits**: every write request that
//! arrives while a transaction is being committed joins the next one, each inside its own
//! savepoint (a failing request rolls back alone). With `synchronous=FULL` a commit is
//! durable when its caller is answered, and the fsync cost is shared by every concurrent
//! writer — the ledger keeps up with the broker instead of paying one fsync per message.
//! Reads use a small pool of read-only connections and never wait for the writer (WAL).
//!
//! Each area of the code (core, polyfac, helios, …) owns its tables and registers its own
//! migrations in [`migrations::ALL`], so areas evolve without renumbering each other.

pub mod access;
pub mod batch;
mod checkpoint;
pub mod clock;
pub mod cluster;
mod error;
pub mod files;
pub mod journal;
pub mod migrations;
pub mod ops;
mod pg;
pub mod plan;
pub mod processed;
pub mod sandbox;
pub mod sepa;
pub mod sql;
mod store;
pub mod stores;
pub mod testing;
pub mod transfer;
pub mod url;

pub use cluster::ClusterStore;
pub use error::LedgerError;
pub use files::{EmittedFile, write_atomically};
pub use journal::InvoiceFact;
pub use processed::ProcessedMessage;
pub use rusqlite;
pub use store::Ledger;
pub use stores::{BatchStore, CoreStore, OpsStore, SepaStore, Tx};
pub use url::{LedgerUrl, UrlError};
