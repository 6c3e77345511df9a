//! Every EPC rule the ISO XSD does not check is enforced in code: a violating input is
//! refused with an error naming the collection, the field and the rule.

mod common;

use common::*;
use encaisse_schemas::identifiers::{Bic, Iban, Ics, Rum};
use encaisse_sepa::rules::{Rule, RuleViolation, Subject};
use encaisse_sepa::{Amendment, Collection, OriginalDebtorAccount, Pain008Version, PartyId, build};

fn refused(collections: &[Collection]) -> Vec<RuleViolation> {
    build(
        settings(Pain008Version::V02),
        header("MSG-RULES-1"),
        party(),
        creditor(),
        collections,
    )
    .unwrap_err()
    .0
}

/// The single violation of a one-collection message, checked to name that collection.
fn only(c: Collection) -> RuleViolation {
    let e2e = c.end_to_end_id.clone();
    let mut violations = refused(&[c]);
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = violations.remove(0);
    assert_eq!(
        v.subject,
        Subject::Collection {
            end_to_end_id: e2e,
            invoice: "vitry/2026/F0001".into()
        }
    );
    v
}

fn base() -> Collection {
    collection("F0001", 1000)
}

#[test]
fn identifiers_follow_the_slash_and_character_rules() {
    for bad in [
        "/2026-F0001-1",
        "2026-F0001-1/",
        "2026//F0001-1",
        "2026 F0001",
        &"A".repeat(36),
    ] {
        let mut c = base();
        c.end_to_end_id = bad.to_string();
        let mut violations = refused(&[c]);
        let v = violations.remove(0);
        assert_eq!(
            (v.field, v.rule),
            ("PmtId/EndToEndId", Rule::Identifier),
            "{bad}: {v}"
        );
    }
    let err = build(
        settings(Pain008Version::V02),
        header("MSG//1"),
        party(),
        creditor(),
        &[base()],
    )
    .unwrap_err();
    assert_eq!(err.0[0].field, "GrpHdr/MsgId");
    assert!(err.to_string().contains("'//'"), "{err}");
}

#[test]
fn names_are_transliterated_and_limited_to_70() {
    let mut c = base();
    c.debtor.name = "É".repeat(71);
    let v = only(c);
    assert_eq!((v.field, v.rule), ("Dbtr/Nm", Rule::Length));
    assert!(v.to_string().contains("71 characters"), "{v}");

    let mut c = base();
    c.debtor.name = "王小明".into();
    assert_eq!(only(c).rule, Rule::Empty);

    let mut c = base();
    c.ultimate_debtor = Some("x".repeat(71));
    assert_eq!(only(c).field, "UltmtDbtr/Nm");

    let mut creditor = creditor();
    creditor.name = "R".repeat(71);
    let err = build(
        settings(Pain008Version::V02),
        header("MSG-1"),
        party(),
        creditor,
        &[base()],
    )
    .unwrap_err();
    assert_eq!(err.0[0].field, "PmtInf/Cdtr/Nm");
}

#[test]
fn remittance_is_limited_to_140() {
    let mut c = base();
    c.remittance = "é".repeat(141);
    let v = only(c);
    assert_eq!((v.field, v.rule), ("RmtInf/Ustrd", Rule::Length));
    let mut c = base();
    c.remittance = "é".repeat(140);
    assert!(
        build(
            settings(Pain008Version::V02),
            header("MSG-1"),
            party(),
            creditor(),
            &[c]
        )
        .is_ok()
    );
}

#[test]
fn amounts_stay_within_0_01_and_999999999_99() {
    for cents in [0, -100, 100_000_000_000] {
        let mut c = base();
        c.amount = encaisse_schemas::Money::from_cents(cents).unwrap();
        let v = only(c);
        assert_eq!((v.field, v.rule), ("InstdAmt", Rule::Amount), "{cents}");
    }
}

#[test]
fn signature_date_must_not_be_in_the_future() {
    let mut c = base();
    c.mandate.signed_on = d(2026, 12, 1);
    let v = only(c);
    assert_eq!(
        (v.field, v.rule),
        ("MndtRltdInf/DtOfSgntr", Rule::SignatureDate)
    );
    assert!(v.to_string().contains("2026-12-01"), "{v}");
}

#[test]
fn due_date_is_a_target_day_after_the_lead_time() {
    let mut c = base();
    c.due_date = d(2026, 12, 12); // Saturday
    let v = only(c);
    assert_eq!((v.field, v.rule), ("ReqdColltnDt", Rule::DueDate));
    assert!(v.detail.contains("TARGET"), "{v}");
    let mut c = base();
    c.due_date = d(2026, 12, 1); // created Monday 30 Nov, D-2 → Wednesday 2 Dec earliest
    let v = only(c);
    assert!(v.detail.contains("2026-12-02"), "{v}");
    let mut c = base();
    c.due_date = d(2026, 12, 25);
    assert_eq!(only(c).rule, Rule::DueDate);
}

#[test]
fn end_to_end_ids_are_unique_in_a_message() {
    let a = collection("F0001", 1000);
    let mut b = collection("F0002", 2000);
    b.end_to_end_id = a.end_to_end_id.clone();
    let violations = refused(&[a, b]);
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].rule, Rule::Duplicate);
    let text = violations[0].to_string();
    assert!(
        text.contains("vitry/2026/F0001") && text.contains("vitry/2026/F0002"),
        "{text}"
    );
}

