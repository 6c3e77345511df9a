//! The SQL of the PayFiP tables (`ledger/migrations/payfip_0001.sql`, and its PostgreSQL
//! twin). Plain functions over a ledger transaction ([`Tx`], SQLite or PostgreSQL), so that
//! callers compose them inside one transaction (`Ledger::transact`, `Handled::commit_with`).
//! Times are stored as RFC 3339 UTC with microseconds (they sort as text); amounts as integer
//! cents. Nothing here logs: the e-mail column is personal data.
//!
//! Several daemons may share a PostgreSQL ledger, each transaction at `READ COMMITTED`. What
//! is decided once is decided by the database, not by a read followed by a write:
//! reserving an attempt locks the invoice's row first ([`lock_invoice`]), so two requests
//! for one invoice are served one after the other; claiming a notification, resolving an
//! attempt, opening a reservation, settling a claim are conditional `UPDATE`s that only the
//! first transaction matches (a second one waits for the row, then finds the condition
//! false); payments, invoices, titres and credit notes are upserts on their keys.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use encaisse_ledger::sql::Row;
use encaisse_ledger::{LedgerError, Tx};
use encaisse_payfip::{PayfipMode, Resultrans};
use encaisse_schemas::{CollectionPath, InvoiceRef, Money, TenantId, TitreRef};

/// A time as the PayFiP tables store it.
pub fn ts(at: DateTime<Utc>) -> String {
    encaisse_ledger::clock::format(at)
}

fn bad_value(column: usize, what: String) -> LedgerError {
    LedgerError::Corrupt(format!("payfip column {column}: {what}"))
}

fn time_at(row: &Row<'_>, column: usize) -> Result<Option<DateTime<Utc>>, LedgerError> {
    let text: Option<String> = row.get(column)?;
    text.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|d| d.to_utc())
            .map_err(|e| bad_value(column, format!("time {t:?}: {e}")))
    })
    .transpose()
}

fn money_at(row: &Row<'_>, column: usize) -> Result<Money, LedgerError> {
    let cents: i64 = row.get(column)?;
    Money::from_cents(cents).map_err(|e| bad_value(column, e.to_string()))
}

fn tenant_at(row: &Row<'_>, column: usize) -> Result<TenantId, LedgerError> {
    let text: String = row.get(column)?;
    TenantId::new(text).map_err(|e| bad_value(column, e.to_string()))
}

fn date_at(row: &Row<'_>, column: usize) -> Result<NaiveDate, LedgerError> {
    let text: String = row.get(column)?;
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|e| bad_value(column, format!("date {text:?}: {e}")))
}

fn collection_text(c: CollectionPath) -> &'static str {
    match c {
        CollectionPath::Titres => "titres",
        CollectionPath::Regie => "regie",
    }
}

/// `test`, `activation`, `production`.
pub fn mode_text(mode: PayfipMode) -> &'static str {
    match mode {
        PayfipMode::Test => "test",
        PayfipMode::Activation => "activation",
        PayfipMode::Production => "production",
    }
}

fn mode_from(text: &str) -> Option<PayfipMode> {
    match text {
        "test" => Some(PayfipMode::Test),
        "activation" => Some(PayfipMode::Activation),
        "production" => Some(PayfipMode::Production),
        _ => None,
    }
}

/// ` INDEXED BY <index>` on SQLite, nothing on PostgreSQL (whose planner has statistics and
/// no such clause).
fn indexed_by(tx: &Tx<'_>, index: &str) -> String {
    if tx.is_postgres() {
        String::new()
    } else {
        format!(" INDEXED BY {index}")
    }
}

