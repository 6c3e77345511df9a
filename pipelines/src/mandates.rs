//! The history of each direct-debit mandate in the ledger (tables `sepa_mandate`,
//! `sepa_collection`), and the small API other stages call.
//!
//! * [`sequence_for`] — the sequence type (`FRST` / `RCUR` / `OOFF`) of an invoice's
//!   collection when the source did not give it (the Polyfac ingest calls it), or why the
//!   mandate cannot be used. Deterministic and idempotent per invoice: the answer is
//!   recorded as the invoice's *planned use* of the mandate, and asking again for the same
//!   invoice returns it without recording a second use.
//! * [`record_outcome`] — what the bank said of a presented collection (rejected before
//!   settlement, returned after, settled). A `FRST` rejected before settlement does not
//!   count as a use, so the next collection is `FRST` again; final codes (MD01, MD07 close,
//!   AC04… suspend until the account changes) end the mandate's use. The rules are the
//!   adapter's ([`encaisse_sepa::mandate::next_sequence`]); this module only feeds it the
//!   history.
//!
//! Every function takes the caller's write transaction, so a caller records the use
//! atomically with its own effects. The mandate and its uses are read and written through
//! the ledger's `SepaStore` (a [`Tx`], SQLite or PostgreSQL); the outcomes, refusals and
//! amendments still take an SQLite `Connection` (callers inside `Ledger::write` pass
//! `&mut Tx::sqlite(c)` to the others).

use chrono::NaiveDate;
use encaisse_ledger::rusqlite::{Connection, OptionalExtension};
use encaisse_ledger::sepa::{MandateRow, NewUse, UseRow, Uses};
use encaisse_ledger::{LedgerError, SepaStore, Tx};
use encaisse_schemas::identifiers::{Bic, Iban, Ics, Rum};
use encaisse_schemas::text::to_sepa;
use encaisse_schemas::{InvoiceRef, Mandate, SequenceType};
use encaisse_sepa::Amendment;
use encaisse_sepa::ids::end_to_end_id;
use encaisse_sepa::mandate::next_sequence;
pub use encaisse_sepa::mandate::{
    MandateHistory, MandateKind, MandateUnusable, Outcome, PastCollection, SequencePolicy,
};

use crate::stage::ErrorClass;
use crate::stages::sepa::clock::Clock;
use encaisse_ledger::clock::now as ledger_now;

/// Why no sequence type can be given.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    /// The mandate cannot carry a new collection (closed, suspended, lapsed, one-off used,
    /// not signed yet): the invoice must be paid another way.
    #[error(transparent)]
    Unusable(#[from] MandateUnusable),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<encaisse_ledger::rusqlite::Error> for SequenceError {
    fn from(e: encaisse_ledger::rusqlite::Error) -> Self {
        SequenceError::Ledger(LedgerError::from(e))
    }
}

impl SequenceError {
    /// An unusable mandate is bad data (permanent); a ledger failure is usually transient.
    pub fn class(&self) -> ErrorClass {
        match self {
            SequenceError::Unusable(_) => ErrorClass::Permanent,
            SequenceError::Ledger(e) if e.is_transient() => ErrorClass::Transient,
            SequenceError::Ledger(_) => ErrorClass::Permanent,
        }
    }
}

/// Where a use of a mandate stands (`sepa_collection.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseStatus {
    /// Sequence decided, not in a written file yet.
    Planned,
    /// In a written pain.008, no news from the bank.
    Presented,
    /// Never sent (refused by the rules or the setup): not part of the mandate's history.
    Refused,
    /// Refused by a bank before settlement (pain.002).
    Rejected,
    /// Sent back after settlement (camt.054: return or refund).
    Returned,
    /// Debited.
    Settled,
}

impl UseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UseStatus::Planned => "planned",
            UseStatus::Presented => "presented",
            UseStatus::Refused => "refused",
            UseStatus::Rejected => "rejected",
            UseStatus::Returned => "returned",
            UseStatus::Settled => "settled",
        }
    }

    fn parse(text: &str) -> Result<Self, LedgerError> {
        Ok(match text {
            "planned" => UseStatus::Planned,
            "presented" => UseStatus::Presented,
            "refused" => UseStatus::Refused,
            "rejected" => UseStatus::Rejected,
            "returned" => UseStatus::Returned,
            "settled" => UseStatus::Settled,
            other => return Err(corrupt("sepa_collection.status", other)),
        })
    }
}

