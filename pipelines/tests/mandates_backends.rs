//! The mandate history (`encaisse_pipelines::mandates`) on both ledger backends: the same
//! bodies on SQLite (a temporary file) and PostgreSQL (a fresh database per test from
//! `ENCAISSE_TEST_POSTGRES_URL`; skipped visibly when unset, required in CI with
//! `ENCAISSE_REQUIRE_POSTGRES=1`). The row operations themselves are in the ledger's
//! contract tests; these check the rules that read them, above all under concurrency.

use chrono::NaiveDate;
use encaisse_ledger::testing::Fixture;
use encaisse_pipelines::mandates::{
    self, MandateKind, SequenceError, SequencePolicy, UseRequest, UseStatus,
};
use encaisse_schemas::identifiers::{Iban, Rum};
use encaisse_schemas::{InvoiceRef, Mandate, SequenceType, TenantId};
use encaisse_sepa::config::FirstSequence;

const POLICY: SequencePolicy = SequencePolicy {
    first: FirstSequence::Frst,
    lapse_months: 36,
};
const IBAN: &str = "FR7630006000011234567890189";
const OTHER_BANK: &str = "FR1420041010050500013M02606";

encaisse_ledger::on_both_backends!(
    concurrent_first_uses_of_one_mandate_give_one_frst,
    a_plan_is_idempotent_and_a_new_account_amends_the_mandate,
);

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

/// Eight invoices of one mandate planned at once, each in its own transaction: exactly one
/// use is the mandate's `FRST` (the others see it pending and are `RCUR`), whichever
/// commits first. Once for a mandate the ledger never saw (created once), once for a
/// mandate known before (imported) but never used: there only the mandate's row lock
/// orders the decisions.
async fn concurrent_first_uses_of_one_mandate_give_one_frst(f: &Fixture) {
    let imported = mandate("RUM-3", IBAN);
    f.ledger
        .transact(move |tx| mandates::observe_mandate(tx, "ivry", &imported, d(1, 20)))
        .await
        .unwrap();
    for rum in ["RUM-1", "RUM-3"] {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let ledger = f.ledger.clone();
                tokio::spawn(async move {
                    ledger
                        .transact(move |tx| {
                            mandates::sequence_for(
                                tx,
                                &invoice(&format!("{rum}-F{i}")),
                                &mandate(rum, IBAN),
                                d(2, 10),
                                &POLICY,
                            )
                        })
                        .await
                })
            })
            .collect();
        let mut sequences = Vec::new();
        for handle in handles {
            sequences.push(handle.await.unwrap().unwrap());
        }
        let first = sequences
            .iter()
            .filter(|s| **s == SequenceType::Frst)
            .count();
        assert_eq!(first, 1, "{rum}: one FRST: {sequences:?}");
        let uses = f
            .ledger
            .inspect(move |tx| mandates::uses_of_mandate(tx, "ivry", rum))
            .await
            .unwrap();
        assert_eq!(uses.len(), 8, "{uses:?}");
        assert_eq!(
            uses.iter()
                .filter(|u| u.sequence == SequenceType::Frst)
                .count(),
            1
        );
        assert!(uses.iter().all(|u| u.status == UseStatus::Planned));
    }
}

async fn a_plan_is_idempotent_and_a_new_account_amends_the_mandate(f: &Fixture) {
    let m = mandate("rum-2", IBAN);
    let (first, again, moved) = f
        .ledger
        .transact(move |tx| {
            let first = mandates::sequence_for(tx, &invoice("G1"), &m, d(2, 10), &POLICY)?;
            let again = mandates::sequence_for(tx, &invoice("G1"), &m, d(2, 10), &POLICY)?;
            // The same invoice planned for another day keeps its answer and moves its use.
            let moved = mandates::plan_use(
                tx,
                &UseRequest {
                    invoice: &invoice("G1"),
                    attempt: 1,
                    mandate: &m,
                    due_date: d(2, 12),
                    given: None,
                },
                &POLICY,
            )?;
            Ok::<_, SequenceError>((first, again, moved))
        })
        .await
        .unwrap();
    assert_eq!(
        (first, again, moved),
        (SequenceType::Frst, SequenceType::Frst, SequenceType::Frst)
    );
    let new_account = mandate("RUM-2", OTHER_BANK);
    f.ledger
        .transact(move |tx| mandates::observe_mandate(tx, "ivry", &new_account, d(2, 20)))
        .await
        .unwrap();
    let (known, used, by_id, history) = f
        .ledger
        .inspect(|tx| {
            let rum = Rum::parse("RUM-2").unwrap();
            let known = mandates::known_mandate(tx, "ivry", &rum)?;
            let used = mandates::use_of(tx, "ivry", "ivry/2026/G1", 1)?;
            let by_id = mandates::use_by_end_to_end_id(tx, "ivry", "2026-G1-1")?;
            let history = mandates::history(tx, "ivry", &rum, None)?;
            Ok::<_, encaisse_ledger::LedgerError>((known, used, by_id, history))
        })
        .await
        .unwrap();
    let known = known.unwrap();
    assert_eq!(known.rum, "RUM-2", "the RUM as last given");
    assert_eq!(known.iban, OTHER_BANK);
    assert_eq!(known.amended_on, Some(d(2, 20)));
    assert_eq!(known.kind, MandateKind::Recurrent);
    let used = used.unwrap();
    assert_eq!(used.due_date, d(2, 12));
    assert_eq!(used.end_to_end_id.as_deref(), Some("2026-G1-1"));
    assert_eq!(by_id, Some(used));
    let history = history.unwrap();
    assert_eq!(history.amended_on, Some(d(2, 20)));
    assert_eq!(history.collections.len(), 1);
}
