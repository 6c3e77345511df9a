//! Prometheus metrics: the global recorder (installed once per process) that every crate's
//! `metrics::counter!`/`histogram!` calls report to, rendered by `GET /metrics`.
//!
//! This crate adds `encaisse_build_info{version}` (always 1); the runtime reports the broker
//! connection and per-stage counters and durations (`encaisse_pipelines::runtime::metrics`).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets in seconds, from a fast stage (1 ms) to a slow gateway call (60 s):
/// durations are exported as Prometheus histograms (aggregatable), not summaries.
const DURATION_BUCKETS_SECS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram upkeep runs (drains the recorder's buffers).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide handle; installs the recorder on first call. If another recorder was
/// installed first (a test harness), the handle renders a private recorder instead and the
/// condition is logged.
pub fn handle() -> PrometheusHandle {
    HANDLE.get_or_init(install).clone()
}

fn builder() -> PrometheusBuilder {
    let builder = PrometheusBuilder::new();
    match builder.set_buckets(DURATION_BUCKETS_SECS) {
        Ok(builder) => builder,
        // Only fails on an empty bucket list, which the constant is not.
        Err(_) => PrometheusBuilder::new(),
    }
}

fn install() -> PrometheusHandle {
    match builder().install_recorder() {
        Ok(handle) => {
            describe();
            ::metrics::gauge!("encaisse_build_info", "version" => env!("CARGO_PKG_VERSION"))
                .set(1.0);
            handle
        }
        Err(e) => {
            tracing::warn!(error = %e, "Metrics recorder already installed; /metrics shows a private recorder.");
            builder().build_recorder().handle()
        }
    }
}

fn describe() {
    ::metrics::describe_gauge!(
        "encaisse_build_info",
        "Always 1; labelled with the version."
    );
}

/// Runs histogram upkeep until `shutdown` is cancelled.
pub async fn upkeep(handle: PrometheusHandle, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_renders_what_crates_record() {
        let handle = handle();
        ::metrics::counter!("encaisse_test_events_total", "stage" => "demo.echo").increment(3);
        ::metrics::histogram!("encaisse_test_duration_seconds").record(0.02);
        let text = handle.render();
        assert!(
            text.contains("encaisse_test_events_total{stage=\"demo.echo\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("encaisse_test_duration_seconds_bucket{le=\"0.025\"} 1"),
            "{text}"
        );
        assert!(text.contains("encaisse_build_info{version=\""), "{text}");
        // Installing twice is harmless: the same recorder is rendered.
        assert!(handle_again_renders_same());
    }

    fn handle_again_renders_same() -> bool {
        handle().render().contains("encaisse_test_events_total")
    }
}
