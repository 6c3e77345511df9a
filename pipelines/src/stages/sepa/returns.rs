//! The `sepa.returns` source: the bank's pain.002 (rejects before settlement) and camt.054
//! (returns and refunds after settlement) dropped in `<tenant>/bank/inbox`.
//!
//! For each file (an [`InboxHandler`] of the shared watcher):
//!
//! 1. read it with the adapter (size limit, no DTD / entities; an unreadable or unknown file
//!    goes to `bank/rejected` with the reason, the inbox is never blocked);
//! 2. in **one** ledger transaction, for each record not handled before (the readers'
//!    idempotency keys): find its collections — end-to-end id, then (RUM, amount, date),
//!    then the block; a group or block reject is expanded to every collection of that
//!    message or block — record the outcome (a collection is rejected at most once, so the
//!    same R-transaction in a pain.002 then a camt.054 yields nothing new), decide
//!    (re-present AM04 / MS03 at most `max_representations` times, later, or final), plan
//!    the re-presentation pain.008 (new end-to-end id), queue the `payment.rejected`
//!    (deterministic id), and plan a report of the records that matched nothing;
//! 3. write the planned files, publish the events (confirmed), archive the bank file.
//!
//! A crash anywhere leaves the file in the inbox (or its effects planned): the next scan
//! completes the plan and finds every record already handled.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDateTime;
use encaisse_ledger::{LedgerError, Tx};
use encaisse_schemas::{Event, InvoiceRef, Money, TenantId};
use encaisse_sepa::calendar::{earliest_due_date, next_target_day};
use encaisse_sepa::read::{MatchedCollection, RTransaction, RejectLevel};
use encaisse_sepa::reasons::{self, Handling, MandateEffect};
use encaisse_sepa::report::{UnmatchedRow, unmatched_report};
use encaisse_sepa::{BankFile, Decision, ReadSettings, RejectRecord, RepresentationPolicy};
use futures::future::BoxFuture;

use super::batch::file_safe;
use super::clock::{Clock, paris_midnight};
use super::plan::{self, Candidate, PlanContext, PlanError};
use super::refusal::{self, Refusal};
use super::store::{self, FileKind, NewFile};
use super::{SepaSettings, TenantSepa, metrics, outputs};
use crate::mandates::{self, BankOutcome, MandateUse, Recorded, UseStatus};
use crate::runtime::SourceContext;
use crate::stage::{ErrorClass, Outgoing, StageError};
use crate::stages::inbox::{FileOutcome, InboxFile, InboxHandler};
use crate::stages::untrusted_file;

/// The source's name, also the `origin` of what it plans.
pub const SOURCE: &str = "sepa.returns";

/// Reads the bank's files of every direct-debit tenant.
pub struct SepaReturns {
    tenants: BTreeMap<TenantId, TenantSepa>,
    data_dir: PathBuf,
    clock: Clock,
}

/// What one bank file changed.
#[derive(Debug, Default)]
struct Applied {
    /// (reason code, will re-present) of each new `payment.rejected`.
    rejected: Vec<(String, bool)>,
    represented: usize,
    not_represented: Vec<Refusal>,
    unmatched: Vec<(usize, String)>,
    duplicates: u64,
    already_seen: u64,
}

fn read_error_class(class: encaisse_sepa::ErrorClass) -> ErrorClass {
    match class {
        encaisse_sepa::ErrorClass::Transient => ErrorClass::Transient,
        encaisse_sepa::ErrorClass::Permanent => ErrorClass::Permanent,
        encaisse_sepa::ErrorClass::Poison => ErrorClass::Poison,
    }
}

impl SepaReturns {
    pub fn new(settings: SepaSettings) -> Self {
        SepaReturns {
            tenants: settings
                .tenants
                .into_iter()
                .map(|t| (t.id.clone(), t))
                .collect(),
            data_dir: settings.data_dir,
            clock: settings.clock,
        }
    }

    /// Writes what was planned and publishes what was queued (a crash's leftovers first).
    async fn flush(&self, ctx: &SourceContext, tenant: &str) -> Result<(), StageError> {
        outputs::write_planned(&ctx.ledger, &self.data_dir, tenant, SOURCE).await?;
        let events = outputs::pending_events(&ctx.ledger, tenant, SOURCE).await?;
        if events.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = events.iter().map(Event::message_id).collect();
        ctx.publisher
            .publish(events.iter().map(Outgoing::event).collect())
            .await
            .map_err(|e| StageError::new(e.class(), "publish", e.to_string()))?;
        ctx.ledger
            .transact(move |tx| store::mark_handed(tx, &ids))
            .await?;
        Ok(())
    }