/// Locks the invoice's row until the transaction ends (PostgreSQL; SQLite's single writer
/// already runs write transactions one at a time). Every decision about an invoice's
/// attempts takes this lock first, so two daemons deciding for the same invoice are
/// serialized and the second reads what the first committed.
fn lock_invoice(tx: &mut Tx<'_>, invoice: &InvoiceRef) -> Result<(), LedgerError> {
    if tx.is_postgres() {
        tx.query_opt(
            "SELECT 1 FROM payfip_invoice WHERE tenant = ?1 AND exercice = ?2 AND number = ?3
             FOR UPDATE",
            &[&invoice.tenant.as_str(), &invoice.exercice, &invoice.number],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// [`lock_invoice`] for the invoice of an attempt.
fn lock_invoice_of(tx: &mut Tx<'_>, op_id: &str) -> Result<(), LedgerError> {
    if tx.is_postgres() {
        tx.query_opt(
            "SELECT 1 FROM payfip_invoice i
             WHERE (i.tenant, i.exercice, i.number) =
                   (SELECT o.tenant, o.exercice, o.number FROM payfip_operation o
                    WHERE o.op_id = ?1)
             FOR UPDATE",
            &[&op_id],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Invoices, titres, payments (payfip.register)

/// What the payment API needs of an invoice (from `invoice.issued`).
#[derive(Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    pub invoice: InvoiceRef,
    pub content_hash: String,
    pub amount: Money,
    /// The payer's address: personal data (`Debug` masks it).
    pub email: Option<String>,
    pub collection: CollectionPath,
    pub budget: String,
    pub regie: Option<String>,
    /// PayFiP client number of its budget (titres) or régie, when configured.
    pub numcli: Option<String>,
    pub online_payable: bool,
    pub issued_on: NaiveDate,
}

impl fmt::Debug for InvoiceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvoiceRecord")
            .field("invoice", &self.invoice.key())
            .field("amount", &self.amount)
            .field(
                "email",
                &self.email.as_deref().map(encaisse_schemas::mask::email),
            )
            .field("collection", &self.collection)
            .field("budget", &self.budget)
            .field("regie", &self.regie)
            .field("numcli", &self.numcli)
            .field("online_payable", &self.online_payable)
            .finish()
    }
}

/// Records (or updates, for a corrected invoice) what the API needs of an invoice.
pub fn upsert_invoice(tx: &mut Tx<'_>, r: &InvoiceRecord, now: &str) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO payfip_invoice (tenant, exercice, number, content_hash, amount_cents, email,
             collection, budget, regie, numcli, online_payable, issued_on, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (tenant, exercice, number) DO UPDATE SET
             content_hash = excluded.content_hash, amount_cents = excluded.amount_cents,
             email = excluded.email, collection = excluded.collection, budget = excluded.budget,
             regie = excluded.regie, numcli = excluded.numcli,
             online_payable = excluded.online_payable, issued_on = excluded.issued_on,
             updated_at = excluded.updated_at",
        &[
            &r.invoice.tenant.as_str(),
            &r.invoice.exercice,
            &r.invoice.number,
            &r.content_hash,
            &r.amount.cents(),
            &r.email,
            &collection_text(r.collection),
            &r.budget,
            &r.regie,
            &r.numcli,
            &r.online_payable,
            &r.issued_on.format("%Y-%m-%d").to_string(),
            &now,
        ],
    )?;
    Ok(())
}

/// `amount_cents` is what remains to collect: the invoice's amount less its credit notes —
/// at once for a régie invoice (the régie collects it), once their réduction titre is taken
/// in charge for a titre (until then the Trésorerie collects the whole titre). Cast back to
/// `BIGINT`: PostgreSQL sums `bigint` as `numeric`.
const INVOICE_COLUMNS: &str = "tenant, exercice, number, content_hash,
     CAST(amount_cents - (SELECT COALESCE(SUM(n.amount_cents), 0) FROM payfip_credit_note n
                     LEFT JOIN payfip_titre t ON t.tenant = n.tenant AND t.exercice = n.exercice
                                             AND t.number = n.number
                     WHERE n.tenant = payfip_invoice.tenant
                       AND n.origin_exercice = payfip_invoice.exercice
                       AND n.origin_number = payfip_invoice.number
                       AND (payfip_invoice.collection = 'regie' OR t.number IS NOT NULL))
          AS BIGINT),
     email, collection, budget, regie, numcli, online_payable, issued_on";

fn invoice_from(row: &Row<'_>) -> Result<InvoiceRecord, LedgerError> {
    let collection: String = row.get(6)?;
    Ok(InvoiceRecord {
        invoice: InvoiceRef {
            tenant: tenant_at(row, 0)?,
            exercice: row.get(1)?,
            number: row.get(2)?,
        },
        content_hash: row.get(3)?,
        amount: money_at(row, 4)?,
        email: row.get(5)?,
        collection: match collection.as_str() {
            "titres" => CollectionPath::Titres,
            "regie" => CollectionPath::Regie,
            other => return Err(bad_value(6, format!("collection {other:?}"))),
        },
        budget: row.get(7)?,
        regie: row.get(8)?,
        numcli: row.get(9)?,
        online_payable: row.get(10)?,
        issued_on: date_at(row, 11)?,
    })
}

/// The query of [`invoices_by_number`]. `INDEXED BY` (SQLite): without statistics SQLite
/// prefers the primary key's `tenant = ?` prefix, i.e. a scan of every invoice of the
/// tenant — measured at 1 000 000 invoices, each payment request took seconds of CPU. The
/// named index finds the invoice directly (and the statement fails loudly if the index were
/// ever dropped). PostgreSQL's planner picks the same index from its statistics.
fn invoices_by_number_sql(tx: &Tx<'_>) -> String {
    format!(
        "SELECT {INVOICE_COLUMNS} FROM payfip_invoice{}
         WHERE tenant = ?1 AND number = ?2 ORDER BY exercice DESC",
        indexed_by(tx, "payfip_invoice_number")
    )
}

/// The invoices of a tenant with this number (one per exercice at most).
pub fn invoices_by_number(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    number: &str,
) -> Result<Vec<InvoiceRecord>, LedgerError> {
    let sql = invoices_by_number_sql(tx);
    tx.query_all(&sql, &[&tenant.as_str(), &number], invoice_from)
}

/// Records a credit note and the invoice it reduces (idempotent).
pub fn record_credit_note(
    tx: &mut Tx<'_>,
    note: &InvoiceRef,
    origin: &InvoiceRef,
    amount: Money,
) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO payfip_credit_note (tenant, exercice, number, origin_exercice, origin_number, amount_cents)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant, exercice, number) DO NOTHING",
        &[
            &note.tenant.as_str(),
            &note.exercice,
            &note.number,
            &origin.exercice,
            &origin.number,
            &amount.cents(),
        ],
    )?;
    Ok(())
}

/// The titre of an invoice, once taken in charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitreRecord {
    pub invoice: InvoiceRef,
    pub titre: TitreRef,
    /// Paris date of the prise en charge.
    pub taken_in_charge_on: NaiveDate,
}

/// Records the titre of an invoice; a later PES Retour updates the reference but keeps the
/// earliest date of prise en charge (ISO dates compare as text; neither backend's two-value
/// `min`/`LEAST` is the other's, hence the `CASE`).
pub fn upsert_titre(tx: &mut Tx<'_>, r: &TitreRecord) -> Result<(), LedgerError> {
    tx.execute(
        "INSERT INTO payfip_titre (tenant, exercice, number, budget, titre_exercice,
             bordereau_type, id_bord, id_pce, taken_in_charge_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (tenant, exercice, number) DO UPDATE SET
             budget = excluded.budget, titre_exercice = excluded.titre_exercice,
             bordereau_type = excluded.bordereau_type, id_bord = excluded.id_bord,
             id_pce = excluded.id_pce,
             taken_in_charge_on = CASE
                 WHEN excluded.taken_in_charge_on < payfip_titre.taken_in_charge_on
                 THEN excluded.taken_in_charge_on ELSE payfip_titre.taken_in_charge_on END",
        &[
            &r.invoice.tenant.as_str(),
            &r.invoice.exercice,
            &r.invoice.number,
            &r.titre.budget,
            &r.titre.exercice,
            &r.titre.bordereau_type,
            &r.titre.id_bord,
            &r.titre.id_pce,
            &r.taken_in_charge_on.format("%Y-%m-%d").to_string(),
        ],
    )?;
    Ok(())
}

