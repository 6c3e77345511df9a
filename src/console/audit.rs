//! The console's audit trail (`console_action`): who did what, when, why, and what came of
//! it. Logins (refused ones too), logouts, replays, discards, downloads.

use encaisse_ledger::rusqlite::{self, Connection};
use encaisse_ledger::{Ledger, LedgerError};
use serde::Serialize;

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub at: String,
    pub user: String,
    pub role: String,
    pub action: String,
    pub target: Option<String>,
    pub reason: Option<String>,
    pub outcome: String,
}

impl Entry {
    pub fn new(user: &str, role: &str, action: &str, outcome: impl Into<String>) -> Entry {
        Entry {
            at: encaisse_pipelines::stages::ops::replay::now_rfc3339(),
            user: user.to_string(),
            role: role.to_string(),
            action: action.to_string(),
            target: None,
            reason: None,
            outcome: outcome.into(),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Entry {
        self.target = Some(target.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Entry {
        self.reason = Some(reason.into());
        self
    }
}

/// Records `entry`; a failure is logged (the action itself already happened).
pub async fn record(ledger: &Ledger, entry: Entry) {
    let action = entry.action.clone();
    let result = ledger
        .write(move |c| {
            c.execute(
                "INSERT INTO console_action (at, user, role, action, target, reason, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    entry.at,
                    entry.user,
                    entry.role,
                    entry.action,
                    entry.target,
                    entry.reason,
                    entry.outcome
                ],
            )?;
            Ok(())
        })
        .await;
    if let Err(e) = result {
        tracing::error!(action = %action, error = %e, "Cannot record a console action in the audit trail.");
    }
}

/// The newest entries first, `limit` of them after skipping `offset`.
pub fn list(c: &Connection, limit: u32, offset: u32) -> Result<Vec<Entry>, LedgerError> {
    let mut stmt = c.prepare(
        "SELECT at, user, role, action, target, reason, outcome FROM console_action
         ORDER BY at DESC, id DESC LIMIT ?1 OFFSET ?2",
    )?;
    let rows = stmt.query_map([limit, offset], |r| {
        Ok(Entry {
            at: r.get(0)?,
            user: r.get(1)?,
            role: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            reason: r.get(5)?,
            outcome: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