    async fn handle_file(
        &self,
        ctx: &SourceContext,
        file: &InboxFile,
    ) -> Result<FileOutcome, StageError> {
        let Some(tenant) = self.tenants.get(&file.tenant) else {
            return Ok(FileOutcome::Rejected {
                reason: format!(
                    "tenant {} has no [tenants.sepa] section: no direct debit to match",
                    file.tenant
                ),
            });
        };
        let id = tenant.id.as_str();
        self.flush(ctx, id).await?;
        let limit = tenant.sepa.max_input_bytes;
        if file.size_bytes > limit {
            return Err(StageError::poison(
                "bank_file_too_large",
                format!(
                    "{}: {} bytes, more than max_input_bytes ({limit}): not read",
                    file.name, file.size_bytes
                ),
            ));
        }
        let bytes = untrusted_file::read_async(&file.path, limit).await?;
        let settings = ReadSettings::from(&tenant.sepa);
        let bank = encaisse_sepa::read_bank_file(&file.name, &bytes, &settings).map_err(|e| {
            let class = read_error_class(e.class());
            let kind = match class {
                ErrorClass::Poison => "unreadable_bank_file",
                _ => "invalid_bank_file",
            };
            StageError::new(class, kind, e.to_string())
        })?;
        for warning in &bank.warnings {
            tracing::warn!(tenant = id, file = %file.name, warning = %warning, "Bank file value ignored.");
        }
        if !bank.reports_on_direct_debits() {
            tracing::info!(
                tenant = id,
                file = %file.name,
                original = bank.original_message_name.as_deref().unwrap_or(""),
                "Status report about another message than a direct debit: nothing to do."
            );
            return Ok(FileOutcome::Archived);
        }
        let (cfg, now) = (tenant.clone(), self.clock.now());
        let applied = plan::commit(&ctx.ledger, move |tx| apply(tx, &cfg, &bank, now)).await?;
        self.flush(ctx, id).await?;
        report(id, &file.name, &applied);
        Ok(FileOutcome::Archived)
    }
}

/// Logs and counts what a file changed, once committed.
fn report(tenant: &str, file: &str, applied: &Applied) {
    for (code, will_represent) in &applied.rejected {
        metrics::rejected(tenant, code, *will_represent);
    }
    refusal::log(&applied.not_represented);
    for (line, why) in &applied.unmatched {
        tracing::warn!(tenant, file, line, why = %why, "Bank record matches no collection; see the unmatched report in bank/rejected.");
    }
    metrics::unmatched(tenant, applied.unmatched.len() as u64);
    metrics::duplicates(tenant, applied.duplicates + applied.already_seen);
    tracing::info!(
        tenant,
        file,
        rejected = applied.rejected.len(),
        represented = applied.represented,
        unmatched = applied.unmatched.len(),
        duplicates = applied.duplicates,
        already_seen = applied.already_seen,
        "Bank file handled."
    );
}

/// Records found for a record, or why none.
enum Resolution {
    Found(Vec<MandateUse>),
    NotFound(String),
}