/// The titre of an invoice, if taken in charge.
pub fn titre_of(tx: &mut Tx<'_>, invoice: &InvoiceRef) -> Result<Option<TitreRecord>, LedgerError> {
    tx.query_opt(
        "SELECT budget, titre_exercice, bordereau_type, id_bord, id_pce, taken_in_charge_on
         FROM payfip_titre WHERE tenant = ?1 AND exercice = ?2 AND number = ?3",
        &[&invoice.tenant.as_str(), &invoice.exercice, &invoice.number],
        |row| {
            Ok(TitreRecord {
                invoice: invoice.clone(),
                titre: TitreRef {
                    budget: row.get(0)?,
                    exercice: row.get(1)?,
                    bordereau_type: row.get(2)?,
                    id_bord: row.get(3)?,
                    id_pce: row.get(4)?,
                },
                taken_in_charge_on: date_at(row, 5)?,
            })
        },
    )
}

/// A payment fact about an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentFact {
    /// `payment.received`.
    Received,
    /// `payment.reversed` (also when it arrives before the payment it cancels).
    Reversed,
}

/// Records a payment fact, idempotently per payment id: a payment counts once however
/// often it is seen (even by two daemons at once: the second upsert waits for the first
/// row, then updates it), and a reversal cancels it whichever arrives first.
pub fn record_payment(
    tx: &mut Tx<'_>,
    invoice: &InvoiceRef,
    payment_id: &str,
    amount: Money,
    fact: PaymentFact,
    now: &str,
) -> Result<(), LedgerError> {
    let (received, reversed, update) = match fact {
        PaymentFact::Received => (1, 0, "received = 1, amount_cents = excluded.amount_cents"),
        PaymentFact::Reversed => (0, 1, "reversed = 1"),
    };
    tx.execute(
        &format!(
            "INSERT INTO payfip_payment (tenant, payment_id, exercice, number, amount_cents,
                 received, reversed, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tenant, payment_id) DO UPDATE SET {update},
                 updated_at = excluded.updated_at"
        ),
        &[
            &invoice.tenant.as_str(),
            &payment_id,
            &invoice.exercice,
            &invoice.number,
            &amount.cents(),
            &received,
            &reversed,
            &now,
        ],
    )?;
    Ok(())
}

/// How much of an invoice is paid, as far as the ledger knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Sum of the payments received and not reversed. The same payment may be seen twice
    /// (PayFiP, then the Hélios émargement), so this can exceed the amount.
    pub received: Money,
    /// The payment id of an attempt the gateway reported paid (`P`/`V`) — possibly not yet
    /// back through `payment.received`.
    pub paid_attempt: Option<String>,
}

impl Coverage {
    /// Paid in full.
    pub fn is_paid(&self, amount: Money) -> bool {
        self.paid_attempt.is_some() || self.received >= amount
    }
}

/// What is paid of `invoice`.
pub fn coverage(tx: &mut Tx<'_>, invoice: &InvoiceRef) -> Result<Coverage, LedgerError> {
    let key: [&dyn encaisse_ledger::sql::Param; 3] =
        [&invoice.tenant.as_str(), &invoice.exercice, &invoice.number];
    let cents: i64 = tx.query_one(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM payfip_payment
         WHERE tenant = ?1 AND exercice = ?2 AND number = ?3 AND received = 1 AND reversed = 0",
        &key,
        |r| r.get(0),
    )?;
    let paid_attempt: Option<String> = tx.query_opt(
        "SELECT payment_id FROM payfip_operation
         WHERE tenant = ?1 AND exercice = ?2 AND number = ?3 AND outcome IN ('P', 'V')
         ORDER BY resolved_at, op_id LIMIT 1",
        &key,
        |r| r.get(0),
    )?;
    let received = Money::from_cents(cents)
        .map_err(|e| LedgerError::Corrupt(format!("payfip_payment sum: {e}")))?;
    Ok(Coverage {
        received,
        paid_attempt,
    })
}

// ---------------------------------------------------------------------------------------
// Operations (payment attempts)

/// Which flavour of PayFiP an attempt uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpChannel {
    /// Régie web service: idOp, notification, result fetched by SOAP.
    Ws,
    /// Titres classic URL: result posted to `urlcl`, verified against the ledger.
    Classic,
}

impl OpChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            OpChannel::Ws => "ws",
            OpChannel::Classic => "classic",
        }
    }
}

/// Where an attempt is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpState {
    /// Reserved while `creerPaiementSecurise` runs (no idOp yet).
    Creating,
    /// The family was sent to the gateway; no final result yet.
    Open,
    /// A result (or an expiry) was recorded.
    Resolved,
}

impl OpState {
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::Creating => "creating",
            OpState::Open => "open",
            OpState::Resolved => "resolved",
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The gateway's result letter.
    Result(Resultrans),
    /// No result within the gateway's window (`payment.failed` `Expired`).
    Expired,
    /// A classic attempt closed without any result (no event).
    Closed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Result(r) => r.as_str(),
            Outcome::Expired => "expired",
            Outcome::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "expired" => Some(Outcome::Expired),
            "closed" => Some(Outcome::Closed),
            other => Resultrans::parse(other).map(Outcome::Result),
        }
    }

    pub fn is_paid(self) -> bool {
        matches!(self, Outcome::Result(r) if r.is_paid())
    }

    /// The means the family used, when the gateway said (card or one-off debit).
    pub fn channel(self) -> Option<encaisse_schemas::Channel> {
        match self {
            Outcome::Result(r) => r.channel(),
            Outcome::Expired | Outcome::Closed => None,
        }
    }

    /// The word the Kiosque return URL carries: `paid`, `refused`, `abandoned`, `expired`.
    pub fn status(self) -> &'static str {
        match self {
            Outcome::Result(Resultrans::P | Resultrans::V) => "paid",
            Outcome::Result(Resultrans::R | Resultrans::Z) => "refused",
            Outcome::Result(Resultrans::A) => "abandoned",
            Outcome::Expired | Outcome::Closed => "expired",
        }
    }
}

