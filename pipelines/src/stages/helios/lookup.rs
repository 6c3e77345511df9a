//! The ledger's answers to the adapter's questions about a return file
//! (`encaisse_helios::events::{TitreLookup, EmargementStore}`): which of our titres a
//! bordereau, a pièce or an ORMC debt number is, and which émargements each line carried
//! in the last PES Retour that listed it.
//!
//! The adapter's traits cannot fail; a ledger error is kept here and checked by the caller
//! after the mapping ([`LedgerLookup::finish`]).

use std::cell::RefCell;

use chrono::NaiveDate;

use encaisse_helios::events::{
    BordereauQuery, BudgetCodes, EmargementStore, KnownTitre, TitreLookup,
};
use encaisse_helios::reconcile::{LineKey, Sighting};
use encaisse_ledger::Tx;
use encaisse_schemas::TenantId;
use encaisse_schemas::events::{InvoiceRef, TitreRef};

use super::error::HeliosError;
use super::store::{self, Scope, TitreRow, ledger_now};

/// The adapter asks through `&self`: the transaction is borrowed per question.
pub struct LedgerLookup<'c, 't> {
    tx: RefCell<&'c mut Tx<'t>>,
    tenant: &'c TenantId,
    failure: RefCell<Option<HeliosError>>,
}

impl<'c, 't> LedgerLookup<'c, 't> {
    pub fn new(tx: &'c mut Tx<'t>, tenant: &'c TenantId) -> Self {
        LedgerLookup {
            tx: RefCell::new(tx),
            tenant,
            failure: RefCell::new(None),
        }
    }

    /// The first ledger error met while answering, if any.
    pub fn finish(self) -> Result<(), HeliosError> {
        match self.failure.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs `ask` on the transaction (one question at a time: the adapter never nests them).
    fn ask<T>(
        &self,
        ask: impl FnOnce(&mut Tx<'t>) -> Result<T, HeliosError>,
    ) -> Result<T, HeliosError> {
        let mut tx = self.tx.try_borrow_mut().map_err(|_| {
            HeliosError::Corrupt("the return file's reader asked two questions at once".into())
        })?;
        ask(&mut tx)
    }

    fn keep<T: Default>(&self, result: Result<T, HeliosError>) -> T {
        match result {
            Ok(v) => v,
            Err(e) => {
                let mut slot = self.failure.borrow_mut();
                if slot.is_none() {
                    *slot = Some(e);
                }
                T::default()
            }
        }
    }

    fn scope<'a>(&'a self, budget: &BudgetCodes<'a>) -> Scope<'a> {
        Scope {
            tenant: self.tenant.as_str(),
            cod_col: budget.cod_col,
            cod_bud: budget.cod_bud,
        }
    }

    fn known(&self, row: TitreRow) -> KnownTitre {
        KnownTitre {
            invoice: InvoiceRef {
                tenant: self.tenant.clone(),
                exercice: row.invoice_exercice,
                number: row.invoice_number,
            },
            titre: TitreRef {
                budget: row.budget,
                exercice: row.exercice,
                bordereau_type: row.typ_bord,
                id_bord: row.id_bord,
                id_pce: row.id_pce,
            },
            payment_mode: row.payment_mode,
        }
    }

    /// The bordereau type a query means: given (PES Retour), from the acknowledged file's
    /// name (acquit), else the only type under which the number exists.
    fn typ_bord(&self, q: &BordereauQuery<'_>) -> Result<Option<String>, HeliosError> {
        if let Some(t) = q.typ_bord {
            return Ok(Some(t.to_string()));
        }
        let scope = self.scope(&q.budget);
        if let Some(file) = q.sent_file
            && let Some(t) = self.ask(|tx| store::typ_bord_of_file(tx, scope, file))?
        {
            return Ok(Some(t));
        }
        let mut types = self.ask(|tx| store::typ_bords_of(tx, scope, q.exercice, q.id_bord))?;
        Ok(if types.len() == 1 { types.pop() } else { None })
    }
}

impl TitreLookup for LedgerLookup<'_, '_> {
    fn bordereau(&self, q: &BordereauQuery<'_>) -> Vec<KnownTitre> {
        let rows = self.keep((|| {
            let Some(typ_bord) = self.typ_bord(q)? else {
                return Ok(Vec::new());
            };
            self.ask(|tx| {
                store::titres_of_bordereau(
                    tx,
                    self.scope(&q.budget),
                    q.exercice,
                    &typ_bord,
                    q.id_bord,
                )
            })
        })());
        rows.into_iter().map(|r| self.known(r)).collect()
    }

    fn piece(&self, q: &BordereauQuery<'_>, id_pce: u64) -> Option<KnownTitre> {
        let row = self.keep((|| {
            let Some(typ_bord) = self.typ_bord(q)? else {
                return Ok(None);
            };
            self.ask(|tx| {
                store::titre_of_piece(
                    tx,
                    self.scope(&q.budget),
                    q.exercice,
                    &typ_bord,
                    q.id_bord,
                    id_pce,
                )
            })
        })());
        row.map(|r| self.known(r))
    }

    fn dette(&self, budget: BudgetCodes<'_>, num_dette: &str, per: &str) -> Option<KnownTitre> {
        let row = self
            .keep(self.ask(|tx| store::titre_of_dette(tx, self.scope(&budget), num_dette, per)));
        row.map(|r| self.known(r))
    }
}

impl EmargementStore for LedgerLookup<'_, '_> {
    fn known(&self, line: &LineKey) -> Vec<Sighting> {
        self.keep(self.ask(|tx| known_sightings(tx, self.tenant.as_str(), line)))
    }
}

fn known_sightings(
    tx: &mut Tx<'_>,
    tenant: &str,
    line: &LineKey,
) -> Result<Vec<Sighting>, HeliosError> {
    let text = tx.query_opt(
        "SELECT sightings FROM helios_emargement WHERE tenant = ?1 AND line_key = ?2",
        &[&tenant, &line.key()],
        |r| r.get::<String>(0),
    )?;
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| HeliosError::Corrupt(format!("helios_emargement {}: {e}", line.key()))),
    }
}

