//! The runtime's metrics, through the `metrics` facade (the binary installs the Prometheus
//! recorder). One function per observable event, so names and labels live in one place.

use std::time::Duration;

pub fn describe() {
    metrics::describe_counter!(
        "encaisse_stage_processed_total",
        "Messages a stage handled successfully (outputs confirmed, input acked)."
    );
    metrics::describe_counter!(
        "encaisse_stage_retried_total",
        "Transient failures sent to a delay tier, by error kind."
    );
    metrics::describe_counter!(
        "encaisse_stage_parked_total",
        "Messages moved to a stage's parking lot, by error class and kind."
    );
    metrics::describe_counter!(
        "encaisse_stage_duplicates_total",
        "Messages already processed: stored outputs republished, handler not run."
    );
    metrics::describe_histogram!(
        "encaisse_stage_duration_seconds",
        metrics::Unit::Seconds,
        "Time from delivery to ack (or retry/park) of a message."
    );
    metrics::describe_histogram!(
        "encaisse_stage_burst_size",
        "Deliveries of a stage committed in one ledger transaction."
    );
    metrics::describe_gauge!(
        "encaisse_broker_connected",
        "1 while the broker connection is up (topology declared, consumers running)."
    );
    metrics::describe_counter!(
        "encaisse_broker_reconnects_total",
        "Broker connections lost and rebuilt."
    );
    metrics::describe_counter!(
        "encaisse_publish_confirmed_total",
        "Messages the broker confirmed."
    );
    metrics::describe_counter!(
        "encaisse_publish_failed_total",
        "Publishes that failed, by reason (not_connected, nacked, unroutable, channel, invalid)."
    );
    metrics::describe_counter!(
        "encaisse_drain_messages_total",
        "Messages a drain (ops.parking: parking lots into the ledger) took and acked."
    );
    metrics::describe_counter!(
        "encaisse_drain_failures_total",
        "Times a drain could not take a message (retried in place, never dropped)."
    );
    metrics::describe_gauge!(
        "encaisse_downstream_backlog_waiting",
        "1 while a source waits for the work queues it publishes to (over max_downstream_backlog)."
    );
    metrics::describe_gauge!(
        "encaisse_downstream_backlog_messages",
        "Ready messages a source last read in a work queue it publishes to."
    );
}

pub fn processed(stage: &str) {
    metrics::counter!("encaisse_stage_processed_total", "stage" => stage.to_string()).increment(1);
}

pub fn duration(stage: &str, elapsed: Duration) {
    metrics::histogram!("encaisse_stage_duration_seconds", "stage" => stage.to_string())
        .record(elapsed.as_secs_f64());
}

pub fn burst(stage: &str, size: usize) {
    metrics::histogram!("encaisse_stage_burst_size", "stage" => stage.to_string())
        .record(size as f64);
}

pub fn retried(stage: &str, kind: &str) {
    metrics::counter!(
        "encaisse_stage_retried_total",
        "stage" => stage.to_string(),
        "kind" => kind.to_string()
    )
    .increment(1);
}

pub fn parked(stage: &str, class: &str, kind: &str) {
    metrics::counter!(
        "encaisse_stage_parked_total",
        "stage" => stage.to_string(),
        "class" => class.to_string(),
        "kind" => kind.to_string()
    )
    .increment(1);
}

pub fn duplicate(stage: &str) {
    metrics::counter!("encaisse_stage_duplicates_total", "stage" => stage.to_string()).increment(1);
}

pub fn connected(up: bool) {
    metrics::gauge!("encaisse_broker_connected").set(if up { 1.0 } else { 0.0 });
}

pub fn reconnect() {
    metrics::counter!("encaisse_broker_reconnects_total").increment(1);
}

pub fn confirmed(count: usize) {
    metrics::counter!("encaisse_publish_confirmed_total").increment(count as u64);
}

pub fn publish_failed(reason: &'static str) {
    metrics::counter!("encaisse_publish_failed_total", "reason" => reason).increment(1);
}

pub fn drained(drain: &str) {
    metrics::counter!("encaisse_drain_messages_total", "drain" => drain.to_string()).increment(1);
}

/// Registers a drain's counters at 0 (its failures are alerted on with `rate()`, which needs
/// the series before the first failure).
pub fn register_drain(drain: &str) {
    metrics::counter!("encaisse_drain_messages_total", "drain" => drain.to_string()).increment(0);
    metrics::counter!("encaisse_drain_failures_total", "drain" => drain.to_string()).increment(0);
}

pub fn drain_failed(drain: &str) {
    metrics::counter!("encaisse_drain_failures_total", "drain" => drain.to_string()).increment(1);
}
