//! The backend-neutral transaction and the stores of the areas already ported to both
//! backends: **core** (`processed_message`, `emitted_file`, `invoice_event`,
//! `schema_migration`), **batch** (`batch_group`, `batch_item`), **ops**
//! (`parked_message`, `parked_action`, `console_action`) and part of **sepa**
//! (`sepa_mandate`, the uses in `sepa_collection`, `sepa_event`, `sepa_invoice`,
//! `sepa_return_record`).
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
use crate::ops::{
    Action, AuditEntry, Filter, Group, Marked, ParkedMessage, ParkedRecord, ParkedSummary,
    Resolution, Waiting,
};
use crate::processed::ProcessedMessage;
use crate::sepa::{BankRecord, MandateRow, NewUse, PendingEvent, UseRow, Uses};

/// One ledger transaction, on whichever backend the ledger runs.
pub struct Tx<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Sqlite(&'a Connection),
    /// A pooled connection inside `BEGIN` … `COMMIT`, and its prepared statements.
    Postgres(&'a mut postgres::Client, &'a mut crate::sql::StatementCache),
}

impl<'a> Tx<'a> {
    /// The neutral view of an SQLite connection (inside [`crate::Ledger::write`], `preview`'s
    /// in-memory sandbox, a read-only view from outside the daemon).
    pub fn sqlite(conn: &'a Connection) -> Self {
        Tx {
            inner: Inner::Sqlite(conn),
        }
    }

    pub(crate) fn postgres(
        client: &'a mut postgres::Client,
        statements: &'a mut crate::sql::StatementCache,
    ) -> Self {
        Tx {
            inner: Inner::Postgres(client, statements),
        }
    }

