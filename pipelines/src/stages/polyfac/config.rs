//! `[polyfac]`: settings of the Polyfac stages (`polyfac.ingest`, `polyfac.export`). Every
//! field has a default, so the section may be absent. How each source's files are read is
//! `[sources.<name>]` (`encaisse_polyfac::config::SourceMapping`), not this section.

use std::time::Duration;

use encaisse_schemas::tenant::ConfigIssue;
use serde::{Deserialize, Serialize};

use crate::stages::inbox::{
    InboxWatchConfig, WatchSettings, default_inbox_poll_interval_ms, default_inbox_settle_ms,
};

/// `[polyfac]`: inbox watching, publishing batches, REGLEMENTS flushing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolyfacStagesConfig {
    /// Time between two scans of every tenant's `polyfac/inbox`, in milliseconds
    /// (default 2000).
    #[serde(default = "default_inbox_poll_interval_ms")]
    pub inbox_poll_interval_ms: u64,
    /// How long an export's size and modification time must stay unchanged before it is
    /// read, in milliseconds (default 2000): a file still being copied is never read
    /// half-way. 0 reads files as soon as they are seen (only for files renamed into the
    /// inbox).
    #[serde(default = "default_inbox_settle_ms")]
    pub inbox_settle_ms: u64,
    /// How many `invoice.issued` the ingest publishes per confirmed batch (default 1000). Each
    /// batch is checked against the ledger first and recorded after the broker confirmed it;
    /// one batch is published while the next is decided. Larger batches go faster (each
    /// waits twice for a ledger commit: 1000 measured about 10 % more invoices/s than 500, for
    /// 13 MB more peak memory), smaller ones re-send less after a crash (at most the two
    /// batches in flight, with the same message ids, which consumers deduplicate).
    #[serde(default = "default_publish_batch_size")]
    pub publish_batch_size: usize,
    /// How many invoices of a batch travel in one AMQP message (default 100; 1–1000). The
    /// ingest packs the batch's events of one routing key into bundles
    /// (`encaisse_pipelines::bundle`): one broker crossing per bundle instead of one per
    /// invoice and consumer, which is most of the pipeline's cost on a big export. Each
    /// stage still handles, deduplicates, retries and parks every invoice on its own. 1
    /// publishes every invoice as its own `invoice.issued` (for a consumer outside encaisse
    /// that does not read bundles).
    #[serde(default = "default_bundle_size")]
    pub bundle_size: usize,
    /// How often pending REGLEMENTS lines are written to a new file in each tenant's
    /// `polyfac/outbox`, in seconds (default 60). Files are also written at midnight
    /// (Europe/Paris), when the day's file rolls. Each flush with new lines writes the next
    /// `<seq>` of the day: a written file is never changed.
    #[serde(default = "default_flush_interval_secs")]
    pub flush_interval_secs: u64,
    /// Back-pressure on a big export (default 10000): before publishing its next batch, the
    /// ingest waits while a work queue its invoices are routed to (`helios.titres`,
    /// `payfip.register`, `polyfac.export`, `sepa.batch`, …) holds more than this many ready
    /// messages. A queue then holds at most this bound plus one batch, so the broker's
    /// memory and disk stay bounded whatever the export's size, and the stages are not
    /// slowed by queues hundreds of thousands deep. Counted in invoices: with bundles the
    /// ingest waits while a queue holds more than this ÷ `bundle_size` messages. At least
    /// `publish_batch_size`.
    #[serde(default = "default_max_downstream_backlog")]
    pub max_downstream_backlog: u64,
}

fn default_publish_batch_size() -> usize {
    1000
}

fn default_bundle_size() -> usize {
    100
}

fn default_flush_interval_secs() -> u64 {
    60
}

fn default_max_downstream_backlog() -> u64 {
    10_000
}

/// Largest accepted backlog bound: beyond, the bound no longer protects the broker.
const MAX_BACKLOG: u64 = 10_000_000;