fn corrupt(field: &str, value: &str) -> LedgerError {
    LedgerError::Corrupt(format!("{field}: unexpected value {value:?}"))
}

pub(crate) fn parse_date(field: &str, text: &str) -> Result<NaiveDate, LedgerError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| corrupt(field, text))
}

pub(crate) fn parse_sequence(text: &str) -> Result<SequenceType, LedgerError> {
    Ok(match text {
        "FRST" => SequenceType::Frst,
        "RCUR" => SequenceType::Rcur,
        "FNAL" => SequenceType::Fnal,
        "OOFF" => SequenceType::Ooff,
        other => return Err(corrupt("sepa_collection.sequence", other)),
    })
}

/// One use of a mandate: an invoice's presentation `attempt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MandateUse {
    pub invoice_key: String,
    pub attempt: u32,
    pub rum_key: String,
    pub end_to_end_id: Option<String>,
    pub due_date: NaiveDate,
    pub sequence: SequenceType,
    pub status: UseStatus,
    pub regie: Option<String>,
    pub amount_cents: Option<i64>,
    pub outcome_code: Option<String>,
    pub outcome_on: Option<NaiveDate>,
}

/// A stored use with its text columns checked.
pub(crate) fn typed(row: UseRow) -> Result<MandateUse, LedgerError> {
    Ok(MandateUse {
        due_date: parse_date("sepa_collection.due_date", &row.due_date)?,
        sequence: parse_sequence(&row.sequence)?,
        status: UseStatus::parse(&row.status)?,
        outcome_on: row
            .outcome_on
            .as_deref()
            .map(|d| parse_date("sepa_collection.outcome_on", d))
            .transpose()?,
        attempt: u32::try_from(row.attempt)
            .map_err(|_| corrupt("sepa_collection.attempt", &row.attempt.to_string()))?,
        invoice_key: row.invoice_key,
        rum_key: row.rum_key,
        end_to_end_id: row.end_to_end_id,
        regie: row.regie,
        amount_cents: row.amount_cents,
        outcome_code: row.outcome_code,
    })
}

/// The use of presentation `attempt` of an invoice, if recorded.
pub fn use_of(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
    attempt: u32,
) -> Result<Option<MandateUse>, LedgerError> {
    tx.sepa_use(tenant, invoice_key, i64::from(attempt))?
        .map(typed)
        .transpose()
}

/// The use a bank's end-to-end id names.
pub fn use_by_end_to_end_id(
    tx: &mut Tx<'_>,
    tenant: &str,
    end_to_end_id: &str,
) -> Result<Option<MandateUse>, LedgerError> {
    tx.sepa_use_by_end_to_end_id(tenant, end_to_end_id)?
        .map(typed)
        .transpose()
}

/// Every use of a mandate, oldest first.
pub fn uses_of_mandate(
    tx: &mut Tx<'_>,
    tenant: &str,
    rum_key: &str,
) -> Result<Vec<MandateUse>, LedgerError> {
    tx.sepa_uses(tenant, &Uses::OfMandate(rum_key))?
        .into_iter()
        .map(typed)
        .collect()
}

/// What the ledger knows of a mandate itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownMandate {
    pub rum: String,
    pub kind: MandateKind,
    pub signed_on: NaiveDate,
    /// The debtor account last given (personal data: never log it in clear).
    pub iban: String,
    pub bic: Option<String>,
    pub amended_on: Option<NaiveDate>,
}

/// The mandate `rum` of `tenant`, if the ledger saw it.
pub fn known_mandate(
    tx: &mut Tx<'_>,
    tenant: &str,
    rum: &Rum,
) -> Result<Option<KnownMandate>, LedgerError> {
    tx.sepa_mandate(tenant, &rum.key())?.map(known).transpose()
}

