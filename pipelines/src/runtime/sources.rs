//! Sources (inbox watchers, timers): each runs in its own task, restarted with jittered
//! backoff when it fails or panics, until shutdown. Also the ledger's dedupe pruning, a
//! source of the runtime's own.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use encaisse_ledger::Ledger;
use futures::FutureExt;

use super::config::{DedupeConfig, RuntimeConfig};
use super::supervisor::reconnect_backoff;
use super::{Source, SourceContext};

/// A source that ran this long is considered healthy: its next failure starts the backoff
/// from the beginning again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Runs `source` until `ctx.shutdown`, restarting it after errors, panics or early returns.
pub async fn supervise(source: Arc<dyn Source>, ctx: SourceContext, config: RuntimeConfig) {
    let name = source.name().to_string();
    let mut delays = reconnect_backoff(&config);
    loop {
        if ctx.shutdown.is_cancelled() {
            return;
        }
        let started = Instant::now();
        let outcome = AssertUnwindSafe(source.clone().run(ctx.clone()))
            .catch_unwind()
            .await;
        if ctx.shutdown.is_cancelled() {
            if let Ok(Err(error)) = &outcome {
                tracing::warn!(source = %name, %error, "Source failed while stopping.");
            }
            return;
        }
        match outcome {
            Ok(Ok(())) => {
                tracing::warn!(source = %name, "Source returned before shutdown; restarting it.")
            }
            Ok(Err(error)) => {
                tracing::warn!(source = %name, %error, "Source failed; restarting it.")
            }
            Err(_) => tracing::error!(source = %name, "Source panicked; restarting it."),
        }
        if started.elapsed() >= HEALTHY_RUN {
            delays = reconnect_backoff(&config);
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.shutdown.cancelled() => return,
        }
    }
}

/// The cut-off of the dedupe retention, or `None` to keep everything.
pub fn retention_cutoff(
    config: &DedupeConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    if config.retention_days == 0 {
        return None;
    }
    let cutoff = now - chrono::Duration::days(i64::from(config.retention_days));
    Some(encaisse_ledger::clock::format(cutoff))
}

/// The dedupe pruning as a source of the runtime's own (`ledger.prune`), so that with
/// several daemons one of them prunes, under its lease.
pub struct Pruning {
    config: DedupeConfig,
}

impl Pruning {
    pub fn new(config: DedupeConfig) -> Self {
        Pruning { config }
    }
}

impl Source for Pruning {
    fn name(&self) -> &str {
        "ledger.prune"
    }

    fn run(
        self: Arc<Self>,
        ctx: SourceContext,
    ) -> futures::future::BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            prune_periodically(ctx.ledger, self.config.clone(), ctx.shutdown).await;
            Ok(())
        })
    }
}

/// Prunes old `processed_message` rows, and the inbox claims of files finished as long ago,
/// every `prune_interval_secs`, until shutdown.
pub async fn prune_periodically(
    ledger: Ledger,
    config: DedupeConfig,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use encaisse_ledger::ClusterStore;
    let interval = Duration::from_secs(config.prune_interval_secs.max(1));
    loop {
        if let Some(cutoff) = retention_cutoff(&config, chrono::Utc::now()) {
            match ledger.prune_processed(&cutoff).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, %cutoff, "Old dedupe records pruned."),
                Err(error) => tracing::warn!(%error, "Dedupe pruning failed; will try again."),
            }
            let before = cutoff.clone();
            match ledger
                .transact(move |tx| tx.prune_inbox_claims(&before))
                .await
            {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, %cutoff, "Old inbox claims pruned."),
                Err(error) => tracing::warn!(%error, "Inbox claims not pruned; will try again."),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_zero_keeps_everything() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-31T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let keep = DedupeConfig {
            retention_days: 0,
            prune_interval_secs: 60,
        };
        assert_eq!(retention_cutoff(&keep, now), None);
        let thirty = DedupeConfig {
            retention_days: 30,
            prune_interval_secs: 60,
        };
        assert_eq!(
            retention_cutoff(&thirty, now).as_deref(),
            Some("2026-03-01T12:00:00.000000Z")
        );
    }
}