/// A payment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub op_id: String,
    pub invoice: InvoiceRef,
    pub channel: OpChannel,
    pub state: OpState,
    /// The invoice's current attempt.
    pub active: bool,
    pub idop: Option<String>,
    /// `payfip:<idop>` or `tipi:<refdet>` (set once the attempt is open).
    pub payment_id: Option<String>,
    pub numcli: String,
    pub exer: u16,
    pub refdet: String,
    pub amount: Money,
    pub mode: PayfipMode,
    pub return_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub notified_at: Option<DateTime<Utc>>,
    pub requested_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub numauto: Option<String>,
    pub commission: Option<Money>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Classic channel: the payment a result announced, awaiting the PES Retour.
    pub claim: Option<Claim>,
}

/// A classic-URL result that announced a payment. The channel carries no signature and every
/// field it checks travels through the family's browser, so this is a claim, never proof:
/// only the Trésorerie's PES Retour émargement makes the titre paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// `P` or `V`, as announced.
    pub letter: Resultrans,
    /// When it was first announced.
    pub at: DateTime<Utc>,
    /// What became of it; `None` while the PES Retour is awaited.
    pub settled: Option<ClaimSettled>,
}

/// How a claim ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimSettled {
    /// A PES Retour émargement of the same amount reported the payment.
    Confirmed,
    /// No PES Retour confirmed it within the window: reported to ops.
    Unconfirmed,
}

impl ClaimSettled {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimSettled::Confirmed => "confirmed",
            ClaimSettled::Unconfirmed => "unconfirmed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "confirmed" => Some(ClaimSettled::Confirmed),
            "unconfirmed" => Some(ClaimSettled::Unconfirmed),
            _ => None,
        }
    }
}

impl Operation {
    /// [`Outcome::status`] once an outcome is recorded; before, `announced` while a classic
    /// claim awaits the PES Retour, else `pending`.
    pub fn status(&self) -> &'static str {
        match (self.outcome, self.claim) {
            (Some(outcome), _) => outcome.status(),
            (None, Some(_)) => "announced",
            (None, None) => "pending",
        }
    }
}

const OP_COLUMNS: &str = "op_id, tenant, exercice, number, channel, state, active, idop,
     payment_id, numcli, exer, refdet, amount_cents, mode, return_url, created_at, notified_at,
     requested_at, outcome, numauto, commission_cents, resolved_at, claim, claimed_at,
     claim_settled, claim_settled_at";

fn operation_from(row: &Row<'_>) -> Result<Operation, LedgerError> {
    let channel: String = row.get(4)?;
    let state: String = row.get(5)?;
    let mode: String = row.get(13)?;
    let outcome: Option<String> = row.get(18)?;
    let commission: Option<i64> = row.get(20)?;
    Ok(Operation {
        op_id: row.get(0)?,
        invoice: InvoiceRef {
            tenant: tenant_at(row, 1)?,
            exercice: row.get(2)?,
            number: row.get(3)?,
        },
        channel: match channel.as_str() {
            "ws" => OpChannel::Ws,
            "classic" => OpChannel::Classic,
            other => return Err(bad_value(4, format!("channel {other:?}"))),
        },
        state: match state.as_str() {
            "creating" => OpState::Creating,
            "open" => OpState::Open,
            "resolved" => OpState::Resolved,
            other => return Err(bad_value(5, format!("state {other:?}"))),
        },
        active: row.get(6)?,
        idop: row.get(7)?,
        payment_id: row.get(8)?,
        numcli: row.get(9)?,
        exer: row.get(10)?,
        refdet: row.get(11)?,
        amount: money_at(row, 12)?,
        mode: mode_from(&mode).ok_or_else(|| bad_value(13, format!("mode {mode:?}")))?,
        return_url: row.get(14)?,
        created_at: time_at(row, 15)?.ok_or_else(|| bad_value(15, "no created_at".into()))?,
        notified_at: time_at(row, 16)?,
        requested_at: time_at(row, 17)?,
        outcome: outcome
            .map(|o| Outcome::parse(&o).ok_or_else(|| bad_value(18, format!("outcome {o:?}"))))
            .transpose()?,
        numauto: row.get(19)?,
        commission: commission
            .map(|cents| Money::from_cents(cents).map_err(|e| bad_value(20, e.to_string())))
            .transpose()?,
        resolved_at: time_at(row, 21)?,
        claim: claim_from(row)?,
    })
}

fn claim_from(row: &Row<'_>) -> Result<Option<Claim>, LedgerError> {
    let letter: Option<String> = row.get(22)?;
    let Some(letter) = letter else {
        return Ok(None);
    };
    let settled: Option<String> = row.get(24)?;
    Ok(Some(Claim {
        letter: Resultrans::parse(&letter)
            .ok_or_else(|| bad_value(22, format!("claim {letter:?}")))?,
        at: time_at(row, 23)?.ok_or_else(|| bad_value(23, "no claimed_at".into()))?,
        settled: settled
            .map(|s| ClaimSettled::parse(&s).ok_or_else(|| bad_value(24, format!("{s:?}"))))
            .transpose()?,
    }))
}

fn one_operation(
    tx: &mut Tx<'_>,
    filter: &str,
    args: &[&dyn encaisse_ledger::sql::Param],
) -> Result<Option<Operation>, LedgerError> {
    let sql = format!("SELECT {OP_COLUMNS} FROM payfip_operation WHERE {filter}");
    tx.query_opt(&sql, args, operation_from)
}