fn known(m: MandateRow) -> Result<KnownMandate, LedgerError> {
    Ok(KnownMandate {
        kind: if m.one_off {
            MandateKind::OneOff
        } else {
            MandateKind::Recurrent
        },
        signed_on: parse_date("sepa_mandate.signed_on", &m.signed_on)?,
        amended_on: m
            .amended_on
            .as_deref()
            .map(|d| parse_date("sepa_mandate.amended_on", d))
            .transpose()?,
        rum: m.rum,
        iban: m.iban,
        bic: m.bic,
    })
}

/// Records what an invoice says of its mandate: a new mandate is created (one-off when the
/// source said `OOFF`); a new debtor account (IBAN) is an amendment dated `today`, which
/// lifts a suspension (AC04…) reported before it. The mandate stays locked until the
/// transaction ends, so that the use decided next sees every use decided before it (on
/// PostgreSQL, where transactions run side by side).
pub fn observe_mandate(
    tx: &mut Tx<'_>,
    tenant: &str,
    mandate: &Mandate,
    today: NaiveDate,
) -> Result<(), LedgerError> {
    let one_off = mandate.sequence == Some(SequenceType::Ooff);
    let rum_key = mandate.rum.key();
    let bic = mandate.bic.as_ref().map(|b| b.as_str().to_string());
    let mut stored = tx.lock_sepa_mandate(tenant, &rum_key)?;
    if stored.is_none() {
        let new = MandateRow {
            rum: mandate.rum.as_str().to_string(),
            one_off,
            signed_on: mandate.signed_on.to_string(),
            iban: mandate.iban.as_str().to_string(),
            bic: bic.clone(),
            amended_on: None,
        };
        if tx.insert_sepa_mandate(tenant, &rum_key, &new, &ledger_now())? {
            return Ok(());
        }
        // Created by a transaction that committed meanwhile: compare with what it recorded.
        stored = tx.lock_sepa_mandate(tenant, &rum_key)?;
    }
    let Some(stored) = stored else {
        return Err(LedgerError::Corrupt(format!(
            "mandate {} of tenant {tenant} neither recorded nor readable",
            mandate.rum
        )));
    };
    let known = known(stored.clone())?;
    let account_changed = known.iban != mandate.iban.as_str();
    let changed = account_changed
        || known.bic != bic
        || known.signed_on != mandate.signed_on
        || known.rum != mandate.rum.as_str()
        || (one_off && known.kind == MandateKind::Recurrent);
    if !changed {
        return Ok(());
    }
    let updated = MandateRow {
        rum: mandate.rum.as_str().to_string(),
        one_off: stored.one_off || one_off,
        signed_on: mandate.signed_on.to_string(),
        iban: mandate.iban.as_str().to_string(),
        bic,
        amended_on: if account_changed {
            Some(today.to_string())
        } else {
            stored.amended_on
        },
    };
    tx.update_sepa_mandate(tenant, &rum_key, &updated, &ledger_now())?;
    if account_changed {
        tracing::info!(
            tenant,
            rum = %mandate.rum,
            iban = %mandate.iban,
            "Mandate amended: new debtor account."
        );
    }
    Ok(())
}

/// The mandate's history as [`next_sequence`] reads it, without the use of
/// (`invoice_key`, `attempt`) and without refused uses (never sent). `None` for a mandate
/// the ledger never saw.
pub fn history(
    tx: &mut Tx<'_>,
    tenant: &str,
    rum: &Rum,
    except: Option<(&str, u32)>,
) -> Result<Option<MandateHistory>, LedgerError> {
    let Some(known) = known_mandate(tx, tenant, rum)? else {
        return Ok(None);
    };
    let collections = uses_of_mandate(tx, tenant, &rum.key())?
        .into_iter()
        .filter(|u| except != Some((u.invoice_key.as_str(), u.attempt)))
        .filter_map(|u| {
            let on = u.outcome_on.unwrap_or(u.due_date);
            let outcome = match u.status {
                UseStatus::Refused => return None,
                UseStatus::Planned | UseStatus::Presented => Outcome::Pending,
                UseStatus::Settled => Outcome::Settled,
                UseStatus::Rejected => Outcome::RejectedBeforeSettlement {
                    code: u.outcome_code,
                    on,
                },
                UseStatus::Returned => Outcome::ReturnedAfterSettlement {
                    code: u.outcome_code,
                    on,
                },
            };
            Some(PastCollection {
                due_date: u.due_date,
                sequence: u.sequence,
                outcome,
            })
        })
        .collect();
    Ok(Some(MandateHistory {
        kind: known.kind,
        signed_on: known.signed_on,
        amended_on: known.amended_on,
        collections,
    }))
}

