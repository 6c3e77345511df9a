//! Planning one pain.008 for one régie, inside the caller's ledger transaction (the
//! phase-2 crash-safety pattern): decide each invoice's presentation (sequence type from the
//! mandate history, amendment, due date), set aside what the adapter refuses, allocate the
//! file's `{seq}` and name, build and render the message with the stored creation time, and
//! store the bytes with the plan. Writing the file is [`super::outputs`]' job, after commit:
//! a crash in between writes the very same bytes later, never a second file nor a gap.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use encaisse_ledger::rusqlite::Connection;
use encaisse_ledger::{LedgerError, Tx};
use encaisse_schemas::{InvoiceIssued, SequenceType};
use encaisse_sepa::calendar::next_target_day;
use encaisse_sepa::mandate::SequencePolicy;
use encaisse_sepa::naming::{NamingContext, render};
use encaisse_sepa::rules::{RuleViolation, Subject, check_collection, describe_all};
use encaisse_sepa::{Collection, Creditor, MessageHeader, Presentation, build, collection_for};

use super::TenantSepa;
use super::refusal::{Refusal, RefusalCode};
use super::store::{self, FileKind, NewFile, PainMeta};
use crate::mandates::{self, SequenceError, UseRequest};

/// Why planning cannot go on: the transaction is rolled back and the message parked (or
/// the bank file left for the next scan) until a person fixes the cause.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The configuration cannot produce a file (unknown régie, régie without ICS, file name
    /// pattern, more than 999 files a day…): fix `encaisse.toml`, restart, replay.
    #[error("{0}")]
    Setup(String),
    /// What the ledger holds cannot be read back (a payload that no longer decodes).
    #[error("{0}")]
    Corrupt(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<encaisse_ledger::rusqlite::Error> for PlanError {
    fn from(e: encaisse_ledger::rusqlite::Error) -> Self {
        PlanError::Ledger(LedgerError::from(e))
    }
}

/// One presentation to plan.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub invoice: InvoiceIssued,
    /// 1 for the first presentation, 2 for a re-presentation…
    pub attempt: u32,
    /// Wanted due date; moved to the next TARGET day if it is not one.
    pub due_date: NaiveDate,
    /// For a re-presentation, the sequence type of the presentation it replaces.
    pub previous_sequence: Option<SequenceType>,
}

/// Who plans, when, and why.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    pub tenant: &'a TenantSepa,
    /// The file's `CreDtTm` (local time), stored with the plan.
    pub now: NaiveDateTime,
    /// `sepa.batch` or `sepa.returns`.
    pub origin: &'a str,
    /// The billing run, or the bank file that caused a re-presentation.
    pub cause: &'a str,
}

/// A collection put in a planned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub invoice_key: String,
    pub attempt: u32,
    pub end_to_end_id: String,
    pub due_date: NaiveDate,
    pub sequence: SequenceType,
}

/// What planning one régie gave.
#[derive(Debug, Default)]
pub struct RegiePlan {
    /// The planned file's name, when at least one collection is valid.
    pub file_name: Option<String>,
    pub planned: Vec<Planned>,
    pub refused: Vec<Refusal>,
}

/// The prepared collection of one candidate, or why it is refused.
type Prepared = Result<Collection, (RefusalCode, String, Option<String>)>;

