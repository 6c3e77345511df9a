//! What the `sepa.batch` stage will do, end to end and without AMQP: configuration and
//! régie → creditor, `invoice.issued` → collections, file name → MsgId, build, write,
//! validate, read back. Also: the ICS / IBAN / BIC vectors of the spec go through the same
//! path (configuration and canonical events) and are accepted or refused as the spec says.

mod common;

use common::*;
use encaisse_schemas::tenant::Regie;
use encaisse_schemas::{InvoiceIssued, Mandate, SequenceType};
use encaisse_sepa::config::SepaTenantConfig;
use encaisse_sepa::naming::{NamingContext, render};
use encaisse_sepa::read::pain008::read_pain008;
use encaisse_sepa::{
    Amendment, MessageHeader, OriginalDebtorAccount, Pain008Version, PartyId, Presentation,
    SetupError, build, collection_for,
};

fn regie(ics: &str) -> Result<Regie, toml::de::Error> {
    toml::from_str(&format!(
        r#"
        code = "regie-cantine"
        label = "Régie cantine"
        ics = "{ics}"
        creditor_name = "Régie de la restauration scolaire"
        creditor_iban = "FR76 3000 1007 9412 3456 7890 185"
        creditor_bic = "BDFEFRPPCCT"
        "#
    ))
}

fn invoice_json(number: &str, iban: &str, bic: Option<&str>) -> String {
    let bic = bic.map_or(String::new(), |b| format!(r#""bic": "{b}","#));
    format!(
        r#"{{
        "schema_version": 1,
        "invoice": {{"tenant": "vitry", "exercice": 2026, "number": "{number}"}},
        "source": {{"application": "polyfac", "run_id": "run-2026-11"}},
        "content_hash": "ab12",
        "issued_on": "2026-11-20",
        "period": 11,
        "activity": "PERISCOLAIRE",
        "budget": "principal",
        "collection": "regie",
        "regie": "regie-cantine",
        "family_code": "FAM042",
        "payer": {{"civilite": "MME", "last_name": "Œuvray", "first_name": "Hélène",
                   "address": {{"street": "3 allée des Tilleuls", "postal_code": "94400", "city": "Vitry-sur-Seine"}}}},
        "lines": [{{"number": 1, "product": "CANTINE", "cod_prod_loc": "CANT", "nature": "7067",
                    "label": "Repas", "quantity": "12", "unit_price": "3.80", "amount": "45.60"}}],
        "total": "45.60",
        "due_date": "2026-12-07",
        "payment_mode": "PRELEVEMENT",
        "mandate": {{"rum": "RUM-{number}", "signed_on": "2025-09-01", "iban": "{iban}", {bic}
                     "holder": "Mme Hélène Œuvray"}},
        "online_payable": false
    }}"#
    )
}

fn invoice(
    number: &str,
    iban: &str,
    bic: Option<&str>,
) -> Result<InvoiceIssued, serde_json::Error> {
    serde_json::from_str(&invoice_json(number, iban, bic))
}

fn first(sequence: SequenceType) -> Presentation {
    Presentation {
        attempt: 1,
        due_date: d(2026, 12, 7),
        sequence,
        amendment: None,
    }
}

