//! The whole pipeline: a generated export is renamed into the tenant's inbox of a running
//! daemon and timed until the last PES Aller file is recorded — `polyfac.ingest` reads,
//! validates, enriches and publishes every invoice (confirmed) and the run's
//! `billing_run.closed`; `helios.titres` collects each invoice (with `payfip.register`,
//! `polyfac.export` and `sepa.batch` consuming the same events), closes the run, numbers,
//! plans, renders and writes the files. The ledger's own timestamps give each step's end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::broker::Rabbitmqctl;
use super::daemon::Daemon;
use super::error::{BenchError, Result};
use super::export::GeneratedFile;
use super::ledger::LedgerView;
use super::metrics::{self, StageFigures};
use super::procstat::{CpuShare, CpuSnapshot};
use super::sampler::{Sampler, Samples};
use crate::config::Config;

/// What the pipeline measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineResult {
    pub invoices: u64,
    pub export_lines: u64,
    pub export_bytes: u64,
    /// Invoices `polyfac.ingest` published.
    pub published: u64,
    /// Invoices it rejected (invalid or refused).
    pub ingest_rejected: u64,
    /// Titres written in PES Aller files.
    pub titres: u64,
    /// Invoices `helios.titres` refused before numbering (reported, in no file).
    pub helios_refused: u64,
    pub pes_files: u64,
    /// From the drop to the last PES file recorded.
    pub secs: f64,
    /// `invoices / secs`.
    pub invoices_per_s: f64,
    /// From the drop to the end of each step (ledger timestamps).
    pub ingest_closed_secs: Option<f64>,
    pub helios_collected_secs: Option<f64>,
    pub last_file_planned_secs: Option<f64>,
    /// From the drop until every queue of the run was empty (the other consumers of
    /// `invoice.issued` done too).
    pub drained_secs: Option<f64>,
    /// Who used the CPU from the drop to the last PES file.
    pub cpu: CpuShare,
    /// The daemon's largest resident memory seen while polling (every 100 ms), in MB, and
    /// when (seconds since the drop): which step holds the memory.
    pub max_rss_seen_mb: f64,
    pub max_rss_seen_at_secs: f64,
    /// Per stage, from the daemon's `/metrics` once drained.
    pub stages: Vec<StageFigures>,
    /// The largest RSS sampled in each phase, from the drop to every queue empty.
    pub phases: Vec<PhasePeak>,
    /// The deepest ready-message count sampled in each work queue (every 300 ms).
    pub max_queue_depth: BTreeMap<String, u64>,
}

/// One phase of a run (a window of time: phases of a pipeline overlap in reality, the
/// collection starts while the ingest runs) and the daemon's largest RSS sampled in it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhasePeak {
    pub phase: &'static str,
    /// Seconds since the drop (the notification phase: since its own start).
    pub from_secs: f64,
    pub to_secs: f64,
    pub peak_rss_mb: Option<f64>,
}

impl PhasePeak {
    /// The phase `(from, to]` of `samples` (seconds since the drop).
    pub fn of(phase: &'static str, samples: &Samples, from: f64, to: f64) -> Self {
        PhasePeak {
            phase,
            from_secs: from,
            to_secs: to,
            peak_rss_mb: samples.peak_rss_between(from, to).map(super::report::mb),
        }
    }
}

/// The pipeline's phases, from the ledger's step ends: ingest (drop → run closed),
/// collection (→ `helios.titres` collected every invoice), planning (→ last file planned),
/// PES writing (→ last file written), reconciliation (→ every queue empty: `polyfac.export`
/// and `payfip.register` finish their share).
fn phases(
    samples: &Samples,
    steps: [Option<f64>; 3],
    written: f64,
    drained: f64,
) -> Vec<PhasePeak> {
    let ends = [steps[0], steps[1], steps[2], Some(written), Some(drained)];
    let names = [
        "ingest",
        "collection",
        "planning",
        "pes_writing",
        "reconciliation",
    ];
    let mut out = Vec::new();
    let mut from = 0.0;
    for (name, end) in names.into_iter().zip(ends) {
        let to = end.unwrap_or(from).max(from);
        out.push(PhasePeak::of(name, samples, from, to));
        from = to;
    }
    out
}

/// What the pipeline needs.
pub struct PipelineInput<'a> {
    pub http: &'a reqwest::Client,
    pub ledger: &'a LedgerView,
    pub ctl: &'a Rabbitmqctl,
    pub prefix: &'a str,
    pub config: &'a Config,
    pub tenant: &'a str,
    pub export: &'a GeneratedFile,
    pub broker_pid: Option<u32>,
    /// Longest wait for the last PES file.
    pub timeout: Duration,
    /// The broker, for the queue depth sampling.
    pub amqp_url: &'a str,
    /// The work queues whose depth is sampled.
    pub work_queues: Vec<String>,
}

