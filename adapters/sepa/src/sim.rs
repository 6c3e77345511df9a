//! A simulated bank, for tests and `encaisse demo`: the files a régie's bank sends back
//! about the pain.008 it received — a payment status report (pain.002.001.10) rejecting
//! some transactions or the whole file, and a debit notification (camt.054.001.08) with
//! returns booked on the régie's account.
//!
//! The messages are shaped as the ISO 20022 schemas say (`pain.002.001.10.xsd`,
//! `camt.054.001.08.xsd` under the shared specs) with the fields French banks fill
//! (spec §6); validating them is the caller's choice. [`TxReject::of`] takes a rejected
//! transaction's block, amount and due date from the pain.008 as the bank read it
//! ([`crate::read::pain008::read_pain008`]), so an answer matches what was sent.
//!
//! Nothing here is used by the daemon: it stands for the outside world.

use chrono::{NaiveDate, NaiveDateTime};
use encaisse_schemas::Money;

use crate::read::pain008::SentFile;

/// One rejected transaction of a pain.002.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxReject {
    /// `OrgnlPmtInfId`: the block of the original message.
    pub block: String,
    pub end_to_end_id: String,
    /// ISO reason code (`AM04`, `MD01`…).
    pub code: String,
    pub amount: Money,
    /// `ReqdColltnDt` of the original transaction.
    pub due: NaiveDate,
}

impl TxReject {
    /// The reject of transaction `end_to_end_id` of `sent` with `code`, or `None` when the
    /// file holds no such transaction.
    pub fn of(sent: &SentFile, end_to_end_id: &str, code: &str) -> Option<TxReject> {
        sent.blocks.iter().find_map(|b| {
            b.collections
                .iter()
                .find(|c| c.end_to_end_id == end_to_end_id)
                .map(|c| TxReject {
                    block: b.payment_info_id.clone(),
                    end_to_end_id: c.end_to_end_id.clone(),
                    code: code.to_string(),
                    amount: c.amount,
                    due: b.due_date,
                })
        })
    }
}

/// A pain.002.001.10 (`message_id`, created at `created`, bank local time) about the
/// message `original` (`OrgnlMsgId`) of type `original_name` (`pain.008.001.02`):
/// transaction rejects grouped by block (`GrpSts` `PART`), or a whole-file reject when
/// `group_code` is given (`GrpSts` `RJCT` with that reason).
pub fn pain002(
    message_id: &str,
    created: NaiveDateTime,
    original: &str,
    original_name: &str,
    group_code: Option<&str>,
    rejects: &[TxReject],
) -> Vec<u8> {
    let group = match group_code {
        Some(code) => format!(
            "<GrpSts>RJCT</GrpSts><StsRsnInf><Rsn><Cd>{}</Cd></Rsn></StsRsnInf>",
            escape(code)
        ),
        None => "<GrpSts>PART</GrpSts>".to_string(),
    };
    let mut blocks: Vec<(&str, String)> = Vec::new();
    for (i, r) in rejects.iter().enumerate() {
        let tx = format!(
            "<TxInfAndSts><StsId>STS-{}-{i}</StsId><OrgnlEndToEndId>{}</OrgnlEndToEndId>\
             <TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>{}</Cd></Rsn></StsRsnInf>\
             <OrgnlTxRef><Amt><InstdAmt Ccy=\"EUR\">{}</InstdAmt></Amt><ReqdColltnDt>{}</ReqdColltnDt></OrgnlTxRef>\
             </TxInfAndSts>",
            escape(message_id),
            escape(&r.end_to_end_id),
            escape(&r.code),
            r.amount,
            r.due
        );
        match blocks.iter_mut().find(|(b, _)| *b == r.block) {
            Some((_, body)) => body.push_str(&tx),
            None => blocks.push((&r.block, tx)),
        }
    }
    let blocks: String = blocks
        .iter()
        .map(|(id, txs)| {
            format!(
                "<OrgnlPmtInfAndSts><OrgnlPmtInfId>{}</OrgnlPmtInfId>{txs}</OrgnlPmtInfAndSts>",
                escape(id)
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pain.002.001.10\"><CstmrPmtStsRpt>\
         <GrpHdr><MsgId>{}</MsgId><CreDtTm>{}</CreDtTm></GrpHdr>\
         <OrgnlGrpInfAndSts><OrgnlMsgId>{}</OrgnlMsgId><OrgnlMsgNmId>{}</OrgnlMsgNmId>{group}</OrgnlGrpInfAndSts>\
         {blocks}</CstmrPmtStsRpt></Document>\n",
        escape(message_id),
        created.format("%Y-%m-%dT%H:%M:%S"),
        escape(original),
        escape(original_name)
    )
    .into_bytes()
}

/// One direct-debit return booked on the creditor's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedReturn {
    pub end_to_end_id: String,
    /// The mandate (`MndtId`).
    pub mandate_id: String,
    pub amount: Money,
    /// ISO reason code (`AC04`, `MD06`…).
    pub code: String,
}

/// A camt.054.001.08 (`message_id`, created at `created`) on account `iban`: one booked
/// `PMNT/IDDT` debit entry per return, booked on `booked_on`.
pub fn camt054(
    message_id: &str,
    created: NaiveDateTime,
    booked_on: NaiveDate,
    iban: &str,
    returns: &[BookedReturn],
) -> Vec<u8> {
    let entries: String = returns
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "<Ntry><Amt Ccy=\"EUR\">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
                 <BookgDt><Dt>{booked_on}</Dt></BookgDt><AcctSvcrRef>{id}-R{i}</AcctSvcrRef>\
                 <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>IDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn></BkTxCd>\
                 <NtryDtls><TxDtls><Refs><EndToEndId>{e2e}</EndToEndId><MndtId>{rum}</MndtId></Refs>\
                 <Amt Ccy=\"EUR\">{amount}</Amt><RtrInf><Rsn><Cd>{code}</Cd></Rsn><AddtlInf>/RTYP/RTRN</AddtlInf></RtrInf>\
                 </TxDtls></NtryDtls></Ntry>",
                amount = r.amount,
                id = escape(message_id),
                e2e = escape(&r.end_to_end_id),
                rum = escape(&r.mandate_id),
                code = escape(&r.code),
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08\"><BkToCstmrDbtCdtNtfctn>\
         <GrpHdr><MsgId>{id}</MsgId><CreDtTm>{}</CreDtTm></GrpHdr>\
         <Ntfctn><Id>{id}-N1</Id><Acct><Id><IBAN>{}</IBAN></Id></Acct>\
         {entries}</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n",
        created.format("%Y-%m-%dT%H:%M:%S"),
        escape(iban),
        id = escape(message_id),
    )
    .into_bytes()
}

