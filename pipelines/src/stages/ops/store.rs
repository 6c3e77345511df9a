//! The parked-message store in the ledger: its types, from the ledger's ops area
//! ([`encaisse_ledger::ops`]). The operations are those of [`encaisse_ledger::OpsStore`] on
//! a transaction (`Ledger::transact` / `Ledger::inspect`), so they run on SQLite and
//! PostgreSQL alike.

pub use encaisse_ledger::ops::{
    Action, Filter, Group, GroupKey, Marked, ParkedMessage, ParkedSummary, State, Waiting,
};