#[test]
fn a_run_becomes_a_named_valid_file() {
    let config: SepaTenantConfig = toml::from_str(
        r#"
        pain008_version = "pain.008.001.08"
        initiating_party_id = "siret"
        siret = "21940081900013"
        "#,
    )
    .unwrap();
    assert!(config.validate("tenants[0].sepa").is_empty());
    let regie = regie("FR72ZZZ123456").unwrap();
    let creditor = config.creditor(&regie).unwrap();
    let party = config.initiating_party(&creditor).unwrap();
    assert_eq!(party.id, Some(PartyId::Siret("21940081900013".into())));
    let service = config.service_for(&regie);
    let name = render(
        &config.file_name_pattern,
        &NamingContext {
            service: &service,
            tenant: "vitry",
            regie: &regie.code,
            created_on: created().date(),
            sequence: 1,
        },
    )
    .unwrap();
    assert_eq!(name.file_name, "REGIE-CANTINE-DFT-SDD-26334-001.xml");
    let collections = vec![
        collection_for(
            &invoice("F0001", "FR7630006000011234567890189", None).unwrap(),
            &first(SequenceType::Frst),
        )
        .unwrap(),
        collection_for(
            &invoice("F0002", "FR1420041010050500013M02606", Some("PSSTFRPPPAR")).unwrap(),
            &first(SequenceType::Rcur),
        )
        .unwrap(),
    ];
    assert_eq!(collections[0].end_to_end_id, "2026-F0001-1");
    assert_eq!(
        collections[0].remittance,
        "Facture F0001 PERISCOLAIRE 11/2026"
    );
    let message = build(
        config.write_settings(),
        MessageHeader {
            message_id: name.message_id.clone(),
            created_at: created(),
        },
        party,
        creditor,
        &collections,
    )
    .unwrap();
    let bytes = message.to_xml().unwrap();
    encaisse_xml::specs::validate_bytes_or_skip(
        &sepa_spec("pain.008.001.08.xsd"),
        &name.file_name,
        &bytes,
    )
    .unwrap();
    let sent = read_pain008(&name.file_name, &bytes, config.max_input_bytes).unwrap();
    assert_eq!(sent.message_id, "REGIE-CANTINE-DFT-SDD-26334-001");
    assert_eq!(sent.blocks.len(), 2);
    let names: Vec<String> = sent
        .blocks
        .iter()
        .flat_map(|b| b.collections.iter().filter_map(|c| c.debtor_name.clone()))
        .collect();
    assert_eq!(names, ["Mme Helene Ouvray", "Mme Helene Ouvray"]);
}

#[test]
fn a_monaco_account_gets_the_payers_address() {
    let c = collection_for(
        &invoice("F0003", "MC5811222000010123456789030", None).unwrap(),
        &first(SequenceType::Rcur),
    )
    .unwrap();
    let address = c.debtor.address.clone().unwrap();
    assert_eq!(
        (address.town.as_str(), address.country.as_str()),
        ("Vitry-sur-Seine", "FR")
    );
    let message = build(
        settings(Pain008Version::V02),
        header("MSG-MC"),
        party(),
        creditor(),
        &[c],
    )
    .unwrap();
    encaisse_xml::specs::validate_bytes_or_skip(
        &sepa_spec("pain.008.001.02.xsd"),
        "mc.xml",
        &message.to_xml().unwrap(),
    )
    .unwrap();
}

#[test]
fn missing_setup_is_a_clear_permanent_error() {
    let mut r = regie("FR72ZZZ123456").unwrap();
    r.ics = None;
    let err = SepaTenantConfig::default().creditor(&r).unwrap_err();
    assert_eq!(
        err,
        SetupError::MissingRegieField {
            regie: "regie-cantine".into(),
            field: "ics"
        }
    );
    assert_eq!(err.class(), encaisse_sepa::ErrorClass::Permanent);
    let siret_without_value = SepaTenantConfig {
        initiating_party_id: encaisse_sepa::config::InitiatingPartyIdKind::Siret,
        ..SepaTenantConfig::default()
    };
    let creditor = siret_without_value
        .creditor(&regie("FR72ZZZ123456").unwrap())
        .unwrap();
    assert_eq!(
        siret_without_value.initiating_party(&creditor),
        Err(SetupError::MissingSiret)
    );
    let mut no_mandate = invoice("F0004", "FR7630006000011234567890189", None).unwrap();
    no_mandate.mandate = None;
    assert!(matches!(
        collection_for(&no_mandate, &first(SequenceType::Rcur)),
        Err(SetupError::NoMandate { .. })
    ));
}

#[test]
fn ics_vectors_of_the_spec() {
    for valid in [
        "FR72ZZZ123456",
        "FR72ABC123456",
        "FR49ZZZ000001",
        "FR19ZZZ654321",
        "FR22ZZZABC123",
        "DE98ZZZ09999999999",
        "ES23ZZZ47690558N",
    ] {
        let regie = regie(valid).unwrap_or_else(|e| panic!("{valid}: {e}"));
        let creditor = SepaTenantConfig::default().creditor(&regie).unwrap();
        let message = build(
            settings(Pain008Version::V02),
            header("MSG-ICS-1"),
            party(),
            creditor,
            &[collection("F0001", 100)],
        )
        .unwrap();
        let text = String::from_utf8(message.to_xml().unwrap()).unwrap();
        assert!(text.contains(&format!("<Id>{valid}</Id>")), "{valid}");
    }
    for invalid in [
        "FR12ZZZ123456",
        "DE26ZZZ00000000000",
        "IE03ZZZ123456",
        "BG40ZZZ507778",
    ] {
        let err = regie(invalid).unwrap_err();
        assert!(err.to_string().contains("ICS"), "{invalid}: {err}");
    }
}

