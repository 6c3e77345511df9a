//! Reads a pain.008 (.02 or .08) back: what a file in `bank/outbox` asks the bank to
//! collect. Used to index an emitted file (end-to-end ids, totals) and to check any
//! pain.008 against its declared `NbOfTxs` / `CtrlSum`. Identifiers are read as text, not
//! validated: library samples carry placeholder IBANs and ICS.

use chrono::NaiveDate;
use encaisse_schemas::{Money, SequenceType};

use super::tree::{self, Node};
use super::{Ctx, MessageKind, ReadError, ReadSettings, identify, parse_sequence};
use crate::config::RepresentationConfig;
use crate::message::Totals;
use crate::policy::RepresentationPolicy;

/// One `DrctDbtTxInf` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCollection {
    pub end_to_end_id: String,
    pub amount: Money,
    pub mandate_id: Option<String>,
    pub signed_on: Option<NaiveDate>,
    pub amended: bool,
    pub debtor_name: Option<String>,
    /// As written (not validated).
    pub debtor_iban: Option<String>,
    /// `BIC` / `BICFI`, `None` for `NOTPROVIDED`.
    pub debtor_bic: Option<String>,
    pub remittance: Option<String>,
    pub line: usize,
}

/// One `PmtInf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentBlock {
    pub payment_info_id: String,
    pub sequence: Option<SequenceType>,
    pub due_date: NaiveDate,
    /// `NbOfTxs` / `CtrlSum` as declared (either may be absent).
    pub declared_count: Option<u64>,
    pub declared_cents: Option<u64>,
    pub collections: Vec<SentCollection>,
}

/// A whole pain.008.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFile {
    /// `pain.008.001.02` or `.08`.
    pub message: String,
    pub message_id: String,
    pub creditor_scheme_id: Option<String>,
    pub declared_count: u64,
    pub declared_cents: Option<u64>,
    pub blocks: Vec<SentBlock>,
}

impl SentBlock {
    pub fn computed(&self) -> Totals {
        Totals {
            count: self.collections.len() as u64,
            cents: self
                .collections
                .iter()
                .map(|c| c.amount.cents().unsigned_abs())
                .sum(),
        }
    }
}

impl SentFile {
    /// Counted and summed from the transactions.
    pub fn computed(&self) -> Totals {
        self.blocks.iter().fold(Totals::default(), |acc, b| {
            let t = b.computed();
            Totals {
                count: acc.count + t.count,
                cents: acc.cents + t.cents,
            }
        })
    }

    /// Every declared count or sum that differs from the transactions (what a bank would
    /// reject with AM16 / AM17 / AM18); empty when the file is consistent.
    pub fn total_mismatches(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let total = self.computed();
        if self.declared_count != total.count {
            problems.push(format!(
                "GrpHdr/NbOfTxs is {}, the file has {} transactions",
                self.declared_count, total.count
            ));
        }
        if let Some(cents) = self.declared_cents.filter(|c| *c != total.cents) {
            problems.push(format!(
                "GrpHdr/CtrlSum is {cents} cents, the transactions sum to {}",
                total.cents
            ));
        }
        for block in &self.blocks {
            let t = block.computed();
            if block.declared_count.is_some_and(|c| c != t.count) {
                problems.push(format!("PmtInf {} NbOfTxs differs", block.payment_info_id));
            }
            if block.declared_cents.is_some_and(|c| c != t.cents) {
                problems.push(format!("PmtInf {} CtrlSum differs", block.payment_info_id));
            }
        }
        problems
    }
}

fn cents(ctx: &Ctx<'_>, node: &Node, field: &'static str) -> Result<Option<u64>, ReadError> {
    Ok(ctx
        .amount(node.child(field), field)?
        .map(|m| m.cents().unsigned_abs()))
}