/// A request for one use of a mandate.
#[derive(Debug, Clone, Copy)]
pub struct UseRequest<'a> {
    pub invoice: &'a InvoiceRef,
    /// 1 for the first presentation, 2 for a re-presentation…
    pub attempt: u32,
    pub mandate: &'a Mandate,
    pub due_date: NaiveDate,
    /// A sequence type the caller already knows (given by the source, or kept from the
    /// presentation being re-presented): used once the mandate is known to be usable.
    pub given: Option<SequenceType>,
}

/// Decides and records the use `request` makes of its mandate (status `planned`), or says
/// why the mandate cannot be used (nothing is recorded then). Asking again for the same
/// invoice and attempt returns the recorded answer; a use still `planned` under another
/// RUM, or `refused`, is decided again. The mandate must have been observed
/// ([`observe_mandate`]) first.
pub fn plan_use(
    tx: &mut Tx<'_>,
    request: &UseRequest<'_>,
    policy: &SequencePolicy,
) -> Result<SequenceType, SequenceError> {
    let tenant = request.invoice.tenant.as_str();
    let invoice_key = request.invoice.key();
    let rum_key = request.mandate.rum.key();
    let attempt = i64::from(request.attempt);
    if let Some(existing) = use_of(tx, tenant, &invoice_key, request.attempt)? {
        let redo = match existing.status {
            UseStatus::Refused => true,
            UseStatus::Planned => existing.rum_key != rum_key,
            _ => false,
        };
        if !redo {
            if existing.status == UseStatus::Planned && existing.due_date != request.due_date {
                tx.set_sepa_use_due_date(
                    tenant,
                    &invoice_key,
                    attempt,
                    &request.due_date.to_string(),
                )?;
            }
            return Ok(existing.sequence);
        }
        tx.delete_sepa_use(tenant, &invoice_key, attempt)?;
    }
    let history = history(tx, tenant, &request.mandate.rum, None)?.ok_or_else(|| {
        // Every caller observes the mandate earlier in the same transaction.
        LedgerError::Corrupt(format!(
            "mandate {} of invoice {invoice_key} was not observed before its use",
            request.mandate.rum
        ))
    })?;
    let computed = next_sequence(&history, *policy, request.due_date)?;
    let sequence = request.given.unwrap_or(computed);
    // The end-to-end id names the collection in bank returns; two invoice numbers that
    // differ only by characters outside the SEPA set would share one: the second gets none
    // (and is refused when planned into a file).
    let e2e = match end_to_end_id(request.invoice, request.attempt) {
        Ok(id) => match use_by_end_to_end_id(tx, tenant, &id)? {
            Some(other) if other.invoice_key != invoice_key => None,
            _ => Some(id),
        },
        Err(_) => None,
    };
    tx.plan_sepa_use(&NewUse {
        tenant,
        invoice_key: &invoice_key,
        attempt,
        rum_key: &rum_key,
        end_to_end_id: e2e.as_deref(),
        due_date: &request.due_date.to_string(),
        sequence: sequence.as_str(),
        planned_at: &ledger_now(),
    })?;
    Ok(sequence)
}

/// The sequence type of an invoice's (first) collection when the source did not give it,
/// recorded as the invoice's planned use of `mandate` — the hook of the Polyfac ingest.
///
/// Deterministic and idempotent per invoice: asking twice for the same invoice returns the
/// same answer and records one use. `Err(SequenceError::Unusable)` when the mandate is
/// closed (MD01, MD07), suspended (AC04…, until the account changes), lapsed (36 months),
/// a one-off already used, or signed after `due_date`.
pub fn sequence_for(
    tx: &mut Tx<'_>,
    invoice: &InvoiceRef,
    mandate: &Mandate,
    due_date: NaiveDate,
    policy: &SequencePolicy,
) -> Result<SequenceType, SequenceError> {
    observe_mandate(
        tx,
        invoice.tenant.as_str(),
        mandate,
        Clock::system().today(),
    )?;
    plan_use(
        tx,
        &UseRequest {
            invoice,
            attempt: 1,
            mandate,
            due_date,
            given: None,
        },
        policy,
    )
}