#[test]
fn bic_must_match_the_version_pattern() {
    let mut creditor = creditor();
    creditor.bic = Some(Bic::parse("BNPAFR1P").unwrap());
    let err = build(
        settings(Pain008Version::V02),
        header("MSG-1"),
        party(),
        creditor.clone(),
        &[base()],
    )
    .unwrap_err();
    assert_eq!(
        (err.0[0].field, err.0[0].rule),
        ("PmtInf/CdtrAgt/FinInstnId", Rule::Bic)
    );
    assert!(
        build(
            settings(Pain008Version::V08),
            header("MSG-1"),
            party(),
            creditor,
            &[base()]
        )
        .is_ok()
    );
}

#[test]
fn amendments_must_change_something() {
    let mut c = base();
    c.mandate.amendment = Some(Amendment::default());
    assert_eq!(only(c).rule, Rule::Amendment);

    let mut c = base();
    c.mandate.amendment = Some(Amendment {
        original_rum: Some(Rum::parse("rum-f0001").unwrap()),
        ..Amendment::default()
    });
    let v = only(c);
    assert_eq!(
        v.field, "AmdmntInfDtls/OrgnlMndtId",
        "RUMs compare case-insensitively"
    );

    let mut c = base();
    c.mandate.amendment = Some(Amendment {
        original_debtor_account: Some(OriginalDebtorAccount::Iban(c.debtor.iban.clone())),
        ..Amendment::default()
    });
    assert_eq!(only(c).field, "AmdmntInfDtls/OrgnlDbtrAcct");

    let mut c = base();
    c.mandate.amendment = Some(Amendment {
        original_ics: Some(Ics::parse("FR72ZZZ123456").unwrap()),
        ..Amendment::default()
    });
    assert_eq!(only(c).field, "AmdmntInfDtls/OrgnlCdtrSchmeId/Id");

    let mut c = base();
    c.mandate.amendment = Some(Amendment {
        original_creditor_name: Some("Regie cantine de Vitry".into()),
        ..Amendment::default()
    });
    assert_eq!(only(c).field, "AmdmntInfDtls/OrgnlCdtrSchmeId/Nm");
}

#[test]
fn debtors_outside_the_eea_need_an_address() {
    let mut c = base();
    c.debtor.iban = Iban::parse("MC5811222000010123456789030").unwrap();
    let v = only(c.clone());
    assert_eq!((v.field, v.rule), ("Dbtr/PstlAdr", Rule::Address));
    c.debtor.address = Some(encaisse_sepa::PostalAddress {
        street: None,
        building_number: None,
        postal_code: None,
        town: "Monaco".into(),
        country: "mc".into(),
    });
    assert_eq!(only(c).field, "Dbtr/PstlAdr/Ctry");
}

#[test]
fn a_message_needs_a_collection_and_a_valid_siret() {
    let err = build(
        settings(Pain008Version::V02),
        header("MSG-1"),
        party(),
        creditor(),
        &[],
    )
    .unwrap_err();
    assert_eq!(err.0[0].rule, Rule::NoCollection);
    let mut p = party();
    p.id = Some(PartyId::Siret("21940081900018".into()));
    let err = build(
        settings(Pain008Version::V02),
        header("MSG-1"),
        p,
        creditor(),
        &[base()],
    )
    .unwrap_err();
    assert_eq!(err.0[0].field, "GrpHdr/InitgPty/Id/OrgId/Othr/Id");
}

#[test]
fn every_violation_is_reported_not_only_the_first() {
    let mut a = collection("F0001", 0);
    a.debtor.name = "x".repeat(80);
    let mut b = collection("F0002", 1000);
    b.due_date = d(2026, 12, 13);
    let good = collection("F0003", 1000);
    let err = build(
        settings(Pain008Version::V02),
        header("MSG-1"),
        party(),
        creditor(),
        &[a, b, good],
    )
    .unwrap_err();
    let fields: Vec<(&str, &str)> = err
        .0
        .iter()
        .map(|v| match &v.subject {
            Subject::Collection { end_to_end_id, .. } => (end_to_end_id.as_str(), v.field),
            Subject::Message { .. } => ("message", v.field),
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("2026-F0001-1", "InstdAmt"),
            ("2026-F0001-1", "Dbtr/Nm"),
            ("2026-F0002-1", "ReqdColltnDt"),
        ]
    );
    assert_eq!(err.class(), encaisse_sepa::ErrorClass::Permanent);
}

#[test]
fn transliteration_only_yields_sepa_characters() {
    // Property over many inputs: whatever a name contains, what is written is in the set.
    let alphabet: Vec<char> = "aéÈçÇœŒæßøÅ€&_@#%$*\"«»’–—中文🙂 .-/?:(),'+0123456789ZzÜüñÑ\t"
        .chars()
        .collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..2000 {
        let mut name = String::new();
        for _ in 0..(state % 60) as usize + 1 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            name.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        if let Ok(text) = encaisse_sepa::rules::sepa_text(&name, 70) {
            assert!(
                text.chars().all(encaisse_schemas::text::is_sepa_char),
                "{name:?} → {text:?}"
            );
        }
    }
}
