//! A checked direct-debit message: collections grouped into blocks, totals computed in
//! integer cents. A [`Pain008`] exists only when every EPC rule holds, so writing it cannot
//! fail on data.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use encaisse_schemas::SequenceType;

use crate::model::{
    Collection, Creditor, InitiatingParty, MessageHeader, PartyId, UltimateCreditor, WriteSettings,
};
use crate::rules::{Checker, Rule, RuleViolation, Subject, check_collection, describe_all};

/// Every rule a message broke; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pain.008 refused, {} rule(s) broken: {}", .0.len(), describe_all(.0))]
pub struct Violations(pub Vec<RuleViolation>);

/// `NbOfTxs` and `CtrlSum` of a block or of the whole message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub count: u64,
    /// Sum of the amounts in cents (exact: no decimal arithmetic).
    pub cents: u64,
}

impl Totals {
    fn add(&mut self, cents: i64) {
        self.count += 1;
        self.cents += cents.unsigned_abs();
    }

    /// `CtrlSum` as written: `1234.50`.
    pub fn control_sum(&self) -> String {
        format!("{}.{:02}", self.cents / 100, self.cents % 100)
    }
}

/// One `PmtInf`: the collections sharing a due date and a sequence type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// `PmtInfId`: `<MsgId>-<n>`, cut so that it stays ≤ 35 characters.
    pub payment_info_id: String,
    pub due_date: NaiveDate,
    pub sequence: SequenceType,
    pub totals: Totals,
    /// Sorted by end-to-end id, texts transliterated.
    pub collections: Vec<Collection>,
}

/// A checked message, ready to be written (`to_xml`). Only [`build`] makes one, so its
/// fields are private: a `Pain008` always satisfies the EPC rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pain008 {
    pub(crate) settings: WriteSettings,
    pub(crate) header: MessageHeader,
    pub(crate) initiating_party: InitiatingParty,
    pub(crate) creditor: Creditor,
    pub(crate) blocks: Vec<Block>,
    pub(crate) totals: Totals,
}

fn sequence_rank(sequence: SequenceType) -> u8 {
    match sequence {
        SequenceType::Frst => 0,
        SequenceType::Rcur => 1,
        SequenceType::Fnal => 2,
        SequenceType::Ooff => 3,
    }
}

fn payment_info_id(message_id: &str, n: usize) -> String {
    let suffix = format!("-{n}");
    let keep = 35usize.saturating_sub(suffix.len());
    let prefix: String = message_id.chars().take(keep).collect();
    format!("{prefix}{suffix}")
}

/// Checks every rule and builds the message. The result depends only on the arguments, not
/// on their order: blocks are sorted by (due date, FRST < RCUR < FNAL < OOFF) and
/// collections by end-to-end id, so a redelivered run rebuilds byte-identical bytes.
pub fn build(
    settings: WriteSettings,
    header: MessageHeader,
    initiating_party: InitiatingParty,
    creditor: Creditor,
    collections: &[Collection],
) -> Result<Pain008, Violations> {
    let mut violations = Vec::new();
    let created_on = header.created_at.date();
    let (initiating_party, creditor) = check_header(
        &settings,
        &header,
        initiating_party,
        creditor,
        &mut violations,
    );
    if collections.is_empty() {
        violations.push(RuleViolation {
            subject: Subject::Message {
                message_id: header.message_id.clone(),
            },
            field: "DrctDbtTxInf",
            rule: Rule::NoCollection,
            detail: "a message needs at least one collection".into(),
        });
    }
    let mut seen: HashMap<&str, &Collection> = HashMap::new();
    let mut groups: BTreeMap<(NaiveDate, u8), Vec<Collection>> = BTreeMap::new();
    for collection in collections {
        if let Some(first) = seen.insert(&collection.end_to_end_id, collection) {
            violations.push(RuleViolation {
                subject: Subject::Collection {
                    end_to_end_id: collection.end_to_end_id.clone(),
                    invoice: collection.invoice.key(),
                },
                field: "PmtId/EndToEndId",
                rule: Rule::Duplicate,
                detail: format!("also used by invoice {}", first.invoice.key()),
            });
            continue;
        }
        if let Some(ok) = check_collection(
            collection,
            &creditor,
            settings.version,
            created_on,
            settings.lead_days,
            &mut violations,
        ) {
            groups
                .entry((ok.due_date, sequence_rank(ok.sequence)))
                .or_default()
                .push(ok);
        }
    }
    if !violations.is_empty() {
        tracing::warn!(
            message_id = %header.message_id,
            violations = violations.len(),
            "Pain.008 message refused: EPC rules broken."
        );
        return Err(Violations(violations));
    }
    let mut totals = Totals::default();
    let blocks = groups
        .into_values()
        .enumerate()
        .map(|(i, mut group)| {
            group.sort_by(|a, b| a.end_to_end_id.cmp(&b.end_to_end_id));
            let mut block_totals = Totals::default();
            for c in &group {
                block_totals.add(c.amount.cents());
                totals.add(c.amount.cents());
            }
            Block {
                payment_info_id: payment_info_id(&header.message_id, i + 1),
                due_date: group[0].due_date,
                sequence: group[0].sequence,
                totals: block_totals,
                collections: group,
            }
        })
        .collect::<Vec<_>>();
    let mut block_ids = Vec::new();
    for block in &blocks {
        let mut check = Checker::new(
            Subject::Message {
                message_id: header.message_id.clone(),
            },
            &mut violations,
        );
        check.identifier("PmtInf/PmtInfId", &block.payment_info_id);
        if block_ids.contains(&&block.payment_info_id) {
            check.fail(
                "PmtInf/PmtInfId",
                Rule::Duplicate,
                block.payment_info_id.clone(),
            );
        }
        block_ids.push(&block.payment_info_id);
    }
    if !violations.is_empty() {
        return Err(Violations(violations));
    }
    tracing::debug!(
        message_id = %header.message_id,
        blocks = blocks.len(),
        collections = totals.count,
        control_sum = %totals.control_sum(),
        "Pain.008 message built."
    );
    Ok(Pain008 {
        settings,
        header,
        initiating_party,
        creditor,
        blocks,
        totals,
    })
}

