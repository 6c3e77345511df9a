//! Closing a billing run's group and planning its PES Aller file, in one ledger
//! transaction: each invoice is checked *before* it takes a number (a bad invoice is
//! refused alone and leaves no gap), then `IdBord` and `IdPce` are allocated, the run is
//! split into bordereaux of at most `max_pieces_per_bordereau` pièces, and the file (name,
//! date, numbers, the invoice ↔ titre mapping) is stored, ready to be rendered — the same
//! bytes whenever it is rendered.

use std::collections::{BTreeMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use encaisse_helios::aller::{
    self, Bordereau, MAX_ID_BORD, MAX_ID_PCE, MAX_PIECES, Titre, TitreShape,
};
use encaisse_ledger::batch::{BatchItem, BatchKey};
use encaisse_ledger::journal::InvoiceFact;
use encaisse_ledger::{BatchStore, CoreStore, Tx};
use encaisse_schemas::Event;
use encaisse_schemas::events::{InvoiceIssued, InvoiceRef, PaymentMode, SequenceType};
use encaisse_schemas::tenant::Budget;

use super::error::HeliosError;
use super::refusal::{self, LocalCode};
use super::settings::TenantHelios;
use super::store::{self, NewBordereau, NewFile, Scope, TitreRow, ledger_now};
use crate::mandates::{self, SequenceError};
use crate::stages::sepa::clock::paris;

/// The stage's name (its queue is `<prefix>.helios.titres`), also the batch collector's key.
pub const STAGE: &str = "helios.titres";

/// An invoice of a closed run that could not become a titre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub invoice: InvoiceRef,
    /// The invoice field or PES element at fault.
    pub field: String,
    pub rule: String,
}

impl Refusal {
    /// The local code of its `titre.rejected` (`LOCAL-RULES`…).
    pub fn code(&self) -> LocalCode {
        LocalCode::of(&self.field)
    }
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
    /// Adds what another group's closure planned.
    pub fn absorb(&mut self, other: Planned) {
        self.files.extend(other.files);
        self.titres += other.titres;
        self.refused.extend(other.refused);
    }
}

/// A bordereau of the file being planned: its number and what it holds so far.
struct BordereauTally {
    id_bord: u32,
    pieces: u32,
    total_cents: i64,
}

/// The file of one exercice of the run, being planned. Each accepted titre is stored at
/// once (its row and lines), so planning a run of any size holds only these tallies.
struct ExercicePlan {
    exercice: u16,
    first_id_bord: u32,
    next_pce: u32,
    /// Why no invoice of this exercice can be sent (the bordereau's own rules), if so.
    blocked: Option<String>,
    /// Titres accepted so far.
    accepted: usize,
    bordereaux: Vec<BordereauTally>,
    /// ORMC (`NumDette`, `Per`) taken in this run.
    dettes: HashSet<(String, u8)>,
}

/// What planning needs around each invoice (besides the transaction).
struct Ctx<'a> {
    tenant: &'a TenantHelios,
    budget: &'a Budget,
    date: NaiveDate,
}

impl Ctx<'_> {
    fn scope(&self) -> Scope<'_> {
        Scope::of(self.tenant.id.as_str(), self.budget)
    }

    fn typ_bord(&self) -> &'static str {
        self.tenant.config.bordereau_kind.typ_bord()
    }

    fn per_bordereau(&self) -> usize {
        self.tenant
            .config
            .max_pieces_per_bordereau
            .clamp(1, MAX_PIECES)
    }

    fn bordereau(&self, exercice: u16, id_bord: u32) -> Bordereau<'_> {
        Bordereau {
            config: &self.tenant.config,
            budget: self.budget,
            exercice,
            id_bord,
            date: self.date,
        }
    }
}