/// Finds the collections a record is about (spec §6.3).
fn resolve(
    tx: &mut Tx<'_>,
    tenant: &str,
    record: &RejectRecord,
) -> Result<Resolution, LedgerError> {
    let keys = &record.keys;
    match record.level {
        RejectLevel::Group | RejectLevel::Block => {
            let Some(message_id) = &keys.original_message_id else {
                return Ok(Resolution::NotFound("no OrgnlMsgId".into()));
            };
            let Some(file) = store::file_by_message_id(tx, tenant, message_id)? else {
                return Ok(Resolution::NotFound(format!(
                    "no pain.008 with MsgId {message_id:?} was sent"
                )));
            };
            let block = match record.level {
                RejectLevel::Block => keys.original_payment_info_id.as_deref(),
                _ => None,
            };
            let uses = store::uses_of_file(tx, tenant, file, block)?;
            if uses.is_empty() {
                return Ok(Resolution::NotFound(format!(
                    "pain.008 {message_id:?} has no block {:?}",
                    block.unwrap_or("")
                )));
            }
            Ok(Resolution::Found(uses))
        }
        RejectLevel::Transaction => {
            if let Some(e2e) = &keys.end_to_end_id
                && let Some(found) = mandates::use_by_end_to_end_id(tx, tenant, e2e)?
            {
                return Ok(Resolution::Found(vec![found]));
            }
            let mut tried = Vec::new();
            if let Some(e2e) = &keys.end_to_end_id {
                tried.push(format!("end-to-end id {e2e:?}"));
            }
            if let (Some(rum), Some(amount)) = (&keys.mandate_id, keys.amount) {
                let mut found = store::uses_by_mandate_and_amount(
                    tx,
                    tenant,
                    &rum.to_ascii_uppercase(),
                    amount.cents(),
                )?;
                if let Some(date) = keys.collection_date {
                    found.retain(|u| u.due_date == date);
                }
                if found.len() > 1 {
                    // Prefer the one collection not rejected yet.
                    let open: Vec<MandateUse> = found
                        .iter()
                        .filter(|u| matches!(u.status, UseStatus::Presented | UseStatus::Settled))
                        .cloned()
                        .collect();
                    if open.len() == 1 {
                        found = open;
                    }
                }
                match found.len() {
                    1 => return Ok(Resolution::Found(found)),
                    0 => tried.push(format!("mandate {rum:?} with amount {amount}")),
                    n => {
                        return Ok(Resolution::NotFound(format!(
                            "{n} collections under mandate {rum:?} for {amount}: ambiguous"
                        )));
                    }
                }
            }
            if let (Some(message_id), Some(block)) =
                (&keys.original_message_id, &keys.original_payment_info_id)
                && let Some(file) = store::file_by_message_id(tx, tenant, message_id)?
            {
                let uses = store::uses_of_file(tx, tenant, file, Some(block))?;
                if uses.len() == 1 {
                    return Ok(Resolution::Found(uses));
                }
                tried.push(format!(
                    "block {block:?} of {message_id:?} ({} collections)",
                    uses.len()
                ));
            }
            if tried.is_empty() {
                tried.push("the record carries no key".into());
            }
            Ok(Resolution::NotFound(format!(
                "no collection found by {}",
                tried.join(", then ")
            )))
        }
    }
}

/// A collection newly rejected by a record, and what the policy says of it.
struct NewReject {
    record: usize,
    collection: MandateUse,
    decision: Decision,
}

fn level_rank(level: RejectLevel) -> u8 {
    match level {
        RejectLevel::Transaction => 0,
        RejectLevel::Block => 1,
        RejectLevel::Group => 2,
    }
}

/// The invoice of an invoice key (`tenant/exercice/number`).
fn invoice_of(key: &str) -> Option<InvoiceRef> {
    let mut parts = key.splitn(3, '/');
    let tenant = TenantId::new(parts.next()?).ok()?;
    let exercice = parts.next()?.parse().ok()?;
    let number = parts.next()?.to_string();
    Some(InvoiceRef {
        tenant,
        exercice,
        number,
    })
}

/// Everything one bank file changes, in the caller's transaction.
fn apply(
    tx: &mut Tx<'_>,
    tenant: &TenantSepa,
    bank: &BankFile,
    now: NaiveDateTime,
) -> Result<Applied, PlanError> {
    let id = tenant.id.as_str();
    let mut applied = Applied::default();
    // Transaction records first: their own reason wins over a block's or the group's.
    let mut order: Vec<usize> = (0..bank.records.len()).collect();
    order.sort_by_key(|&i| level_rank(bank.records[i].level));

    let policy = RepresentationPolicy::from(&tenant.sepa.represent);
    let mut new_rejects = Vec::new();
    let mut unmatched_rows = Vec::new();
    for index in order {
        let record = &bank.records[index];
        if store::record_seen(tx, id, &record.idempotency_key)? {
            applied.already_seen += 1;
            continue;
        }
        let uses = match resolve(tx, id, record)? {
            Resolution::Found(uses) => uses,
            Resolution::NotFound(why) => {
                store::record_handled(
                    tx,
                    id,
                    &record.idempotency_key,
                    &bank.file,
                    "unmatched",
                    serde_json::json!({ "line": record.line, "why": why }),
                )?;
                applied.unmatched.push((record.line, why.clone()));
                unmatched_rows.push((index, why));
                continue;
            }
        };
        let outcome = match record.r_type {
            RTransaction::Reject => BankOutcome::Rejected {
                code: record.reason_code.clone(),
            },
            RTransaction::Return | RTransaction::Refund => BankOutcome::Returned {
                code: record.reason_code.clone(),
            },
        };
        let mut collections = Vec::new();
        for found in uses {
            let Some(e2e) = found.end_to_end_id.clone() else {
                continue;
            };
            match mandates::record_outcome(tx, id, &e2e, &outcome, record.reported_on)? {
                Recorded::New(updated) => {
                    let decision = policy.decide(
                        record.reason_code.as_deref(),
                        updated.attempt,
                        record.reported_on,
                        Some(updated.due_date),
                    );
                    journal_reject(tx, id, bank, record, &updated, &decision)?;
                    collections.push(e2e);
                    new_rejects.push(NewReject {
                        record: index,
                        collection: updated,
                        decision,
                    });
                }
                Recorded::AlreadyRejected(_) | Recorded::Unknown => applied.duplicates += 1,
            }
        }
        store::record_handled(
            tx,
            id,
            &record.idempotency_key,
            &bank.file,
            if collections.is_empty() {
                "duplicate"
            } else {
                "matched"
            },
            serde_json::json!({ "line": record.line, "collections": collections }),
        )?;
    }

    let represented = plan_representations(tx, tenant, bank, now, &new_rejects, &mut applied)?;
    queue_events(tx, id, bank, &new_rejects, &represented, &mut applied)?;
    if !unmatched_rows.is_empty() {
        plan_unmatched_report(tx, id, bank, &unmatched_rows)?;
    }
    Ok(applied)
}