/// The attempt behind a gateway idOp.
pub fn operation_by_idop(tx: &mut Tx<'_>, idop: &str) -> Result<Option<Operation>, LedgerError> {
    one_operation(tx, "idop = ?1", &[&idop])
}

/// An attempt by our id.
pub fn operation(tx: &mut Tx<'_>, op_id: &str) -> Result<Option<Operation>, LedgerError> {
    one_operation(tx, "op_id = ?1", &[&op_id])
}

/// The invoice's current attempt.
pub fn active_operation(
    tx: &mut Tx<'_>,
    invoice: &InvoiceRef,
) -> Result<Option<Operation>, LedgerError> {
    one_operation(
        tx,
        "tenant = ?1 AND exercice = ?2 AND number = ?3 AND active = 1",
        &[&invoice.tenant.as_str(), &invoice.exercice, &invoice.number],
    )
}

/// The latest classic attempt of a tenant for a `refdet` (a titre's reference is the same
/// for every attempt).
pub fn latest_classic(
    tx: &mut Tx<'_>,
    tenant: &TenantId,
    refdet: &str,
) -> Result<Option<Operation>, LedgerError> {
    one_operation(
        tx,
        "tenant = ?1 AND refdet = ?2 AND channel = 'classic'
         ORDER BY created_at DESC, op_id DESC LIMIT 1",
        &[&tenant.as_str(), &refdet],
    )
}

/// Every attempt of an invoice, oldest first (for tests and `encaisse trace`).
pub fn operations_of(tx: &mut Tx<'_>, invoice: &InvoiceRef) -> Result<Vec<Operation>, LedgerError> {
    tx.query_all(
        &format!(
            "SELECT {OP_COLUMNS} FROM payfip_operation
             WHERE tenant = ?1 AND exercice = ?2 AND number = ?3 ORDER BY created_at, op_id"
        ),
        &[&invoice.tenant.as_str(), &invoice.exercice, &invoice.number],
        operation_from,
    )
}

/// Inserts a new attempt (the caller made sure no other is active: [`reserve_attempt`]).
pub fn insert_operation(tx: &mut Tx<'_>, op: &Operation) -> Result<(), LedgerError> {
    tx.execute(
        &format!(
            "INSERT INTO payfip_operation ({OP_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
        ),
        &[
            &op.op_id,
            &op.invoice.tenant.as_str(),
            &op.invoice.exercice,
            &op.invoice.number,
            &op.channel.as_str(),
            &op.state.as_str(),
            &op.active,
            &op.idop,
            &op.payment_id,
            &op.numcli,
            &op.exer,
            &op.refdet,
            &op.amount.cents(),
            &mode_text(op.mode),
            &op.return_url,
            &ts(op.created_at),
            &op.notified_at.map(ts),
            &op.requested_at.map(ts),
            &op.outcome.map(Outcome::as_str),
            &op.numauto,
            &op.commission.map(Money::cents),
            &op.resolved_at.map(ts),
            &op.claim.map(|c| c.letter.as_str()),
            &op.claim.map(|c| ts(c.at)),
            &op.claim.and_then(|c| c.settled).map(ClaimSettled::as_str),
            &None::<String>,
        ],
    )?;
    Ok(())
}

/// Takes the "current attempt" mark off an attempt (a newer one supersedes it; it stays
/// unresolved and the reconciliation still asks about it).
pub fn deactivate(tx: &mut Tx<'_>, op_id: &str) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE payfip_operation SET active = 0 WHERE op_id = ?1",
        &[&op_id],
    )?;
    Ok(())
}

/// What the invoice's current attempt (if any) says of a new one, decided by the caller
/// from the attempt ([`reserve_attempt`]'s `decide`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved<R> {
    /// `op` is now the invoice's current attempt (an older one, if any, superseded).
    Reserved,
    /// Refused; nothing was written.
    Refused(R),
}

/// Reserves `op` as its invoice's current attempt, once: the invoice's row is locked
/// ([`lock_invoice`]), then `decide` sees what is paid and the current attempt and either
/// refuses (`Err`) or lets the new attempt supersede it. Two requests for the same invoice,
/// on one daemon or two, are decided one after the other, the second seeing the first's
/// attempt: at most one reservation wins while the first one blocks (the partial unique
/// index `payfip_operation_active` is the last guard).
pub fn reserve_attempt<R>(
    tx: &mut Tx<'_>,
    op: &Operation,
    decide: impl FnOnce(&Coverage, Option<&Operation>) -> Result<(), R>,
) -> Result<Reserved<R>, LedgerError> {
    lock_invoice(tx, &op.invoice)?;
    let coverage = coverage(tx, &op.invoice)?;
    let active = active_operation(tx, &op.invoice)?;
    if let Err(refusal) = decide(&coverage, active.as_ref()) {
        return Ok(Reserved::Refused(refusal));
    }
    if let Some(active) = active {
        deactivate(tx, &active.op_id)?;
    }
    insert_operation(tx, op)?;
    Ok(Reserved::Reserved)
}

/// A reserved web-service attempt got its idOp.
pub fn open_ws(
    tx: &mut Tx<'_>,
    op_id: &str,
    idop: &str,
    payment_id: &str,
) -> Result<(), LedgerError> {
    let n = tx.execute(
        "UPDATE payfip_operation SET state = 'open', idop = ?2, payment_id = ?3
         WHERE op_id = ?1 AND state = 'creating'",
        &[&op_id, &idop, &payment_id],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(LedgerError::Conflict(format!(
            "payment attempt {op_id} is no longer reserved"
        )))
    }
}

/// Drops a reservation whose gateway call failed.
pub fn delete_reservation(tx: &mut Tx<'_>, op_id: &str) -> Result<(), LedgerError> {
    tx.execute(
        "DELETE FROM payfip_operation WHERE op_id = ?1 AND state = 'creating'",
        &[&op_id],
    )?;
    Ok(())
}

