//! Credit notes (avoirs) in `helios.titres`: a credit note against an invoice that went out
//! as a titre becomes a réduction titre (`TypBord 02`, `TypPce 02`, `NatPce 06`, with
//! `RattachPiece` naming the original) in a PES Aller file of its own, planned in the same
//! transaction that records the credit note, then written like every planned file.
//!
//! * The original has a titre → the credit note is allocated to its lines
//!   (`encaisse_helios::aller::reduction::allocate`) within what remains of them after
//!   earlier réduction titres; more than remains → refused.
//! * The original is known but has no titre yet (its run is not closed) → the credit note
//!   **waits**, and is decided again each time the stage plans or refuses something for the
//!   tenant: the original's titre must exist before a titre can reduce it, and netting it
//!   into the original would change an invoice Polyfac already issued.
//! * The original was refused before numbering, is unknown, or is itself a credit note →
//!   refused.
//!
//! A refused credit note is never sent: its `titre.rejected` (source `local`, code
//! `LOCAL-AVOIR`, no titre) is queued for Polyfac (`AVOIR_REJETE`), and the journals of the
//! credit note and of its original say why. A credit note received again (replayed, dropped
//! twice) finds its row and does nothing: one réduction titre at most.

use chrono::NaiveDateTime;
use encaisse_helios::aller::reduction::{
    self, OriginalLine, ReductionTitre, TYP_BORD_REDUCTION, reduction_file_name,
};
use encaisse_helios::aller::{self, Bordereau};
use encaisse_helios::codes::BordereauKind;
use encaisse_helios::config::NatureSource;
use encaisse_ledger::journal::InvoiceFact;
use encaisse_ledger::{CoreStore, Tx};
use encaisse_schemas::events::InvoiceIssued;
use encaisse_schemas::{CreditNoteIssued, Event, Money};

use super::error::HeliosError;
use super::plan::STAGE;
use super::reduction_store as rs;
use super::refusal;
use super::settings::TenantHelios;
use super::store::{self, NewBordereau, NewFile, Scope, TitreRow, ledger_now};
use crate::stages::sepa::clock::paris;

/// What became of a credit note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Planned as a réduction titre in this file.
    Planned { file: String },
    /// Its original has no titre yet.
    Waiting,
    /// Not applied, for this reason (Polyfac is told).
    Refused { reason: String },
    /// Received before: nothing done again.
    AlreadyKnown,
}

/// Records `note` (received as `body`) and decides it, inside the caller's write transaction.
pub fn receive(
    tx: &mut Tx<'_>,
    tenant: &TenantHelios,
    note: &CreditNoteIssued,
    body: &[u8],
    now: NaiveDateTime,
) -> Result<Decision, HeliosError> {
    let key = note.note.invoice.key();
    if !rs::insert_waiting(tx, note, body)? {
        // Received before (or by another daemon at the same moment: its row wins).
        if rs::known_hash(tx, tenant.id.as_str(), &key)?
            .is_some_and(|hash| hash != note.note.content_hash)
        {
            tracing::warn!(tenant = %tenant.id, credit_note = %key, "Credit note issued again with other content; the first one is kept.");
        }
        return Ok(Decision::AlreadyKnown);
    }
    fact(
        tx,
        note,
        &key,
        "credit_note_received",
        serde_json::json!({
            "stage": STAGE,
            "origin": note.origin.key(),
            "amount": note.credited().to_dot_string(),
        }),
    )?;
    decide(tx, tenant, note, now)
}

/// Decides again every credit note of `tenant` waiting for its original.
pub fn retry_waiting(
    tx: &mut Tx<'_>,
    tenant: &TenantHelios,
    now: NaiveDateTime,
) -> Result<Vec<Decision>, HeliosError> {
    let mut decisions = Vec::new();
    for note in rs::waiting(tx, tenant.id.as_str())? {
        // Another transaction (another daemon's retry) may have decided it since the list
        // was read: only the one that locks it still waiting decides it.
        if rs::lock_waiting(tx, tenant.id.as_str(), &note.note.invoice.key())? {
            decisions.push(decide(tx, tenant, &note, now)?);
        }
    }
    Ok(decisions)
}