#[test]
fn iban_vectors_of_the_spec() {
    for valid in [
        "FR7630006000011234567890189",
        "FR1420041010050500013M02606",
        "FR7630001007941234567890185",
        "MC5811222000010123456789030",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "NL91ABNA0417164300",
        "fr7630006000011234567890189",
    ] {
        let inv = invoice("F0001", valid, None).unwrap_or_else(|e| panic!("{valid}: {e}"));
        let c = collection_for(&inv, &first(SequenceType::Rcur)).unwrap();
        assert_eq!(c.debtor.iban.as_str(), valid.to_ascii_uppercase());
    }
    for invalid in [
        "FR7630006000011234567890188",
        "FR1420041010050500013M02607",
        "FR763000600001123456789018",
        "FR0630006000011234567890188",
        "NL50BANK1234567890",
        "IE98BOFI90393912121212",
        "IE16AIBK93110187654321",
    ] {
        let err = invoice("F0001", invalid, None).unwrap_err();
        assert!(err.to_string().contains("IBAN"), "{invalid}: {err}");
    }
}

#[test]
fn bic_vectors_of_the_spec() {
    for valid in [
        "BNPAFRPP",
        "BNPAFRPPXXX",
        "CEPAFRPP751",
        "AGRIFRPP882",
        "BDFEFRPPCCT",
        "PSSTFRPPPAR",
    ] {
        for version in [Pain008Version::V02, Pain008Version::V08] {
            let inv = invoice("F0001", "FR7630006000011234567890189", Some(valid)).unwrap();
            let c = collection_for(&inv, &first(SequenceType::Rcur)).unwrap();
            assert!(
                build(
                    settings(version),
                    header("MSG-BIC"),
                    party(),
                    creditor(),
                    &[c]
                )
                .is_ok(),
                "{valid} {version:?}"
            );
        }
    }
    for invalid in ["BNPAFRPPXX", "bnpafrpp"] {
        assert!(
            invoice("F0001", "FR7630006000011234567890189", Some(invalid)).is_err(),
            "{invalid}"
        );
    }
}

#[test]
fn amendments_between_two_mandate_versions() {
    use encaisse_schemas::identifiers::{Iban, Rum};
    let inv = invoice("F0001", "FR7630006000011234567890189", Some("PSSTFRPPPAR")).unwrap();
    let current: Mandate = inv.mandate.clone().unwrap();
    assert_eq!(Amendment::between(&current, &current), None);
    // Same bank (30006), other account, and a new RUM.
    let mut before = current.clone();
    before.iban = Iban::parse("FR7630006000019876543210076").unwrap();
    before.rum = Rum::parse("OLD-RUM").unwrap();
    let amendment = Amendment::between(&before, &current).unwrap();
    assert_eq!(
        amendment
            .original_rum
            .map(|r| r.as_str().to_string())
            .as_deref(),
        Some("OLD-RUM")
    );
    assert_eq!(
        amendment.original_debtor_account,
        Some(OriginalDebtorAccount::Iban(before.iban.clone()))
    );
    // Another bank (20041): SMNDA.
    let mut other_bank = current.clone();
    other_bank.iban = Iban::parse("FR1420041010050500013M02606").unwrap();
    assert_eq!(
        Amendment::between(&other_bank, &current)
            .unwrap()
            .original_debtor_account,
        Some(OriginalDebtorAccount::SameMandateNewDebtorAccount)
    );
    // A RUM differing only by case is the same mandate.
    let mut case = current.clone();
    case.rum = Rum::parse(&current.rum.as_str().to_ascii_lowercase()).unwrap();
    assert_eq!(Amendment::between(&case, &current), None);
}