/// Marks a planned use as never sent: it leaves the mandate's history.
pub fn refuse_use(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
    attempt: u32,
) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE sepa_collection SET status = 'refused', file_id = NULL
         WHERE tenant = ?1 AND invoice_key = ?2 AND attempt = ?3 AND status = 'planned'",
        &[&tenant, &invoice_key, &attempt],
    )?;
    Ok(())
}

/// What the bank said of a presented collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BankOutcome {
    /// Refused before settlement (pain.002): the debtor was not debited.
    Rejected { code: Option<String> },
    /// Returned or refunded after settlement (camt.054).
    Returned { code: Option<String> },
    /// Debited.
    Settled,
}

/// What [`record_outcome`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The collection's outcome was recorded.
    New(MandateUse),
    /// The collection was already rejected or returned: the same R-transaction reported
    /// again (pain.002 then camt.054, or the same file twice). Nothing changes.
    AlreadyRejected(MandateUse),
    /// No collection has this end-to-end id.
    Unknown,
}

/// Records the bank's verdict on the collection `end_to_end_id`, reported `on`. A collection
/// is rejected at most once; a settled one may still be returned (refund).
pub fn record_outcome(
    c: &Connection,
    tenant: &str,
    end_to_end_id: &str,
    outcome: &BankOutcome,
    on: NaiveDate,
) -> Result<Recorded, LedgerError> {
    let Some(current) = use_by_end_to_end_id(&mut Tx::sqlite(c), tenant, end_to_end_id)? else {
        return Ok(Recorded::Unknown);
    };
    // Never sent: the bank cannot be reporting on it.
    let in_a_file: bool = c.query_row(
        "SELECT file_id IS NOT NULL FROM sepa_collection WHERE tenant = ?1 AND end_to_end_id = ?2",
        (tenant, end_to_end_id),
        |r| r.get(0),
    )?;
    if current.status == UseStatus::Refused || !in_a_file {
        return Ok(Recorded::Unknown);
    }
    if matches!(current.status, UseStatus::Rejected | UseStatus::Returned) {
        return Ok(Recorded::AlreadyRejected(current));
    }
    let (status, code) = match outcome {
        BankOutcome::Rejected { code } => (UseStatus::Rejected, code.clone()),
        BankOutcome::Returned { code } => (UseStatus::Returned, code.clone()),
        BankOutcome::Settled => {
            if current.status == UseStatus::Settled {
                return Ok(Recorded::AlreadyRejected(current));
            }
            (UseStatus::Settled, None)
        }
    };
    c.execute(
        "UPDATE sepa_collection SET status = ?3, outcome_code = ?4, outcome_on = ?5
         WHERE tenant = ?1 AND end_to_end_id = ?2",
        (
            tenant,
            end_to_end_id,
            status.as_str(),
            &code,
            on.to_string(),
        ),
    )?;
    let mut updated = current;
    updated.status = status;
    updated.outcome_code = code;
    updated.outcome_on = Some(on);
    Ok(Recorded::New(updated))
}

/// What the last presented collection of a mandate carried, for the next one's amendment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub rum: String,
    pub iban: String,
    pub bic: Option<String>,
    pub ics: String,
    pub creditor_name: String,
}