fn decide(
    tx: &mut Tx<'_>,
    tenant: &TenantHelios,
    note: &CreditNoteIssued,
    now: NaiveDateTime,
) -> Result<Decision, HeliosError> {
    let tenant_id = tenant.id.as_str();
    let origin_key = note.origin.key();
    let Some(original) = store::titre_of_invoice(tx, tenant_id, &origin_key)? else {
        if let Some(why) = rs::refusal_of(tx, tenant_id, &origin_key)? {
            return refuse(
                tx,
                note,
                now,
                &format!("the original invoice {origin_key} was not sent to Hélios ({why})"),
            );
        }
        // Received, or published by the ingest and still on its way (messages of one queue
        // are handled concurrently): its titre will come.
        if rs::batch_payload(tx, STAGE, tenant_id, &origin_key)?.is_some()
            || rs::issued_by_ingest(tx, tenant_id, &origin_key)?
        {
            return Ok(Decision::Waiting);
        }
        return refuse(
            tx,
            note,
            now,
            &format!("the original invoice {origin_key} is unknown"),
        );
    };
    if original.typ_bord == TYP_BORD_REDUCTION {
        return refuse(
            tx,
            note,
            now,
            &format!("{origin_key} is itself a credit note"),
        );
    }
    let Some(budget) = tenant.budget(&original.budget) else {
        return refuse(
            tx,
            note,
            now,
            &format!(
                "budget {:?} of the original is no longer configured",
                original.budget
            ),
        );
    };
    let scope = Scope::of(tenant_id, budget);
    // Two credit notes of one original decided at once (two daemons) take turns on the
    // original's titre: the second sees what the first took off.
    store::lock_titre(tx, tenant_id, &origin_key)?;
    let lines = original_lines(tx, tenant, scope, &original, &origin_key)?;
    let allocated = match reduction::allocate(&note.note, &lines) {
        Ok(allocated) => allocated,
        Err(e) => return refuse(tx, note, now, &e.to_string()),
    };
    let exercice = original.exercice;
    let id_bord = store::next_id_bord(tx, scope, exercice, TYP_BORD_REDUCTION)?;
    let id_pce = store::next_id_pce(tx, scope, exercice)?;
    let bordereau = Bordereau {
        config: &tenant.config,
        budget,
        exercice,
        id_bord,
        date: now.date(),
    };
    let titre = ReductionTitre {
        credit_note: &note.note,
        id_pce,
        original_id_pce: original.id_pce,
        original_number: &original.invoice_number,
        lines: &allocated,
    };
    if let Err(e) = aller::check_bordereau(&bordereau)
        .and_then(|()| reduction::check_reduction(&bordereau, &titre))
    {
        return refuse(tx, note, now, &e.to_string());
    }
    let total: i64 = allocated.iter().map(|l| l.amount.cents()).sum();
    let file_name = reduction_file_name(&bordereau);
    let note_key = note.note.invoice.key();
    let file_id = store::insert_file(
        tx,
        &NewFile {
            tenant: tenant_id,
            budget,
            exercice,
            typ_bord: TYP_BORD_REDUCTION,
            file_name: &file_name,
            date: bordereau.date,
            run_id: &note_key,
            batch_group: "credit_note",
            bordereaux: 1,
            pieces: 1,
            total_cents: total,
        },
    )?;
    store::insert_bordereau(
        tx,
        scope,
        &NewBordereau {
            exercice,
            typ_bord: TYP_BORD_REDUCTION,
            id_bord,
            file_id,
            pieces: 1,
            total_cents: total,
        },
    )?;
    let stored = store::insert_titre(
        tx,
        scope,
        &TitreRow {
            exercice,
            id_pce,
            typ_bord: TYP_BORD_REDUCTION.to_string(),
            id_bord,
            position: 0,
            invoice_key: note_key.clone(),
            invoice_exercice: note.note.invoice.exercice,
            invoice_number: note.note.invoice.number.clone(),
            budget: budget.code.clone(),
            payment_mode: note.note.payment_mode,
            sequence: None,
            num_dette: None,
            per: None,
            total_cents: total,
        },
    )?;
    if !stored {
        return Err(HeliosError::Corrupt(format!(
            "réduction titre of {note_key} (IdPce {id_pce}) cannot be stored: the credit note or the number already has a titre"
        )));
    }
    store::used_numbers(tx, scope, exercice, TYP_BORD_REDUCTION, id_bord, id_pce)?;
    rs::mark_planned(
        tx,
        tenant_id,
        &note_key,
        (exercice, id_pce, original.id_pce),
        &allocated,
    )?;
    let detail = serde_json::json!({
        "stage": STAGE,
        "credit_note": note_key,
        "origin": origin_key,
        "amount": Money::from_cents(total).map(Money::to_dot_string).unwrap_or_default(),
        "exercice": exercice,
        "bordereau_type": TYP_BORD_REDUCTION,
        "id_bord": id_bord,
        "id_pce": id_pce,
        "id_pce_orig": original.id_pce,
        "file": file_name,
    });
    fact(tx, note, &note_key, "reduction_planned", detail.clone())?;
    fact(tx, note, &origin_key, "reduction_planned", detail)?;
    tracing::info!(tenant = %tenant.id, credit_note = %note_key, origin = %origin_key, id_pce, id_pce_orig = original.id_pce, file = %file_name, "Credit note planned as a réduction titre.");
    Ok(Decision::Planned { file: file_name })
}

