//! The backend-neutral transaction and the stores of the areas already ported to both
//! backends: **core** (`processed_message`, `emitted_file`, `invoice_event`,
//! `schema_migration`) and **batch** (`batch_group`, `batch_item`).
//!
//! A store is a trait of named operations over a [`Tx`], the transaction that
//! [`Ledger::transact`](crate::Ledger::transact) or [`Ledger::inspect`](crate::Ledger::inspect)
//! hands to its closure. Each operation has one implementation per backend: on SQLite the SQL
//! the stages ran before (the free functions of [`crate::batch`], [`crate::processed`], …,
//! still callable on a `rusqlite::Connection` by the areas not ported yet); on PostgreSQL
//! [`crate::pg`]. The contract tests (`ledger/tests/contract.rs`) run every operation
//! on both.

use rusqlite::Connection;

use crate::batch::{AddOutcome, BatchItem, BatchKey};
use crate::error::LedgerError;
use crate::files::{EmittedFile, NewFile};
use crate::journal::InvoiceFact;
use crate::processed::ProcessedMessage;

/// One ledger transaction, on whichever backend the ledger runs.
pub struct Tx<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Sqlite(&'a Connection),
    /// A pooled connection inside `BEGIN` … `COMMIT`.
    Postgres(&'a mut postgres::Client),
}

/// An area that runs only on SQLite so far.
fn not_ported() -> LedgerError {
    LedgerError::Unsupported(
        "this ledger operation has no PostgreSQL implementation yet (docs/scaling.md)".into(),
    )
}

impl<'a> Tx<'a> {
    /// The neutral view of an SQLite transaction (inside [`crate::Ledger::write`]), for a
    /// caller mixing ported operations with SQL of an area not ported yet.
    pub fn sqlite(conn: &'a Connection) -> Self {
        Tx {
            inner: Inner::Sqlite(conn),
        }
    }

    pub(crate) fn postgres(client: &'a mut postgres::Client) -> Self {
        Tx {
            inner: Inner::Postgres(client),
        }
    }

    /// The SQLite connection, for the operations of areas not ported to PostgreSQL yet;
    /// [`LedgerError::Unsupported`] on PostgreSQL.
    pub fn sqlite_connection(&self) -> Result<&Connection, LedgerError> {
        match &self.inner {
            Inner::Sqlite(conn) => Ok(conn),
            Inner::Postgres(_) => Err(not_ported()),
        }
    }

    /// Which backend this transaction runs on (`sqlite`, `postgres`), for logs and tests.
    pub fn backend(&self) -> &'static str {
        match self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(_) => "postgres",
        }
    }
}

/// The core area: message deduplication, emitted files, the invoices' journal, the applied
/// migrations.
pub trait CoreStore {
    /// The record of `(stage, message_id)` if that message was processed.
    fn processed(
        &mut self,
        stage: &str,
        message_id: &str,
    ) -> Result<Option<ProcessedMessage>, LedgerError>;
    /// Records a processed message; `false` (nothing changed) when it was already recorded,
    /// also when another transaction recorded it concurrently: exactly one wins.
    fn record_processed(&mut self, message: &ProcessedMessage) -> Result<bool, LedgerError>;
    /// Deletes the records processed before `before` (the ledger's one time format);
    /// returns how many went.
    fn prune_processed(&mut self, before: &str) -> Result<usize, LedgerError>;
    /// The record of an emitted file by its path.
    fn file_by_path(&mut self, path: &str) -> Result<Option<EmittedFile>, LedgerError>;
    /// Records a written file (idempotent for the same content); a path recorded with other
    /// content is a [`LedgerError::Conflict`].
    fn record_file(&mut self, file: &NewFile) -> Result<EmittedFile, LedgerError>;
    /// Records a fact about an invoice (one row per `dedupe_key` when it is set).
    fn record_fact(&mut self, fact: &InvoiceFact) -> Result<(), LedgerError>;
    /// Every fact about an invoice, in time order (then recording order).
    fn facts_of(&mut self, invoice_key: &str) -> Result<Vec<InvoiceFact>, LedgerError>;
    /// The applied migrations, `(area, version)` in area then version order.
    fn applied_migrations(&mut self) -> Result<Vec<(String, u32)>, LedgerError>;
}

