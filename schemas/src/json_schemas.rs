//! JSON Schemas of the canonical messages, as published in `schemas/json/`.
//!
//! Integrators publish or consume these messages directly, so the files are part of the
//! contract: `cargo test -p encaisse-schemas` fails when a file is out of date, and
//! `UPDATE_SCHEMAS=1 cargo test -p encaisse-schemas` rewrites them.

use crate::event::Event;
use crate::events::*;

/// `(file name, schema JSON)` for every canonical message.
pub fn all() -> Vec<(String, String)> {
    fn one<E: Event>() -> (String, String) {
        let mut schema = schemars::schema_for!(E);
        schema.insert(
            "$id".into(),
            format!(
                "https://encaisse.invalid/schemas/{}.v{}.json",
                E::TYPE,
                E::SCHEMA_VERSION
            )
            .into(),
        );
        schema.insert("x-encaisse-routing-key".into(), E::TYPE.into());
        let text = serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n";
        (format!("{}.v{}.json", E::TYPE, E::SCHEMA_VERSION), text)
    }
    vec![
        one::<InvoiceIssued>(),
        one::<CreditNoteIssued>(),
        one::<BillingRunClosed>(),
        one::<PaymentReceived>(),
        one::<PaymentFailed>(),
        one::<PaymentRejected>(),
        one::<PaymentReversed>(),
        one::<TitreAccepted>(),
        one::<TitreRejected>(),
        one::<PayfipConfirm>(),
    ]
}
