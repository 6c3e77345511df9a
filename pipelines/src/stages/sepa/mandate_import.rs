//! Mandates migrated from another tool (`encaisse mandates import`): each one is recorded as
//! if the ledger had seen it — the mandate itself ([`observe_mandate`]) and, when it was
//! already used, its last collection as a settled use — so the next debit continues the
//! mandate's life (`RCUR`) and it lapses only by the real rule (months since that last
//! collection), instead of starting again as `FRST` or looking lapsed.
//!
//! Importing the same row again changes nothing; a row with a later last collection moves
//! the history forward. Each import is a `mandate_imported` fact under the key
//! `<tenant>/mandate/<RUM>` (`encaisse trace --tenant T mandate/<RUM>`).

use chrono::NaiveDate;
use encaisse_ledger::{CoreStore, InvoiceFact, LedgerError, Tx};
use encaisse_schemas::identifiers::{Bic, Iban, Rum};
use encaisse_schemas::{Mandate, SequenceType};

use super::clock::ledger_now;
use crate::mandates::observe_mandate;

/// One mandate's history, as the previous tool knew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMandate {
    pub rum: Rum,
    pub iban: Iban,
    pub bic: Option<Bic>,
    pub signed_on: NaiveDate,
    /// The due date of the last collection presented and paid under it, if any.
    pub last_collection_on: Option<NaiveDate>,
    /// The sequence type of that last collection (`FRST`, `RCUR`, `FNAL`; `OOFF` for a
    /// one-off); `RCUR` when a last collection is given without it.
    pub last_sequence: Option<SequenceType>,
    /// A one-off mandate (used once at most).
    pub one_off: bool,
}

/// The journal key of a mandate's imports.
pub fn mandate_key(tenant: &str, rum: &Rum) -> String {
    format!("{tenant}/mandate/{}", rum.as_str())
}

/// The pseudo invoice key under which an imported last collection is kept in
/// `sepa_collection` (never an invoice's: invoice keys have a numeric exercice).
fn imported_use_key(tenant: &str, rum: &Rum) -> String {
    format!("{tenant}/mandate/{}#imported", rum.key())
}

