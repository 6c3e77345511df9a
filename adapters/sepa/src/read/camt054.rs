//! camt.054 debit/credit notifications (`.02` and `.08`; spec §6.3). A direct debit that
//! comes back after settlement (return, refund) is a *debit* entry on the régie's account;
//! one entry may hold several `TxDtls` (batch booking). A transaction is reported when it
//! has `RtrInf`, or when its entry is a booked direct-debit debit (`PMNT/IDDT`) even without
//! a reason. Entries not booked (`PDNG`, `INFO`: the bank reports them again once booked)
//! and reversal entries (`RvslInd = true`) are counted as ignored.

use chrono::NaiveDate;

use super::tree::Node;
use super::{
    BankFile, Ctx, MatchKeys, MessageKind, RTransaction, ReadError, RejectLevel, RejectRecord,
    parse_sequence, reason,
};
use crate::reasons::describe;

/// The sequence type in `AddtlTxInf` (`/SQTP/RCUR/DTOFSGNT/2013-11-14`).
fn sequence_tag(text: &str) -> Option<encaisse_schemas::SequenceType> {
    let (_, rest) = text.split_once("/SQTP/")?;
    parse_sequence(rest.split('/').next()?)
}

/// Booked, not a reversal, and a direct-debit debit?
struct EntryFacts {
    booked: bool,
    reversal: bool,
    direct_debit_debit: bool,
}

fn entry_facts(entry: &Node) -> EntryFacts {
    let status = entry
        .text_at(&["Sts", "Cd"])
        .or_else(|| entry.text_at(&["Sts"]));
    let family = entry.at(&["BkTxCd", "Domn"]);
    EntryFacts {
        booked: status.is_none_or(|s| s.eq_ignore_ascii_case("BOOK")),
        reversal: entry
            .text_at(&["RvslInd"])
            .is_some_and(|r| r.eq_ignore_ascii_case("true")),
        direct_debit_debit: entry.text_at(&["CdtDbtInd"]) == Some("DBIT")
            && family.and_then(|f| f.text_at(&["Cd"])) == Some("PMNT")
            && family.and_then(|f| f.text_at(&["Fmly", "Cd"])) == Some("IDDT"),
    }
}

pub(super) fn read(ctx: &Ctx<'_>, root: &Node, message: String) -> Result<BankFile, ReadError> {
    let notification_root =
        root.child("BkToCstmrDbtCdtNtfctn")
            .ok_or_else(|| ReadError::Missing {
                file: ctx.file.to_string(),
                line: root.line,
                path: "BkToCstmrDbtCdtNtfctn",
            })?;
    let message_id = ctx.required(notification_root, "GrpHdr/MsgId")?.to_string();
    let created = ctx.required(notification_root, "GrpHdr/CreDtTm")?;
    let created_on = ctx.date(notification_root, "GrpHdr/CreDtTm", created)?;
    let mut records = Vec::new();
    let mut ignored = 0;
    for notification in notification_root.children_named("Ntfctn") {
        let notification_id = ctx.required(notification, "Id")?;
        for (entry_index, entry) in notification.children_named("Ntry").enumerate() {
            let facts = entry_facts(entry);
            let before = records.len();
            if facts.booked && !facts.reversal {
                let reported_on = match ctx.soft(ctx.optional_date(entry, "BookgDt/Dt"))? {
                    Some(d) => d,
                    None => ctx
                        .soft(ctx.optional_date(entry, "BookgDt/DtTm"))?
                        .unwrap_or(created_on),
                };
                let entry_ref = entry
                    .text_at(&["AcctSvcrRef"])
                    .map(str::to_string)
                    .unwrap_or_else(|| {
                        format!("{message_id}/{notification_id}/{}", entry_index + 1)
                    });
                let scope = EntryScope {
                    ctx,
                    entry,
                    facts: &facts,
                    entry_ref: &entry_ref,
                    reported_on,
                };
                scope.records(&mut records)?;
            }
            if records.len() == before {
                ignored += 1;
            }
        }
    }
    Ok(BankFile {
        file: ctx.file.to_string(),
        kind: MessageKind::Notification,
        message,
        message_id,
        original_message_id: None,
        original_message_name: None,
        group_status: None,
        records,
        warnings: ctx.take_warnings(),
        ignored_entries: ignored,
    })
}

