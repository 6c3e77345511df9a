//! The chaos run (`scripts/chaos.sh`): while N invoices flow through a real daemon, the
//! daemon is killed with SIGKILL once and restarted, and the broker is restarted once; then
//! the end state is checked strictly ([`checks`]).
//!
//! The faults are placed by progress, not by time, so they hit the same phase on a fast or
//! a slow machine: the SIGKILL once `polyfac.ingest` has published 30 % of the invoices (the
//! ingest is half-way through the file, `helios.titres` collecting behind it), the broker
//! restart once `helios.titres` has collected half of them (after the daemon's restart).
//! The counts at each fault are printed. The broker is always started again, even when the
//! run fails (`broker::BrokerStopped`). The verdict waits for the daemon to be back on the
//! broker and for the queues to drain ([`end`]), each within the run's timeout.

pub mod checks;
pub mod cluster;
pub mod end;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::broker::{self, BrokerStopped, Rabbitmqctl};
use super::daemon::{Daemon, DaemonProgram, Launch};
use super::error::{BenchError, Result};
use super::ledger::LedgerView;
use super::metrics::{self, StageFigures};
use super::settings::{RunSettings, TENANT};
use super::{WorkDir, run_name};

/// Short delay tiers: a message that failed during a fault comes back within seconds, so
/// the run ends soon after the flow (the production default starts at 5 s).
pub const TIERS_SECS: [u64; 3] = [1, 2, 5];

/// Longest wait for the daemon to be ready (a debug build, the broker just restarted).
const READY: Duration = Duration::from_secs(120);

/// The queues count as drained once this many listings in a row, spanning [`SETTLE`], show
/// every one empty (a listing takes a few hundred ms of `rabbitmqctl`).
const DRAIN_POLLS: u32 = 4;
const SETTLE: Duration = Duration::from_secs(3);

/// How a chaos run goes.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub invoices: u64,
    pub amqp_url: String,
    pub rabbitmqctl: Rabbitmqctl,
    pub work_root: Option<PathBuf>,
    pub keep: bool,
    pub daemon: DaemonProgram,
    /// How long the broker stays stopped.
    pub broker_down: Duration,
    /// Longest wait for the end state after the faults.
    pub timeout: Duration,
    /// Several daemons on one PostgreSQL ledger ([`cluster`]); `None`: one daemon on SQLite.
    pub cluster: Option<cluster::ClusterRun>,
}

/// What happened, and the end state's counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChaosReport {
    pub invoices: u64,
    pub export_lines: u64,
    /// Invoices published when the daemon was killed.
    pub killed_at_published: u64,
    /// Invoices `helios.titres` had collected when the daemon was killed.
    pub killed_at_collected: u64,
    /// Invoices `helios.titres` had collected when the broker was stopped.
    pub broker_stopped_at_collected: u64,
    pub broker_down_secs: f64,
    /// From the broker's return to the daemon connected again (topology, consumers).
    pub reconnect_secs: f64,
    /// From the drop to the end state.
    pub secs: f64,
    /// The restarted daemon's stage figures (redeliveries recognised, retries).
    pub stages: Vec<StageFigures>,
    pub counts: checks::Counts,
    /// Every failed check (empty: the run passed).
    pub failures: Vec<String>,
    /// Daemons of the run (1: the SQLite run).
    pub instances: usize,
    /// From the SIGKILL of the daemon holding `polyfac.ingest` to the lease held by a
    /// survivor (cluster runs).
    pub failover_secs: Option<f64>,
}

