//! Test fixtures: a régie, its collections, and the shared specs (read from
//! `encaisse_xml::specs::specs_dir()`, never copied into the repository).
#![allow(dead_code)]

use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime};
use encaisse_schemas::identifiers::{Bic, Iban, Ics, Rum};
use encaisse_schemas::{InvoiceRef, Money, SequenceType, TenantId};
use encaisse_sepa::{
    Collection, Creditor, Debtor, InitiatingParty, MandateInfo, MessageHeader, Pain008Version,
    WriteSettings,
};

pub fn specs() -> PathBuf {
    encaisse_xml::specs::specs_dir()
}

pub fn sepa_spec(name: &str) -> PathBuf {
    specs().join("sepa").join(name)
}

pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(sepa_spec("samples").join(name)).unwrap()
}

pub fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

pub fn created() -> NaiveDateTime {
    d(2026, 11, 30).and_hms_opt(9, 30, 0).unwrap()
}

pub fn header(message_id: &str) -> MessageHeader {
    MessageHeader {
        message_id: message_id.into(),
        created_at: created(),
    }
}

pub fn settings(version: Pain008Version) -> WriteSettings {
    WriteSettings {
        version,
        batch_booking: true,
        lead_days: 2,
    }
}

pub fn creditor() -> Creditor {
    Creditor {
        name: "Régie cantine de Vitry".into(),
        iban: Iban::parse("FR7630001007941234567890185").unwrap(),
        bic: Some(Bic::parse("BDFEFRPPCCT").unwrap()),
        ics: Ics::parse("FR72ZZZ123456").unwrap(),
        ultimate: None,
    }
}

pub fn party() -> InitiatingParty {
    InitiatingParty {
        name: "Commune de Vitry-sur-Seine".into(),
        id: None,
    }
}

pub fn invoice(number: &str) -> InvoiceRef {
    InvoiceRef {
        tenant: TenantId::new("vitry").unwrap(),
        exercice: 2026,
        number: number.into(),
    }
}

/// A valid collection due Monday 7 December 2026 (RCUR, BIC present).
pub fn collection(number: &str, cents: i64) -> Collection {
    let invoice = invoice(number);
    Collection {
        end_to_end_id: encaisse_sepa::ids::end_to_end_id(&invoice, 1).unwrap(),
        invoice,
        amount: Money::from_cents(cents).unwrap(),
        due_date: d(2026, 12, 7),
        sequence: SequenceType::Rcur,
        mandate: MandateInfo {
            rum: Rum::parse(&format!("RUM-{number}")).unwrap(),
            signed_on: d(2024, 9, 2),
            amendment: None,
        },
        debtor: Debtor {
            name: "Famille Dupont-Lefèvre".into(),
            iban: Iban::parse("FR1420041010050500013M02606").unwrap(),
            bic: Some(Bic::parse("PSSTFRPPPAR").unwrap()),
            address: None,
        },
        ultimate_debtor: None,
        remittance: format!("Facture cantine 11/2026 n° {number}"),
    }
}
