//! Closing a billing run's group and planning its PES Aller file, in one ledger
//! transaction: each invoice is checked *before* it takes a number (a bad invoice is
//! refused alone and leaves no gap), then `IdBord` and `IdPce` are allocated, the run is
//! split into bordereaux of at most `max_pieces_per_bordereau` pièces, and the file (name,
//! date, numbers, the invoice ↔ titre mapping) is stored, ready to be rendered — the same
//! bytes whenever it is rendered.

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use encaisse_helios::aller::{
    self, Bordereau, MAX_ID_BORD, MAX_ID_PCE, MAX_PIECES, Titre, TitreShape,
};
use encaisse_ledger::Ledger;
use encaisse_ledger::batch::{BatchItem, BatchKey, try_close};
use encaisse_ledger::journal::InvoiceFact;
use encaisse_ledger::rusqlite::Connection;
use encaisse_schemas::events::{InvoiceIssued, PaymentMode, SequenceType};
use encaisse_schemas::tenant::Budget;

use super::error::HeliosError;
use super::settings::TenantHelios;
use super::store::{self, NewBordereau, NewFile, Scope, TitreRow, ledger_now};
use crate::stages::sepa::mandates::{self, SequenceError};

/// The stage's name (its queue is `<prefix>.helios.titres`), also the batch collector's key.
pub const STAGE: &str = "helios.titres";

/// An invoice of a closed run that could not become a titre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `tenant/exercice/number`.
    pub invoice: String,
    /// The invoice field or PES element at fault.
    pub field: String,
    pub rule: String,
}

/// What closing a group planned.
#[derive(Debug, Default)]
pub struct Planned {
    /// Names of the files planned.
    pub files: Vec<String>,
    pub titres: usize,
    pub refused: Vec<Refusal>,
}

impl Planned {
    fn absorb(&mut self, other: Planned) {
        self.files.extend(other.files);
        self.titres += other.titres;
        self.refused.extend(other.refused);
    }
}

/// A titre accepted into the plan.
struct Accepted {
    invoice: InvoiceIssued,
    id_pce: u32,
    id_bord: u32,
    sequence: Option<SequenceType>,
    shape: TitreShape,
}

/// Closes `key`'s group if complete and plans its files (one per exercice of its invoices,
/// normally one). Runs inside the caller's write transaction.
pub fn close_and_plan(
    c: &Connection,
    tenant: &TenantHelios,
    key: &BatchKey,
    date: NaiveDate,
) -> Result<Planned, HeliosError> {
    let Some(items) = try_close(c, key)? else {
        return Ok(Planned::default());
    };
    let mut by_exercice: BTreeMap<u16, Vec<InvoiceIssued>> = BTreeMap::new();
    for item in &items {
        let invoice = decode_item(item)?;
        by_exercice
            .entry(invoice.invoice.exercice)
            .or_default()
            .push(invoice);
    }
    let mut planned = Planned::default();
    match tenant.budget(&key.group) {
        None => {
            let rule = format!(
                "budget {:?} is not in the tenant's [[tenants.budgets]]",
                key.group
            );
            planned.refused = by_exercice
                .values()
                .flatten()
                .map(|i| refusal(i, "budget", &rule))
                .collect();
        }
        Some(budget) => {
            for (exercice, invoices) in by_exercice {
                planned.absorb(plan_file(c, tenant, budget, key, exercice, invoices, date)?);
            }
        }
    }
    record_refusals(c, tenant, key, &planned.refused)?;
    tracing::info!(
        tenant = %tenant.id,
        run = %key.run_id,
        budget = %key.group,
        invoices = items.len(),
        titres = planned.titres,
        refused = planned.refused.len(),
        files = ?planned.files,
        "Billing run closed for Hélios: PES Aller planned."
    );
    Ok(planned)
}

pub fn decode_item(item: &BatchItem) -> Result<InvoiceIssued, HeliosError> {
    encaisse_schemas::decode::<InvoiceIssued>(&item.payload)
        .map_err(|e| HeliosError::Corrupt(format!("batch item {}: {e}", item.item_key)))
}

fn refusal(invoice: &InvoiceIssued, field: &str, rule: &str) -> Refusal {
    Refusal {
        invoice: invoice.invoice.key(),
        field: field.to_string(),
        rule: rule.to_string(),
    }
}

/// The sequence to write for a direct-debit invoice that came without one: asked of the
/// mandate history (`sepa::mandates`), which records the invoice's use of the mandate.
/// `Ok(None)` when the invoice needs none or carries its own.
fn sequence(
    c: &Connection,
    tenant: &TenantHelios,
    invoice: &InvoiceIssued,
) -> Result<Result<Option<SequenceType>, Refusal>, HeliosError> {
    let Some(mandate) = invoice.mandate.as_ref() else {
        return Ok(Ok(None));
    };
    if invoice.payment_mode != PaymentMode::Prelevement || mandate.sequence.is_some() {
        return Ok(Ok(None));
    }
    match mandates::sequence_for(
        c,
        &invoice.invoice,
        mandate,
        invoice.due_date,
        &tenant.sequence_policy,
    ) {
        Ok(sequence) => Ok(Ok(Some(sequence))),
        Err(SequenceError::Unusable(why)) => Ok(Err(refusal(
            invoice,
            "mandate",
            &format!("the direct-debit mandate cannot be used: {why}"),
        ))),
        Err(SequenceError::Ledger(e)) => Err(HeliosError::Ledger(e)),
    }
}