/// Closes `key`'s group if complete and plans its files (one per exercice of its invoices,
/// normally one), dated `now`'s day (Europe/Paris); refusals are recorded and their
/// `titre.rejected` queued, dated `now`. Runs inside the caller's write transaction. The
/// invoices are read in their key order and numbered in that order.
pub fn close_and_plan(
    tx: &mut Tx<'_>,
    tenant: &TenantHelios,
    key: &BatchKey,
    now: NaiveDateTime,
) -> Result<Planned, HeliosError> {
    if !tx.close_if_complete(key)? {
        return Ok(Planned::default());
    }
    let date = now.date();
    let mut count = 0usize;
    let mut planned = Planned::default();
    match tenant.budget(&key.group) {
        None => {
            let rule = unknown_budget(&key.group);
            visit_in_pages(tx, key, |_, item| {
                count += 1;
                planned.refused.push(Refusal {
                    invoice: decode_item(&item)?.invoice,
                    field: "budget".into(),
                    rule: rule.clone(),
                });
                Ok(())
            })?;
        }
        Some(budget) => {
            let ctx = Ctx {
                tenant,
                budget,
                date,
            };
            let mut plans: BTreeMap<u16, ExercicePlan> = BTreeMap::new();
            // One invoice at a time from the ledger: checked, numbered and stored.
            visit_in_pages(tx, key, |tx, item| {
                count += 1;
                let invoice = decode_item(&item)?;
                drop(item);
                let exercice = invoice.invoice.exercice;
                let plan = match plans.entry(exercice) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(ExercicePlan::start(tx, &ctx, exercice)?)
                    }
                };
                if let Some(refused) = plan.consider(tx, &ctx, invoice)? {
                    planned.refused.push(refused);
                }
                Ok(())
            })?;
            for plan in plans.into_values() {
                if let Some((file, titres)) = plan.store(tx, &ctx, key)? {
                    planned.files.push(file);
                    planned.titres += titres;
                }
            }
        }
    }
    record_refusals(tx, tenant, key, &planned.refused, now)?;
    tracing::info!(
        tenant = %tenant.id,
        run = %key.run_id,
        budget = %key.group,
        invoices = count,
        titres = planned.titres,
        refused = planned.refused.len(),
        files = ?planned.files,
        "Billing run closed for Hélios: PES Aller planned."
    );
    Ok(planned)
}

/// Items of a group read from the ledger at a time while planning.
const PAGE: i64 = 500;