impl ChaosReport {
    /// The summary printed by `scripts/chaos.sh`.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut out = format!(
            "chaos: {} invoices ({} lines) in {:.1} s\n\
             faults: SIGKILL at {} published / {} collected by helios.titres, then restart; \
             broker stopped {:.1} s at {} collected, daemon reconnected {:.1} s after its return\n\
             ingest: {} valid, {} rejected\n\
             PES: {} file(s), {} bordereau(x), {} titres ({} distinct invoices); expected {} titres, {} refused by Hélios rules\n\
             ledger: {} titres, {} refusals, {} titre_emitted facts; {} queues checked; {} parked\n",
            self.invoices,
            self.export_lines,
            self.secs,
            self.killed_at_published,
            self.killed_at_collected,
            self.broker_down_secs,
            self.broker_stopped_at_collected,
            self.reconnect_secs,
            c.valid_invoices,
            c.rejected_by_ingest,
            c.pes_files,
            c.bordereaux,
            c.titres_in_files,
            c.distinct_invoices_in_files,
            c.expected_titres,
            c.expected_refused_by_helios,
            c.ledger_titres,
            c.ledger_refused,
            c.titre_emitted_facts,
            c.queues_checked,
            c.parked,
        );
        if let Some(failover) = self.failover_secs {
            out.push_str(&format!(
                "cluster: {} daemons on one PostgreSQL ledger; the killed daemon's ingest lease moved to a survivor in {failover:.1} s\n",
                self.instances
            ));
        }
        for s in self
            .stages
            .iter()
            .filter(|s| s.processed + s.duplicates + s.retried + s.parked > 0)
        {
            out.push_str(&format!(
                "  after the restart, {}: processed {}, duplicates {}, retried {}, parked {}\n",
                s.stage, s.processed, s.duplicates, s.retried, s.parked
            ));
        }
        if self.failures.is_empty() {
            out.push_str("chaos: all checks passed\n");
        } else {
            out.push_str(&format!(
                "chaos: {} check(s) FAILED:\n",
                self.failures.len()
            ));
            for f in &self.failures {
                out.push_str(&format!("  - {f}\n"));
            }
        }
        out
    }
}

/// Waits until `done` holds, the daemon alive meanwhile ([`cluster::wait_until`]).
async fn wait_until(
    daemon: &mut Daemon,
    what: &str,
    timeout: Duration,
    done: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    cluster::wait_until(std::slice::from_mut(daemon), what, timeout, done).await
}

/// The daemon's link to the broker, from its `/metrics` (nothing while it does not answer).
async fn broker_link(http: &reqwest::Client, base_url: &str) -> end::BrokerLink {
    metrics::fetch_text(http, base_url)
        .await
        .map(|text| end::BrokerLink::parse(&text))
        .unwrap_or_default()
}

/// Runs the chaos run. `Ok` carries the report, whose `failures` say whether it passed.
pub async fn run(options: &ChaosOptions) -> Result<ChaosReport> {
    let name = run_name("chaos");
    let work = WorkDir::create(options.work_root.as_deref(), &name, options.keep)?;
    let outcome = match &options.cluster {
        Some(cluster) => cluster::run_in(options, cluster, &name, &work).await,
        None => run_in(options, &name, &work).await,
    };
    let passed = matches!(&outcome, Ok(r) if r.failures.is_empty());
    if passed
        && let Err(e) = broker::delete_prefix(&options.amqp_url, &options.rabbitmqctl, &name).await
    {
        tracing::warn!(error = %e, prefix = %name, "Could not delete the run's queues.");
    }
    work.finish(passed);
    outcome
}