/// The date of the PES Retour a line's known state came from.
pub fn line_state_date(
    tx: &mut Tx<'_>,
    tenant: &str,
    line: &LineKey,
) -> Result<Option<NaiveDate>, HeliosError> {
    let text = tx.query_opt(
        "SELECT file_date FROM helios_emargement WHERE tenant = ?1 AND line_key = ?2",
        &[&tenant, &line.key()],
        |r| r.get::<String>(0),
    )?;
    text.map(|t| {
        NaiveDate::parse_from_str(&t, "%Y-%m-%d")
            .map_err(|_| HeliosError::Corrupt(format!("helios_emargement.file_date {t:?}")))
    })
    .transpose()
}

/// Remembers the émargements a line carried in `file`, dated `file_date` (reconciliation
/// by state). A state from an older file than the one recorded is not written: two files
/// handled at once (two daemons) each read the state before the other wrote, and the older
/// must not undo the newer whichever commits last.
pub fn store_line_state(
    tx: &mut Tx<'_>,
    tenant: &str,
    line: &LineKey,
    sightings: &[Sighting],
    file: &str,
    file_date: NaiveDate,
) -> Result<(), HeliosError> {
    let text = serde_json::to_string(sightings)
        .map_err(|e| HeliosError::Corrupt(format!("émargements of {}: {e}", line.key())))?;
    tx.execute(
        "INSERT INTO helios_emargement (tenant, line_key, sightings, file, file_date, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (tenant, line_key) DO UPDATE SET sightings = excluded.sightings,
             file = excluded.file, file_date = excluded.file_date, updated_at = excluded.updated_at
         WHERE helios_emargement.file_date <= excluded.file_date",
        &[
            &tenant,
            &line.key(),
            &text,
            &file,
            &file_date.to_string(),
            &ledger_now(),
        ],
    )?;
    Ok(())
}