/// Plans the presentations of one régie's invoices (`regie` as the invoices name it).
pub fn plan_regie(
    c: &Connection,
    ctx: PlanContext<'_>,
    regie: Option<&str>,
    candidates: Vec<Candidate>,
) -> Result<RegiePlan, PlanError> {
    let mut plan = RegiePlan::default();
    let tenant = ctx.tenant.id.as_str();
    let Some(regie_code) = regie else {
        for candidate in candidates {
            plan.refused.push(refusal(
                &candidate,
                RefusalCode::Setup,
                "the invoice names no régie".into(),
                None,
            ));
        }
        return Ok(plan);
    };
    let sepa = &ctx.tenant.sepa;
    let regie = ctx
        .tenant
        .regies
        .iter()
        .find(|r| r.code == regie_code)
        .ok_or_else(|| {
            PlanError::Setup(format!(
                "tenant {tenant}: régie {regie_code:?} is not in [[tenants.regies]]"
            ))
        })?;
    let creditor = sepa
        .creditor(regie)
        .map_err(|e| PlanError::Setup(format!("tenant {tenant}: {e}")))?;
    let party = sepa
        .initiating_party(&creditor)
        .map_err(|e| PlanError::Setup(format!("tenant {tenant}: {e}")))?;
    let policy = SequencePolicy::from(sepa);

    let mut valid: Vec<(Collection, Candidate)> = Vec::new();
    for candidate in candidates {
        match prepare(c, ctx, &creditor, &policy, &candidate)? {
            Ok(collection) => valid.push((collection, candidate)),
            Err((code, reason, e2e)) => {
                mandates::refuse_use(
                    &mut encaisse_ledger::Tx::sqlite(c),
                    tenant,
                    &candidate.invoice.invoice.key(),
                    candidate.attempt,
                )?;
                plan.refused.push(refusal(&candidate, code, reason, e2e));
            }
        }
    }

    // Build; a collection the message-level checks refuse (a duplicate end-to-end id) is
    // set aside and the message built again without it.
    if valid.is_empty() {
        return Ok(plan);
    }
    let created_on = ctx.now.date();
    let (name, path, day_seq) = allocate_name(c, ctx, sepa.service_for(regie), &regie.code)?;
    let message = loop {
        if valid.is_empty() {
            return Ok(plan);
        }
        let collections: Vec<Collection> = valid.iter().map(|(c, _)| c.clone()).collect();
        let header = MessageHeader {
            message_id: name.message_id.clone(),
            created_at: ctx.now,
        };
        match build(
            sepa.write_settings(),
            header,
            party.clone(),
            creditor.clone(),
            &collections,
        ) {
            Ok(message) => break message,
            Err(violations) => {
                let (message_level, refused) = split_violations(violations.0);
                if !message_level.is_empty() {
                    return Err(PlanError::Setup(format!(
                        "tenant {tenant}, régie {}: pain.008 refused: {}",
                        regie.code,
                        describe_all(&message_level)
                    )));
                }
                let before = valid.len();
                let mut kept = Vec::new();
                for (collection, candidate) in valid {
                    match refused.get(&collection.end_to_end_id) {
                        Some(why) => {
                            mandates::refuse_use(
                                &mut encaisse_ledger::Tx::sqlite(c),
                                tenant,
                                &candidate.invoice.invoice.key(),
                                candidate.attempt,
                            )?;
                            plan.refused.push(refusal(
                                &candidate,
                                RefusalCode::Rules,
                                why.clone(),
                                Some(collection.end_to_end_id.clone()),
                            ));
                        }
                        None => kept.push((collection, candidate)),
                    }
                }
                if kept.len() == before {
                    return Err(PlanError::Setup(format!(
                        "tenant {tenant}, régie {}: pain.008 refused for reasons no collection can be set aside for",
                        regie.code
                    )));
                }
                valid = kept;
            }
        }
    };
    let bytes = message
        .to_xml()
        .map_err(|e| PlanError::Setup(format!("tenant {tenant}: {e}")))?;
    let totals = message.totals();
    let file_id = store::insert_file(
        c,
        &NewFile {
            tenant,
            origin: ctx.origin,
            kind: FileKind::Pain008,
            path,
            bytes,
            cause: ctx.cause,
            pain: Some(PainMeta {
                regie: regie.code.clone(),
                message_id: name.message_id.clone(),
                created_at: ctx.now,
                day_seq,
                collections: totals.count,
                amount_cents: totals.cents,
            }),
        },
    )?;
    let by_e2e: BTreeMap<&str, &Candidate> = valid
        .iter()
        .map(|(collection, candidate)| (collection.end_to_end_id.as_str(), candidate))
        .collect();
    for block in message.blocks() {
        for collection in &block.collections {
            let Some(candidate) = by_e2e.get(collection.end_to_end_id.as_str()) else {
                continue;
            };
            record_planned(
                c,
                ctx,
                &creditor,
                (file_id, &name.file_name),
                &block.payment_info_id,
                collection,
                candidate,
            )?;
            plan.planned.push(Planned {
                invoice_key: candidate.invoice.invoice.key(),
                attempt: candidate.attempt,
                end_to_end_id: collection.end_to_end_id.clone(),
                due_date: collection.due_date,
                sequence: collection.sequence,
            });
        }
    }
    tracing::debug!(
        tenant,
        regie = %regie.code,
        file = %name.file_name,
        created_on = %created_on,
        collections = totals.count,
        control_sum = %totals.control_sum(),
        "Pain.008 planned."
    );
    plan.file_name = Some(name.file_name);
    Ok(plan)
}