/// Largest accepted batch: the publisher's confirm window bounds what is in flight anyway,
/// and two batches' events are held in memory.
const MAX_PUBLISH_BATCH: usize = 10_000;

/// Largest bundle: about 1.1 KB per invoice keeps a bundle near a megabyte, well under the
/// broker's message size limit, and bounds what one delivery makes a stage hold.
const MAX_BUNDLE: usize = 1_000;

impl Default for PolyfacStagesConfig {
    fn default() -> Self {
        PolyfacStagesConfig {
            inbox_poll_interval_ms: default_inbox_poll_interval_ms(),
            inbox_settle_ms: default_inbox_settle_ms(),
            publish_batch_size: default_publish_batch_size(),
            bundle_size: default_bundle_size(),
            flush_interval_secs: default_flush_interval_secs(),
            max_downstream_backlog: default_max_downstream_backlog(),
        }
    }
}

impl PolyfacStagesConfig {
    /// The inbox watcher's timing (the same rules as `[helios]` and `[sepa]`).
    fn inbox(&self) -> InboxWatchConfig {
        InboxWatchConfig {
            inbox_poll_interval_ms: self.inbox_poll_interval_ms,
            inbox_settle_ms: self.inbox_settle_ms,
        }
    }

    /// The inbox watcher's settings.
    pub fn watch(&self) -> WatchSettings {
        self.inbox().watch()
    }

    /// The REGLEMENTS flush interval.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_secs(self.flush_interval_secs.max(1))
    }

    /// Problems a person must fix, each naming its field under `prefix` (`polyfac`).
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let mut issues = self.inbox().validate(prefix);
        if !(1..=MAX_PUBLISH_BATCH).contains(&self.publish_batch_size) {
            issues.push(ConfigIssue::new(
                format!("{prefix}.publish_batch_size"),
                format!("must be between 1 and {MAX_PUBLISH_BATCH}"),
            ));
        }
        if !(1..=MAX_BUNDLE).contains(&self.bundle_size) {
            issues.push(ConfigIssue::new(
                format!("{prefix}.bundle_size"),
                format!("must be between 1 (no bundles) and {MAX_BUNDLE}"),
            ));
        }
        if self.flush_interval_secs == 0 {
            issues.push(ConfigIssue::new(
                format!("{prefix}.flush_interval_secs"),
                "must be at least 1",
            ));
        }
        let least = self.publish_batch_size.max(1) as u64;
        if !(least..=MAX_BACKLOG).contains(&self.max_downstream_backlog) {
            issues.push(ConfigIssue::new(
                format!("{prefix}.max_downstream_backlog"),
                format!(
                    "must be between publish_batch_size ({least}) and {MAX_BACKLOG}: a smaller bound would stop the ingest before its first batch"
                ),
            ));
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_field() {
        assert!(
            PolyfacStagesConfig::default()
                .validate("polyfac")
                .is_empty()
        );
        let bad = PolyfacStagesConfig {
            inbox_poll_interval_ms: 0,
            inbox_settle_ms: 0,
            publish_batch_size: 0,
            bundle_size: 0,
            flush_interval_secs: 0,
            max_downstream_backlog: 0,
        };
        let fields: Vec<String> = bad
            .validate("polyfac")
            .into_iter()
            .map(|i| i.field)
            .collect();
        assert_eq!(
            fields,
            [
                "polyfac.inbox_poll_interval_ms",
                "polyfac.publish_batch_size",
                "polyfac.bundle_size",
                "polyfac.flush_interval_secs",
                "polyfac.max_downstream_backlog"
            ]
        );
        let under_a_batch = PolyfacStagesConfig {
            publish_batch_size: 1000,
            max_downstream_backlog: 999,
            ..PolyfacStagesConfig::default()
        };
        assert_eq!(
            under_a_batch.validate("polyfac")[0].field,
            "polyfac.max_downstream_backlog"
        );
    }
}