/// The mandate data and creditor of the last collection presented under `rum`.
pub fn last_presented(
    c: &Connection,
    tenant: &str,
    rum: &Rum,
) -> Result<Option<Presented>, LedgerError> {
    Ok(c.query_row(
        "SELECT rum, iban, bic, ics, creditor_name FROM sepa_collection
         WHERE tenant = ?1 AND rum_key = ?2 AND file_id IS NOT NULL
           AND status IN ('presented', 'rejected', 'returned', 'settled')
           AND rum IS NOT NULL AND iban IS NOT NULL AND ics IS NOT NULL AND creditor_name IS NOT NULL
         ORDER BY planned_at DESC, attempt DESC LIMIT 1",
        (tenant, rum.key()),
        |r| {
            Ok(Presented {
                rum: r.get(0)?,
                iban: r.get(1)?,
                bic: r.get(2)?,
                ics: r.get(3)?,
                creditor_name: r.get(4)?,
            })
        },
    )
    .optional()?)
}

/// The amendment the next collection under `mandate` must carry: what changed since the
/// last presented collection — the debtor account (`Amendment::between`), and the
/// creditor's ICS or name (the adapter leaves those to the stage). `None` for a first
/// collection or when nothing the bank compares changed.
pub fn amendment_for(
    c: &Connection,
    tenant: &str,
    mandate: &Mandate,
    ics: &Ics,
    creditor_name: &str,
) -> Result<Option<Amendment>, LedgerError> {
    let Some(last) = last_presented(c, tenant, &mandate.rum)? else {
        return Ok(None);
    };
    let previous = Mandate {
        rum: Rum::parse(&last.rum).map_err(|_| corrupt("sepa_collection.rum", &last.rum))?,
        signed_on: mandate.signed_on,
        iban: Iban::parse(&last.iban).map_err(|_| corrupt("sepa_collection.iban", "…"))?,
        bic: last.bic.as_deref().and_then(|b| Bic::parse(b).ok()),
        holder: mandate.holder.clone(),
        sequence: None,
    };
    let mut amendment = Amendment::between(&previous, mandate).unwrap_or_default();
    if last.ics != ics.as_str() {
        amendment.original_ics =
            Some(Ics::parse(&last.ics).map_err(|_| corrupt("sepa_collection.ics", &last.ics))?);
    }
    if to_sepa(&last.creditor_name) != to_sepa(creditor_name) {
        amendment.original_creditor_name = Some(last.creditor_name);
    }
    Ok((!amendment.is_empty()).then_some(amendment))
}

