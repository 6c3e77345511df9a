//! pain.002 status reports (`.03` and `.10` share the element names used here; spec §6.2).
//! A reject may be stated for the whole original message (`GrpSts`), a block
//! (`PmtInfSts`) or a collection (`TxSts`), and its reason may sit at any of the three
//! levels: a collection without its own reason inherits its block's, then its group's.

use super::tree::Node;
use super::{
    BankFile, Ctx, MatchKeys, MessageKind, RTransaction, ReadError, RejectLevel, RejectRecord,
    parse_sequence, reason,
};
use crate::reasons::describe;

/// Code, proprietary reason and texts of every `StsRsnInf` under `node` (first code wins).
#[derive(Debug, Clone, Default)]
struct Why {
    code: Option<String>,
    proprietary: Option<String>,
    info: Vec<String>,
}

impl Why {
    fn of(node: &Node) -> Option<Why> {
        let mut why = Why::default();
        let mut any = false;
        for info in node.children_named("StsRsnInf") {
            any = true;
            let (code, proprietary, texts) = reason(info);
            why.code = why.code.or(code);
            why.proprietary = why.proprietary.or(proprietary);
            why.info.extend(texts);
        }
        any.then_some(why)
    }

    fn has_reason(&self) -> bool {
        self.code.is_some() || self.proprietary.is_some()
    }
}

fn is_reject(status: Option<&str>) -> bool {
    status.is_some_and(|s| s.eq_ignore_ascii_case("RJCT"))
}

pub(super) fn read(ctx: &Ctx<'_>, root: &Node, message: String) -> Result<BankFile, ReadError> {
    let missing = |node: &Node, path| ReadError::Missing {
        file: ctx.file.to_string(),
        line: node.line,
        path,
    };
    let report = root
        .child("CstmrPmtStsRpt")
        .ok_or_else(|| missing(root, "CstmrPmtStsRpt"))?;
    let message_id = ctx.required(report, "GrpHdr/MsgId")?.to_string();
    let created = ctx.required(report, "GrpHdr/CreDtTm")?;
    let reported_on = ctx.date(report, "GrpHdr/CreDtTm", created)?;
    let group = report
        .child("OrgnlGrpInfAndSts")
        .ok_or_else(|| missing(report, "OrgnlGrpInfAndSts"))?;
    let original_message_id = ctx.required(group, "OrgnlMsgId")?.to_string();
    let group_status = group.text_at(&["GrpSts"]);
    let group_why = Why::of(group).unwrap_or_default();

    let record = |level, node: &Node, keys: MatchKeys, why: &Why, id: String| RejectRecord {
        idempotency_key: format!("pain002:{message_id}/{id}"),
        level,
        r_type: RTransaction::Reject,
        decision: ctx.decision(
            why.code.as_deref(),
            keys.end_to_end_id.as_deref(),
            reported_on,
            keys.collection_date,
        ),
        reason_text: describe(why.code.as_deref(), &why.info),
        reason_code: why.code.clone(),
        proprietary_reason: why.proprietary.clone(),
        additional_info: why.info.clone(),
        bank_reference: None,
        sequence: None,
        reported_on,
        line: node.line,
        keys,
    };

    let mut records = Vec::new();
    if is_reject(group_status) {
        let keys = MatchKeys {
            original_message_id: Some(original_message_id.clone()),
            ..MatchKeys::default()
        };
        records.push(record(
            RejectLevel::Group,
            group,
            keys,
            &group_why,
            "group".into(),
        ));
    }
    for block in report.children_named("OrgnlPmtInfAndSts") {
        let payment_info_id = ctx.required(block, "OrgnlPmtInfId")?.to_string();
        let block_status = block.text_at(&["PmtInfSts"]).or(group_status);
        let block_why = Why::of(block)
            .filter(Why::has_reason)
            .unwrap_or_else(|| group_why.clone());
        if is_reject(block.text_at(&["PmtInfSts"])) {
            let keys = MatchKeys {
                original_message_id: Some(original_message_id.clone()),
                original_payment_info_id: Some(payment_info_id.clone()),
                ..MatchKeys::default()
            };
            let id = format!("block:{payment_info_id}");
            records.push(record(RejectLevel::Block, block, keys, &block_why, id));
        }
        for (index, tx) in block.children_named("TxInfAndSts").enumerate() {
            let own = Why::of(tx);
            let status = tx.text_at(&["TxSts"]).or(block_status);
            let rejected = match status {
                Some(s) => is_reject(Some(s)),
                // No status at any level: a reason means a reject (SEPA reject dataset).
                None => own.as_ref().is_some_and(Why::has_reason),
            };
            if !rejected {
                continue;
            }
            let why = own
                .filter(Why::has_reason)
                .unwrap_or_else(|| block_why.clone());
            let reference = tx.child("OrgnlTxRef");
            let ref_text =
                |path: &[&str]| reference.and_then(|r| r.text_at(path)).map(str::to_string);
            let keys = MatchKeys {
                end_to_end_id: tx.text_at(&["OrgnlEndToEndId"]).map(str::to_string),
                mandate_id: ref_text(&["MndtRltdInf", "MndtId"]),
                amount: ctx.soft(ctx.amount(
                    reference.and_then(|r| r.at(&["Amt", "InstdAmt"])),
                    "OrgnlTxRef/Amt/InstdAmt",
                ))?,
                collection_date: match reference {
                    Some(r) => ctx.soft(ctx.optional_date(r, "ReqdColltnDt"))?,
                    None => None,
                },
                original_message_id: Some(original_message_id.clone()),
                original_payment_info_id: Some(payment_info_id.clone()),
            };
            let status_id = tx.text_at(&["StsId"]).map(str::to_string);
            let id = match (&status_id, &keys.end_to_end_id) {
                (Some(sts), _) => format!("sts:{sts}"),
                (None, Some(e2e)) => format!("e2e:{e2e}"),
                (None, None) => format!("block:{payment_info_id}/tx:{}", index + 1),
            };
            let mut r = record(RejectLevel::Transaction, tx, keys, &why, id);
            r.bank_reference = status_id;
            r.sequence = ref_text(&["PmtTpInf", "SeqTp"])
                .as_deref()
                .and_then(parse_sequence);
            records.push(r);
        }
    }
    Ok(BankFile {
        file: ctx.file.to_string(),
        kind: MessageKind::StatusReport,
        message,
        message_id,
        original_message_id: Some(original_message_id),
        original_message_name: group.text_at(&["OrgnlMsgNmId"]).map(str::to_string),
        group_status: group_status.map(str::to_string),
        records,
        warnings: ctx.take_warnings(),
        ignored_entries: 0,
    })
}