/// Marks that a notification (or browser return) asked for the result of an unresolved
/// attempt. `true` only for the first one: duplicates are then answered without publishing.
/// Two daemons receiving the same notification: the second `UPDATE` waits for the first's
/// row lock, then no longer matches `notified_at IS NULL`.
pub fn claim_notification(tx: &mut Tx<'_>, op_id: &str, now: &str) -> Result<bool, LedgerError> {
    let n = tx.execute(
        "UPDATE payfip_operation SET notified_at = ?2, requested_at = ?2
         WHERE op_id = ?1 AND outcome IS NULL AND state = 'open' AND notified_at IS NULL",
        &[&op_id, &now],
    )?;
    Ok(n == 1)
}

/// Undoes [`claim_notification`] when the confirmation could not be published, so that the
/// next notification (or the reconciliation) asks again.
pub fn release_notification(tx: &mut Tx<'_>, op_id: &str) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE payfip_operation SET notified_at = NULL WHERE op_id = ?1",
        &[&op_id],
    )?;
    Ok(())
}

/// What a resolution records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub outcome: Outcome,
    pub numauto: Option<String>,
    pub commission: Option<Money>,
}

/// Records how an attempt ended. Only an unresolved attempt is changed — or, with
/// `over_unpaid`, one whose recorded outcome did not pay (a classic result arriving after
/// the attempt was closed). Returns whether the row changed: `true` for one transaction
/// only, however many resolve the attempt at once.
pub fn resolve(
    tx: &mut Tx<'_>,
    op_id: &str,
    resolution: &Resolution,
    over_unpaid: bool,
    now: &str,
) -> Result<bool, LedgerError> {
    let condition = if over_unpaid {
        "(outcome IS NULL OR outcome NOT IN ('P', 'V'))"
    } else {
        "outcome IS NULL"
    };
    let n = tx.execute(
        &format!(
            "UPDATE payfip_operation SET state = 'resolved', active = 0, outcome = ?2,
                 numauto = ?3, commission_cents = ?4, resolved_at = ?5
             WHERE op_id = ?1 AND {condition}"
        ),
        &[
            &op_id,
            &resolution.outcome.as_str(),
            &resolution.numauto,
            &resolution.commission.map(Money::cents),
            &now,
        ],
    )?;
    Ok(n == 1)
}

/// Web-service attempts without a result, created at or before `created_before`, not asked
/// about since `requested_before`: `(tenant, idop)`, oldest first.
pub fn due_for_query(
    tx: &mut Tx<'_>,
    created_before: &str,
    requested_before: &str,
    limit: u32,
) -> Result<Vec<(TenantId, String)>, LedgerError> {
    tx.query_all(
        "SELECT tenant, idop FROM payfip_operation
         WHERE outcome IS NULL AND channel = 'ws' AND state = 'open' AND idop IS NOT NULL
           AND created_at <= ?1 AND (requested_at IS NULL OR requested_at <= ?2)
         ORDER BY created_at, op_id LIMIT ?3",
        &[&created_before, &requested_before, &limit],
        |row| Ok((tenant_at(row, 0)?, row.get(1)?)),
    )
}

/// Records that the result of these operations was asked for.
pub fn mark_requested(tx: &mut Tx<'_>, idops: &[String], now: &str) -> Result<(), LedgerError> {
    for idop in idops {
        tx.execute(
            "UPDATE payfip_operation SET requested_at = ?2 WHERE idop = ?1",
            &[idop, &now],
        )?;
    }
    Ok(())
}

/// Closes classic attempts left without a result since `created_before`.
pub fn close_stale_classic(
    tx: &mut Tx<'_>,
    created_before: &str,
    now: &str,
) -> Result<usize, LedgerError> {
    tx.execute(
        "UPDATE payfip_operation SET state = 'resolved', active = 0, outcome = 'closed',
             resolved_at = ?2
         WHERE channel = 'classic' AND outcome IS NULL AND claimed_at IS NULL
           AND created_at <= ?1",
        &[&created_before, &now],
    )
}

/// Records that a verified classic result announced a payment (`P`/`V`): the attempt keeps
/// it as a claim — its outcome stays unpaid until the PES Retour confirms it. Only the first
/// announcement counts, and none over an attempt already known paid. An attempt closed
/// meanwhile (no result in time, or a refusal first) is opened again and, unless another
/// attempt took its place, becomes the invoice's current one again: the family may really
/// have paid, and the hold must keep a second payment from starting. The invoice's row is
/// locked first, as for a reservation, so that the attempt cannot become current while
/// another daemon reserves a new one. Returns whether the row changed.
pub fn record_claim(
    tx: &mut Tx<'_>,
    op_id: &str,
    letter: Resultrans,
    numauto: Option<&str>,
    commission: Option<Money>,
    now: &str,
) -> Result<bool, LedgerError> {
    lock_invoice_of(tx, op_id)?;
    let n = tx.execute(
        "UPDATE payfip_operation SET claim = ?2, claimed_at = ?3, numauto = ?4,
             commission_cents = ?5, outcome = NULL, state = 'open', resolved_at = NULL,
             active = CASE WHEN active = 1 THEN 1
                 WHEN EXISTS (SELECT 1 FROM payfip_operation other
                     WHERE other.tenant = payfip_operation.tenant
                       AND other.exercice = payfip_operation.exercice
                       AND other.number = payfip_operation.number
                       AND other.active = 1) THEN 0
                 ELSE 1 END
         WHERE op_id = ?1 AND channel = 'classic' AND claimed_at IS NULL
           AND (outcome IS NULL OR outcome NOT IN ('P', 'V'))",
        &[
            &op_id,
            &letter.as_str(),
            &now,
            &numauto,
            &commission.map(Money::cents),
        ],
    )?;
    Ok(n == 1)
}

