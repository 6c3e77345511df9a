//! Bank files: every sample of the specs is read by the matching reader, the OCA pain.002
//! gives its four rejects, camt.054 returns are found, group/block level rejects and
//! inherited reasons work on schema-valid pain.002.001.10 / camt.054.001.08 files, and
//! hostile or foreign files are refused with a clear, classified error.

mod common;

use common::*;
use encaisse_schemas::{Money, SequenceType};
use encaisse_sepa::config::SepaTenantConfig;
use encaisse_sepa::read::pain008::read_pain008;
use encaisse_sepa::read::tree::XmlError;
use encaisse_sepa::read::{MatchKey, MessageKind, RTransaction, RejectLevel};
use encaisse_sepa::reasons::{Handling, MandateEffect};
use encaisse_sepa::{Decision, ErrorClass, ReadError, ReadSettings, read_bank_file};

fn settings() -> ReadSettings {
    ReadSettings::from(&SepaTenantConfig::default())
}

#[test]
fn every_sample_is_read_by_the_matching_reader() {
    encaisse_xml::specs_or_skip!("sepa/samples", "the bank samples are read");
    let dir = sepa_spec("samples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 9, "{names:?}");
    let (mut initiations, mut reports, mut notifications) = (0, 0, 0);
    for name in &names {
        let bytes = sample(name);
        match read_bank_file(name, &bytes, &settings()) {
            Ok(file) => match file.kind {
                MessageKind::StatusReport => reports += 1,
                MessageKind::Notification => notifications += 1,
                MessageKind::Initiation => unreachable!(),
            },
            Err(ReadError::UnknownMessage { .. }) => {
                // Our own kind of file: the pain.008 reader takes it, totals consistent.
                let sent =
                    read_pain008(name, &bytes, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    sent.total_mismatches().is_empty(),
                    "{name}: {:?}",
                    sent.total_mismatches()
                );
                assert!(sent.computed().count >= 1, "{name}");
                initiations += 1;
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    assert_eq!((initiations, reports, notifications), (6, 1, 2));
}

#[test]
fn oca_pain002_yields_ac01_ms02_md06_am04() {
    encaisse_xml::specs_or_skip!("sepa/samples", "the bank samples are read");
    let file = read_bank_file(
        "oca_test-sepa-pain-unpaid.xml",
        &sample("oca_test-sepa-pain-unpaid.xml"),
        &settings(),
    )
    .unwrap();
    assert_eq!(file.message, "pain.002.001.03");
    assert_eq!(file.message_id, "MSGID99345678912");
    assert_eq!(
        file.original_message_id.as_deref(),
        Some("MSGID12345678912")
    );
    let summary: Vec<(&str, &str, &str, Option<SequenceType>)> = file
        .records
        .iter()
        .map(|r| {
            (
                r.reason_code.as_deref().unwrap(),
                r.keys.end_to_end_id.as_deref().unwrap(),
                r.keys.original_payment_info_id.as_deref().unwrap(),
                r.sequence,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("AC01", "E2EID1", "PMTINFID1", Some(SequenceType::Frst)),
            ("MS02", "E2EID2", "PMTINFID1", Some(SequenceType::Frst)),
            ("MD06", "E2EID3", "PMTINFID2", Some(SequenceType::Rcur)),
            ("AM04", "E2EID4", "PMTINFID2", Some(SequenceType::Rcur)),
        ]
    );
    for r in &file.records {
        assert_eq!(r.level, RejectLevel::Transaction);
        assert_eq!(r.r_type, RTransaction::Reject);
        assert_eq!(r.keys.amount, Some(Money::from_cents(10_000).unwrap()));
        assert_eq!(r.keys.collection_date, Some(d(2016, 10, 9)));
        assert_eq!(r.reported_on, d(2016, 10, 8));
        assert!(matches!(r.keys.best(), Some(MatchKey::EndToEnd(_))));
    }
    let first = &file.records[0];
    assert_eq!(first.bank_reference.as_deref(), Some("IDREJ1"));
    assert_eq!(first.idempotency_key, "pain002:MSGID99345678912/sts:IDREJ1");
    assert!(
        first.reason_text.contains("ACC NUMBER INVALID"),
        "{}",
        first.reason_text
    );
    assert!(
        first
            .reason_text
            .starts_with("AC01 (IncorrectAccountNumber)")
    );
    assert_eq!(first.keys.mandate_id.as_deref(), Some("MANDATEID1"));
    // Handling: only AM04 is re-presented (once, on a later TARGET day).
    let decisions: Vec<&Decision> = file.records.iter().map(|r| &r.decision).collect();
    assert!(matches!(
        decisions[0],
        Decision::Final {
            mandate: MandateEffect::Suspend,
            ..
        }
    ));
    assert!(matches!(
        decisions[1],
        Decision::Final {
            handling: Handling::ContactDebtor,
            mandate: MandateEffect::Keep,
            ..
        }
    ));
    assert!(matches!(
        decisions[2],
        Decision::Final {
            handling: Handling::Final,
            ..
        }
    ));
    assert_eq!(
        decisions[3],
        &Decision::Represent {
            attempt: 2,
            due_date: d(2016, 10, 19)
        }
    );
    assert_eq!(
        file.original_message_name.as_deref(),
        Some("PAIN.008.001.02")
    );
    assert!(file.reports_on_direct_debits());
    // With the ledger's attempt count, the second AM04 of an invoice is final.
    let policy = settings().policy;
    assert!(!file.records[3].decide(&policy, 2).will_represent());
}

#[test]
fn reading_a_file_twice_gives_the_same_keys() {
    encaisse_xml::specs_or_skip!("sepa/samples", "the bank samples are read");
    let bytes = sample("oca_test-sepa-pain-unpaid.xml");
    let once = read_bank_file("a.xml", &bytes, &settings()).unwrap();
    let twice = read_bank_file("renamed.xml", &bytes, &settings()).unwrap();
    let keys = |f: &encaisse_sepa::BankFile| {
        f.records
            .iter()
            .map(|r| r.idempotency_key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&once), keys(&twice));
    let mut unique = keys(&once);
    unique.dedup();
    assert_eq!(unique.len(), 4);
}

#[test]
fn oca_camt054_yields_its_return() {
    encaisse_xml::specs_or_skip!("sepa/samples", "the bank samples are read");
    let file = read_bank_file(
        "oca_test-sepa-camt-054-unpaid.xml",
        &sample("oca_test-sepa-camt-054-unpaid.xml"),
        &settings(),
    )
    .unwrap();
    assert_eq!(file.message, "camt.054.001.02");
    assert_eq!(file.records.len(), 1);
    assert_eq!(file.ignored_entries, 0);
    let r = &file.records[0];
    assert_eq!(r.reason_code.as_deref(), Some("AC06"));
    assert_eq!(r.r_type, RTransaction::Return);
    assert_eq!(r.keys.end_to_end_id.as_deref(), Some("E2EID1"));
    assert_eq!(r.keys.mandate_id.as_deref(), Some("MANDATEID2"));
    assert_eq!(r.keys.amount, Some(Money::from_cents(10_000).unwrap()));
    assert_eq!(r.keys.collection_date, Some(d(2016, 10, 9)));
    assert_eq!(r.sequence, Some(SequenceType::Rcur));
    assert_eq!(r.reported_on, d(2016, 10, 8));
    assert_eq!(r.additional_info, ["/RTYP/RTRN"]);
    assert_eq!(
        r.idempotency_key,
        "camt054:MSGID99345678912/ZY08XXXXXXIS634C/1/e2e:E2EID1"
    );
    assert!(matches!(
        r.decision,
        Decision::Final {
            mandate: MandateEffect::Suspend,
            ..
        }
    ));
}

#[test]
fn genkgo_camt054_has_no_direct_debit_return() {
    encaisse_xml::specs_or_skip!("sepa/samples", "the bank samples are read");
    // A batch of outgoing credit transfers (PMNT/ICDT) in SEK with three TxDtls: read,
    // but nothing in it is a returned collection.
    let file = read_bank_file(
        "genkgo-camt_camt054.v2.xml",
        &sample("genkgo-camt_camt054.v2.xml"),
        &settings(),
    )
    .unwrap();
    assert_eq!(file.message_id, "AAAASESS-FP-ACCR001");
    assert!(file.records.is_empty());
    assert_eq!(file.ignored_entries, 1);
}

const PAIN002_V10: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
  <CstmrPmtStsRpt>
    <GrpHdr>
      <MsgId>BANK-STS-0001</MsgId>
      <CreDtTm>2026-12-04T07:00:00+01:00</CreDtTm>
    </GrpHdr>
    <OrgnlGrpInfAndSts>
      <OrgnlMsgId>CANTINE-DFT-SDD-26334-001</OrgnlMsgId>
      <OrgnlMsgNmId>pain.008</OrgnlMsgNmId>
      <GrpSts>PART</GrpSts>
      <StsRsnInf>
        <Rsn><Cd>MS03</Cd></Rsn>
      </StsRsnInf>
    </OrgnlGrpInfAndSts>
    <OrgnlPmtInfAndSts>
      <OrgnlPmtInfId>CANTINE-DFT-SDD-26334-001-1</OrgnlPmtInfId>
      <PmtInfSts>RJCT</PmtInfSts>
      <StsRsnInf>
        <Rsn><Cd>FF01</Cd></Rsn>
        <AddtlInf>Bloc refus&#233; &amp; renvoy&#233;</AddtlInf>
      </StsRsnInf>
    </OrgnlPmtInfAndSts>
    <OrgnlPmtInfAndSts>
      <OrgnlPmtInfId>CANTINE-DFT-SDD-26334-001-2</OrgnlPmtInfId>
      <TxInfAndSts>
        <OrgnlEndToEndId>2026-F0001-1</OrgnlEndToEndId>
        <TxSts>RJCT</TxSts>
        <OrgnlTxRef>
          <Amt><InstdAmt Ccy="EUR">45.60</InstdAmt></Amt>
          <ReqdColltnDt>2026-12-07</ReqdColltnDt>
          <PmtTpInf><SeqTp>RCUR</SeqTp></PmtTpInf>
          <MndtRltdInf><MndtId>RUM-F0001</MndtId></MndtRltdInf>
        </OrgnlTxRef>
      </TxInfAndSts>
      <TxInfAndSts>
        <OrgnlEndToEndId>2026-F0002-2</OrgnlEndToEndId>
        <TxSts>RJCT</TxSts>
        <StsRsnInf><Rsn><Cd>AM04</Cd></Rsn></StsRsnInf>
      </TxInfAndSts>
      <TxInfAndSts>
        <OrgnlEndToEndId>2026-F0003-1</OrgnlEndToEndId>
        <TxSts>ACCP</TxSts>
      </TxInfAndSts>
    </OrgnlPmtInfAndSts>
  </CstmrPmtStsRpt>
</Document>
"#;

#[test]
fn pain002_v10_block_rejects_and_inherited_reasons() {
    encaisse_xml::specs::validate_bytes_or_skip(
        &sepa_spec("pain.002.001.10.xsd"),
        "sts.xml",
        PAIN002_V10.as_bytes(),
    )
    .unwrap();
    let file = read_bank_file("sts.xml", PAIN002_V10.as_bytes(), &settings()).unwrap();
    assert_eq!(file.message, "pain.002.001.10");
    assert_eq!(file.group_status.as_deref(), Some("PART"));
    assert_eq!(file.records.len(), 3, "{:#?}", file.records);
    let block = &file.records[0];
    assert_eq!(block.level, RejectLevel::Block);
    assert_eq!(block.reason_code.as_deref(), Some("FF01"));
    assert_eq!(block.additional_info, ["Bloc refusé & renvoyé"]);
    assert!(matches!(
        block.keys.best(),
        Some(MatchKey::Block {
            payment_info_id: "CANTINE-DFT-SDD-26334-001-1",
            ..
        })
    ));
    // No reason of its own: inherits the group's MS03, re-presented once.
    let inherited = &file.records[1];
    assert_eq!(inherited.reason_code.as_deref(), Some("MS03"));
    assert_eq!(
        inherited.keys.amount,
        Some(Money::from_cents(4560).unwrap())
    );
    assert_eq!(inherited.sequence, Some(SequenceType::Rcur));
    assert_eq!(inherited.reported_on, d(2026, 12, 4));
    assert_eq!(
        inherited.decision,
        Decision::Represent {
            attempt: 2,
            due_date: d(2026, 12, 17)
        }
    );
    // Already a re-presentation (attempt 2 in its end-to-end id): final.
    let second = &file.records[2];
    assert_eq!(second.reason_code.as_deref(), Some("AM04"));
    assert_eq!(second.attempt(), Some(2));
    assert!(!second.decision.will_represent());
}

#[test]
fn pain002_group_reject_names_the_whole_message() {
    let xml = r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt>
      <GrpHdr><MsgId>R1</MsgId><CreDtTm>2026-12-04T07:00:00</CreDtTm></GrpHdr>
      <OrgnlGrpInfAndSts><OrgnlMsgId>M1</OrgnlMsgId><OrgnlMsgNmId>PAIN.008.001.02</OrgnlMsgNmId>
        <GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>AM18</Cd></Rsn></StsRsnInf></OrgnlGrpInfAndSts>
      </CstmrPmtStsRpt></Document>"#;
    encaisse_xml::specs::validate_bytes_or_skip(
        &sepa_spec("pain.002.001.10.xsd"),
        "g.xml",
        xml.as_bytes(),
    )
    .unwrap();
    let file = read_bank_file("g.xml", xml.as_bytes(), &settings()).unwrap();
    assert_eq!(file.records.len(), 1);
    let r = &file.records[0];
    assert_eq!(r.level, RejectLevel::Group);
    assert_eq!(r.keys.best(), Some(MatchKey::Message("M1")));
    assert!(
        r.reason_text.contains("Number of transactions"),
        "{}",
        r.reason_text
    );
    assert_eq!(r.idempotency_key, "pain002:R1/group");
}

const CAMT054_V08: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
  <BkToCstmrDbtCdtNtfctn>
    <GrpHdr><MsgId>NTF-2026-12-10</MsgId><CreDtTm>2026-12-10T06:00:00</CreDtTm></GrpHdr>
    <Ntfctn>
      <Id>NTF-1</Id>
      <Acct><Id><IBAN>FR7630001007941234567890185</IBAN></Id></Acct>
      <Ntry>
        <Amt Ccy="EUR">57.60</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>2026-12-09</Dt></BookgDt>
        <AcctSvcrRef>BK-RET-77</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls>
          <Btch><NbOfTxs>2</NbOfTxs></Btch>
          <TxDtls>
            <Refs><EndToEndId>2026-F0001-1</EndToEndId><MndtId>RUM-F0001</MndtId></Refs>
            <Amt Ccy="EUR">45.60</Amt>
            <RltdDts><IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt></RltdDts>
            <RtrInf><Rsn><Cd>AM04</Cd></Rsn></RtrInf>
          </TxDtls>
          <TxDtls>
            <Refs><AcctSvcrRef>BK-RET-78</AcctSvcrRef><EndToEndId>2026-F0002-1</EndToEndId></Refs>
            <AmtDtls><InstdAmt><Amt Ccy="EUR">12.00</Amt></InstdAmt></AmtDtls>
            <RtrInf><Rsn><Cd>MD06</Cd></Rsn></RtrInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">30.00</Amt>
        <CdtDbtInd>DBIT</CdtDbtInd>
        <Sts><Cd>PDNG</Cd></Sts>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn></BkTxCd>
      </Ntry>
      <Ntry>
        <Amt Ccy="EUR">1000.00</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>ESDD</SubFmlyCd></Fmly></Domn></BkTxCd>
      </Ntry>
    </Ntfctn>
  </BkToCstmrDbtCdtNtfctn>
</Document>
"#;

#[test]
fn camt054_v08_batch_with_return_and_refund() {
    encaisse_xml::specs::validate_bytes_or_skip(
        &sepa_spec("camt.054.001.08.xsd"),
        "ntf.xml",
        CAMT054_V08.as_bytes(),
    )
    .unwrap();
    let file = read_bank_file("ntf.xml", CAMT054_V08.as_bytes(), &settings()).unwrap();
    assert_eq!(file.message, "camt.054.001.08");
    assert_eq!(file.ignored_entries, 2, "pending debit and booked credit");
    assert_eq!(file.records.len(), 2);
    let (ret, refund) = (&file.records[0], &file.records[1]);
    assert_eq!(ret.r_type, RTransaction::Return);
    assert_eq!(ret.idempotency_key, "camt054:BK-RET-77/e2e:2026-F0001-1");
    assert_eq!(ret.keys.amount, Some(Money::from_cents(4560).unwrap()));
    assert_eq!(ret.reported_on, d(2026, 12, 9));
    assert_eq!(
        ret.decision,
        Decision::Represent {
            attempt: 2,
            due_date: d(2026, 12, 21)
        }
    );
    assert_eq!(refund.r_type, RTransaction::Refund);
    assert_eq!(refund.idempotency_key, "camt054:BK-RET-78");
    assert_eq!(refund.keys.amount, Some(Money::from_cents(1200).unwrap()));
    assert!(matches!(
        refund.decision,
        Decision::Final {
            mandate: MandateEffect::Keep,
            ..
        }
    ));
}

#[test]
fn latin1_files_are_transcoded() {
    let xml = PAIN002_V10
        .replace("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"")
        .replace("Bloc refus&#233; &amp; renvoy&#233;", "Bloc refusé");
    let bytes = latin1(&xml);
    let file = read_bank_file("l1.xml", &bytes, &settings()).unwrap();
    assert_eq!(file.records[0].additional_info, ["Bloc refusé"]);
}

/// Latin-1 bytes of an ASCII + Latin-1 string (what a French bank may send).
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

#[test]
fn billion_laughs_and_oversized_files_are_refused() {
    let bomb = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><CstmrPmtStsRpt>&lol1;</CstmrPmtStsRpt></Document>"#;
    let err = read_bank_file("bomb.xml", bomb, &settings()).unwrap_err();
    assert!(
        matches!(
            &err,
            ReadError::Xml {
                source: XmlError::Guard(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Poison);
    assert!(err.to_string().starts_with("bomb.xml: "), "{err}");

    let small = ReadSettings {
        max_input_bytes: 1024,
        ..settings()
    };
    let err = read_bank_file("big.xml", PAIN002_V10.as_bytes(), &small).unwrap_err();
    assert!(
        err.to_string().contains("larger than the 1024-byte limit"),
        "{err}"
    );

    // Many tiny elements within the byte limit: refused at the element bound, not held.
    let few = ReadSettings {
        max_input_elements: 10,
        ..settings()
    };
    let err = read_bank_file("many.xml", PAIN002_V10.as_bytes(), &few).unwrap_err();
    assert!(err.to_string().contains("more than 10 elements"), "{err}");
    assert_eq!(err.class(), ErrorClass::Poison);
    assert!(read_bank_file("ok.xml", PAIN002_V10.as_bytes(), &settings()).is_ok());
}

#[test]
fn foreign_and_broken_files_get_a_clear_error() {
    encaisse_xml::specs_or_skip!("sepa/samples", "the bank samples are read");
    let statement = br#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt/></Document>"#;
    let err = read_bank_file("stmt.xml", statement, &settings()).unwrap_err();
    assert!(matches!(err, ReadError::UnknownMessage { .. }), "{err}");
    assert!(err.to_string().contains("camt.053.001.02"), "{err}");

    let own = sample("generated_fr-example_pain.008.001.02.xml");
    let err = read_bank_file("own.xml", &own, &settings()).unwrap_err();
    assert!(err.to_string().contains("not a bank return"), "{err}");

    let truncated = &PAIN002_V10.as_bytes()[..PAIN002_V10.len() / 2];
    let err = read_bank_file("cut.xml", truncated, &settings()).unwrap_err();
    assert_eq!(err.class(), ErrorClass::Poison);
    assert!(
        err.to_string().contains("cut.xml") && err.to_string().contains("line"),
        "{err}"
    );

    let no_id = PAIN002_V10.replace("<MsgId>BANK-STS-0001</MsgId>", "");
    let err = read_bank_file("noid.xml", no_id.as_bytes(), &settings()).unwrap_err();
    assert_eq!(err.to_string(), "noid.xml: line 4: missing GrpHdr/MsgId");
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[test]
fn an_odd_optional_value_does_not_set_the_file_aside() {
    encaisse_xml::specs_or_skip!("sepa/samples", "the bank samples are read");
    // An echoed amount the bank garbled: the return is still reported (keyed by its
    // end-to-end id), without an amount, and the file says why.
    let bad_amount = CAMT054_V08.replace(">45.60<", ">45,6x<");
    let file = read_bank_file("amt.xml", bad_amount.as_bytes(), &settings()).unwrap();
    assert_eq!(file.records.len(), 2);
    assert_eq!(file.records[0].keys.amount, None);
    assert_eq!(
        file.records[1].keys.amount,
        Some(Money::from_cents(1200).unwrap())
    );
    assert_eq!(file.warnings.len(), 1, "{:?}", file.warnings);
    assert!(
        file.warnings[0].starts_with("amt.xml: line 19: "),
        "{:?}",
        file.warnings
    );
    // Our own pain.008 is read strictly.
    let own = String::from_utf8(sample("generated_fr-example_pain.008.001.02.xml"))
        .unwrap()
        .replace(">45.60<", ">45,6x<");
    assert!(read_pain008("own.xml", own.as_bytes(), 1 << 20).is_err());
}

#[test]
fn reason_table_matches_the_specs_csv() {
    encaisse_xml::specs_or_skip!(
        "sepa/reason-codes-sdd.csv",
        "the EPC reason-code table is compared"
    );
    let mut csv = csv::Reader::from_path(sepa_spec("reason-codes-sdd.csv")).unwrap();
    let mut rows = 0;
    for row in csv.records() {
        let row = row.unwrap();
        let info = encaisse_sepa::reasons::lookup(&row[0])
            .unwrap_or_else(|| panic!("{} missing from the embedded table", &row[0]));
        assert_eq!(info.iso_name, &row[1], "{}", &row[0]);
        assert_eq!(info.meaning, &row[2], "{}", &row[0]);
        assert_eq!(info.handling.as_str(), &row[4], "{}", &row[0]);
        rows += 1;
    }
    assert_eq!(rows, 24);
}

#[test]
fn status_reports_on_credit_transfers_are_recognised() {
    let other = PAIN002_V10.replace(
        "<OrgnlMsgNmId>pain.008</OrgnlMsgNmId>",
        "<OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>",
    );
    let file = read_bank_file("ct.xml", other.as_bytes(), &settings()).unwrap();
    assert!(!file.reports_on_direct_debits());
    let ours = read_bank_file("dd.xml", PAIN002_V10.as_bytes(), &settings()).unwrap();
    assert!(
        ours.reports_on_direct_debits(),
        "EPC 2025: name without version"
    );
}

#[test]
fn a_matched_record_becomes_a_payment_rejected_event() {
    use encaisse_schemas::{Event, InvoiceRef, TenantId};
    use encaisse_sepa::read::MatchedCollection;
    let file = read_bank_file("ntf.xml", CAMT054_V08.as_bytes(), &settings()).unwrap();
    let record = &file.records[0];
    let matched = MatchedCollection {
        invoice: InvoiceRef {
            tenant: TenantId::new("vitry").unwrap(),
            exercice: 2026,
            number: "F0001".into(),
        },
        end_to_end_id: record.keys.end_to_end_id.clone().unwrap(),
        amount: Money::from_cents(4560).unwrap(),
    };
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-09T00:00:00+01:00").unwrap();
    let event = record.to_event(&matched, &record.decision, at, "ntf.xml");
    assert_eq!(event.payment_id, "sepa:2026-F0001-1");
    assert_eq!(event.reason_code, "AM04");
    assert!(event.will_represent);
    assert_eq!(event.business_key(), "vitry#sepa:2026-F0001-1#AM04");
    assert!(event.reason_text.contains("InsufficientFunds"));
}