/// Calls `visit` on each item of `key`'s group in key order, reading them [`PAGE`] at a
/// time, so that `visit` can use the transaction between pages (a statement cannot run
/// while another streams on the same PostgreSQL connection) and a run of any size is never
/// held whole.
fn visit_in_pages<F>(tx: &mut Tx<'_>, key: &BatchKey, mut visit: F) -> Result<(), HeliosError>
where
    F: FnMut(&mut Tx<'_>, BatchItem) -> Result<(), HeliosError>,
{
    let mut after = String::new();
    loop {
        let page = tx.query_all(
            "SELECT item_key, content_hash, payload FROM batch_item
             WHERE stage = ?1 AND tenant = ?2 AND run_id = ?3 AND group_key = ?4 AND item_key > ?5
             ORDER BY item_key LIMIT ?6",
            &[
                &key.stage,
                &key.tenant,
                &key.run_id,
                &key.group,
                &after,
                &PAGE,
            ],
            |r| {
                Ok(BatchItem {
                    item_key: r.get(0)?,
                    content_hash: r.get(1)?,
                    payload: r.get(2)?,
                })
            },
        )?;
        let full = page.len() as i64 == PAGE;
        for item in page {
            after.clone_from(&item.item_key);
            visit(tx, item)?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// Why the invoices of a budget the tenant's `[tenants.helios]` lacks are refused.
fn unknown_budget(code: &str) -> String {
    format!("budget {code:?} is not in the tenant's [[tenants.budgets]]")
}

/// Planning's checks, one invoice at a time, outside any billing run: `encaisse preview`
/// runs them on its in-memory ledger so that it refuses exactly what `helios.titres` would,
/// in the same order (the budget, the bordereau's rules and name, numbers left, the
/// mandate, the PES writer's rules, an ORMC article taken twice in the run or already in the
/// exercice). An accepted invoice is numbered and stored in the transaction it is given,
/// as planning does, so the next one sees its numbers and its article.
pub struct DryRun<'a> {
    tenant: &'a TenantHelios,
    date: NaiveDate,
    plans: BTreeMap<(String, u16), ExercicePlan>,
}

impl<'a> DryRun<'a> {
    /// Planning as on `date` (the bordereau's date).
    pub fn new(tenant: &'a TenantHelios, date: NaiveDate) -> Self {
        DryRun {
            tenant,
            date,
            plans: BTreeMap::new(),
        }
    }

    /// Why planning would refuse `invoice`, if it would, deciding (and storing an accepted
    /// titre) in `tx`, the preview's own ledger.
    pub fn consider(
        &mut self,
        tx: &mut Tx<'_>,
        invoice: InvoiceIssued,
    ) -> Result<Option<Refusal>, HeliosError> {
        let Some(budget) = self.tenant.budget(&invoice.budget) else {
            return Ok(Some(refusal(
                &invoice,
                "budget",
                &unknown_budget(&invoice.budget),
            )));
        };
        let ctx = Ctx {
            tenant: self.tenant,
            budget,
            date: self.date,
        };
        let exercice = invoice.invoice.exercice;
        let plan = match self.plans.entry((budget.code.clone(), exercice)) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(ExercicePlan::start(tx, &ctx, exercice)?)
            }
        };
        plan.consider(tx, &ctx, invoice)
    }
}

pub fn decode_item(item: &BatchItem) -> Result<InvoiceIssued, HeliosError> {
    encaisse_schemas::decode::<InvoiceIssued>(&item.payload)
        .map_err(|e| HeliosError::Corrupt(format!("batch item {}: {e}", item.item_key)))
}

fn refusal(invoice: &InvoiceIssued, field: &str, rule: &str) -> Refusal {
    Refusal {
        invoice: invoice.invoice.clone(),
        field: field.to_string(),
        rule: rule.to_string(),
    }
}

/// The sequence to write for a direct-debit invoice that came without one: asked of the
/// mandate history (`crate::mandates`), which records the invoice's use of the mandate.
/// `Ok(None)` when the invoice needs none or carries its own.
fn sequence(
    tx: &mut Tx<'_>,
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
        tx,
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

impl ExercicePlan {
    /// The next numbers of the exercice, and whether its bordereau can be sent at all (the
    /// bordereau's own rules — date in the exercice, budget codes, codique — and its name).
    /// Takes the budget's counters (locked until the transaction ends: another planner of
    /// the budget waits, then numbers after this one).
    fn start(tx: &mut Tx<'_>, ctx: &Ctx<'_>, exercice: u16) -> Result<Self, HeliosError> {
        let first_id_bord = store::next_id_bord(tx, ctx.scope(), exercice, ctx.typ_bord())?;
        let next_pce = store::next_id_pce(tx, ctx.scope(), exercice)?;
        let first = ctx.bordereau(exercice, first_id_bord);
        let blocked = aller::check_bordereau(&first)
            .and_then(|()| aller::file_name(&first))
            .err()
            .map(|e| e.to_string());
        Ok(ExercicePlan {
            exercice,
            first_id_bord,
            next_pce,
            blocked,
            accepted: 0,
            bordereaux: Vec::new(),
            dettes: HashSet::new(),
        })
    }

    /// Checks `invoice` with the numbers it would take; accepts it (stores its titre and
    /// advances the numbers) or says why not (and takes no number).
    fn consider(
        &mut self,
        tx: &mut Tx<'_>,
        ctx: &Ctx<'_>,
        invoice: InvoiceIssued,
    ) -> Result<Option<Refusal>, HeliosError> {
        if let Some(rule) = &self.blocked {
            return Ok(Some(refusal(&invoice, "bordereau", rule)));
        }
        let exercice = self.exercice;
        let offset = u32::try_from(self.accepted / ctx.per_bordereau()).unwrap_or(u32::MAX);
        let id_bord = self.first_id_bord.saturating_add(offset);
        if id_bord > MAX_ID_BORD || self.next_pce > MAX_ID_PCE {
            return Ok(Some(refusal(
                &invoice,
                "numbering",
                &format!(
                    "no number left in exercice {exercice} (IdBord ≤ {MAX_ID_BORD}, IdPce ≤ {MAX_ID_PCE})"
                ),
            )));
        }
        let sequence = match sequence(tx, ctx.tenant, &invoice)? {
            Ok(sequence) => sequence,
            Err(refused) => return Ok(Some(refused)),
        };
        let checked = aller::titre_shape(
            &ctx.bordereau(exercice, id_bord),
            &Titre {
                invoice: &invoice,
                id_pce: self.next_pce,
                sequence,
                asap_pdf: None,
            },
        );
        let refused = match checked {
            Err(e) => Some(Refusal {
                invoice: invoice.invoice.clone(),
                field: e.field,
                rule: e.rule,
            }),
            Ok(shape) => match self.dette_taken(tx, ctx, &shape)? {
                Some(rule) => Some(refusal(&invoice, "NumDette", &rule)),
                None => {
                    self.accept(tx, ctx, &invoice, id_bord, sequence, &shape)?;
                    None
                }
            },
        };
        if let Some(refused) = &refused
            && sequence.is_some()
        {
            // The mandate use recorded above was never sent.
            mandates::refuse_use(tx, ctx.tenant.id.as_str(), &refused.invoice.key(), 1)?;
        }
        Ok(refused)
    }

    /// Why an ORMC article's (`NumDette`, `Per`) cannot be used: already the article of
    /// another invoice in the exercice, or of another invoice of this run.
    fn dette_taken(
        &mut self,
        tx: &mut Tx<'_>,
        ctx: &Ctx<'_>,
        shape: &TitreShape,
    ) -> Result<Option<String>, HeliosError> {
        let Some(keys) = &shape.ormc else {
            return Ok(None);
        };
        let per = keys.per.to_string();
        let exercice = self.exercice;
        // This run's own articles first: they are already stored, and the message must say
        // it is this run that holds the number twice.
        if self.dettes.contains(&(keys.num_dette.clone(), keys.per)) {
            return Ok(Some(format!(
                "debt number {} (period {per}) is shared with another invoice of the same run: an ORMC article number must be unique",
                keys.num_dette
            )));
        }
        if let Some(other) = store::dette_holder(tx, ctx.scope(), exercice, &keys.num_dette, &per)?
        {
            return Ok(Some(format!(
                "debt number {} (period {per}) is already the article of invoice {other} in exercice {exercice}: an ORMC article number must be unique",
                keys.num_dette
            )));
        }
        self.dettes.insert((keys.num_dette.clone(), keys.per));
        Ok(None)
    }

    /// Stores an accepted titre (its row and lines) and counts it in its bordereau.
    fn accept(
        &mut self,
        tx: &mut Tx<'_>,
        ctx: &Ctx<'_>,
        invoice: &InvoiceIssued,
        id_bord: u32,
        sequence: Option<SequenceType>,
        shape: &TitreShape,
    ) -> Result<(), HeliosError> {
        let (scope, exercice) = (ctx.scope(), self.exercice);
        let row = TitreRow {
            exercice,
            id_pce: self.next_pce,
            typ_bord: ctx.typ_bord().to_string(),
            id_bord,
            position: u32::try_from(self.accepted % ctx.per_bordereau()).unwrap_or(u32::MAX),
            invoice_key: invoice.invoice.key(),
            invoice_exercice: invoice.invoice.exercice,
            invoice_number: invoice.invoice.number.clone(),
            budget: ctx.budget.code.clone(),
            payment_mode: invoice.payment_mode,
            sequence,
            num_dette: shape.ormc.as_ref().map(|k| k.num_dette.clone()),
            per: shape.ormc.as_ref().map(|k| k.per.to_string()),
            total_cents: shape.total.cents(),
        };
        if !store::insert_titre(tx, scope, &row)? {
            return Err(
                match store::titre_of_invoice(tx, scope.tenant, &row.invoice_key)? {
                    Some(_) => HeliosError::Batch(format!(
                        "invoice {} already has a titre: each invoice is in exactly one titre",
                        row.invoice_key
                    )),
                    None => HeliosError::Corrupt(format!(
                        "IdPce {} of exercice {exercice} (or its ORMC article) is already taken: numbering went past the ledger's counter",
                        row.id_pce
                    )),
                },
            );
        }
        for line in &shape.lines {
            store::insert_titre_line(tx, scope, exercice, self.next_pce, line)?;
        }
        match self.bordereaux.last_mut() {
            Some(b) if b.id_bord == id_bord => {
                b.pieces += 1;
                b.total_cents += row.total_cents;
            }
            _ => self.bordereaux.push(BordereauTally {
                id_bord,
                pieces: 1,
                total_cents: row.total_cents,
            }),
        }
        self.accepted += 1;
        self.next_pce += 1;
        Ok(())
    }

    /// Stores the planned file and its bordereaux (the titres are stored as they are
    /// accepted). `None` when no invoice was accepted (no file, no number used).
    /// The counters move to the last numbers used, in the same transaction.
    fn store(
        self,
        tx: &mut Tx<'_>,
        ctx: &Ctx<'_>,
        key: &BatchKey,
    ) -> Result<Option<(String, usize)>, HeliosError> {
        if self.accepted == 0 {
            return Ok(None);
        }
        let (scope, exercice, typ_bord) = (ctx.scope(), self.exercice, ctx.typ_bord());
        let file_name = aller::file_name(&ctx.bordereau(exercice, self.first_id_bord))?;
        let file_id = store::insert_file(
            tx,
            &NewFile {
                tenant: ctx.tenant.id.as_str(),
                budget: ctx.budget,
                exercice,
                typ_bord,
                file_name: &file_name,
                date: ctx.date,
                run_id: &key.run_id,
                batch_group: &key.group,
                bordereaux: u32::try_from(self.bordereaux.len()).unwrap_or(u32::MAX),
                pieces: u32::try_from(self.accepted).unwrap_or(u32::MAX),
                total_cents: self.bordereaux.iter().map(|b| b.total_cents).sum(),
            },
        )?;
        for b in &self.bordereaux {
            store::insert_bordereau(
                tx,
                scope,
                &NewBordereau {
                    exercice,
                    typ_bord,
                    id_bord: b.id_bord,
                    file_id,
                    pieces: b.pieces,
                    total_cents: b.total_cents,
                },
            )?;
        }
        let last_id_bord = self
            .bordereaux
            .last()
            .map_or(self.first_id_bord, |b| b.id_bord);
        store::used_numbers(
            tx,
            scope,
            exercice,
            typ_bord,
            last_id_bord,
            self.next_pce - 1,
        )?;
        Ok(Some((file_name, self.accepted)))
    }
}

/// Records the refusals (ledger row, journal fact), queues their `titre.rejected`
/// (`source: local`) and plans their report for people in
/// `<tenant>/helios/rejected/<run>-<budget>.refused.txt`.
fn record_refusals(
    tx: &mut Tx<'_>,
    tenant: &TenantHelios,
    key: &BatchKey,
    refused: &[Refusal],
    now: NaiveDateTime,
) -> Result<(), HeliosError> {
    if refused.is_empty() {
        return Ok(());
    }
    let tenant_id = tenant.id.as_str();
    let at = ledger_now();
    let path = format!(
        "{tenant_id}/helios/rejected/{}-{}.refused.txt",
        file_safe(&key.run_id),
        file_safe(&key.group)
    );
    let mut report = format!(
        "Invoices of billing run {} (budget {}) that could not become titres: {}.\n\
         They took no number (IdPce) and are in no PES Aller file; the rest of the run was sent.\n\
         Polyfac is told (REGLEMENTS line TITRE_REJETE, motif LOCAL-…).\n\
         Correct them in the billing application and issue them again.\n\n\
         invoice\tcode\tfield\trule\n",
        key.run_id,
        key.group,
        refused.len()
    );
    for r in refused {
        let invoice = r.invoice.key();
        let event = refusal::event(&r.invoice, &r.field, &r.rule, &path, paris(now));
        refusal::queue(tx, &event)?;
        store::insert_refused(
            tx,
            tenant_id,
            &invoice,
            &key.run_id,
            &key.group,
            &r.field,
            &r.rule,
        )?;
        tx.record_fact(&InvoiceFact {
            invoice_key: invoice.clone(),
            tenant: tenant_id.to_string(),
            at: at.clone(),
            kind: "titre_refused".into(),
            detail: serde_json::json!({
                "stage": STAGE,
                "run": key.run_id,
                "budget": key.group,
                "code": event.code,
                "field": r.field,
                "rule": r.rule,
                "file": path,
                "titre_rejected": event.message_id(),
            })
            .to_string(),
            dedupe_key: Some(format!("{STAGE}:refused:{invoice}")),
        })?;
        report.push_str(&format!(
            "{invoice}\t{}\t{}\t{}\n",
            event.code,
            r.field,
            r.rule.replace(['\n', '\t'], " ")
        ));
    }
    store::insert_report(tx, tenant_id, &path, report.as_bytes())
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