/// Text with the XML special characters escaped (`&`, `<`, `>`, `"`, `'`).
fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{BankFile, ReadSettings, read_bank_file};

    fn at() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 9)
            .and_then(|d| d.and_hms_opt(7, 0, 0))
            .unwrap()
    }

    fn reject(e2e: &str, code: &str) -> TxReject {
        TxReject {
            block: "MSG-1-1".into(),
            end_to_end_id: e2e.into(),
            code: code.into(),
            amount: Money::parse("12.50").unwrap(),
            due: NaiveDate::from_ymd_opt(2026, 12, 10).unwrap(),
        }
    }

    fn read(name: &str, bytes: &[u8]) -> BankFile {
        read_bank_file(
            name,
            bytes,
            &ReadSettings::from(&crate::config::SepaTenantConfig::default()),
        )
        .unwrap()
    }

    #[test]
    fn our_reader_finds_every_reject_of_a_simulated_pain002() {
        let bytes = pain002(
            "BANK-1",
            at(),
            "MSG-1",
            "pain.008.001.02",
            None,
            &[reject("2026-F1-1", "AM04"), reject("2026-F2-1", "MD01")],
        );
        let file = read("pain002.xml", &bytes);
        let codes: Vec<_> = file
            .records
            .iter()
            .map(|r| (r.keys.end_to_end_id.clone(), r.reason_code.clone()))
            .collect();
        assert_eq!(
            codes,
            [
                (Some("2026-F1-1".to_string()), Some("AM04".to_string())),
                (Some("2026-F2-1".to_string()), Some("MD01".to_string()))
            ]
        );
    }

    #[test]
    fn our_reader_finds_a_simulated_camt054_return() {
        let bytes = camt054(
            "BANK-2",
            at(),
            NaiveDate::from_ymd_opt(2026, 12, 14).unwrap(),
            "FR7610071940000000200123466",
            &[BookedReturn {
                end_to_end_id: "2026-F1-1".into(),
                mandate_id: "RUM-1".into(),
                amount: Money::parse("12.50").unwrap(),
                code: "AC04".into(),
            }],
        );
        let file = read("camt054.xml", &bytes);
        assert_eq!(file.records.len(), 1);
        assert_eq!(file.records[0].reason_code.as_deref(), Some("AC04"));
    }
}