fn secs_since(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Option<f64> {
    end.map(|e| (e - start).num_microseconds().unwrap_or(0) as f64 / 1e6)
}

/// Drops the export and waits for the last PES file, then for empty queues.
pub async fn run(daemon: &mut Daemon, input: PipelineInput<'_>) -> Result<PipelineResult> {
    let PipelineInput {
        http,
        ledger,
        ctl,
        prefix,
        config,
        tenant,
        export,
        broker_pid,
        timeout,
        amqp_url,
        work_queues,
    } = input;
    let sampler = Sampler::start(daemon.pid(), amqp_url, work_queues).await?;
    let before = CpuSnapshot::take(Some(daemon.pid()), broker_pid);
    let dropped_at = Utc::now();
    let started = Instant::now();
    export.drop_into(config, tenant)?;
    tracing::info!(file = %export.name, invoices = export.tally.invoices, "Export dropped in the inbox.");

    let mut last_log = Instant::now();
    let mut titres_expected = None;
    let (run, progress) = loop {
        daemon.ensure_alive()?;
        if started.elapsed() > timeout {
            return Err(BenchError::Daemon(format!(
                "no complete PES output within {timeout:?}; last log lines:\n{}",
                daemon.log_tail(20)
            )));
        }
        if let Some(run) = ledger.ingest_run(tenant, &export.name)? {
            let expected = match titres_expected {
                Some(n) => n,
                None => {
                    let n = ledger.titres_issued(tenant, &run.run_id)?;
                    titres_expected = Some(n);
                    n
                }
            };
            let progress = ledger.helios_progress(tenant, &run.run_id)?;
            if progress.files_unwritten == 0
                && progress.titres_written + progress.refused == expected
            {
                break (run, progress);
            }
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            last_log = Instant::now();
            tracing::info!(
                elapsed_secs = started.elapsed().as_secs(),
                published = ledger.issued(tenant)?,
                collected_by_helios = ledger.helios_collected(tenant)?,
                "Pipeline running."
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after = CpuSnapshot::take(Some(daemon.pid()), broker_pid);
    let timeline = ledger.timeline(tenant, &run.run_id)?;
    let secs = secs_since(dropped_at, timeline.last_file_written)
        .unwrap_or_else(|| started.elapsed().as_secs_f64());
    tracing::info!(
        secs,
        titres = progress.titres_written,
        "Last PES file recorded."
    );

    let drained_secs = wait_drained(ctl, prefix, started, timeout).await?;
    let samples = sampler.stop().await;
    let (max_rss_at, max_rss) = samples
        .rss
        .iter()
        .filter(|(t, _)| *t <= secs)
        .max_by_key(|(_, rss)| *rss)
        .copied()
        .unwrap_or_default();
    let phases = phases(
        &samples,
        [
            secs_since(dropped_at, timeline.ingest_closed),
            secs_since(dropped_at, timeline.helios_collected),
            secs_since(dropped_at, timeline.last_file_planned),
        ],
        secs,
        drained_secs.unwrap_or_else(|| started.elapsed().as_secs_f64()),
    );
    let stages = metrics::fetch(http, &daemon.base_url).await?;
    Ok(PipelineResult {
        invoices: export.tally.invoices,
        export_lines: export.tally.lines,
        export_bytes: export.bytes,
        published: run.invoices,
        ingest_rejected: run.refused,
        titres: progress.titres_written,
        helios_refused: progress.refused,
        pes_files: progress.files_written,
        secs,
        invoices_per_s: export.tally.invoices as f64 / secs.max(1e-6),
        ingest_closed_secs: secs_since(dropped_at, timeline.ingest_closed),
        helios_collected_secs: secs_since(dropped_at, timeline.helios_collected),
        last_file_planned_secs: secs_since(dropped_at, timeline.last_file_planned),
        drained_secs,
        cpu: before.share_until(&after),
        max_rss_seen_mb: super::report::mb(max_rss),
        max_rss_seen_at_secs: max_rss_at,
        stages,
        phases,
        max_queue_depth: samples.max_depth,
    })
}

/// Seconds from `started` until every queue of the prefix was seen empty twice in a row,
/// half a second apart (`None` if not within `timeout`).
pub async fn wait_drained(
    ctl: &Rabbitmqctl,
    prefix: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Option<f64>> {
    let mut empty_since: Option<f64> = None;
    while started.elapsed() < timeout {
        let busy: u64 = ctl.work_queues(prefix)?.iter().map(|q| q.total()).sum();
        if busy == 0 {
            match empty_since {
                Some(at) => return Ok(Some(at)),
                None => empty_since = Some(started.elapsed().as_secs_f64()),
            }
        } else {
            empty_since = None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(None)
}