/// Checks the header, the initiating party and the creditor; returns them with their texts
/// transliterated (unchanged when a rule is broken: the violations say why).
fn check_header(
    settings: &WriteSettings,
    header: &MessageHeader,
    mut party: InitiatingParty,
    mut creditor: Creditor,
    out: &mut Vec<RuleViolation>,
) -> (InitiatingParty, Creditor) {
    let mut check = Checker::new(
        Subject::Message {
            message_id: header.message_id.clone(),
        },
        out,
    );
    check.identifier("GrpHdr/MsgId", &header.message_id);
    if let Some(name) = check.text("GrpHdr/InitgPty/Nm", &party.name, 70) {
        party.name = name;
    }
    if let Some(PartyId::Siret(siret)) = &party.id
        && let Err(e) = encaisse_schemas::identifiers::check_siret(siret)
    {
        check.fail(
            "GrpHdr/InitgPty/Id/OrgId/Othr/Id",
            Rule::Identifier,
            e.to_string(),
        );
    }
    if let Some(name) = check.text("PmtInf/Cdtr/Nm", &creditor.name, 70) {
        creditor.name = name;
    }
    check.bic(
        "PmtInf/CdtrAgt/FinInstnId",
        creditor.bic.as_ref(),
        settings.version,
    );
    if let Some(UltimateCreditor { name, id }) = &mut creditor.ultimate {
        if let Some(text) = check.text("PmtInf/UltmtCdtr/Nm", name, 70) {
            *name = text;
        }
        if let Some(id) = id {
            check.identifier("PmtInf/UltmtCdtr/Id/OrgId/Othr/Id", id);
        }
    }
    (party, creditor)
}

impl Pain008 {
    pub fn settings(&self) -> &WriteSettings {
        &self.settings
    }

    pub fn header(&self) -> &MessageHeader {
        &self.header
    }

    /// With its name transliterated as written.
    pub fn initiating_party(&self) -> &InitiatingParty {
        &self.initiating_party
    }

    /// With its names transliterated as written.
    pub fn creditor(&self) -> &Creditor {
        &self.creditor
    }

    /// The `PmtInf` blocks in file order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Group `NbOfTxs` / `CtrlSum`.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The end-to-end ids written, in file order (for the ledger's mapping to invoices).
    pub fn end_to_end_ids(&self) -> impl Iterator<Item = &str> {
        self.blocks
            .iter()
            .flat_map(|b| b.collections.iter().map(|c| c.end_to_end_id.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_sums_are_printed_from_cents() {
        let t = Totals {
            count: 2,
            cents: 100_005,
        };
        assert_eq!(t.control_sum(), "1000.05");
        assert_eq!(Totals::default().control_sum(), "0.00");
    }

    #[test]
    fn payment_info_ids_stay_within_35() {
        assert_eq!(payment_info_id("MSG", 3), "MSG-3");
        let long = "A".repeat(35);
        let id = payment_info_id(&long, 12);
        assert_eq!(id.len(), 35);
        assert!(id.ends_with("-12"));
    }
}
