//! The Polyfac stages (issue 3; docs/polyfac.md):
//!
//! * [`ingest`] — `polyfac.ingest`, a source on every tenant's `polyfac/inbox` (through the
//!   shared [`crate::stages::inbox`] watcher): export files → `invoice.issued.<titres|regie>`
//!   and `billing_run.closed`, never twice, in bounded memory;
//! * [`export`] — `polyfac.export`, a stage: payment and titre events → REGLEMENTS lines in
//!   the ledger, reconciled ([`reconcile`]), each recorded once;
//! * [`flush`] — `polyfac.export.flush`, a source: REGLEMENTS lines → files in
//!   `polyfac/outbox`, planned then written atomically.
//!
//! The adapter (`encaisse_polyfac`) reads, validates and enriches exports and renders
//! REGLEMENTS rows; these modules add the ledger, the broker and the files.

pub mod config;
pub mod export;
pub mod export_store;
pub mod flush;
pub mod ingest;
pub mod ingest_store;
pub mod preview;
pub mod progress;
pub mod reconcile;
pub mod tenants;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Europe::Paris;

pub use config::PolyfacStagesConfig;
pub use export::PolyfacExport;
pub use flush::ReglementsFlusher;
pub use ingest::PolyfacIngest;
pub use tenants::{PolyfacTenant, PolyfacTenants};

use futures::future::BoxFuture;

use crate::runtime::{Source, SourceContext};
use crate::stages::inbox::InboxWatcher;

/// `polyfac.ingest`: the shared inbox watcher over every tenant's `polyfac/inbox`.
pub fn ingest_source(
    tenants: PolyfacTenants,
    data_dir: PathBuf,
    config: &PolyfacStagesConfig,
) -> Arc<InboxWatcher<PolyfacIngest>> {
    let ids = tenants.ids();
    Arc::new(InboxWatcher::new(
        PolyfacIngest::new(tenants, data_dir.clone(), config.publish_batch_size)
            .with_backlog(config.max_downstream_backlog)
            .with_bundles(config.bundle_size),
        data_dir,
        ids,
        config.watch(),
    ))
}

/// The tenant area of a source other than the tenant's default one: its files go to
/// `<tenant>/sources/<name>/{inbox,archive,rejected}`.
pub fn source_area(source: &str) -> String {
    format!("sources/{source}")
}

/// `polyfac.ingest` over every source of every tenant: the default sources' `polyfac/inbox`
/// (`default`), and, for each further source name, the inbox of its area
/// ([`source_area`]) in the tenants that receive it, read with that source's mapping.
pub fn ingest_sources(
    default: PolyfacTenants,
    further: Vec<(String, PolyfacTenants)>,
    data_dir: PathBuf,
    config: &PolyfacStagesConfig,
) -> Arc<dyn Source> {
    let mut watchers: Vec<Arc<dyn Source>> = vec![ingest_source(default, data_dir.clone(), config)];
    for (source, tenants) in further {
        let ids = tenants.ids();
        watchers.push(Arc::new(InboxWatcher::new(
            PolyfacIngest::new(tenants, data_dir.clone(), config.publish_batch_size)
                .with_backlog(config.max_downstream_backlog)
                .with_bundles(config.bundle_size)
                .in_area(source_area(&source)),
            data_dir.clone(),
            ids,
            config.watch(),
        )));
    }
    Arc::new(IngestSources { watchers })
}

/// Several inbox watchers run as one source (`polyfac.ingest`).
struct IngestSources {
    watchers: Vec<Arc<dyn Source>>,
}

impl Source for IngestSources {
    fn name(&self) -> &str {
        ingest::NAME
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        let runs: Vec<_> = self
            .watchers
            .iter()
            .map(|w| w.clone().run(ctx.clone()))
            .collect();
        Box::pin(async move {
            futures::future::try_join_all(runs).await?;
            Ok(())
        })
    }
}

/// `polyfac.export.flush`: writes REGLEMENTS files every `flush_interval_secs`.
pub fn flush_source(
    tenants: PolyfacTenants,
    data_dir: PathBuf,
    config: &PolyfacStagesConfig,
) -> Arc<ReglementsFlusher> {
    Arc::new(ReglementsFlusher::new(
        tenants,
        data_dir,
        config.flush_interval(),
    ))
}

/// Today in Europe/Paris: the commune's day (file days, mandate signature rule).
pub fn paris_today() -> NaiveDate {
    chrono::Utc::now().with_timezone(&Paris).date_naive()
}

/// Now in the ledger's time format (`encaisse_ledger::clock`).
pub use encaisse_ledger::clock::now as ledger_now;
