//! Writes a demo pain.008 to stdout, or reads a bank file given as argument.
//!
//! ```sh
//! cargo run -p encaisse-sepa --example pain008_demo > demo.xml
//! cargo run -p encaisse-sepa --example pain008_demo -- ../shared/specs/sepa/samples/oca_test-sepa-pain-unpaid.xml
//! ```

use std::error::Error;
use std::io::Write;

use chrono::NaiveDate;
use encaisse_schemas::identifiers::{Bic, Iban, Ics, Rum};
use encaisse_schemas::{InvoiceRef, Money, SequenceType, TenantId};
use encaisse_sepa::config::SepaTenantConfig;
use encaisse_sepa::{
    Collection, Creditor, Debtor, InitiatingParty, MandateInfo, MessageHeader, ReadSettings, build,
    read_bank_file,
};

fn main() -> Result<(), Box<dyn Error>> {
    let config = SepaTenantConfig::default();
    if let Some(path) = std::env::args().nth(1) {
        let bytes = std::fs::read(&path)?;
        let file = read_bank_file(&path, &bytes, &ReadSettings::from(&config))?;
        for r in &file.records {
            println!(
                "{:?} {:?} e2e={:?} {} → {:?}",
                r.level, r.r_type, r.keys.end_to_end_id, r.reason_text, r.decision
            );
        }
        return Ok(());
    }
    let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).ok_or("bad date");
    let invoice = InvoiceRef {
        tenant: TenantId::new("demo")?,
        exercice: 2026,
        number: "F000123".into(),
    };
    let collection = Collection {
        end_to_end_id: encaisse_sepa::ids::end_to_end_id(&invoice, 1)?,
        invoice,
        amount: Money::parse("45,60")?,
        due_date: day(12, 7)?,
        sequence: SequenceType::Frst,
        mandate: MandateInfo {
            rum: Rum::parse("DEMO-RUM-000123")?,
            signed_on: day(9, 1)?,
            amendment: None,
        },
        debtor: Debtor {
            name: "Mme Hélène Œuvray".into(),
            iban: Iban::parse("FR76 3000 6000 0112 3456 7890 189")?,
            bic: None,
            address: None,
        },
        ultimate_debtor: None,
        remittance: "Facture F000123 cantine 11/2026".into(),
    };
    let creditor = Creditor {
        name: "Régie de démonstration".into(),
        iban: Iban::parse("FR7630001007941234567890185")?,
        bic: Some(Bic::parse("BDFEFRPPCCT")?),
        ics: Ics::parse("FR72ZZZ123456")?,
        ultimate: None,
    };
    let party = InitiatingParty {
        name: creditor.name.clone(),
        id: None,
    };
    let header = MessageHeader {
        message_id: "DEMO-DFT-SDD-26334-001".into(),
        created_at: day(11, 30)?.and_hms_opt(9, 0, 0).ok_or("bad time")?,
    };
    let message = build(
        config.write_settings(),
        header,
        party,
        creditor,
        &[collection],
    )?;
    std::io::stdout().write_all(&message.to_xml()?)?;
    Ok(())
}
