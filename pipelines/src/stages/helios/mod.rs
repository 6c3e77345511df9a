//! The Hélios stages (issue 5 §1, §2, §4; `docs/helios.md`, "The stages"):
//!
//! * [`titres`] — `helios.titres`, a stage: `invoice.issued.titres` and
//!   `billing_run.closed` → one PES Aller file per billing run and budget in
//!   `<tenant>/helios/outbox`, numbered in the ledger (`IdBord` gapless, `IdPce` unique,
//!   never reused), crash-safe ([`plan`] then [`outputs`]);
//!   `credit_note.issued.titres` → a réduction titre (bordereau of type 02) in a file of
//!   its own, or a refusal told to Polyfac ([`reductions`]);
//! * [`flush`] — `helios.titres.flush`, a source: writes what was planned and not written
//!   (at start-up, then periodically);
//! * [`returns`] — `helios.returns`, a source on every tenant's `helios/inbox` (through the
//!   shared [`crate::stages::inbox`] watcher): `PES_ACQUIT` and `PES_Retour` →
//!   `titre.accepted`, `titre.rejected`, `payment.received`, `payment.reversed`, answered
//!   with `PES_ACQUIT_RETOUR`.
//!
//! The adapter (`encaisse_helios`) writes and reads the PES files; these modules add the
//! ledger ([`store`], [`lookup`]), the broker and the files.

pub mod error;
pub mod flush;
pub mod lookup;
pub mod metrics;
pub mod outputs;
pub mod plan;
pub mod reduction_store;
pub mod reductions;
pub mod refusal;
pub mod returns;
pub mod settings;
pub mod store;
pub mod titres;

use std::sync::Arc;
use std::time::Duration;

pub use error::HeliosError;
pub use flush::{FLUSH, TitresFlush};
pub use plan::STAGE;
pub use returns::{HeliosReturns, RETURNS};
pub use settings::{HeliosSettings, TenantHelios};
pub use titres::HeliosTitres;

use crate::stages::inbox::{InboxWatcher, WatchSettings};

/// `helios.titres`.
pub fn titres_stage(
    settings: HeliosSettings,
    ledger: encaisse_ledger::Ledger,
) -> Arc<HeliosTitres> {
    Arc::new(HeliosTitres::new(settings, ledger))
}

/// `helios.titres.flush`: every `interval`, writes planned and unwritten files.
pub fn flush_source(settings: HeliosSettings, interval: Duration) -> Arc<TitresFlush> {
    Arc::new(TitresFlush::new(settings, interval))
}

/// `helios.returns`: the shared inbox watcher over every Hélios tenant's `helios/inbox`.
pub fn returns_source(
    settings: HeliosSettings,
    watch: WatchSettings,
) -> Arc<InboxWatcher<HeliosReturns>> {
    let ids: Vec<_> = settings.tenants.iter().map(|t| t.id.clone()).collect();
    for id in &ids {
        metrics::register_tenant(id.as_str());
    }
    let data_dir = settings.data_dir.clone();
    Arc::new(InboxWatcher::new(
        HeliosReturns::new(settings),
        data_dir,
        ids,
        watch,
    ))
}
