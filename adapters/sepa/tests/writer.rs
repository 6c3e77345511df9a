//! pain.008 output: valid against the official ISO XSDs (and the DK subset as a second
//! check), deterministic, grouped by (due date, sequence type), readable back.

mod common;

use common::*;
use encaisse_schemas::SequenceType;
use encaisse_schemas::identifiers::{Bic, Iban, Ics, Rum};
use encaisse_sepa::read::pain008::read_pain008;
use encaisse_sepa::{
    Amendment, Collection, OriginalDebtorAccount, Pain008, Pain008Version, PartyId, PostalAddress,
    UltimateCreditor, build,
};

/// Several blocks (two dates × FRST/RCUR/OOFF), amendments of every kind, BIC present and
/// absent, accented names, an ultimate debtor, a Monaco debtor with a postal address.
fn rich_collections() -> Vec<Collection> {
    let mut out = Vec::new();
    let mut a = collection("F0001", 4560);
    a.debtor.name = "Mme Hélène Œuvray".into();
    out.push(a);
    let mut b = collection("F0002", 1200);
    b.sequence = SequenceType::Frst;
    b.debtor.bic = None;
    b.debtor.iban = Iban::parse("FR7630006000011234567890189").unwrap();
    b.ultimate_debtor = Some("Léa Œuvray (enfant)".into());
    out.push(b);
    let mut c = collection("F0003", 99_999_999_999);
    c.due_date = d(2026, 12, 15);
    c.mandate.amendment = Some(Amendment {
        original_rum: Some(Rum::parse("OLD-RUM-0003").unwrap()),
        original_creditor_name: Some("Ancienne régie".into()),
        original_ics: Some(Ics::parse("FR49ZZZ000001").unwrap()),
        original_debtor_account: Some(OriginalDebtorAccount::Iban(
            Iban::parse("FR7630001007941234567890185").unwrap(),
        )),
    });
    out.push(c);
    let mut e = collection("F0004", 1);
    e.due_date = d(2026, 12, 15);
    e.mandate.amendment = Some(Amendment {
        original_debtor_account: Some(OriginalDebtorAccount::SameMandateNewDebtorAccount),
        ..Amendment::default()
    });
    out.push(e);
    let mut f = collection("F0005", 3350);
    f.sequence = SequenceType::Ooff;
    f.debtor.iban = Iban::parse("MC5811222000010123456789030").unwrap();
    f.debtor.bic = None;
    f.debtor.address = Some(PostalAddress {
        street: Some("12 rue de l'Église".into()),
        building_number: None,
        postal_code: Some("94400".into()),
        town: "Vitry-sur-Seine".into(),
        country: "FR".into(),
    });
    out.push(f);
    out
}

fn rich(version: Pain008Version) -> Pain008 {
    let mut creditor = creditor();
    creditor.ultimate = Some(UltimateCreditor {
        name: "Trésor public - DFT régie".into(),
        id: Some("FR7630001007941234567890185".into()),
    });
    let mut party = party();
    party.id = Some(PartyId::Siret("21940081900013".into()));
    build(
        settings(version),
        header("CANTINE-DFT-SDD-26334-001"),
        party,
        creditor,
        &rich_collections(),
    )
    .unwrap()
}

fn xsd_check(version: Pain008Version, bytes: &[u8]) {
    let schema = sepa_spec(&format!("{}.xsd", version.name()));
    encaisse_xml::specs::validate_bytes_or_skip(&schema, "out.xml", bytes)
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(bytes)));
}