/// The mandate to use for a re-presentation: the invoice's mandate with the debtor account
/// the ledger knows now (a newer invoice may have brought a new IBAN).
pub fn current_mandate(
    tx: &mut Tx<'_>,
    tenant: &str,
    from_invoice: &Mandate,
) -> Result<Mandate, LedgerError> {
    let Some(known) = known_mandate(tx, tenant, &from_invoice.rum)? else {
        return Ok(from_invoice.clone());
    };
    let mut mandate = from_invoice.clone();
    if let Ok(iban) = Iban::parse(&known.iban) {
        mandate.iban = iban;
        mandate.bic = known.bic.as_deref().and_then(|b| Bic::parse(b).ok());
    }
    mandate.signed_on = known.signed_on;
    Ok(mandate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use encaisse_ledger::Ledger;
    use encaisse_schemas::TenantId;
    use encaisse_sepa::config::FirstSequence;

    const POLICY: SequencePolicy = SequencePolicy {
        first: FirstSequence::Frst,
        lapse_months: 36,
    };

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    fn invoice(number: &str) -> InvoiceRef {
        InvoiceRef {
            tenant: TenantId::new("ivry").unwrap(),
            exercice: 2026,
            number: number.into(),
        }
    }

    fn mandate(rum: &str, iban: &str) -> Mandate {
        Mandate {
            rum: Rum::parse(rum).unwrap(),
            signed_on: d(1, 15),
            iban: Iban::parse(iban).unwrap(),
            bic: None,
            holder: "Mme Hélène Œuvray".into(),
            sequence: None,
        }
    }

    const IBAN: &str = "FR7630006000011234567890189";
    const OTHER_BANK: &str = "FR1420041010050500013M02606";

    async fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        (dir, ledger)
    }

    fn ask(
        c: &Connection,
        number: &str,
        m: &Mandate,
        due: NaiveDate,
    ) -> Result<SequenceType, SequenceError> {
        sequence_for(&mut Tx::sqlite(c), &invoice(number), m, due, &POLICY)
    }

    fn present(c: &Connection, number: &str, attempt: u32, rum: &str) {
        c.execute(
            "INSERT INTO sepa_file (tenant, origin, kind, path, bytes, cause, planned_at)
             VALUES ('ivry', 'test', 'pain008', ?1, x'', 'run', '2026-01-01T00:00:00Z')",
            [format!("ivry/bank/outbox/{number}-{attempt}.xml")],
        )
        .unwrap();
        let file = c.last_insert_rowid();
        c.execute(
            "UPDATE sepa_collection SET status = 'presented', file_id = ?3, rum = ?5,
                 iban = ?4, ics = 'FR72ZZZ123456', creditor_name = 'Regie'
             WHERE invoice_key = ?1 AND attempt = ?2",
            (invoice(number).key(), attempt, file, IBAN, rum),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn asking_twice_gives_the_same_answer_and_one_use() {
        let (_dir, ledger) = ledger().await;
        let m = mandate("RUM-1", IBAN);
        let (first, again, second, uses) = ledger
            .write(move |c| {
                let first = ask(c, "F1", &m, d(2, 10)).unwrap();
                let again = ask(c, "F1", &m, d(2, 10)).unwrap();
                let second = ask(c, "F2", &m, d(3, 10)).unwrap();
                let uses = uses_of_mandate(&mut Tx::sqlite(c), "ivry", "RUM-1")?;
                Ok((first, again, second, uses))
            })
            .await
            .unwrap();
        assert_eq!(first, SequenceType::Frst);
        assert_eq!(again, SequenceType::Frst, "same invoice, same answer");
        assert_eq!(second, SequenceType::Rcur, "the first use is pending");
        assert_eq!(uses.len(), 2, "one planned use per invoice: {uses:?}");
        assert_eq!(uses[0].end_to_end_id.as_deref(), Some("2026-F1-1"));
        assert!(uses.iter().all(|u| u.status == UseStatus::Planned));
    }

    #[tokio::test]
    async fn the_bank_cannot_reject_what_was_never_sent() {
        let (_dir, ledger) = ledger().await;
        let (planned, refused) = ledger
            .write(|c| {
                let m = mandate("RUM-1", IBAN);
                ask(c, "F1", &m, d(2, 10)).unwrap();
                let rejected = BankOutcome::Rejected {
                    code: Some("AM04".into()),
                };
                let planned = record_outcome(c, "ivry", "2026-F1-1", &rejected, d(2, 9))?;
                refuse_use(&mut Tx::sqlite(c), "ivry", "ivry/2026/F1", 1)?;
                let refused = record_outcome(c, "ivry", "2026-F1-1", &rejected, d(2, 9))?;
                Ok((planned, refused))
            })
            .await
            .unwrap();
        assert_eq!(planned, Recorded::Unknown, "planned, in no file yet");
        assert_eq!(refused, Recorded::Unknown);
    }

    #[tokio::test]
    async fn a_frst_rejected_before_settlement_is_frst_again() {
        let (_dir, ledger) = ledger().await;
        let m = mandate("RUM-1", IBAN);
        let next = ledger
            .write(move |c| {
                ask(c, "F1", &m, d(2, 10)).unwrap();
                present(c, "F1", 1, "RUM-1");
                let recorded = record_outcome(
                    c,
                    "ivry",
                    "2026-F1-1",
                    &BankOutcome::Rejected {
                        code: Some("AM04".into()),
                    },
                    d(2, 9),
                )?;
                assert!(matches!(recorded, Recorded::New(_)));
                let again = record_outcome(
                    c,
                    "ivry",
                    "2026-F1-1",
                    &BankOutcome::Returned {
                        code: Some("AM04".into()),
                    },
                    d(2, 12),
                )?;
                assert!(matches!(again, Recorded::AlreadyRejected(_)));
                Ok(ask(c, "F2", &m, d(3, 10)))
            })
            .await
            .unwrap();
        assert_eq!(next.unwrap(), SequenceType::Frst);
    }

    #[tokio::test]
    async fn final_codes_end_the_use_and_a_new_account_lifts_a_suspension() {
        let (_dir, ledger) = ledger().await;
        let closed = ledger
            .write(|c| {
                let m = mandate("RUM-1", IBAN);
                ask(c, "F1", &m, d(2, 10)).unwrap();
                present(c, "F1", 1, "RUM-1");
                record_outcome(
                    c,
                    "ivry",
                    "2026-F1-1",
                    &BankOutcome::Rejected {
                        code: Some("MD01".into()),
                    },
                    d(2, 9),
                )?;
                let refused = ask(c, "F2", &m, d(3, 10));
                let uses = uses_of_mandate(&mut Tx::sqlite(c), "ivry", "RUM-1")?.len();
                Ok((refused, uses))
            })
            .await
            .unwrap();
        match closed.0 {
            Err(SequenceError::Unusable(e)) => assert_eq!(e.kind(), "mandate_closed"),
            other => panic!("{other:?}"),
        }
        assert_eq!(closed.1, 1, "an unusable mandate records no use");

        // AC04 suspends until the debtor account changes (after the reject).
        let (suspended, amended, amendment) = ledger
            .write(|c| {
                let m = mandate("RUM-2", IBAN);
                ask(c, "G1", &m, d(2, 10)).unwrap();
                present(c, "G1", 1, "RUM-2");
                record_outcome(
                    c,
                    "ivry",
                    "2026-G1-1",
                    &BankOutcome::Returned {
                        code: Some("AC04".into()),
                    },
                    d(2, 12),
                )?;
                let suspended = ask(c, "G2", &m, d(3, 10));
                let new_account = mandate("RUM-2", OTHER_BANK);
                observe_mandate(&mut Tx::sqlite(c), "ivry", &new_account, d(2, 20))?;
                let amended = plan_use(
                    &mut Tx::sqlite(c),
                    &UseRequest {
                        invoice: &invoice("G2"),
                        attempt: 1,
                        mandate: &new_account,
                        due_date: d(3, 10),
                        given: None,
                    },
                    &POLICY,
                );
                let ics = Ics::parse("FR72ZZZ123456").unwrap();
                let amendment = amendment_for(c, "ivry", &new_account, &ics, "Regie")?;
                Ok((suspended, amended, amendment))
            })
            .await
            .unwrap();
        assert!(matches!(
            suspended,
            Err(SequenceError::Unusable(MandateUnusable::Suspended { .. }))
        ));
        assert_eq!(amended.unwrap(), SequenceType::Rcur);
        let amendment = amendment.unwrap();
        assert_eq!(
            amendment.original_debtor_account,
            Some(encaisse_sepa::OriginalDebtorAccount::SameMandateNewDebtorAccount),
            "another bank: SMNDA"
        );
        assert!(amendment.original_ics.is_none());
    }

    #[tokio::test]
    async fn creditor_changes_are_amendments_and_refused_uses_leave_the_history() {
        let (_dir, ledger) = ledger().await;
        let (amendment, after_refusal) = ledger
            .write(|c| {
                let m = mandate("RUM-1", IBAN);
                ask(c, "F1", &m, d(2, 10)).unwrap();
                present(c, "F1", 1, "RUM-1");
                let new_ics = Ics::parse("FR49ZZZ000001").unwrap();
                let amendment = amendment_for(c, "ivry", &m, &new_ics, "Régie")?;
                // F1 is presented (pending), so F2 is RCUR; refused before sending, F2
                // leaves the mandate's history.
                assert_eq!(ask(c, "F2", &m, d(3, 10)).unwrap(), SequenceType::Rcur);
                refuse_use(&mut Tx::sqlite(c), "ivry", "ivry/2026/F2", 1)?;
                let h = history(&mut Tx::sqlite(c), "ivry", &m.rum, None)?.unwrap();
                Ok((amendment, h.collections.len()))
            })
            .await
            .unwrap();
        let amendment = amendment.unwrap();
        assert_eq!(
            amendment.original_ics.map(|i| i.as_str().to_string()),
            Some("FR72ZZZ123456".into())
        );
        assert!(
            amendment.original_creditor_name.is_none(),
            "Régie and Regie are the same name once transliterated"
        );
        assert_eq!(after_refusal, 1);
    }
}