fn plan_file(
    c: &Connection,
    tenant: &TenantHelios,
    budget: &Budget,
    key: &BatchKey,
    exercice: u16,
    invoices: Vec<InvoiceIssued>,
    date: NaiveDate,
) -> Result<Planned, HeliosError> {
    let config = &tenant.config;
    let typ_bord = config.bordereau_kind.typ_bord();
    let scope = Scope::of(tenant.id.as_str(), budget);
    let first_id_bord = store::next_id_bord(c, scope, exercice, typ_bord)?;
    let mut next_pce = store::next_id_pce(c, scope, exercice)?;
    let per_bordereau = config.max_pieces_per_bordereau.clamp(1, MAX_PIECES);
    let bordereau = |id_bord| Bordereau {
        config,
        budget,
        exercice,
        id_bord,
        date,
    };
    let mut planned = Planned::default();

    // The bordereau's own rules (date in the exercice, budget codes, numbers) and its name:
    // when they fail, no invoice of this exercice can be sent; none takes a number.
    let first = bordereau(first_id_bord);
    if let Err(e) = aller::check_bordereau(&first).and_then(|()| aller::file_name(&first)) {
        let rule = e.to_string();
        planned.refused = invoices
            .iter()
            .map(|i| refusal(i, "bordereau", &rule))
            .collect();
        return Ok(planned);
    }

    let mut accepted: Vec<Accepted> = Vec::with_capacity(invoices.len());
    let mut dettes: HashSet<(String, u8)> = HashSet::new();
    for invoice in invoices {
        let id_bord_offset = u32::try_from(accepted.len() / per_bordereau).unwrap_or(u32::MAX);
        let id_bord = first_id_bord.saturating_add(id_bord_offset);
        if id_bord > MAX_ID_BORD || next_pce > MAX_ID_PCE {
            planned.refused.push(refusal(
                &invoice,
                "numbering",
                &format!(
                    "no number left in exercice {exercice} (IdBord ≤ {MAX_ID_BORD}, IdPce ≤ {MAX_ID_PCE})"
                ),
            ));
            continue;
        }
        let sequence = match sequence(c, tenant, &invoice)? {
            Ok(sequence) => sequence,
            Err(refused) => {
                planned.refused.push(refused);
                continue;
            }
        };
        let checked = aller::titre_shape(
            &bordereau(id_bord),
            &Titre {
                invoice: &invoice,
                id_pce: next_pce,
                sequence,
                asap_pdf: None,
            },
        );
        let refused = match checked {
            Err(e) => Some(Refusal {
                invoice: e.invoice,
                field: e.field,
                rule: e.rule,
            }),
            Ok(shape) => match &shape.ormc {
                Some(keys) => {
                    let per = keys.per.to_string();
                    let holder = store::dette_holder(c, scope, exercice, &keys.num_dette, &per)?;
                    match holder {
                        Some(other) => Some(refusal(
                            &invoice,
                            "NumDette",
                            &format!(
                                "debt number {} (period {per}) is already the article of invoice {other} in exercice {exercice}: an ORMC article number must be unique",
                                keys.num_dette
                            ),
                        )),
                        None if !dettes.insert((keys.num_dette.clone(), keys.per)) => {
                            Some(refusal(
                                &invoice,
                                "NumDette",
                                &format!(
                                    "debt number {} (period {per}) is shared with another invoice of the same run: an ORMC article number must be unique",
                                    keys.num_dette
                                ),
                            ))
                        }
                        None => {
                            accepted.push(Accepted {
                                invoice,
                                id_pce: next_pce,
                                id_bord,
                                sequence,
                                shape,
                            });
                            None
                        }
                    }
                }
                None => {
                    accepted.push(Accepted {
                        invoice,
                        id_pce: next_pce,
                        id_bord,
                        sequence,
                        shape,
                    });
                    None
                }
            },
        };
        match refused {
            None => next_pce += 1,
            Some(refused) => {
                if sequence.is_some() {
                    // The mandate use recorded above was never sent.
                    mandates::refuse_use(c, tenant.id.as_str(), &refused.invoice, 1)?;
                }
                planned.refused.push(refused);
            }
        }
    }
    if accepted.is_empty() {
        return Ok(planned);
    }

    let file_name = aller::file_name(&first)?;
    let chunks: Vec<&[Accepted]> = accepted.chunks(per_bordereau).collect();
    let total_cents: i64 = accepted.iter().map(|a| a.shape.total.cents()).sum();
    let file_id = store::insert_file(
        c,
        &NewFile {
            tenant: tenant.id.as_str(),
            budget,
            exercice,
            typ_bord,
            file_name: &file_name,
            date,
            run_id: &key.run_id,
            batch_group: &key.group,
            bordereaux: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
            pieces: u32::try_from(accepted.len()).unwrap_or(u32::MAX),
            total_cents,
        },
    )?;
    for chunk in &chunks {
        let Some(head) = chunk.first() else { continue };
        store::insert_bordereau(
            c,
            scope,
            &NewBordereau {
                exercice,
                typ_bord,
                id_bord: head.id_bord,
                file_id,
                pieces: u32::try_from(chunk.len()).unwrap_or(u32::MAX),
                total_cents: chunk.iter().map(|a| a.shape.total.cents()).sum(),
            },
        )?;
        for (position, a) in chunk.iter().enumerate() {
            let row = TitreRow {
                exercice,
                id_pce: a.id_pce,
                typ_bord: typ_bord.to_string(),
                id_bord: a.id_bord,
                position: u32::try_from(position).unwrap_or(u32::MAX),
                invoice_key: a.invoice.invoice.key(),
                invoice_exercice: a.invoice.invoice.exercice,
                invoice_number: a.invoice.invoice.number.clone(),
                budget: budget.code.clone(),
                payment_mode: a.invoice.payment_mode,
                sequence: a.sequence,
                num_dette: a.shape.ormc.as_ref().map(|k| k.num_dette.clone()),
                per: a.shape.ormc.as_ref().map(|k| k.per.to_string()),
                total_cents: a.shape.total.cents(),
            };
            store::insert_titre(c, scope, &row).map_err(|e| match e {
                HeliosError::Ledger(l) if is_constraint(&l) => HeliosError::Batch(format!(
                    "invoice {} already has a titre: each invoice is in exactly one titre",
                    row.invoice_key
                )),
                other => other,
            })?;
            for line in &a.shape.lines {
                store::insert_titre_line(c, scope, exercice, a.id_pce, line)?;
            }
        }
    }
    planned.files.push(file_name);
    planned.titres = accepted.len();
    Ok(planned)
}