/// The original titre's lines as written, with their imputation (from the original
/// invoice) and what remains of each after earlier réduction titres.
fn original_lines(
    tx: &mut Tx<'_>,
    tenant: &TenantHelios,
    scope: Scope<'_>,
    original: &TitreRow,
    origin_key: &str,
) -> Result<Vec<OriginalLine>, HeliosError> {
    let payload =
        rs::batch_payload(tx, STAGE, tenant.id.as_str(), origin_key)?.ok_or_else(|| {
            HeliosError::Corrupt(format!(
                "the invoice of titre {origin_key} is not in the ledger"
            ))
        })?;
    let invoice: InvoiceIssued = encaisse_schemas::decode(&payload)
        .map_err(|e| HeliosError::Corrupt(format!("batch item {origin_key}: {e}")))?;
    let reduced = rs::reduced_so_far(tx, tenant.id.as_str(), origin_key)?;
    let config = &tenant.config;
    let fixed_nature = (config.bordereau_kind == BordereauKind::Ormc
        && config.ormc.nature_source == NatureSource::Fixed)
        .then_some(config.ormc.nature.as_str());
    let mut lines = Vec::new();
    for (id_ligne, invoice_line, amount) in
        rs::titre_lines(tx, scope, original.exercice, original.id_pce)?
    {
        let source = invoice
            .lines
            .iter()
            .find(|l| l.number == invoice_line)
            .ok_or_else(|| {
                HeliosError::Corrupt(format!(
                    "titre {origin_key}: invoice line {invoice_line} not in the invoice"
                ))
            })?;
        let taken: i64 = reduced
            .iter()
            .filter(|(l, _)| *l == id_ligne)
            .map(|(_, c)| c)
            .sum();
        lines.push(OriginalLine {
            id_ligne,
            cod_prod_loc: source.cod_prod_loc.clone(),
            nature: fixed_nature.unwrap_or(&source.nature).to_string(),
            fonction: source.fonction.clone().filter(|f| !f.is_empty()),
            remaining: Money::from_cents(amount.cents() - taken)
                .map_err(|e| HeliosError::Corrupt(format!("titre {origin_key}: {e}")))?,
        });
    }
    Ok(lines)
}

/// Refuses `note`: state, journal facts, and its `titre.rejected` (`LOCAL-AVOIR`) queued.
fn refuse(
    tx: &mut Tx<'_>,
    note: &CreditNoteIssued,
    now: NaiveDateTime,
    reason: &str,
) -> Result<Decision, HeliosError> {
    let tenant = note.note.invoice.tenant.as_str();
    let key = note.note.invoice.key();
    rs::mark_refused(tx, tenant, &key, reason)?;
    let event = refusal::event(&note.note.invoice, "credit_note", reason, "", paris(now));
    refusal::queue(tx, &event)?;
    let detail = serde_json::json!({
        "stage": STAGE,
        "credit_note": key,
        "origin": note.origin.key(),
        "code": event.code,
        "rule": reason,
        "titre_rejected": event.message_id(),
    });
    fact(tx, note, &key, "credit_note_refused", detail.clone())?;
    fact(tx, note, &note.origin.key(), "credit_note_refused", detail)?;
    tracing::warn!(tenant = %tenant, credit_note = %key, origin = %note.origin.key(), reason = %reason, "Credit note refused: not sent to Hélios, Polyfac told (AVOIR_REJETE).");
    Ok(Decision::Refused {
        reason: reason.to_string(),
    })
}

/// A fact in the journal of `invoice_key` (the credit note's or its original's).
fn fact(
    tx: &mut Tx<'_>,
    note: &CreditNoteIssued,
    invoice_key: &str,
    kind: &str,
    detail: serde_json::Value,
) -> Result<(), HeliosError> {
    tx.record_fact(&InvoiceFact {
        invoice_key: invoice_key.to_string(),
        tenant: note.note.invoice.tenant.as_str().to_string(),
        at: ledger_now(),
        kind: kind.to_string(),
        detail: detail.to_string(),
        dedupe_key: Some(format!(
            "{STAGE}:{kind}:{}:{invoice_key}",
            note.note.invoice.key()
        )),
    })?;
    Ok(())
}