/// The claims of `invoice` that its PES Retour payments confirm: announced, not confirmed
/// yet (a late émargement still confirms one reported unconfirmed), for at most `covered` —
/// what the invoice's recorded payments add up to (a titre of several lines is émargé line
/// by line). Each becomes the attempt's outcome. Returns the attempts this transaction
/// confirmed (a claim confirmed meanwhile by another is left out: the update is
/// conditional).
pub fn confirm_claims(
    tx: &mut Tx<'_>,
    invoice: &InvoiceRef,
    covered: Money,
    now: &str,
) -> Result<Vec<Operation>, LedgerError> {
    let sql = format!(
        "SELECT {OP_COLUMNS} FROM payfip_operation{}
         WHERE tenant = ?1 AND exercice = ?2 AND number = ?3 AND channel = 'classic'
           AND claimed_at IS NOT NULL AND amount_cents <= ?4
           AND (claim_settled IS NULL OR claim_settled = 'unconfirmed')
         ORDER BY claimed_at, op_id",
        indexed_by(tx, "payfip_operation_invoice")
    );
    let claims = tx.query_all(
        &sql,
        &[
            &invoice.tenant.as_str(),
            &invoice.exercice,
            &invoice.number,
            &covered.cents(),
        ],
        operation_from,
    )?;
    let mut confirmed = Vec::with_capacity(claims.len());
    for op in claims {
        let n = tx.execute(
            "UPDATE payfip_operation SET claim_settled = 'confirmed', claim_settled_at = ?2,
                 outcome = claim, state = 'resolved', active = 0,
                 resolved_at = COALESCE(resolved_at, ?2)
             WHERE op_id = ?1 AND (claim_settled IS NULL OR claim_settled = 'unconfirmed')",
            &[&op.op_id, &now],
        )?;
        if n == 1 {
            confirmed.push(op);
        }
    }
    Ok(confirmed)
}

/// A PES Retour émargement of `invoice`: the payment is recorded like any other, then the
/// classic claims that what is now paid covers are confirmed ([`confirm_claims`]); returns
/// them. The invoice's row is locked first: the lines of one titre are émargés as separate
/// payments, and two of them recorded at once (two daemons) would each see only its own
/// payment in the sum and neither confirm the claim that both together cover.
pub fn record_emargement(
    tx: &mut Tx<'_>,
    invoice: &InvoiceRef,
    payment_id: &str,
    amount: Money,
    now: &str,
) -> Result<Vec<Operation>, LedgerError> {
    lock_invoice(tx, invoice)?;
    record_payment(tx, invoice, payment_id, amount, PaymentFact::Received, now)?;
    let covered = coverage(tx, invoice)?.received;
    confirm_claims(tx, invoice, covered, now)
}

/// Claims announced at or before `claimed_before` that no PES Retour confirmed: each is marked
/// `unconfirmed` (reported once, even when two daemons run the job at once: the update is
/// conditional). Returns them, oldest first, at most `limit`.
pub fn report_unconfirmed_claims(
    tx: &mut Tx<'_>,
    claimed_before: &str,
    limit: u32,
    now: &str,
) -> Result<Vec<Operation>, LedgerError> {
    let sql = format!(
        "SELECT {OP_COLUMNS} FROM payfip_operation{}
         WHERE claimed_at IS NOT NULL AND claim_settled IS NULL AND claimed_at <= ?1
         ORDER BY claimed_at, op_id LIMIT ?2",
        indexed_by(tx, "payfip_operation_open_claims")
    );
    let claims = tx.query_all(&sql, &[&claimed_before, &limit], operation_from)?;
    let mut reported = Vec::with_capacity(claims.len());
    for op in claims {
        let n = tx.execute(
            "UPDATE payfip_operation SET claim_settled = 'unconfirmed', claim_settled_at = ?2
             WHERE op_id = ?1 AND claim_settled IS NULL",
            &[&op.op_id, &now],
        )?;
        if n == 1 {
            reported.push(op);
        }
    }
    Ok(reported)
}