fn count(ctx: &Ctx<'_>, node: &Node, field: &'static str) -> Result<Option<u64>, ReadError> {
    node.text_at(&[field])
        .map(|t| {
            t.parse::<u64>().map_err(|e| ReadError::Invalid {
                file: ctx.file.to_string(),
                line: node.line,
                field,
                value: t.to_string(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Reads a pain.008 file.
pub fn read_pain008(file: &str, bytes: &[u8], max_input_bytes: u64) -> Result<SentFile, ReadError> {
    let root = tree::parse(bytes, max_input_bytes).map_err(|source| ReadError::Xml {
        file: file.to_string(),
        source,
    })?;
    let (kind, message) = identify(file, &root)?;
    if kind != MessageKind::Initiation {
        return Err(ReadError::UnknownMessage {
            file: file.to_string(),
            root: format!("{message} is not a pain.008"),
            namespace: Some(message),
        });
    }
    let settings = ReadSettings {
        max_input_bytes,
        max_input_elements: encaisse_xml::tree::DEFAULT_MAX_ELEMENTS,
        policy: RepresentationPolicy::from(&RepresentationConfig::default()),
    };
    let ctx = Ctx::new(file, &settings, false);
    let initiation = root.child("CstmrDrctDbtInitn").unwrap_or(&root);
    let header = initiation
        .child("GrpHdr")
        .ok_or_else(|| ReadError::Missing {
            file: file.to_string(),
            line: initiation.line,
            path: "GrpHdr",
        })?;
    let mut blocks = Vec::new();
    let mut scheme_id = None;
    for block in initiation.children_named("PmtInf") {
        scheme_id = scheme_id.or_else(|| {
            block
                .text_at(&["CdtrSchmeId", "Id", "PrvtId", "Othr", "Id"])
                .map(str::to_string)
        });
        let due = ctx.required(block, "ReqdColltnDt")?;
        let mut collections = Vec::new();
        for tx in block.children_named("DrctDbtTxInf") {
            let text = |path: &[&str]| tx.text_at(path).map(str::to_string);
            let amount = ctx
                .amount(tx.child("InstdAmt"), "InstdAmt")?
                .ok_or_else(|| ReadError::Missing {
                    file: file.to_string(),
                    line: tx.line,
                    path: "InstdAmt (EUR)",
                })?;
            let mandate = tx.at(&["DrctDbtTx", "MndtRltdInf"]);
            collections.push(SentCollection {
                end_to_end_id: ctx.required(tx, "PmtId/EndToEndId")?.to_string(),
                amount,
                mandate_id: mandate
                    .and_then(|m| m.text_at(&["MndtId"]))
                    .map(str::to_string),
                signed_on: match mandate {
                    Some(m) => ctx.optional_date(m, "DtOfSgntr")?,
                    None => None,
                },
                amended: mandate.and_then(|m| m.text_at(&["AmdmntInd"])) == Some("true"),
                debtor_name: text(&["Dbtr", "Nm"]),
                debtor_iban: text(&["DbtrAcct", "Id", "IBAN"]),
                debtor_bic: text(&["DbtrAgt", "FinInstnId", "BIC"])
                    .or_else(|| text(&["DbtrAgt", "FinInstnId", "BICFI"])),
                remittance: text(&["RmtInf", "Ustrd"]),
                line: tx.line,
            });
        }
        blocks.push(SentBlock {
            payment_info_id: ctx.required(block, "PmtInfId")?.to_string(),
            sequence: block
                .text_at(&["PmtTpInf", "SeqTp"])
                .and_then(parse_sequence),
            due_date: ctx.date(block, "ReqdColltnDt", due)?,
            declared_count: count(&ctx, block, "NbOfTxs")?,
            declared_cents: cents(&ctx, block, "CtrlSum")?,
            collections,
        });
    }
    Ok(SentFile {
        message,
        message_id: ctx.required(header, "MsgId")?.to_string(),
        creditor_scheme_id: scheme_id,
        declared_count: count(&ctx, header, "NbOfTxs")?.ok_or_else(|| ReadError::Missing {
            file: file.to_string(),
            line: header.line,
            path: "GrpHdr/NbOfTxs",
        })?,
        declared_cents: cents(&ctx, header, "CtrlSum")?,
        blocks,
    })
}
