//! The régie direct-debit path (issue 5 §3–4; `docs/sepa.md`): the `sepa.batch` stage
//! (one pain.008 per régie and billing run, crash-safe), the `sepa.returns` source (pain.002
//! and camt.054 from `bank/inbox` → `payment.rejected`, re-presentation), and the mandate
//! history other stages ask for a sequence type ([`crate::mandates::sequence_for`], a
//! neutral module: polyfac, helios and sepa all use it).
//!
//! The adapter `encaisse_sepa` does the pure work (rules, XML, reading, decisions); these
//! modules keep the state in the ledger and move files and messages:
//!
//! * [`plan`] — one pain.008 for one régie, planned in the caller's transaction;
//! * [`outputs`] — writing what was planned, taking the events waiting to be published;
//! * [`batch`] — the stage; [`returns`] — the inbox handler;
//! * [`refusal`], [`store`], [`metrics`], [`clock`] — what they share.

pub mod batch;
pub mod clock;
pub mod credit_notes;
pub mod mandate_import;
pub mod metrics;
pub mod outputs;
pub mod plan;
pub mod refusal;
pub mod returns;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;

use encaisse_ledger::Ledger;
use encaisse_schemas::TenantId;
use encaisse_schemas::tenant::Regie;
use encaisse_sepa::SepaTenantConfig;

pub use crate::mandates::{SequenceError, sequence_for};
pub use batch::SepaBatch;
pub use clock::Clock;
pub use returns::SepaReturns;

use super::inbox::{InboxWatcher, WatchSettings};
use crate::runtime::Source;
use crate::stage::Stage;

/// One tenant's direct-debit setup: its `[tenants.sepa]` section and its régies (the
/// creditors, `[[tenants.regies]]`).
#[derive(Debug, Clone)]
pub struct TenantSepa {
    pub id: TenantId,
    pub sepa: SepaTenantConfig,
    pub regies: Vec<Regie>,
}

/// What both components need: the tenants that collect by direct debit (those with a
/// `[tenants.sepa]` section), the data directory (`<tenant>/bank/{outbox,inbox,…}`) and the
/// clock (`Clock::system()` in the daemon).
#[derive(Debug, Clone)]
pub struct SepaSettings {
    pub tenants: Vec<TenantSepa>,
    pub data_dir: PathBuf,
    pub clock: Clock,
}

/// The `sepa.batch` stage.
pub fn batch_stage(settings: SepaSettings, ledger: Ledger) -> Arc<dyn Stage> {
    metrics::describe();
    Arc::new(SepaBatch::new(settings, ledger))
}

/// The `sepa.returns` source: the shared inbox watcher on every direct-debit tenant's
/// `bank/inbox`, handing stable files to [`SepaReturns`].
pub fn returns_source(settings: SepaSettings, watch: WatchSettings) -> Arc<dyn Source> {
    metrics::describe();
    let tenants: Vec<_> = settings.tenants.iter().map(|t| t.id.clone()).collect();
    for id in &tenants {
        metrics::register_tenant(id.as_str());
    }
    let data_dir = settings.data_dir.clone();
    Arc::new(InboxWatcher::new(
        SepaReturns::new(settings),
        data_dir,
        tenants,
        watch,
    ))
}