async fn run_in(options: &ChaosOptions, prefix: &str, work: &WorkDir) -> Result<ChaosReport> {
    let n = options.invoices;
    let generated = work.generate_export(&format!("FACT_CHAOS_{n}.csv"), n)?;
    let run_settings = RunSettings {
        tiers_secs: TIERS_SECS.to_vec(),
        ..RunSettings::for_run(&options.amqp_url, prefix, &work.path)?
    };
    let base_url = run_settings.base_url();
    let config_path = work.join("encaisse-chaos.toml");
    let config = run_settings.write(&config_path)?;
    let expected = checks::expected(&generated.path, &config, TENANT)?;
    tracing::info!(
        invoices = generated.tally.invoices,
        valid = expected.valid.len(),
        titres = expected.titres(),
        "Export generated and read back."
    );

    let http = reqwest::Client::new();
    let launch = Launch {
        program: options.daemon.clone(),
        config: config_path,
        base_url: base_url.clone(),
        log: work.join("daemon.log"),
    };
    let mut daemon = launch.start(&http, READY).await?;
    let ledger = LedgerView::of(&config).await?;
    let started = Instant::now();
    generated.drop_into(&config, TENANT)?;

    // Fault 1: SIGKILL while the ingest is half-way.
    let kill_at = (n * 3 / 10).max(1);
    wait_until(
        &mut daemon,
        "30 % of the invoices published",
        options.timeout,
        async || {
            Ok(ledger.issued(TENANT)? >= kill_at
                || ledger.ingest_run(TENANT, &generated.name)?.is_some())
        },
    )
    .await?;
    let killed_at_published = ledger.issued(TENANT)?;
    let killed_at_collected = ledger.helios_collected(TENANT)?;
    daemon.kill()?;
    tracing::warn!(
        published = killed_at_published,
        collected = killed_at_collected,
        "Daemon killed (SIGKILL)."
    );
    let mut daemon = launch.start(&http, READY).await?;
    tracing::info!("Daemon restarted.");

    // Fault 2: the broker restarted while helios.titres collects.
    let titres = expected.titres() as u64;
    wait_until(
        &mut daemon,
        "half of the titres collected",
        options.timeout,
        async || Ok(ledger.helios_collected(TENANT)? >= titres / 2),
    )
    .await?;
    let broker_stopped_at_collected = ledger.helios_collected(TENANT)?;
    let queues_before: Vec<String> = options
        .rabbitmqctl
        .work_queues(prefix)?
        .into_iter()
        .map(|q| q.name)
        .collect();
    let reconnection = end::Reconnection::after(broker_link(&http, &base_url).await);
    let stopped = BrokerStopped::stop(&options.rabbitmqctl)?;
    let down = Instant::now();
    tracing::warn!(
        collected = broker_stopped_at_collected,
        "Broker stopped (rabbitmqctl stop_app)."
    );
    tokio::time::sleep(options.broker_down).await;
    stopped.restore()?;
    let broker_down_secs = down.elapsed().as_secs_f64();
    tracing::info!(down_secs = broker_down_secs, "Broker started again.");
    let back = Instant::now();
    wait_until(
        &mut daemon,
        "the daemon connected to the restarted broker",
        options.timeout,
        async || Ok(reconnection.done(broker_link(&http, &base_url).await)),
    )
    .await?;
    let reconnect_secs = back.elapsed().as_secs_f64();
    tracing::info!(reconnect_secs, "Daemon reconnected.");

    // The end state: every titre written, every queue empty.
    let expected_titres = titres;
    let expected_refused = expected.refused() as u64;
    wait_until(
        &mut daemon,
        "every titre written",
        options.timeout,
        async || {
            let Some(run) = ledger.ingest_run(TENANT, &generated.name)? else {
                return Ok(false);
            };
            let progress = ledger.helios_progress(TENANT, &run.run_id)?;
            Ok(progress.files_unwritten == 0
                && progress.titres_written + progress.refused >= expected_titres + expected_refused)
        },
    )
    .await?;
    let mut drain = end::DrainWatch::new(queues_before, DRAIN_POLLS, SETTLE);
    let drain_started = Instant::now();
    let mut last = end::Drain::Settling;
    let drained = wait_until(
        &mut daemon,
        "every queue drained",
        options.timeout,
        async || {
            let queues = options.rabbitmqctl.work_queues(prefix)?;
            last = drain.observe(drain_started.elapsed(), &queues);
            if last == end::Drain::Settling {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(last == end::Drain::Drained)
        },
    )
    .await;
    drained.map_err(|e| BenchError::Daemon(format!("{e}\nlast look at the queues: {last:?}")))?;
    let secs = started.elapsed().as_secs_f64();
    let stages = metrics::fetch(&http, &base_url).await.unwrap_or_default();
    let status = daemon.terminate(Duration::from_secs(60))?;

    let (counts, mut failures) = checks::check_all(
        &checks::Outputs {
            data_dir: &config.data_dir,
            tenant: TENANT,
            export_name: &generated.name,
            prefix,
        },
        &expected,
        &ledger,
        &options.rabbitmqctl,
    )?;
    if !status.success() {
        failures.push(format!(
            "the daemon stopped with {status} after SIGTERM (expected 0)"
        ));
    }
    Ok(ChaosReport {
        invoices: n,
        export_lines: generated.tally.lines,
        killed_at_published,
        killed_at_collected,
        broker_stopped_at_collected,
        broker_down_secs,
        reconnect_secs,
        secs,
        stages,
        counts,
        failures,
        instances: 1,
        failover_secs: None,
    })
}
