//! `payfip.register` and credit notes: once a credit note's réduction titre is taken in
//! charge, what can be paid online of its original is lowered by its amount (the classic
//! URL's `montant`), and an invoice cancelled in full is no longer payable. Real broker, the
//! daemon's routes over real HTTP.

#[path = "runtime_support/mod.rs"]
mod support;

#[path = "payfip_support/mod.rs"]
mod payfip_support;

use std::time::Duration;

use encaisse_schemas::{CollectionPath, CreditNoteIssued, InvoiceIssued, Money, TitreSource};
use payfip_support::*;
use serde_json::{Value, json};

const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A credit note `number` taking `amount` off `origin`, and its réduction titre taken in
/// charge (bordereau of type 02) on `at`.
async fn credit(
    h: &Harness,
    origin: &InvoiceIssued,
    number: &str,
    amount: &str,
    id_pce: u32,
    at: chrono::DateTime<chrono::FixedOffset>,
) {
    let mut note = invoice("vitry", number, amount, CollectionPath::Titres);
    let minus = Money::from_cents(-Money::parse(amount).unwrap().cents()).unwrap();
    note.lines[0].unit_price = minus;
    note.lines[0].amount = minus;
    note.total = minus;
    note.online_payable = false;
    let event = CreditNoteIssued {
        schema_version: 1,
        origin: origin.invoice.clone(),
        note: note.clone(),
    };
    h.publish(&event).await;
    let mut accepted = titre_accepted(&note, id_pce, TitreSource::Retour, at);
    accepted.titre.bordereau_type = "02".into();
    h.publish(&accepted).await;
}

/// Waits until a payment request for `number` gives `status`; returns its body.
async fn wait_answer(h: &Harness, number: &str, status: u16) -> Value {
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let (s, _, b) = h
            .start_payment("vitry", Some(VITRY_TOKEN), json!({"invoice": number}))
            .await;
        if s == status {
            return b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{number}: never {status}: {s} {b}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_reduced_titre_is_paid_for_what_remains_and_a_cancelled_one_not_at_all() {
    let h = Harness::start(Setup::default()).await;
    let two_days_ago = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .fixed_offset()
        - chrono::Duration::days(2);
    let reduced = invoice("vitry", "T-21", "12.00", CollectionPath::Titres);
    let cancelled = invoice("vitry", "T-22", "30.00", CollectionPath::Titres);
    for (i, id_pce) in [(&reduced, 21), (&cancelled, 22)] {
        h.issue(i).await;
        h.publish(&titre_accepted(
            i,
            id_pce,
            TitreSource::Retour,
            two_days_ago,
        ))
        .await;
    }
    credit(&h, &reduced, "A-21", "5.00", 31, two_days_ago).await;
    // Cancelled in two credit notes.
    credit(&h, &cancelled, "A-22", "10.00", 32, two_days_ago).await;
    credit(&h, &cancelled, "A-23", "20.00", 33, two_days_ago).await;

    let body = wait_answer(&h, "T-22", 409).await;
    assert_eq!(body["error"], "cancelled", "{body}");
    // A régie invoice: its credit note counts at once (no titre, the régie collects it).
    let regie = invoice("vitry", "R-21", "8.00", CollectionPath::Regie);
    h.issue(&regie).await;
    let mut note = invoice("vitry", "A-24", "8.00", CollectionPath::Regie);
    note.total = Money::from_cents(-800).unwrap();
    note.lines[0].amount = note.total;
    note.lines[0].unit_price = note.total;
    h.publish(&CreditNoteIssued {
        schema_version: 1,
        origin: regie.invoice.clone(),
        note,
    })
    .await;
    let body = wait_answer(&h, "R-21", 409).await;
    assert_eq!(body["error"], "cancelled", "{body}");
    let created = wait_answer(&h, "T-21", 201).await;
    let url = created["redirect_url"].as_str().unwrap();
    assert!(url.contains("montant=700"), "12.00 − 5.00: {url}");
    h.stop().await;
}
