//! `helios.titres.flush`: a small source that writes planned-but-unwritten PES Aller files
//! and reports at start-up and then every `interval` — after a crash nothing waits for the
//! next message of the tenant, and a file whose writing failed permanently (configuration
//! changed under a plan) is tried again once the configuration is fixed.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::outputs::{Check, complete_pending};
use super::settings::HeliosSettings;
use crate::runtime::{Source, SourceContext};

/// The source's name.
pub const FLUSH: &str = "helios.titres.flush";

pub struct TitresFlush {
    settings: HeliosSettings,
    interval: Duration,
}

impl TitresFlush {
    pub fn new(settings: HeliosSettings, interval: Duration) -> Self {
        super::metrics::describe();
        TitresFlush { settings, interval }
    }

    /// One pass over every tenant. Returns how many files and reports were written.
    pub async fn flush_once(&self, ctx: &SourceContext) -> usize {
        let mut written = 0;
        for tenant in &self.settings.tenants {
            match complete_pending(&ctx.ledger, &self.settings.data_dir, tenant, Check::Ledger)
                .await
            {
                Ok(w) => written += w.files.len() + w.reports.len(),
                Err(e) => {
                    tracing::error!(source = FLUSH, tenant = %tenant.id, kind = e.kind(), error = %e, "Planned PES Aller output not written; will try again.")
                }
            }
        }
        written
    }
}

impl Source for TitresFlush {
    fn name(&self) -> &str {
        FLUSH
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            loop {
                self.flush_once(&ctx).await;
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(self.interval) => {}
                }
            }
        })
    }
}