    /// The connection (and statement cache) for the portable statement runners.
    pub(crate) fn parts(&mut self) -> crate::sql::Parts<'_> {
        match &mut self.inner {
            Inner::Sqlite(conn) => crate::sql::Parts::Sqlite(conn),
            Inner::Postgres(client, statements) => crate::sql::Parts::Postgres(client, statements),
        }
    }

    /// Which backend this transaction runs on (`sqlite`, `postgres`), for logs and tests.
    pub fn backend(&self) -> &'static str {
        match self.inner {
            Inner::Sqlite(_) => "sqlite",
            Inner::Postgres(..) => "postgres",
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
    /// When each tenant last wrote a file of each kind: `(tenant, kind, written_at)`.
    #[allow(clippy::type_complexity)]
    fn last_written(&mut self) -> Result<Vec<(String, String, String)>, LedgerError>;
    /// Records a written file (idempotent for the same content); a path recorded with other
    /// content is a [`LedgerError::Conflict`].
    fn record_file(&mut self, file: &NewFile) -> Result<EmittedFile, LedgerError>;
    /// Records a fact about an invoice (one row per `dedupe_key` when it is set).
    fn record_fact(&mut self, fact: &InvoiceFact) -> Result<(), LedgerError>;
    /// [`CoreStore::record_fact`] for many facts, in a few multi-row statements, recorded in
    /// their order.
    fn record_facts(&mut self, facts: &[InvoiceFact]) -> Result<(), LedgerError>;
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

/// The ops area: messages parked by the stages (drained from their parking lots), what ops
/// did with them, and the console's audit trail.
pub trait OpsStore {
    /// Stores a drained message: `Some(id)` when new, `None` when the same message (same
    /// fingerprint) was stored before, also concurrently: a redelivery to the drain.
    fn record_parked(&mut self, record: &ParkedRecord) -> Result<Option<i64>, LedgerError>;
    /// Parked messages matching `filter`, newest first, at most `limit`.
    fn list_parked(
        &mut self,
        filter: &Filter,
        limit: u32,
    ) -> Result<Vec<ParkedSummary>, LedgerError>;
    /// The ids matching `filter`, oldest first (the order a replay republishes them in).
    fn parked_ids(&mut self, filter: &Filter) -> Result<Vec<i64>, LedgerError>;
    /// Messages matching `filter` grouped by stage and error kind, largest group first.
    fn parked_groups(&mut self, filter: &Filter) -> Result<Vec<Group>, LedgerError>;
    /// One parked message, whole.
    fn parked(&mut self, id: i64) -> Result<Option<ParkedMessage>, LedgerError>;
    /// The other times the same message (stage and message id) was parked, oldest first.
    fn earlier_parkings(
        &mut self,
        message: &ParkedMessage,
    ) -> Result<Vec<ParkedSummary>, LedgerError>;
    /// The audit trail of a parked message, oldest first.
    fn parked_actions(&mut self, id: i64) -> Result<Vec<Action>, LedgerError>;
    /// Marks a message replayed (only if still parked: exactly one of concurrent callers),
    /// with who, when and where to (`detail`, JSON), and its audit row.
    fn mark_replayed(
        &mut self,
        id: i64,
        at: &str,
        by: &str,
        detail: &str,
    ) -> Result<Marked, LedgerError>;
    /// Discards a message (only if still parked): its row and bytes stay, with the reason.
    fn discard_parked(
        &mut self,
        id: i64,
        at: &str,
        by: &str,
        reason: &str,
    ) -> Result<Marked, LedgerError>;
    /// Messages still parked per stage, kind and class, with the oldest (the gauges).
    fn waiting_by_group(&mut self) -> Result<Vec<Waiting>, LedgerError>;
    /// Records an action taken in the console.
    fn record_console_action(&mut self, entry: &AuditEntry) -> Result<(), LedgerError>;
    /// The console's actions, newest first, `limit` of them after skipping `offset`.
    fn console_actions(&mut self, limit: u32, offset: u32) -> Result<Vec<AuditEntry>, LedgerError>;
}

/// The sepa area's operations ported so far: mandates and their uses (the rows the mandate
/// history reads), the `payment.rejected` events waiting to be published, the invoices kept
/// for re-presentation, the bank records already handled.
pub trait SepaStore {
    /// A mandate (by tenant and RUM key), as read.
    fn sepa_mandate(
        &mut self,
        tenant: &str,
        rum_key: &str,
    ) -> Result<Option<MandateRow>, LedgerError>;
    /// A mandate, locked until the transaction ends (`FOR UPDATE` on PostgreSQL; SQLite's
    /// writer is the lock): take it before deciding a use, so that two decisions on one
    /// mandate follow one another.
    fn lock_sepa_mandate(
        &mut self,
        tenant: &str,
        rum_key: &str,
    ) -> Result<Option<MandateRow>, LedgerError>;
    /// Records a new mandate; `false` when it exists (also created concurrently: then lock
    /// and read it).
    fn insert_sepa_mandate(
        &mut self,
        tenant: &str,
        rum_key: &str,
        mandate: &MandateRow,
        at: &str,
    ) -> Result<bool, LedgerError>;
    /// Replaces what is known of a mandate.
    fn update_sepa_mandate(
        &mut self,
        tenant: &str,
        rum_key: &str,
        mandate: &MandateRow,
        at: &str,
    ) -> Result<(), LedgerError>;
    /// The use of presentation `attempt` of an invoice.
    fn sepa_use(
        &mut self,
        tenant: &str,
        invoice_key: &str,
        attempt: i64,
    ) -> Result<Option<UseRow>, LedgerError>;
    /// The use a bank's end-to-end id names.
    fn sepa_use_by_end_to_end_id(
        &mut self,
        tenant: &str,
        end_to_end_id: &str,
    ) -> Result<Option<UseRow>, LedgerError>;
    /// The uses of a mandate or of a file, in the order [`Uses`] says.
    fn sepa_uses(&mut self, tenant: &str, which: &Uses<'_>) -> Result<Vec<UseRow>, LedgerError>;
    /// Records a use, status `planned`.
    fn plan_sepa_use(&mut self, new: &NewUse<'_>) -> Result<(), LedgerError>;
    /// Moves a use's due date.
    fn set_sepa_use_due_date(
        &mut self,
        tenant: &str,
        invoice_key: &str,
        attempt: i64,
        due_date: &str,
    ) -> Result<(), LedgerError>;
    /// Forgets a use (to decide it again).
    fn delete_sepa_use(
        &mut self,
        tenant: &str,
        invoice_key: &str,
        attempt: i64,
    ) -> Result<(), LedgerError>;
    /// Queues an event for publication; `false` when its message id was queued before
    /// (also concurrently: exactly one caller queues it).
    fn queue_sepa_event(&mut self, event: &PendingEvent) -> Result<bool, LedgerError>;
    /// The bodies of the events `origin` queued for `tenant` and did not hand over yet,
    /// oldest first (then by message id).
    fn pending_sepa_events(
        &mut self,
        tenant: &str,
        origin: &str,
    ) -> Result<Vec<Vec<u8>>, LedgerError>;
    /// Marks events published (or handed to the runtime's outbox) at `at`; an event marked
    /// before keeps its first time.
    fn mark_sepa_events_handed(
        &mut self,
        message_ids: &[String],
        at: &str,
    ) -> Result<(), LedgerError>;
    /// Keeps the encoded `invoice.issued` of a direct-debit invoice; the first one wins
    /// (`false` when one was kept before).
    fn keep_sepa_invoice(
        &mut self,
        tenant: &str,
        invoice_key: &str,
        payload: &[u8],
    ) -> Result<bool, LedgerError>;
    /// The kept `invoice.issued` of an invoice, encoded.
    fn kept_sepa_invoice(
        &mut self,
        tenant: &str,
        invoice_key: &str,
    ) -> Result<Option<Vec<u8>>, LedgerError>;
    /// Whether a bank record (by its idempotency key) was handled already.
    fn bank_record_seen(&mut self, tenant: &str, key: &str) -> Result<bool, LedgerError>;
    /// Records that a bank record was handled, and how; `false` when it was recorded before
    /// (the first outcome stays).
    fn record_bank_record(&mut self, record: &BankRecord) -> Result<bool, LedgerError>;
}

/// Runs the SQLite or the PostgreSQL implementation of one operation.
macro_rules! dispatch {
    ($tx:expr, $sqlite:path, $postgres:path $(, $arg:expr)*) => {
        match &mut $tx.inner {
            Inner::Sqlite(conn) => $sqlite(conn $(, $arg)*),
            Inner::Postgres(client, statements) => {
                $postgres(&mut crate::pg::Prepared::new(client, statements) $(, $arg)*)
            }
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

    fn last_written(&mut self) -> Result<Vec<(String, String, String)>, LedgerError> {
        dispatch!(
            self,
            crate::files::last_written_in,
            crate::pg::core::last_written
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
        self.record_facts(std::slice::from_ref(fact))
    }

    fn record_facts(&mut self, facts: &[InvoiceFact]) -> Result<(), LedgerError> {
        /// Facts per statement (six parameters each).
        const PER_STATEMENT: usize = 100;
        for chunk in facts.chunks(PER_STATEMENT) {
            let mut params: Vec<&dyn crate::sql::Param> = Vec::with_capacity(chunk.len() * 6);
            for fact in chunk {
                params.extend([
                    &fact.invoice_key as &dyn crate::sql::Param,
                    &fact.tenant,
                    &fact.at,
                    &fact.kind,
                    &fact.detail,
                    &fact.dedupe_key,
                ]);
            }
            self.execute(
                &format!(
                    "INSERT INTO invoice_event (invoice_key, tenant, at, kind, detail, dedupe_key)
                     VALUES {} ON CONFLICT (dedupe_key) DO NOTHING",
                    crate::sql::value_rows(chunk.len(), 6)
                ),
                &params,
            )?;
        }
        Ok(())
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

impl OpsStore for Tx<'_> {
    fn record_parked(&mut self, record: &ParkedRecord) -> Result<Option<i64>, LedgerError> {
        dispatch!(self, crate::ops::insert, crate::pg::ops::insert, record)
    }

    fn list_parked(
        &mut self,
        filter: &Filter,
        limit: u32,
    ) -> Result<Vec<ParkedSummary>, LedgerError> {
        dispatch!(self, crate::ops::list, crate::pg::ops::list, filter, limit)
    }

    fn parked_ids(&mut self, filter: &Filter) -> Result<Vec<i64>, LedgerError> {
        dispatch!(self, crate::ops::ids, crate::pg::ops::ids, filter)
    }

    fn parked_groups(&mut self, filter: &Filter) -> Result<Vec<Group>, LedgerError> {
        dispatch!(self, crate::ops::groups, crate::pg::ops::groups, filter)
    }

    fn parked(&mut self, id: i64) -> Result<Option<ParkedMessage>, LedgerError> {
        dispatch!(self, crate::ops::get, crate::pg::ops::get, id)
    }

    fn earlier_parkings(
        &mut self,
        message: &ParkedMessage,
    ) -> Result<Vec<ParkedSummary>, LedgerError> {
        dispatch!(
            self,
            crate::ops::earlier_parkings,
            crate::pg::ops::earlier_parkings,
            message
        )
    }

    fn parked_actions(&mut self, id: i64) -> Result<Vec<Action>, LedgerError> {
        dispatch!(self, crate::ops::actions, crate::pg::ops::actions, id)
    }

    fn mark_replayed(
        &mut self,
        id: i64,
        at: &str,
        by: &str,
        detail: &str,
    ) -> Result<Marked, LedgerError> {
        let resolution = Resolution::replay(at, by, detail);
        dispatch!(
            self,
            crate::ops::resolve,
            crate::pg::ops::resolve,
            id,
            &resolution
        )
    }

    fn discard_parked(
        &mut self,
        id: i64,
        at: &str,
        by: &str,
        reason: &str,
    ) -> Result<Marked, LedgerError> {
        let resolution = Resolution::discard(at, by, reason);
        dispatch!(
            self,
            crate::ops::resolve,
            crate::pg::ops::resolve,
            id,
            &resolution
        )
    }

    fn waiting_by_group(&mut self) -> Result<Vec<Waiting>, LedgerError> {
        dispatch!(
            self,
            crate::ops::waiting_by_group,
            crate::pg::ops::waiting_by_group
        )
    }

    fn record_console_action(&mut self, entry: &AuditEntry) -> Result<(), LedgerError> {
        dispatch!(
            self,
            crate::ops::record_console_action,
            crate::pg::ops::record_console_action,
            entry
        )
    }

    fn console_actions(&mut self, limit: u32, offset: u32) -> Result<Vec<AuditEntry>, LedgerError> {
        dispatch!(
            self,
            crate::ops::console_actions,
            crate::pg::ops::console_actions,
            limit,
            offset
        )
    }
}

impl SepaStore for Tx<'_> {
    fn sepa_mandate(
        &mut self,
        tenant: &str,
        rum_key: &str,
    ) -> Result<Option<MandateRow>, LedgerError> {
        dispatch!(
            self,
            crate::sepa::mandate,
            crate::pg::sepa::mandate,
            tenant,
            rum_key,
            false
        )
    }

    fn lock_sepa_mandate(
        &mut self,
        tenant: &str,
        rum_key: &str,
    ) -> Result<Option<MandateRow>, LedgerError> {
        dispatch!(
            self,
            crate::sepa::mandate,
            crate::pg::sepa::mandate,
            tenant,
            rum_key,
            true
        )
    }

    fn insert_sepa_mandate(
        &mut self,
        tenant: &str,
        rum_key: &str,
        mandate: &MandateRow,
        at: &str,
    ) -> Result<bool, LedgerError> {
        dispatch!(
            self,
            crate::sepa::insert_mandate,
            crate::pg::sepa::insert_mandate,
            tenant,
            rum_key,
            mandate,
            at
        )
    }

    fn update_sepa_mandate(
        &mut self,
        tenant: &str,
        rum_key: &str,
        mandate: &MandateRow,
        at: &str,
    ) -> Result<(), LedgerError> {
        dispatch!(
            self,
            crate::sepa::update_mandate,
            crate::pg::sepa::update_mandate,
            tenant,
            rum_key,
            mandate,
            at
        )
    }

    fn sepa_use(
        &mut self,
        tenant: &str,
        invoice_key: &str,
        attempt: i64,
    ) -> Result<Option<UseRow>, LedgerError> {
        dispatch!(
            self,
            crate::sepa::use_of,
            crate::pg::sepa::use_of,
            tenant,
            invoice_key,
            attempt
        )
    }

    fn sepa_use_by_end_to_end_id(
        &mut self,
        tenant: &str,
        end_to_end_id: &str,
    ) -> Result<Option<UseRow>, LedgerError> {
        dispatch!(
            self,
            crate::sepa::use_by_end_to_end_id,
            crate::pg::sepa::use_by_end_to_end_id,
            tenant,
            end_to_end_id
        )
    }

    fn sepa_uses(&mut self, tenant: &str, which: &Uses<'_>) -> Result<Vec<UseRow>, LedgerError> {
        dispatch!(
            self,
            crate::sepa::uses,
            crate::pg::sepa::uses,
            tenant,
            which
        )
    }

    fn plan_sepa_use(&mut self, new: &NewUse<'_>) -> Result<(), LedgerError> {
        dispatch!(
            self,
            crate::sepa::insert_use,
            crate::pg::sepa::insert_use,
            new
        )
    }

    fn set_sepa_use_due_date(
        &mut self,
        tenant: &str,
        invoice_key: &str,
        attempt: i64,
        due_date: &str,
    ) -> Result<(), LedgerError> {
        dispatch!(
            self,
            crate::sepa::set_due_date,
            crate::pg::sepa::set_due_date,
            tenant,
            invoice_key,
            attempt,
            due_date
        )
    }

    fn delete_sepa_use(
        &mut self,
        tenant: &str,
        invoice_key: &str,
        attempt: i64,
    ) -> Result<(), LedgerError> {
        dispatch!(
            self,
            crate::sepa::delete_use,
            crate::pg::sepa::delete_use,
            tenant,
            invoice_key,
            attempt
        )
    }

    fn queue_sepa_event(&mut self, event: &PendingEvent) -> Result<bool, LedgerError> {
        dispatch!(
            self,
            crate::sepa::insert_event,
            crate::pg::sepa::insert_event,
            event
        )
    }

    fn pending_sepa_events(
        &mut self,
        tenant: &str,
        origin: &str,
    ) -> Result<Vec<Vec<u8>>, LedgerError> {
        dispatch!(
            self,
            crate::sepa::pending_events,
            crate::pg::sepa::pending_events,
            tenant,
            origin
        )
    }

    fn mark_sepa_events_handed(
        &mut self,
        message_ids: &[String],
        at: &str,
    ) -> Result<(), LedgerError> {
        dispatch!(
            self,
            crate::sepa::mark_handed,
            crate::pg::sepa::mark_handed,
            message_ids,
            at
        )
    }

    fn keep_sepa_invoice(
        &mut self,
        tenant: &str,
        invoice_key: &str,
        payload: &[u8],
    ) -> Result<bool, LedgerError> {
        dispatch!(
            self,
            crate::sepa::keep_invoice,
            crate::pg::sepa::keep_invoice,
            tenant,
            invoice_key,
            payload
        )
    }

    fn kept_sepa_invoice(
        &mut self,
        tenant: &str,
        invoice_key: &str,
    ) -> Result<Option<Vec<u8>>, LedgerError> {
        dispatch!(
            self,
            crate::sepa::kept_invoice,
            crate::pg::sepa::kept_invoice,
            tenant,
            invoice_key
        )
    }

    fn bank_record_seen(&mut self, tenant: &str, key: &str) -> Result<bool, LedgerError> {
        dispatch!(
            self,
            crate::sepa::record_seen,
            crate::pg::sepa::record_seen,
            tenant,
            key
        )
    }

    fn record_bank_record(&mut self, record: &BankRecord) -> Result<bool, LedgerError> {
        dispatch!(
            self,
            crate::sepa::record_handled,
            crate::pg::sepa::record_handled,
            record
        )
    }
}
