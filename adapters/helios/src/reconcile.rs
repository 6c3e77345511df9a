//! Reconciling a titre line's émargements **by state** (`pes-v2.md` §4).
//!
//! A periodic or stock PES Retour lists, for each line it carries, every encaissement /
//! émargement that is still standing ("dès lors qu'il y a une réalité d'émargement non
//! neutralisée"). Hélios gives them no identifier, and a debit rejected by the bank after
//! being imputed is not reported as such: its émargement is neutralised and simply no
//! longer listed. So the line's new list is compared with the list known from earlier files:
//!
//! * in the new list and not known → a new payment (`payment.received`);
//! * known and no longer in the list → a payment that disappeared (`payment.reversed`);
//! * the same file read twice → nothing.
//!
//! An émargement is identified by its origin, date and amount; identical ones on the same
//! line are told apart by an occurrence number (1, 2, …), so comparing lists is a multiset
//! difference and never depends on the order of the blocks in the file.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use encaisse_schemas::Money;
use serde::{Deserialize, Serialize};

use crate::read::retour::Emargement;

/// Where a line sits in Hélios: the key of its known émargements.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LineKey {
    pub cod_col: String,
    pub cod_bud: String,
    pub exercice: u16,
    /// `TypBord` (`01`, `06`): bordereau numbers are per type.
    pub typ_bord: String,
    pub id_bord: u64,
    pub id_pce: u64,
    pub id_ligne: u64,
}

impl LineKey {
    /// `123/00/2024/06/42/1/1`.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}/{}/{}",
            self.cod_col,
            self.cod_bud,
            self.exercice,
            self.typ_bord,
            self.id_bord,
            self.id_pce,
            self.id_ligne
        )
    }
}

/// One émargement as known: its identity on a line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sighting {
    /// `OrgEma` code (`03`, `10`, …).
    pub origin: String,
    pub date: NaiveDate,
    pub amount: Money,
    /// 1 for the first émargement of this origin, date and amount on the line, 2 for a second
    /// identical one, …
    pub occurrence: u32,
}

impl Sighting {
    /// The stable `payment_id` of this émargement:
    /// `helios:<CodCol>/<CodBud>/<exer>/<TypBord>/<IdBord>/<IdPce>/<IdLigne>/<OrgEma>-<AAAAMMJJ>-<cents>-<n>`.
    /// It names the fact, never a position in a file, so the same émargement seen in two
    /// files has the same id (and the same message id downstream).
    pub fn payment_id(&self, line: &LineKey) -> String {
        format!(
            "helios:{}/{}-{}-{}-{}",
            line.key(),
            self.origin,
            self.date.format("%Y%m%d"),
            self.amount.cents(),
            self.occurrence
        )
    }
}

/// What changed on a line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciliation {
    /// The line's émargements now (to remember for the next file).
    pub current: Vec<Sighting>,
    /// New since the known state.
    pub added: Vec<Sighting>,
    /// Known but no longer listed: neutralised.
    pub removed: Vec<Sighting>,
}

impl Reconciliation {
    pub fn is_unchanged(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The sightings of a list of émargements (occurrences numbered per origin, date, amount).
pub fn sightings(emargements: &[Emargement]) -> Vec<Sighting> {
    let mut counts: BTreeMap<(&str, NaiveDate, Money), u32> = BTreeMap::new();
    for e in emargements {
        *counts
            .entry((e.origin.code(), e.date, e.amount))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .flat_map(|((origin, date, amount), n)| {
            (1..=n).map(move |occurrence| Sighting {
                origin: origin.to_string(),
                date,
                amount,
                occurrence,
            })
        })
        .collect()
}

/// Compares a line's `known` émargements with the `current` list of a new file.
pub fn reconcile(known: &[Sighting], current: &[Emargement]) -> Reconciliation {
    let current = sightings(current);
    let added = current
        .iter()
        .filter(|s| !known.contains(s))
        .cloned()
        .collect();
    let mut removed: Vec<Sighting> = known
        .iter()
        .filter(|s| !current.contains(s))
        .cloned()
        .collect();
    removed.sort();
    Reconciliation {
        current,
        added,
        removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::OrgEma;

    fn e(origin: &str, date: (i32, u32, u32), cents: i64) -> Emargement {
        Emargement {
            origin: OrgEma::from_code(origin),
            date: NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap(),
            amount: Money::from_cents(cents).unwrap(),
        }
    }

    #[test]
    fn same_list_twice_changes_nothing_whatever_the_order() {
        let first = vec![e("03", (2024, 10, 15), 4530), e("10", (2024, 10, 20), 1200)];
        let r1 = reconcile(&[], &first);
        assert_eq!(r1.added.len(), 2);
        let reordered = vec![first[1].clone(), first[0].clone()];
        let r2 = reconcile(&r1.current, &reordered);
        assert!(r2.is_unchanged(), "{r2:?}");
        assert_eq!(r2.current, r1.current);
    }

    #[test]
    fn a_disappeared_emargement_is_removed() {
        let debit = e("03", (2024, 10, 15), 4530);
        let r1 = reconcile(&[], std::slice::from_ref(&debit));
        let r2 = reconcile(&r1.current, &[]);
        assert!(r2.added.is_empty());
        assert_eq!(r2.removed, r1.current);
        assert!(r2.current.is_empty());
    }

    #[test]
    fn identical_payments_are_counted() {
        let twice = vec![e("02", (2024, 11, 2), 1000), e("02", (2024, 11, 2), 1000)];
        let r1 = reconcile(&[], &twice[..1]);
        assert_eq!(r1.added[0].occurrence, 1);
        let r2 = reconcile(&r1.current, &twice);
        assert_eq!(r2.added.len(), 1);
        assert_eq!(r2.added[0].occurrence, 2);
        assert!(r2.removed.is_empty());
        let r3 = reconcile(&r2.current, &twice[..1]);
        assert_eq!(r3.removed.len(), 1);
        assert_eq!(r3.removed[0].occurrence, 2);
    }

    #[test]
    fn payment_ids_name_the_fact() {
        let line = LineKey {
            cod_col: "123".into(),
            cod_bud: "00".into(),
            exercice: 2024,
            typ_bord: "06".into(),
            id_bord: 42,
            id_pce: 1,
            id_ligne: 1,
        };
        let s = &sightings(&[e("03", (2024, 10, 15), 4530)])[0];
        assert_eq!(
            s.payment_id(&line),
            "helios:123/00/2024/06/42/1/1/03-20241015-4530-1"
        );
    }
}