fn is_constraint(e: &encaisse_ledger::LedgerError) -> bool {
    matches!(
        e,
        encaisse_ledger::LedgerError::Sqlite(encaisse_ledger::rusqlite::Error::SqliteFailure(err, _))
            if err.code == encaisse_ledger::rusqlite::ErrorCode::ConstraintViolation
    )
}

/// Records the refusals (ledger row, journal fact) and plans their report for people in
/// `<tenant>/helios/rejected/<run>-<budget>.refused.txt`.
fn record_refusals(
    c: &Connection,
    tenant: &TenantHelios,
    key: &BatchKey,
    refused: &[Refusal],
) -> Result<(), HeliosError> {
    if refused.is_empty() {
        return Ok(());
    }
    let tenant_id = tenant.id.as_str();
    let at = ledger_now();
    let mut report = format!(
        "Invoices of billing run {} (budget {}) that could not become titres: {}.\n\
         They took no number (IdPce) and are in no PES Aller file; the rest of the run was sent.\n\
         Correct them in the billing application and issue them again.\n\n\
         invoice\tfield\trule\n",
        key.run_id,
        key.group,
        refused.len()
    );
    for r in refused {
        store::insert_refused(
            c,
            tenant_id,
            &r.invoice,
            &key.run_id,
            &key.group,
            &r.field,
            &r.rule,
        )?;
        Ledger::record_invoice_fact_in(
            c,
            &InvoiceFact {
                invoice_key: r.invoice.clone(),
                tenant: tenant_id.to_string(),
                at: at.clone(),
                kind: "titre_refused".into(),
                detail: serde_json::json!({
                    "stage": STAGE,
                    "run": key.run_id,
                    "budget": key.group,
                    "field": r.field,
                    "rule": r.rule,
                })
                .to_string(),
                dedupe_key: Some(format!("{STAGE}:refused:{}", r.invoice)),
            },
        )?;
        report.push_str(&format!(
            "{}\t{}\t{}\n",
            r.invoice,
            r.field,
            r.rule.replace(['\n', '\t'], " ")
        ));
    }
    let path = format!(
        "{tenant_id}/helios/rejected/{}-{}.refused.txt",
        file_safe(&key.run_id),
        file_safe(&key.group)
    );
    store::insert_report(c, tenant_id, &path, report.as_bytes())
}

/// A name part safe in a file name: letters, digits, `.`, `_`, `-`.
pub fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_safe() {
        assert_eq!(file_safe("run-2026/03"), "run-2026-03");
        assert_eq!(file_safe("caisse écoles"), "caisse--coles");
    }
}