/// Decides one candidate's presentation and builds its collection, or says why not.
fn prepare(
    c: &Connection,
    ctx: PlanContext<'_>,
    creditor: &Creditor,
    policy: &SequencePolicy,
    candidate: &Candidate,
) -> Result<Prepared, PlanError> {
    let tenant = ctx.tenant.id.as_str();
    let invoice = &candidate.invoice;
    let Some(given_mandate) = &invoice.mandate else {
        return Ok(Err((
            RefusalCode::Setup,
            "a PRELEVEMENT invoice without mandate".into(),
            own_end_to_end_id(c, tenant, &invoice.invoice, candidate.attempt)?,
        )));
    };
    // A first presentation tells the ledger what the invoice says of the mandate (a new
    // IBAN is an amendment); a re-presentation uses what the ledger knows now.
    let mandate = if candidate.attempt == 1 {
        mandates::observe_mandate(&mut Tx::sqlite(c), tenant, given_mandate, ctx.now.date())?;
        given_mandate.clone()
    } else {
        mandates::current_mandate(&mut Tx::sqlite(c), tenant, given_mandate)?
    };
    let due_date = next_target_day(candidate.due_date);
    // Re-presenting: a RCUR stays RCUR (the source knew the mandate was used), a FNAL stays
    // FNAL; a FRST or OOFF follows the history (FRST again when rejected before settlement).
    let given = if candidate.attempt == 1 {
        mandate.sequence
    } else {
        candidate
            .previous_sequence
            .filter(|s| matches!(s, SequenceType::Rcur | SequenceType::Fnal))
    };
    let sequence = match mandates::plan_use(
        &mut Tx::sqlite(c),
        &UseRequest {
            invoice: &invoice.invoice,
            attempt: candidate.attempt,
            mandate: &mandate,
            due_date,
            given,
        },
        policy,
    ) {
        Ok(sequence) => sequence,
        Err(SequenceError::Unusable(why)) => {
            let e2e = own_end_to_end_id(c, tenant, &invoice.invoice, candidate.attempt)?;
            return Ok(Err((RefusalCode::Mandate, why.to_string(), e2e)));
        }
        Err(SequenceError::Ledger(e)) => return Err(e.into()),
    };
    let recorded = mandates::use_of(
        &mut Tx::sqlite(c),
        tenant,
        &invoice.invoice.key(),
        candidate.attempt,
    )?;
    let Some(e2e) = recorded.and_then(|u| u.end_to_end_id) else {
        return Ok(Err((
            RefusalCode::Setup,
            format!(
                "invoice number {:?} gives no end-to-end id of its own (outside the SEPA identifier rules, or the same as another invoice's)",
                invoice.invoice.number
            ),
            None,
        )));
    };
    let amendment = mandates::amendment_for(c, tenant, &mandate, &creditor.ics, &creditor.name)?;
    let mut presented = invoice.clone();
    presented.mandate = Some(mandate);
    let collection = match collection_for(
        &presented,
        &Presentation {
            attempt: candidate.attempt,
            due_date,
            sequence,
            amendment,
        },
    ) {
        Ok(collection) => collection,
        Err(e) => return Ok(Err((RefusalCode::Setup, e.to_string(), Some(e2e)))),
    };
    let settings = ctx.tenant.sepa.write_settings();
    let mut violations = Vec::new();
    if check_collection(
        &collection,
        creditor,
        settings.version,
        ctx.now.date(),
        settings.lead_days,
        &mut violations,
    )
    .is_none()
    {
        return Ok(Err((
            RefusalCode::Rules,
            describe_all(&violations),
            Some(e2e),
        )));
    }
    Ok(Ok(collection))
}

/// The end-to-end id presentation `attempt` of an invoice would have, unless it is not a
/// valid identifier or another invoice already has it (it then names nothing of its own).
fn own_end_to_end_id(
    c: &Connection,
    tenant: &str,
    invoice: &encaisse_schemas::InvoiceRef,
    attempt: u32,
) -> Result<Option<String>, LedgerError> {
    let Ok(id) = encaisse_sepa::ids::end_to_end_id(invoice, attempt) else {
        return Ok(None);
    };
    Ok(
        match mandates::use_by_end_to_end_id(&mut Tx::sqlite(c), tenant, &id)? {
            Some(other) if other.invoice_key != invoice.key() => None,
            _ => Some(id),
        },
    )
}

