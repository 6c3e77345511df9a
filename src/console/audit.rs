//! The console's audit trail (`console_action`): who did what, when, why, and what came of
//! it. Logins (refused ones too), logouts, replays, discards, downloads. Kept by the ledger's
//! ops store ([`encaisse_ledger::OpsStore`]), on SQLite or PostgreSQL.

use encaisse_ledger::{Ledger, LedgerError, OpsStore};

/// One audited action.
pub use encaisse_ledger::ops::AuditEntry as Entry;

/// Records `entry`; a failure is logged (the action itself already happened).
pub async fn record(ledger: &Ledger, entry: Entry) {
    let action = entry.action.clone();
    let result = ledger
        .transact(move |tx| tx.record_console_action(&entry))
        .await;
    if let Err(e) = result {
        let e: LedgerError = e;
        tracing::error!(action = %action, error = %e, "Cannot record a console action in the audit trail.");
    }
}