/// Per (invoice key, rejected attempt): re-presentation planned, or why not.
type Representations = BTreeMap<(String, u32), Result<(), String>>;

/// Plans the re-presentations the policy asks for; returns, per (invoice, rejected
/// attempt), whether it was planned or why not.
fn plan_representations(
    tx: &mut Tx<'_>,
    tenant: &TenantSepa,
    bank: &BankFile,
    now: NaiveDateTime,
    rejects: &[NewReject],
    applied: &mut Applied,
) -> Result<Representations, PlanError> {
    let id = tenant.id.as_str();
    let earliest = earliest_due_date(now.date(), tenant.sepa.lead_days);
    let mut outcome = BTreeMap::new();
    let mut per_regie: BTreeMap<Option<String>, Vec<Candidate>> = BTreeMap::new();
    for reject in rejects {
        let used = &reject.collection;
        let key = (used.invoice_key.clone(), used.attempt);
        let Decision::Represent { attempt, due_date } = reject.decision else {
            continue;
        };
        if let Some(next) = mandates::use_of(tx, id, &used.invoice_key, attempt)?
            && next.status != UseStatus::Refused
        {
            outcome.insert(key, Err(format!("presentation {attempt} already planned")));
            continue;
        }
        let Some(invoice) = store::kept_invoice(tx, id, &used.invoice_key)? else {
            outcome.insert(key, Err("the invoice is not in the ledger".into()));
            continue;
        };
        per_regie
            .entry(invoice.regie.clone())
            .or_default()
            .push(Candidate {
                attempt,
                due_date: next_target_day(due_date.max(earliest)),
                previous_sequence: Some(used.sequence),
                invoice,
            });
        outcome.insert(key, Ok(()));
    }
    let ctx = PlanContext {
        tenant,
        now,
        origin: SOURCE,
        cause: &bank.file,
    };
    for (regie, candidates) in per_regie {
        let plan = plan::plan_regie(tx, ctx, regie.as_deref(), candidates)?;
        applied.represented += plan.planned.len();
        for refused in plan.refused {
            let key = (refused.invoice.invoice.key(), refused.attempt - 1);
            outcome.insert(key, Err(refused.reason.clone()));
            applied.not_represented.push(refused);
        }
    }
    refusal::record_facts(tx, &applied.not_represented, &bank.file)?;
    Ok(outcome)
}