/// The batch area: a billing run's items collected per group, each group closed once.
pub trait BatchStore {
    /// Adds an item to its batch (idempotent); refuses an item of a closed group or known
    /// elsewhere ([`AddOutcome::Conflict`]).
    fn add_item(
        &mut self,
        key: &BatchKey,
        item_key: &str,
        content_hash: &str,
        payload: &[u8],
    ) -> Result<AddOutcome, LedgerError>;
    /// Records the announced count; another count later is a [`LedgerError::Conflict`].
    fn set_expected(&mut self, key: &BatchKey, expected: u32) -> Result<(), LedgerError>;
    /// Items collected so far and the announced count.
    fn progress(&mut self, key: &BatchKey) -> Result<(u32, Option<u32>), LedgerError>;
    /// Closes a complete group: `true` for exactly one caller, even concurrently.
    fn close_if_complete(&mut self, key: &BatchKey) -> Result<bool, LedgerError>;
    /// Streams a group's items in key order (byte order on both backends).
    fn visit_items<E, F>(&mut self, key: &BatchKey, visit: F) -> Result<(), E>
    where
        E: From<LedgerError>,
        F: FnMut(BatchItem) -> Result<(), E>;
    /// Every item of a group, in key order.
    fn items(&mut self, key: &BatchKey) -> Result<Vec<BatchItem>, LedgerError> {
        let mut items = Vec::new();
        self.visit_items(key, |item| {
            items.push(item);
            Ok::<_, LedgerError>(())
        })?;
        Ok(items)
    }
    /// A stage's groups still open: key, items received, announced count.
    #[allow(clippy::type_complexity)]
    fn open_groups(
        &mut self,
        stage: &str,
    ) -> Result<Vec<(BatchKey, u32, Option<u32>)>, LedgerError>;
}

/// Runs the SQLite or the PostgreSQL implementation of one operation.
macro_rules! dispatch {
    ($tx:expr, $sqlite:path, $postgres:path $(, $arg:expr)*) => {
        match &mut $tx.inner {
            Inner::Sqlite(conn) => $sqlite(conn $(, $arg)*),
            Inner::Postgres(client) => $postgres(client $(, $arg)*),
        }
    };
}

impl CoreStore for Tx<'_> {
    fn processed(
        &mut self,
        stage: &str,
        message_id: &str,
    ) -> Result<Option<ProcessedMessage>, LedgerError> {
        dispatch!(
            self,
            crate::Ledger::processed_in,
            crate::pg::core::processed,
            stage,
            message_id
        )
    }

    fn record_processed(&mut self, message: &ProcessedMessage) -> Result<bool, LedgerError> {
        dispatch!(
            self,
            crate::Ledger::record_processed_in,
            crate::pg::core::record_processed,
            message
        )
    }

    fn prune_processed(&mut self, before: &str) -> Result<usize, LedgerError> {
        dispatch!(
            self,
            crate::processed::prune_in,
            crate::pg::core::prune_processed,
            before
        )
    }

    fn file_by_path(&mut self, path: &str) -> Result<Option<EmittedFile>, LedgerError> {
        dispatch!(
            self,
            crate::files::file_by_path_in,
            crate::pg::core::file_by_path,
            path
        )
    }

    fn record_file(&mut self, file: &NewFile) -> Result<EmittedFile, LedgerError> {
        dispatch!(
            self,
            crate::files::record_file_in,
            crate::pg::core::record_file,
            file
        )
    }

    fn record_fact(&mut self, fact: &InvoiceFact) -> Result<(), LedgerError> {
        dispatch!(
            self,
            crate::Ledger::record_invoice_fact_in,
            crate::pg::core::record_fact,
            fact
        )
    }

    fn facts_of(&mut self, invoice_key: &str) -> Result<Vec<InvoiceFact>, LedgerError> {
        dispatch!(
            self,
            crate::journal::facts_of_in,
            crate::pg::core::facts_of,
            invoice_key
        )
    }

    fn applied_migrations(&mut self) -> Result<Vec<(String, u32)>, LedgerError> {
        dispatch!(
            self,
            crate::migrations::applied_in,
            crate::pg::core::applied_migrations
        )
    }
}

impl BatchStore for Tx<'_> {
    fn add_item(
        &mut self,
        key: &BatchKey,
        item_key: &str,
        content_hash: &str,
        payload: &[u8],
    ) -> Result<AddOutcome, LedgerError> {
        dispatch!(
            self,
            crate::batch::add_item,
            crate::pg::batch::add_item,
            key,
            item_key,
            content_hash,
            payload
        )
    }

    fn set_expected(&mut self, key: &BatchKey, expected: u32) -> Result<(), LedgerError> {
        dispatch!(
            self,
            crate::batch::set_expected,
            crate::pg::batch::set_expected,
            key,
            expected
        )
    }

    fn progress(&mut self, key: &BatchKey) -> Result<(u32, Option<u32>), LedgerError> {
        dispatch!(
            self,
            crate::batch::progress,
            crate::pg::batch::progress,
            key
        )
    }

    fn close_if_complete(&mut self, key: &BatchKey) -> Result<bool, LedgerError> {
        dispatch!(
            self,
            crate::batch::close_if_complete,
            crate::pg::batch::close_if_complete,
            key
        )
    }

    fn visit_items<E, F>(&mut self, key: &BatchKey, visit: F) -> Result<(), E>
    where
        E: From<LedgerError>,
        F: FnMut(BatchItem) -> Result<(), E>,
    {
        dispatch!(
            self,
            crate::batch::visit_items,
            crate::pg::batch::visit_items,
            key,
            visit
        )
    }

    fn open_groups(
        &mut self,
        stage: &str,
    ) -> Result<Vec<(BatchKey, u32, Option<u32>)>, LedgerError> {
        dispatch!(
            self,
            crate::batch::open_groups,
            crate::pg::batch::open_groups,
            stage
        )
    }
}
