//! The demo's bank: what Ivry's bank answers to the régie's pain.008, made with the
//! adapter's simulated bank (`encaisse_sepa::sim`).

use chrono::NaiveDateTime;
use encaisse_sepa::read::pain008::SentFile;
use encaisse_sepa::sim::{self, TxReject};

/// A file for the bank inbox.
pub struct BankAnswer {
    pub name: String,
    pub bytes: Vec<u8>,
    /// The end-to-end ids rejected.
    pub rejected: Vec<String>,
}

/// The collection of `invoice` in `sent`: end-to-end ids are
/// `<exercice>-<invoice number>-<attempt>`.
pub fn end_to_end_id_of(sent: &SentFile, invoice: &str) -> Option<String> {
    let marker = format!("-{invoice}-");
    sent.blocks
        .iter()
        .flat_map(|b| b.collections.iter())
        .map(|c| c.end_to_end_id.clone())
        .find(|e2e| e2e.contains(&marker))
}

/// A pain.002 rejecting the collections of `rejects` (invoice, ISO code) with those codes;
/// `None` names an invoice the file does not collect.
pub fn status_report(
    sent: &SentFile,
    rejects: &[(&str, &str)],
    now: NaiveDateTime,
) -> Result<BankAnswer, String> {
    let mut txs = Vec::new();
    for (invoice, code) in rejects {
        let e2e = end_to_end_id_of(sent, invoice)
            .ok_or_else(|| format!("{} collects nothing for {invoice}", sent.message_id))?;
        let tx = TxReject::of(sent, &e2e, code)
            .ok_or_else(|| format!("{} has no transaction {e2e}", sent.message_id))?;
        txs.push(tx);
    }
    let message_id = format!("BANK-{}", now.format("%Y%m%d%H%M%S"));
    Ok(BankAnswer {
        name: format!("pain002-{message_id}.xml"),
        bytes: sim::pain002(
            &message_id,
            now,
            &sent.message_id,
            &sent.message,
            None,
            &txs,
        ),
        rejected: txs.into_iter().map(|t| t.end_to_end_id).collect(),
    })
}