/// Queues one `payment.rejected` per newly rejected collection and journals it.
fn queue_events(
    tx: &mut Tx<'_>,
    tenant: &str,
    bank: &BankFile,
    rejects: &[NewReject],
    represented: &Representations,
    applied: &mut Applied,
) -> Result<(), PlanError> {
    for reject in rejects {
        let record = &bank.records[reject.record];
        let used = &reject.collection;
        let (Some(e2e), Some(invoice)) = (&used.end_to_end_id, invoice_of(&used.invoice_key))
        else {
            continue;
        };
        let amount = used
            .amount_cents
            .and_then(|cents| Money::from_cents(cents).ok())
            .or(record.keys.amount)
            .ok_or_else(|| PlanError::Corrupt(format!("collection {e2e} has no amount")))?;
        let planned = represented.get(&(used.invoice_key.clone(), used.attempt));
        let decision = match planned {
            Some(Ok(())) => Decision::Represent {
                attempt: used.attempt + 1,
                due_date: used.due_date,
            },
            _ => {
                let info = record.reason_code.as_deref().and_then(reasons::lookup);
                Decision::Final {
                    handling: info.map_or(Handling::Final, |i| i.handling),
                    mandate: info.map_or(MandateEffect::Keep, |i| i.mandate),
                    why: match planned {
                        Some(Err(why)) => format!("not re-presented: {why}"),
                        _ => "final".into(),
                    },
                }
            }
        };
        let mut event = record.to_event(
            &MatchedCollection {
                invoice,
                end_to_end_id: e2e.clone(),
                amount,
            },
            &decision,
            paris_midnight(record.reported_on),
            &bank.file,
        );
        if let (Some(Err(why)), Decision::Final { .. }) = (planned, &decision) {
            event.reason_text = format!("{} — not re-presented: {why}", event.reason_text);
        }
        store::insert_event(tx, tenant, SOURCE, &event)?;
        applied
            .rejected
            .push((event.reason_code.clone(), event.will_represent));
    }
    Ok(())
}

/// Journals a reject as soon as it is recorded, with the policy's decision (a refused
/// re-presentation is journalled after it, as `sepa_refused`).
fn journal_reject(
    tx: &mut Tx<'_>,
    tenant: &str,
    bank: &BankFile,
    record: &RejectRecord,
    rejected: &MandateUse,
    decision: &Decision,
) -> Result<(), LedgerError> {
    let r_type = match record.r_type {
        RTransaction::Reject => "reject",
        RTransaction::Return => "return",
        RTransaction::Refund => "refund",
    };
    let e2e = rejected.end_to_end_id.as_deref().unwrap_or("");
    store::fact(
        tx,
        &rejected.invoice_key,
        tenant,
        "payment_rejected",
        serde_json::json!({
            "end_to_end_id": e2e,
            "attempt": rejected.attempt,
            "reason_code": record.reason_code_or_narrative(),
            "r_type": r_type,
            "decision": match decision {
                Decision::Represent { .. } => "represent".to_string(),
                Decision::Final { why, .. } => format!("final: {why}"),
            },
            "file": bank.file,
            "bank_message_id": bank.message_id,
            "line": record.line,
        }),
        &format!("sepa:rejected:{tenant}:{e2e}"),
    )
}

/// Plans `<tenant>/bank/rejected/<bank MsgId>-unmatched.csv`.
fn plan_unmatched_report(
    tx: &mut Tx<'_>,
    tenant: &str,
    bank: &BankFile,
    unmatched: &[(usize, String)],
) -> Result<(), PlanError> {
    let rows: Vec<UnmatchedRow<'_>> = unmatched
        .iter()
        .map(|(index, why)| UnmatchedRow {
            record: &bank.records[*index],
            file: &bank.file,
            why: why.clone(),
        })
        .collect();
    let bytes = unmatched_report(&rows).map_err(|e| PlanError::Setup(e.to_string()))?;
    let stem = file_safe(&bank.message_id);
    let mut n = 1;
    let path = loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let path = format!("{tenant}/bank/rejected/{stem}{suffix}-unmatched.csv");
        if !store::name_taken(tx, tenant, &path, None)? {
            break path;
        }
        n += 1;
    };
    store::insert_file(
        tx,
        &NewFile {
            tenant,
            origin: SOURCE,
            kind: FileKind::UnmatchedReport,
            path,
            bytes,
            cause: &bank.file,
            pain: None,
        },
    )?;
    Ok(())
}

impl InboxHandler for SepaReturns {
    fn name(&self) -> &str {
        SOURCE
    }

    fn area(&self) -> &str {
        "bank"
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a SourceContext,
        file: &'a InboxFile,
    ) -> BoxFuture<'a, Result<FileOutcome, StageError>> {
        Box::pin(self.handle_file(ctx, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_keys_parse_back() {
        let invoice = invoice_of("ivry/2026/F/2026/7").unwrap();
        assert_eq!(invoice.tenant.as_str(), "ivry");
        assert_eq!(invoice.exercice, 2026);
        assert_eq!(invoice.number, "F/2026/7");
        assert!(invoice_of("ivry/20x6/F1").is_none());
    }
}