/// A file name (and `MsgId`) not used yet: the day's next `{seq}`, skipping names a
/// pattern without date would repeat.
fn allocate_name(
    c: &Connection,
    ctx: PlanContext<'_>,
    service: String,
    regie: &str,
) -> Result<(encaisse_sepa::naming::FileName, String, u32), PlanError> {
    let tenant = ctx.tenant.id.as_str();
    let created_on = ctx.now.date();
    let mut seq = store::next_day_seq(c, tenant, created_on)?;
    loop {
        let name = render(
            &ctx.tenant.sepa.file_name_pattern,
            &NamingContext {
                service: &service,
                tenant,
                regie,
                created_on,
                sequence: seq,
            },
        )
        .map_err(|e| PlanError::Setup(format!("tenant {tenant}, régie {regie}: {e}")))?;
        let path = format!("{tenant}/bank/outbox/{}", name.file_name);
        if !store::name_taken(c, tenant, &path, Some(&name.message_id))? {
            return Ok((name, path, seq));
        }
        seq += 1;
    }
}

/// Stores what the planned collection carries (for matching returns, amendments and
/// re-presentation) and journals it, naming the pain.008 file (`file`: its ledger id and
/// name) that will carry it.
fn record_planned(
    c: &Connection,
    ctx: PlanContext<'_>,
    creditor: &Creditor,
    file: (i64, &str),
    payment_info_id: &str,
    collection: &Collection,
    candidate: &Candidate,
) -> Result<(), PlanError> {
    let (file_id, file_name) = file;
    let tenant = ctx.tenant.id.as_str();
    let invoice = &candidate.invoice;
    let key = invoice.invoice.key();
    c.execute(
        "UPDATE sepa_collection SET file_id = ?4, payment_info_id = ?5, regie = ?6,
             amount_cents = ?7, due_date = ?8, rum = ?9, iban = ?10, bic = ?11, ics = ?12,
             creditor_name = ?13
         WHERE tenant = ?1 AND invoice_key = ?2 AND attempt = ?3",
        encaisse_ledger::rusqlite::params![
            tenant,
            &key,
            candidate.attempt,
            file_id,
            payment_info_id,
            invoice.regie,
            collection.amount.cents(),
            collection.due_date.to_string(),
            collection.mandate.rum.as_str(),
            collection.debtor.iban.as_str(),
            collection.debtor.bic.as_ref().map(|b| b.as_str()),
            creditor.ics.as_str(),
            &creditor.name,
        ],
    )?;
    store::keep_invoice(c, invoice)?;
    store::fact(
        c,
        &key,
        tenant,
        "collection_planned",
        serde_json::json!({
            "end_to_end_id": collection.end_to_end_id,
            "attempt": candidate.attempt,
            "due_date": collection.due_date,
            "sequence": collection.sequence.as_str(),
            "amount": collection.amount.to_dot_string(),
            "regie": invoice.regie,
            "amended": collection.mandate.amendment.is_some(),
            "file": file_name,
            "cause": ctx.cause,
        }),
        &format!("sepa:planned:{tenant}:{}", collection.end_to_end_id),
    )?;
    Ok(())
}

fn refusal(
    candidate: &Candidate,
    code: RefusalCode,
    reason: String,
    end_to_end_id: Option<String>,
) -> Refusal {
    Refusal {
        invoice: candidate.invoice.clone(),
        attempt: candidate.attempt,
        end_to_end_id,
        code,
        reason,
    }
}

/// Message-level violations, and the collection-level ones by end-to-end id.
fn split_violations(
    violations: Vec<RuleViolation>,
) -> (Vec<RuleViolation>, BTreeMap<String, String>) {
    let mut message = Vec::new();
    let mut collections: BTreeMap<String, String> = BTreeMap::new();
    for v in violations {
        match &v.subject {
            Subject::Collection { end_to_end_id, .. } => {
                let entry = collections.entry(end_to_end_id.clone()).or_default();
                if !entry.is_empty() {
                    entry.push_str("; ");
                }
                entry.push_str(&v.to_string());
            }
            Subject::Message { .. } => message.push(v),
        }
    }
    (message, collections)
}

impl PlanError {
    /// How the runtime (or the inbox watcher) handles it.
    pub fn into_stage_error(self) -> crate::stage::StageError {
        use crate::stage::StageError;
        match self {
            PlanError::Setup(message) => StageError::permanent("sepa_setup", message),
            PlanError::Corrupt(message) => StageError::permanent("sepa_ledger_data", message),
            PlanError::Ledger(e) => StageError::from(e),
        }
    }
}

/// Runs `plan` in one ledger transaction. A [`PlanError`] rolls the whole transaction back
/// (the batch is not closed, no number is used) and comes back with its own kind.
pub async fn commit<T, F>(
    ledger: &encaisse_ledger::Ledger,
    plan: F,
) -> Result<T, crate::stage::StageError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, PlanError> + Send + 'static,
{
    ledger
        .write_with(plan)
        .await
        .map_err(PlanError::into_stage_error)
}