/// Removes reservations whose gateway call never finished (a crash between reserving and
/// storing the idOp): no family was sent anywhere with them.
pub fn drop_stale_reservations(
    tx: &mut Tx<'_>,
    created_before: &str,
) -> Result<usize, LedgerError> {
    tx.execute(
        "DELETE FROM payfip_operation WHERE state = 'creating' AND created_at <= ?1",
        &[&created_before],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use encaisse_ledger::Ledger;

    fn invoice(number: &str) -> InvoiceRef {
        InvoiceRef {
            tenant: TenantId::new("vitry").unwrap(),
            exercice: 2026,
            number: number.into(),
        }
    }

    fn op(id: &str, number: &str, created_at: DateTime<Utc>) -> Operation {
        Operation {
            op_id: id.into(),
            invoice: invoice(number),
            channel: OpChannel::Ws,
            state: OpState::Open,
            active: true,
            idop: Some(format!("idop-{id}")),
            payment_id: Some(format!("payfip:idop-{id}")),
            numcli: "090909".into(),
            exer: 2026,
            refdet: format!("REF{id}000"),
            amount: Money::parse("45.60").unwrap(),
            mode: PayfipMode::Test,
            return_url: None,
            created_at,
            notified_at: None,
            requested_at: None,
            outcome: None,
            numauto: None,
            commission: None,
            resolved_at: None,
            claim: None,
        }
    }

    #[tokio::test]
    async fn an_invoice_is_found_by_number_through_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let plan: Vec<String> = ledger
            .inspect(|tx| {
                let sql = format!("EXPLAIN QUERY PLAN {}", invoices_by_number_sql(tx));
                tx.query_all(&sql, &[&"vitry", &"F1"], |r| r.get::<String>(3))
            })
            .await
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX payfip_invoice_number")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn operations_round_trip_and_resolve_once() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
            .unwrap()
            .to_utc();
        let first = op("a", "F1", t0);
        let stored = first.clone();
        ledger
            .transact(move |c| insert_operation(c, &stored))
            .await
            .unwrap();
        // A second active attempt for the same invoice is refused by the unique index.
        let second = op("b", "F1", t0);
        assert!(
            ledger
                .transact(move |c| insert_operation(c, &second))
                .await
                .is_err()
        );
        let read = ledger
            .inspect(|c| operation_by_idop(c, "idop-a"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, first);
        assert_eq!(read.status(), "pending");

        let now = ts(t0 + chrono::Duration::minutes(1));
        let claim = now.clone();
        assert!(
            ledger
                .transact(move |c| claim_notification(c, "a", &claim))
                .await
                .unwrap()
        );
        let claim = now.clone();
        assert!(
            !ledger
                .transact(move |c| claim_notification(c, "a", &claim))
                .await
                .unwrap()
        );

        let paid = Resolution {
            outcome: Outcome::Result(Resultrans::P),
            numauto: Some("112233445566-tip".into()),
            commission: Some(Money::parse("0.16").unwrap()),
        };
        let (p, n) = (paid.clone(), now.clone());
        assert!(
            ledger
                .transact(move |c| resolve(c, "a", &p, false, &n))
                .await
                .unwrap()
        );
        let (p, n) = (paid, now.clone());
        assert!(
            !ledger
                .transact(move |c| resolve(c, "a", &p, true, &n))
                .await
                .unwrap()
        );
        let read = ledger
            .inspect(|c| operation(c, "a"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.status(), "paid");
        assert!(!read.active);
        assert_eq!(read.commission, Some(Money::parse("0.16").unwrap()));
        let coverage = ledger
            .inspect(|c| coverage(c, &invoice("F1")))
            .await
            .unwrap();
        assert_eq!(coverage.paid_attempt.as_deref(), Some("payfip:idop-a"));
        assert!(coverage.is_paid(Money::parse("45.60").unwrap()));
    }

    #[tokio::test]
    async fn a_claim_over_a_closed_attempt_makes_it_current_again() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
            .unwrap()
            .to_utc();
        let mut classic = op("c", "T1", t0);
        classic.channel = OpChannel::Classic;
        classic.idop = None;
        let later = ts(t0 + chrono::Duration::days(2));
        let (stored, now) = (classic.clone(), later.clone());
        let (closed, claimed, again) = ledger
            .transact(move |c| {
                insert_operation(c, &stored)?;
                let closed = close_stale_classic(c, &now, &now)?;
                let claimed = record_claim(c, "c", Resultrans::P, Some("n1"), None, &now)?;
                let again = record_claim(c, "c", Resultrans::P, Some("n2"), None, &now)?;
                Ok::<_, LedgerError>((closed, claimed, again))
            })
            .await
            .unwrap();
        assert_eq!((closed, claimed, again), (1, true, false));
        let read = ledger
            .inspect(|c| operation(c, "c"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.status(), "announced");
        assert!(read.active && read.outcome.is_none());
        assert_eq!(read.numauto.as_deref(), Some("n1"));
        let claim = read.claim.unwrap();
        assert_eq!((claim.letter, claim.settled), (Resultrans::P, None));
        // Not paid until the PES Retour: the claim adds nothing to the coverage.
        let coverage = ledger
            .inspect(|c| coverage(c, &invoice("T1")))
            .await
            .unwrap();
        assert!(!coverage.is_paid(Money::parse("45.60").unwrap()));
        let amount = Money::parse("45.60").unwrap();
        let confirmed = ledger
            .transact(move |c| confirm_claims(c, &invoice("T1"), amount, &later))
            .await
            .unwrap();
        assert_eq!(confirmed.len(), 1);
        let read = ledger
            .inspect(|c| operation(c, "c"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.status(), "paid");
        assert_eq!(read.claim.unwrap().settled, Some(ClaimSettled::Confirmed));
    }

    #[tokio::test]
    async fn payments_reversals_and_reconciliation_queries() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let inv = invoice("F2");
        let i = inv.clone();
        ledger
            .transact(move |c| {
                let ten = Money::parse("10.00").unwrap();
                let five = Money::parse("5.00").unwrap();
                record_payment(c, &i, "helios:x", ten, PaymentFact::Reversed, "t")?;
                record_payment(c, &i, "helios:x", ten, PaymentFact::Received, "t")?;
                record_payment(c, &i, "helios:y", five, PaymentFact::Received, "t")?;
                record_payment(c, &i, "helios:y", five, PaymentFact::Received, "t")
            })
            .await
            .unwrap();
        let i = inv.clone();
        let cov = ledger.inspect(move |c| coverage(c, &i)).await.unwrap();
        // The reversal seen first still cancels its payment; a repeated sighting counts once.
        assert_eq!(cov.received, Money::parse("5.00").unwrap());
        assert!(!cov.is_paid(Money::parse("45.60").unwrap()));

        let t0 = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
            .unwrap()
            .to_utc();
        let (old, young) = (
            op("o", "F3", t0),
            op("y", "F4", t0 + chrono::Duration::hours(1)),
        );
        ledger
            .transact(move |c| {
                insert_operation(c, &old)?;
                insert_operation(c, &young)
            })
            .await
            .unwrap();
        let cutoff = ts(t0 + chrono::Duration::minutes(30));
        let (a, b) = (cutoff.clone(), cutoff.clone());
        let due = ledger
            .inspect(move |c| due_for_query(c, &a, &b, 10))
            .await
            .unwrap();
        assert_eq!(
            due,
            vec![(TenantId::new("vitry").unwrap(), "idop-o".into())]
        );
        let n = cutoff.clone();
        ledger
            .transact(move |c| mark_requested(c, &["idop-o".to_string()], &n))
            .await
            .unwrap();
        let (a, b) = (cutoff.clone(), ts(t0));
        let due = ledger
            .inspect(move |c| due_for_query(c, &a, &b, 10))
            .await
            .unwrap();
        assert!(due.is_empty(), "asked recently: {due:?}");
    }
}