/// One booked entry being turned into records.
struct EntryScope<'a> {
    ctx: &'a Ctx<'a>,
    entry: &'a Node,
    facts: &'a EntryFacts,
    entry_ref: &'a str,
    reported_on: NaiveDate,
}

impl EntryScope<'_> {
    fn records(&self, out: &mut Vec<RejectRecord>) -> Result<(), ReadError> {
        let details: Vec<&Node> = self
            .entry
            .children_named("NtryDtls")
            .flat_map(|d| d.children_named("TxDtls"))
            .collect();
        if details.is_empty() {
            if self.facts.direct_debit_debit {
                // A returned collection without details: only the amount is known.
                let amount = self
                    .ctx
                    .soft(self.ctx.amount(self.entry.child("Amt"), "Ntry/Amt"))?;
                let keys = MatchKeys {
                    amount,
                    ..MatchKeys::default()
                };
                out.push(self.record(self.entry, keys, None, self.entry_ref.to_string()));
            }
            return Ok(());
        }
        for (index, tx) in details.into_iter().enumerate() {
            let return_info = tx.child("RtrInf");
            if return_info.is_none() && !self.facts.direct_debit_debit {
                continue;
            }
            let amount_node = tx
                .at(&["AmtDtls", "InstdAmt", "Amt"])
                .or_else(|| tx.at(&["AmtDtls", "TxAmt", "Amt"]))
                .or_else(|| tx.child("Amt"));
            let refs = |name: &str| tx.text_at(&["Refs", name]).map(str::to_string);
            let keys = MatchKeys {
                end_to_end_id: refs("EndToEndId").filter(|e| e != "NOTPROVIDED"),
                mandate_id: refs("MndtId"),
                amount: self
                    .ctx
                    .soft(self.ctx.amount(amount_node, "TxDtls/AmtDtls/InstdAmt/Amt"))?,
                collection_date: self
                    .ctx
                    .soft(self.ctx.optional_date(tx, "RltdDts/IntrBkSttlmDt"))?,
                original_message_id: refs("MsgId"),
                original_payment_info_id: refs("PmtInfId"),
            };
            let id = match (refs("AcctSvcrRef"), &keys.end_to_end_id) {
                (Some(tx_ref), _) => tx_ref,
                (None, Some(e2e)) => format!("{}/e2e:{e2e}", self.entry_ref),
                (None, None) => format!("{}/tx:{}", self.entry_ref, index + 1),
            };
            let mut record = self.record(tx, keys, return_info, id);
            record.bank_reference = refs("TxId").or_else(|| refs("AcctSvcrRef"));
            record.sequence = tx.text_at(&["AddtlTxInf"]).and_then(sequence_tag);
            out.push(record);
        }
        Ok(())
    }

    fn record(
        &self,
        node: &Node,
        keys: MatchKeys,
        info: Option<&Node>,
        id: String,
    ) -> RejectRecord {
        let (code, proprietary, additional) = info.map(reason).unwrap_or_default();
        let r_type = if code.as_deref() == Some("MD06") {
            RTransaction::Refund
        } else {
            RTransaction::Return
        };
        RejectRecord {
            idempotency_key: format!("camt054:{id}"),
            level: RejectLevel::Transaction,
            r_type,
            decision: self.ctx.decision(
                code.as_deref(),
                keys.end_to_end_id.as_deref(),
                self.reported_on,
                keys.collection_date,
            ),
            reason_text: describe(code.as_deref(), &additional),
            reason_code: code,
            proprietary_reason: proprietary,
            additional_info: additional,
            bank_reference: None,
            sequence: None,
            reported_on: self.reported_on,
            line: node.line,
            keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_from_additional_info() {
        assert_eq!(
            sequence_tag("/SQTP/RCUR/DTOFSGNT/2013-11-14"),
            Some(encaisse_schemas::SequenceType::Rcur)
        );
        assert_eq!(sequence_tag("/RTYP/RTRN"), None);
    }
}
