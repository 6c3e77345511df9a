//! End-to-end identifiers: the key every bank R-message echoes back (spec §2, §6.3).
//!
//! `EndToEndId` = `<exercice>-<invoice number>-<attempt>`: deterministic (a crash and a
//! redelivery rebuild the same file), new for each presentation (the EPC rule of a new id
//! per re-presentation), ≤ 35 characters. Characters of the invoice number outside the SEPA
//! identifier set (and `/`, to stay clear of the slash rules) become `-`: two numbers that
//! differ only there would collide, which the ledger's unique mapping detects.

use encaisse_schemas::InvoiceRef;
use encaisse_schemas::identifiers::check_sepa_identifier;

/// Why no end-to-end id can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndToEndIdError {
    #[error("invoice {invoice}: end-to-end id {id:?} is not a SEPA identifier: {reason}")]
    Invalid {
        invoice: String,
        id: String,
        reason: String,
    },
    #[error("invoice {invoice}: attempt must be 1 to 999, got {attempt}")]
    Attempt { invoice: String, attempt: u32 },
}

fn id_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || matches!(c, '-' | '?' | ':' | '(' | ')' | '.' | ',' | '+') {
        c
    } else {
        '-'
    }
}

/// The end-to-end id of presentation `attempt` (1 = first) of an invoice.
pub fn end_to_end_id(invoice: &InvoiceRef, attempt: u32) -> Result<String, EndToEndIdError> {
    if !(1..=999).contains(&attempt) {
        return Err(EndToEndIdError::Attempt {
            invoice: invoice.key(),
            attempt,
        });
    }
    let number: String = invoice.number.trim().chars().map(id_char).collect();
    let id = format!("{}-{number}-{attempt}", invoice.exercice);
    check_sepa_identifier("EndToEndId", &id).map_err(|e| EndToEndIdError::Invalid {
        invoice: invoice.key(),
        id: id.clone(),
        reason: e.to_string(),
    })?;
    Ok(id)
}

/// The presentation number of an end-to-end id made by [`end_to_end_id`] (its last
/// `-`-separated part), `None` for ids of another shape.
pub fn attempt_of(end_to_end_id: &str) -> Option<u32> {
    let (head, last) = end_to_end_id.rsplit_once('-')?;
    if head.is_empty() || last.is_empty() || last.len() > 3 {
        return None;
    }
    last.parse().ok().filter(|n| *n >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use encaisse_schemas::TenantId;

    fn invoice(number: &str) -> InvoiceRef {
        InvoiceRef {
            tenant: TenantId::new("vitry").unwrap(),
            exercice: 2026,
            number: number.into(),
        }
    }

    #[test]
    fn shape_and_round_trip() {
        let id = end_to_end_id(&invoice("F000123"), 1).unwrap();
        assert_eq!(id, "2026-F000123-1");
        assert_eq!(attempt_of(&id), Some(1));
        let again = end_to_end_id(&invoice("F000123"), 2).unwrap();
        assert_ne!(id, again, "a re-presentation gets a new id");
        assert_eq!(attempt_of(&again), Some(2));
    }

    #[test]
    fn unsafe_characters_are_replaced() {
        assert_eq!(
            end_to_end_id(&invoice("F/2026/é 1"), 1).unwrap(),
            "2026-F-2026---1-1"
        );
        assert!(end_to_end_id(&invoice("F1"), 0).is_err());
        assert!(end_to_end_id(&invoice(&"9".repeat(30)), 1).is_err());
    }

    #[test]
    fn foreign_ids_have_no_attempt() {
        assert_eq!(attempt_of("E2EID1"), None);
        assert_eq!(attempt_of("MUELL/FINP/RA12345"), None);
        assert_eq!(attempt_of("-1"), None);
    }
}
