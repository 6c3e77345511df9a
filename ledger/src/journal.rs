//! The journal of each invoice's life (`invoice_event`), read by `encaisse trace`.

use crate::error::LedgerError;
use crate::store::Ledger;
use crate::stores::CoreStore;

/// One fact about an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceFact {
    /// `tenant/exercice/number`.
    pub invoice_key: String,
    pub tenant: String,
    /// When it happened (RFC 3339).
    pub at: String,
    /// `issued`, `exported`, `titre_emitted`, `titre_accepted`, `paid`, `rejected`, …
    pub kind: String,
    /// JSON details (file, line, bordereau, amount, reference…). No personal data.
    pub detail: serde_json_text::Text,
    /// Recording the same fact twice keeps one row when this key is set.
    pub dedupe_key: Option<String>,
}

/// JSON text, kept as a string so the ledger does not depend on serde_json.
pub mod serde_json_text {
    pub type Text = String;
}

impl Ledger {
    /// Records a fact (idempotent when `dedupe_key` is set).
    pub async fn record_invoice_fact(&self, fact: InvoiceFact) -> Result<(), LedgerError> {
        self.transact(move |tx| tx.record_fact(&fact)).await
    }

    /// Every fact about an invoice, in time order.
    pub async fn invoice_facts(&self, invoice_key: &str) -> Result<Vec<InvoiceFact>, LedgerError> {
        let key = invoice_key.to_string();
        self.inspect(move |tx| tx.facts_of(&key)).await
    }
}

/// [`CoreStore::facts_of`] on SQLite.
pub(crate) fn facts_of_in(
    c: &rusqlite::Connection,
    invoice_key: &str,
) -> Result<Vec<InvoiceFact>, LedgerError> {
    let mut stmt = c.prepare_cached(
        "SELECT invoice_key, tenant, at, kind, detail, dedupe_key FROM invoice_event
         WHERE invoice_key = ?1 ORDER BY at, id",
    )?;
    let rows = stmt.query_map([invoice_key], |r| {
        Ok(InvoiceFact {
            invoice_key: r.get(0)?,
            tenant: r.get(1)?,
            at: r.get(2)?,
            kind: r.get(3)?,
            detail: r.get(4)?,
            dedupe_key: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn facts_are_deduplicated_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let fact = |at: &str, kind: &str, key: Option<&str>| InvoiceFact {
            invoice_key: "vitry/2026/F1".into(),
            tenant: "vitry".into(),
            at: at.into(),
            kind: kind.into(),
            detail: "{}".into(),
            dedupe_key: key.map(str::to_string),
        };
        ledger
            .record_invoice_fact(fact("2026-01-02T00:00:00Z", "paid", Some("p1")))
            .await
            .unwrap();
        ledger
            .record_invoice_fact(fact("2026-01-02T00:00:00Z", "paid", Some("p1")))
            .await
            .unwrap();
        ledger
            .record_invoice_fact(fact("2026-01-01T00:00:00Z", "issued", None))
            .await
            .unwrap();
        let facts = ledger.invoice_facts("vitry/2026/F1").await.unwrap();
        let kinds: Vec<_> = facts.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["issued", "paid"]);
    }
}
