//! Credit notes (avoirs) against régie invoices, in `sepa.batch`.
//!
//! * The original's debit is **not planned yet** (its run is open): the credit note is kept
//!   `pending` and lowers the debit when the run is planned ([`lower_debit`]); a debit
//!   brought to zero or below is not presented at all.
//! * The debit is **already in a pain.008** (planned or presented): encaisse never issues a
//!   negative debit, so the credit note is a **refund the régisseur makes**; Polyfac is told
//!   (`titre.rejected`, `source: local`, code `LOCAL-REMBOURSEMENT`, no titre →
//!   `AVOIR_REJETE` with the amount to refund in its motif).
//! * The original is **unknown** to the stage: refused (`LOCAL-AVOIR`), told the same way.
//!
//! The decision is taken and recorded in one transaction serialised with the planning of
//! runs, so a credit note is either applied to the debit or refunded, never both, never
//! neither. Received again, it publishes the same event again (same id) and changes nothing.
//! On PostgreSQL that serialisation is a tenant-wide advisory lock ([`lock_tenant`]) that
//! both the decision and the planning of a run take before reading what the other writes
//! (SQLite's single writer gives it for free).

use encaisse_ledger::batch::BatchKey;
use encaisse_ledger::{LedgerError, Tx};
use encaisse_schemas::{CreditNoteIssued, Event, InvoiceIssued, Money, TitreRejected, TitreSource};

use super::clock::paris;
use super::plan::PlanError;
use super::store;

/// What became of a credit note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Will lower its original's debit.
    Pending,
    /// Polyfac must be told (a refund to make, or a refusal).
    Tell(Box<TitreRejected>),
}

const PENDING: &str = "pending";
const APPLIED: &str = "applied";
const REFUND: &str = "refund";
const REFUSED: &str = "refused";

/// Decides `note` inside the caller's write transaction.
pub fn decide(
    tx: &mut Tx<'_>,
    stage: &str,
    note: &CreditNoteIssued,
    now: chrono::NaiveDateTime,
) -> Result<Decision, PlanError> {
    let tenant = note.note.invoice.tenant.as_str();
    let (note_key, origin_key) = (note.note.invoice.key(), note.origin.key());
    let amount = note.credited();
    lock_tenant(tx, tenant)?;
    let known: Option<String> = tx.query_opt(
        "SELECT state FROM sepa_credit_note WHERE tenant = ?1 AND note_key = ?2",
        &[&tenant, &note_key],
        |r| r.get(0),
    )?;
    let state = match known {
        Some(state) => state,
        None => {
            let presented: bool = tx.query_one(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM sepa_collection
                     WHERE tenant = ?1 AND invoice_key = ?2) THEN 1 ELSE 0 END",
                &[&tenant, &origin_key],
                |r| r.get(0),
            )?;
            // Received, or published by the ingest and still on its way (messages of one
            // queue are handled concurrently).
            let received: bool = tx.query_one(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM batch_item
                         WHERE stage = ?1 AND tenant = ?2 AND item_key = ?3)
                     OR EXISTS (SELECT 1 FROM polyfac_issued WHERE tenant = ?2 AND invoice_key = ?3)
                 THEN 1 ELSE 0 END",
                &[&stage, &tenant, &origin_key],
                |r| r.get(0),
            )?;
            let state = match (presented, received) {
                (true, _) => REFUND,
                (false, true) => PENDING,
                (false, false) => REFUSED,
            };
            // The tenant's lock is held: nobody else records this note meanwhile.
            tx.execute(
                "INSERT INTO sepa_credit_note (tenant, note_key, origin_key, amount_cents, state, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[&tenant, &note_key, &origin_key, &amount.cents(), &state, &now.to_string()],
            )?;
            let detail = serde_json::json!({
                "stage": stage,
                "credit_note": note_key,
                "origin": origin_key,
                "amount": amount.to_dot_string(),
                "state": state,
            });
            for key in [&note_key, &origin_key] {
                store::fact(
                    tx,
                    key,
                    tenant,
                    "credit_note_regie",
                    detail.clone(),
                    &format!("{stage}:credit_note:{note_key}:{key}"),
                )?;
            }
            state.to_string()
        }
    };
    let (code, text) = match state.as_str() {
        REFUND => (
            "LOCAL-REMBOURSEMENT",
            format!(
                "the debit of {origin_key} is already presented: the régisseur refunds {} (a direct debit is never negative)",
                amount.to_comma_string()
            ),
        ),
        REFUSED => (
            "LOCAL-AVOIR",
            format!("the original invoice {origin_key} is unknown to the direct-debit stage"),
        ),
        _ => return Ok(Decision::Pending),
    };
    Ok(Decision::Tell(Box::new(TitreRejected {
        schema_version: TitreRejected::SCHEMA_VERSION,
        invoice: note.note.invoice.clone(),
        titre: None,
        source: TitreSource::Local,
        code: code.to_string(),
        text: format!("Credit note not applied to a direct debit: {text}"),
        rejected_at: paris(now),
        file: String::new(),
    })))
}

/// `invoice` with its pending credit notes taken off its total (they become `applied`);
/// `None` when nothing is left to debit.
/// The caller holds the tenant's lock ([`lock_tenant`]), taken before its first call.
pub fn lower_debit(
    tx: &mut Tx<'_>,
    key: &BatchKey,
    mut invoice: InvoiceIssued,
) -> Result<Option<InvoiceIssued>, PlanError> {
    let origin = invoice.invoice.key();
    // The notes applied are exactly the ones counted: one statement marks and returns them.
    let amounts: Vec<i64> = tx.query_all(
        "UPDATE sepa_credit_note SET state = ?3
         WHERE tenant = ?1 AND origin_key = ?2 AND state = 'pending'
         RETURNING amount_cents",
        &[&key.tenant, &origin, &APPLIED],
        |r| r.get(0),
    )?;
    let credited: i64 = amounts.iter().sum();
    if credited == 0 {
        return Ok(Some(invoice));
    }
    let left = invoice.total.cents() - credited;
    store::fact(
        tx,
        &origin,
        &key.tenant,
        "debit_lowered",
        serde_json::json!({
            "stage": key.stage,
            "credited": Money::from_cents(credited).map(Money::to_dot_string).unwrap_or_default(),
            "debited": Money::from_cents(left.max(0)).map(Money::to_dot_string).unwrap_or_default(),
        }),
        &format!("{}:debit_lowered:{origin}", key.stage),
    )?;
    if left <= 0 {
        return Ok(None);
    }
    invoice.total = Money::from_cents(left).map_err(|e| PlanError::Corrupt(e.to_string()))?;
    Ok(Some(invoice))
}

/// Serialises the credit-note decisions of a tenant with the planning of its runs on
/// PostgreSQL (an advisory lock held until the transaction ends): without it a credit note
/// decided `pending` while a run is being planned could miss the debit it lowers, and stay
/// pending for ever. Credit notes are rare and a run is planned once, so one lock per
/// tenant costs nothing; SQLite's single writer needs none.
pub fn lock_tenant(tx: &mut Tx<'_>, tenant: &str) -> Result<(), LedgerError> {
    store::lock(tx, &format!("sepa_credit_note:{tenant}"))
}