/// Records `mandate` for `tenant` (inside a write transaction); `source` names the file and
/// line for the journal. Idempotent.
pub fn import_mandate(
    tx: &mut Tx<'_>,
    tenant: &str,
    mandate: &ImportedMandate,
    source: &str,
    today: NaiveDate,
) -> Result<(), LedgerError> {
    let one_off = mandate.one_off || mandate.last_sequence == Some(SequenceType::Ooff);
    observe_mandate(
        tx,
        tenant,
        &Mandate {
            rum: mandate.rum.clone(),
            signed_on: mandate.signed_on,
            iban: mandate.iban.clone(),
            bic: mandate.bic.clone(),
            // The ledger keeps no holder name: each invoice brings its own.
            holder: String::new(),
            sequence: one_off.then_some(SequenceType::Ooff),
        },
        today,
    )?;
    let sequence = match (mandate.last_sequence, one_off) {
        (Some(sequence), _) => sequence,
        (None, true) => SequenceType::Ooff,
        (None, false) => SequenceType::Rcur,
    };
    if let Some(last) = mandate.last_collection_on {
        let key = imported_use_key(tenant, &mandate.rum);
        tx.execute(
            "INSERT INTO sepa_collection
                 (tenant, invoice_key, attempt, rum_key, end_to_end_id, due_date, sequence, status,
                  planned_at, outcome_on)
             VALUES (?1, ?2, 1, ?3, NULL, ?4, ?5, 'settled', ?6, ?4)
             ON CONFLICT (tenant, invoice_key, attempt) DO UPDATE SET
                 due_date = excluded.due_date, sequence = excluded.sequence,
                 outcome_on = excluded.outcome_on
             WHERE excluded.due_date > sepa_collection.due_date",
            &[
                &tenant,
                &key,
                &mandate.rum.key(),
                &last.to_string(),
                &sequence.as_str(),
                &ledger_now(),
            ],
        )?;
    }
    let detail = serde_json::json!({
        "source": source,
        "signed_on": mandate.signed_on.to_string(),
        "last_collection_on": mandate.last_collection_on.map(|d| d.to_string()),
        "last_sequence": mandate.last_collection_on.map(|_| sequence.as_str()),
        "one_off": one_off,
        "iban": mandate.iban.masked(),
    });
    let key = mandate_key(tenant, &mandate.rum);
    tx.record_fact(&InvoiceFact {
        invoice_key: key.clone(),
        tenant: tenant.to_string(),
        at: ledger_now(),
        kind: "mandate_imported".into(),
        dedupe_key: Some(format!(
            "mandates.import/{key}#{}#{:?}#{}#{}",
            mandate.signed_on,
            mandate.last_collection_on,
            sequence.as_str(),
            mandate.iban.masked()
        )),
        detail: detail.to_string(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mandates::{SequencePolicy, sequence_for};
    use encaisse_ledger::rusqlite::Connection;
    use encaisse_schemas::InvoiceRef;
    use encaisse_schemas::TenantId;
    use encaisse_sepa::config::FirstSequence;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn imported(last: Option<NaiveDate>) -> ImportedMandate {
        ImportedMandate {
            rum: Rum::parse("OLD-TOOL-000789").unwrap(),
            iban: Iban::parse("FR1420041010050500013M02606").unwrap(),
            bic: None,
            signed_on: date(2021, 3, 1),
            last_collection_on: last,
            last_sequence: None,
            one_off: false,
        }
    }

    fn next(c: &Connection, number: &str, due: NaiveDate) -> Result<SequenceType, String> {
        let invoice = InvoiceRef {
            tenant: TenantId::new("ivry").unwrap(),
            exercice: 2026,
            number: number.into(),
        };
        let m = imported(None);
        let mandate = Mandate {
            rum: m.rum,
            signed_on: m.signed_on,
            iban: m.iban,
            bic: None,
            holder: "Zoé Lefèvre".into(),
            sequence: None,
        };
        let policy = SequencePolicy {
            first: FirstSequence::Frst,
            lapse_months: 36,
        };
        sequence_for(
            &mut encaisse_ledger::Tx::sqlite(c),
            &invoice,
            &mandate,
            due,
            &policy,
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn an_imported_mandate_continues_rcur_and_lapses_by_the_real_rule() {
        let c = encaisse_ledger::sandbox::sandbox(None, "ivry", &[]).unwrap();
        let today = date(2026, 6, 1);
        import_mandate(
            &mut Tx::sqlite(&c),
            "ivry",
            &imported(Some(date(2026, 4, 5))),
            "m.csv:2",
            today,
        )
        .unwrap();
        // Twice: nothing more.
        import_mandate(
            &mut Tx::sqlite(&c),
            "ivry",
            &imported(Some(date(2026, 4, 5))),
            "m.csv:2",
            today,
        )
        .unwrap();
        let facts: i64 = c
            .query_row(
                "SELECT count(*) FROM invoice_event WHERE invoice_key = 'ivry/mandate/OLD-TOOL-000789'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(facts, 1);
        assert_eq!(next(&c, "F1", date(2026, 6, 10)), Ok(SequenceType::Rcur));

        // Last used more than 36 months before the debit: lapsed, as the rule says.
        let c = encaisse_ledger::sandbox::sandbox(None, "ivry", &[]).unwrap();
        import_mandate(
            &mut Tx::sqlite(&c),
            "ivry",
            &imported(Some(date(2022, 5, 30))),
            "m.csv:2",
            today,
        )
        .unwrap();
        let lapsed = next(&c, "F2", date(2026, 6, 10)).unwrap_err();
        assert!(lapsed.contains("36"), "{lapsed}");

        // Never used, signed more than 36 months ago: lapsed too (the same rule counts from
        // the signature).
        let c = encaisse_ledger::sandbox::sandbox(None, "ivry", &[]).unwrap();
        import_mandate(
            &mut Tx::sqlite(&c),
            "ivry",
            &imported(None),
            "m.csv:2",
            today,
        )
        .unwrap();
        assert!(next(&c, "F3", date(2026, 6, 10)).is_err());
    }
}