#[test]
fn rich_message_validates_against_both_iso_xsds() {
    for version in [Pain008Version::V02, Pain008Version::V08] {
        let message = rich(version);
        assert_eq!(
            message.blocks().len(),
            4,
            "(7 Dec FRST, 7 Dec RCUR, 7 Dec OOFF, 15 Dec RCUR)"
        );
        let bytes = message.to_xml().unwrap();
        xsd_check(version, &bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(!text.contains("schemaLocation"));
        assert!(
            text.contains("<Nm>Mme Helene Ouvray</Nm>"),
            "transliterated"
        );
        assert_eq!(text.matches("<Id>NOTPROVIDED</Id>").count(), 2);
        assert!(text.contains("<Id>SMNDA</Id>"));
        assert!(text.contains("<OrgnlMndtId>OLD-RUM-0003</OrgnlMndtId>"));
        assert!(text.contains("<Prtry>SIRET</Prtry>"));
        assert!(text.contains("<CreDtTm>2026-11-30T09:30:00</CreDtTm>"));
        let bic = version.bic_element();
        assert!(text.contains(&format!("<{bic}>PSSTFRPPPAR</{bic}>")));
        assert!(
            text.is_ascii(),
            "only the SEPA set (plus XML syntax) is written"
        );
    }
}

#[test]
fn simple_message_also_passes_the_dk_subset() {
    // The DK subset checks the SEPA character set, EUR, 2 decimals and amount bounds in the
    // schema itself; it allows no structured address, so none is written here.
    let collections: Vec<Collection> = rich_collections()
        .into_iter()
        .filter(|c| c.debtor.address.is_none())
        .collect();
    let message = build(
        settings(Pain008Version::V02),
        header("MSG-DK-1"),
        party(),
        creditor(),
        &collections,
    )
    .unwrap();
    let bytes = message.to_xml().unwrap();
    encaisse_xml::specs::validate_bytes_or_skip(
        &sepa_spec("dk/pain.008.001.02.xsd"),
        "dk.xml",
        &bytes,
    )
    .unwrap();
}

#[test]
fn blocks_group_by_date_and_sequence_with_totals_in_cents() {
    let message = rich(Pain008Version::V02);
    let keys: Vec<(String, &str, u64, u64)> = message
        .blocks()
        .iter()
        .map(|b| {
            (
                b.due_date.to_string(),
                b.sequence.as_str(),
                b.totals.count,
                b.totals.cents,
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("2026-12-07".to_string(), "FRST", 1, 1200),
            ("2026-12-07".to_string(), "RCUR", 1, 4560),
            ("2026-12-07".to_string(), "OOFF", 1, 3350),
            ("2026-12-15".to_string(), "RCUR", 2, 99_999_999_999 + 1),
        ]
    );
    assert_eq!(message.totals().count, 5);
    assert_eq!(
        message.totals().control_sum(),
        "1000000091.10",
        "4560 + 1200 + 99999999999 + 1 + 3350 cents"
    );
    let ids: Vec<&str> = message
        .blocks()
        .iter()
        .map(|b| b.payment_info_id.as_str())
        .collect();
    assert_eq!(ids[0], "CANTINE-DFT-SDD-26334-001-1");
    assert_eq!(ids[3], "CANTINE-DFT-SDD-26334-001-4");
}

#[test]
fn identical_input_gives_identical_bytes_whatever_the_order() {
    let first = rich(Pain008Version::V08).to_xml().unwrap();
    let again = rich(Pain008Version::V08).to_xml().unwrap();
    assert_eq!(first, again);
    let mut reversed = rich_collections();
    reversed.reverse();
    let mut creditor = creditor();
    creditor.ultimate = rich(Pain008Version::V08).creditor().ultimate.clone();
    let mut party = party();
    party.id = Some(PartyId::Siret("21940081900013".into()));
    let other_order = build(
        settings(Pain008Version::V08),
        header("CANTINE-DFT-SDD-26334-001"),
        party,
        creditor,
        &reversed,
    )
    .unwrap()
    .to_xml()
    .unwrap();
    assert_eq!(first, other_order);
}

#[test]
fn written_file_reads_back() {
    for version in [Pain008Version::V02, Pain008Version::V08] {
        let message = rich(version);
        let bytes = message.to_xml().unwrap();
        let sent = read_pain008("out.xml", &bytes, 1 << 20).unwrap();
        assert_eq!(sent.message, version.name());
        assert_eq!(sent.message_id, "CANTINE-DFT-SDD-26334-001");
        assert_eq!(sent.creditor_scheme_id.as_deref(), Some("FR72ZZZ123456"));
        assert!(sent.total_mismatches().is_empty());
        let written: Vec<&str> = message.end_to_end_ids().collect();
        let read: Vec<&str> = sent
            .blocks
            .iter()
            .flat_map(|b| b.collections.iter().map(|c| c.end_to_end_id.as_str()))
            .collect();
        assert_eq!(written, read);
        let amended = sent
            .blocks
            .iter()
            .flat_map(|b| &b.collections)
            .filter(|c| c.amended)
            .count();
        assert_eq!(amended, 2);
        let no_bic = sent
            .blocks
            .iter()
            .flat_map(|b| &b.collections)
            .filter(|c| c.debtor_bic.is_none())
            .count();
        assert_eq!(no_bic, 2);
    }
}

#[test]
fn bic_accepted_only_by_the_2019_pattern_is_written_only_in_08() {
    let mut c = collection("F0100", 1000);
    c.debtor.bic = Some(Bic::parse("BNPAFR1P").unwrap());
    let v08 = build(
        settings(Pain008Version::V08),
        header("MSG-BIC-08"),
        party(),
        creditor(),
        std::slice::from_ref(&c),
    )
    .unwrap();
    xsd_check(Pain008Version::V08, &v08.to_xml().unwrap());
    let err = build(
        settings(Pain008Version::V02),
        header("MSG-BIC-02"),
        party(),
        creditor(),
        &[c],
    )
    .unwrap_err();
    assert!(err.to_string().contains("BNPAFR1P"), "{err}");
}

#[test]
fn initiating_party_with_ics_validates() {
    let mut p = party();
    p.id = Some(PartyId::Ics(creditor().ics));
    let message = build(
        settings(Pain008Version::V02),
        header("MSG-ICS"),
        p,
        creditor(),
        &[collection("F0200", 500)],
    )
    .unwrap();
    let bytes = message.to_xml().unwrap();
    xsd_check(Pain008Version::V02, &bytes);
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .contains("<Id>FR72ZZZ123456</Id>")
    );
}

#[test]
fn the_xsd_check_catches_a_misordered_file() {
    // Guards the guard: the same bytes with two elements swapped must fail the ISO XSD.
    let bytes = rich(Pain008Version::V02).to_xml().unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let swapped = text.replacen("<PmtMtd>DD</PmtMtd>", "", 1).replacen(
        "<BtchBookg>true</BtchBookg>",
        "<BtchBookg>true</BtchBookg><PmtMtd>DD</PmtMtd>",
        1,
    );
    let schema = sepa_spec("pain.008.001.02.xsd");
    if encaisse_xml::specs::schema_or_skip(&schema, "the schema refuses a misplaced PmtMtd") {
        assert!(encaisse_xml::xsd::validate_bytes(&schema, "bad.xml", swapped.as_bytes()).is_err());
    }
}
