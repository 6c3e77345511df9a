//! `encaisse-bench`: the benchmark against the raw broker, and the chaos run
//! (`docs/benchmark.md`).
//!
//! One benchmark run measures, against the real RabbitMQ and a real daemon process:
//!
//! 1. [`baseline`] — what the broker alone carries: N persistent, confirmed messages through
//!    one quorum queue (minimal lapin publisher and consumer);
//! 2. [`pipeline`] — a generated export of N invoices dropped in the inbox of the daemon, to
//!    the last PES Aller file recorded, in invoices/s, with each step's end, who used the
//!    CPU and each stage's figures;
//! 3. [`notify`] — PayFiP notification → `payment.received` latency against the simulator;
//! 4. the daemon's peak RSS ([`procstat`]);
//! 5. [`pes`] — PES writing alone, in titres/s.
//!
//! [`chaos`] drives the same daemon through a SIGKILL and a broker restart while invoices
//! flow, then checks the end state strictly.
//!
//! Everything a run creates lives under its own broker prefix and work directory, deleted
//! at the end (the work directory is kept on failure, or with `keep`).

pub mod baseline;
pub mod broker;
pub mod chaos;
pub mod daemon;
pub mod error;
pub mod export;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod pes;
pub mod pipeline;
pub mod procstat;
pub mod report;
pub mod sampler;
pub mod settings;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use encaisse_payfip::sim::{SimulatorHandle, SimulatorOptions};

pub use error::{BenchError, Result};
pub use report::Report;

use broker::Rabbitmqctl;
use daemon::{DaemonProgram, Launch};
use ledger::LedgerView;
use settings::{PayfipUrls, RunSettings, TENANT};

/// The local broker of the README's set-up.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// How a benchmark runs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub invoices: u64,
    /// Payments of the latency benchmark.
    pub payments: usize,
    /// Payments paid at the same time (1: latency without queueing).
    pub notify_concurrency: usize,
    /// Titres written by PES writing alone (default: min(invoices, 100 000)).
    pub pes_titres: Option<u64>,
    pub amqp_url: String,
    pub rabbitmqctl: Rabbitmqctl,
    /// Parent of the work directory (default: the system's temporary directory).
    pub work_root: Option<PathBuf>,
    /// Keep the work directory (export, ledger, PES files, daemon log) at the end.
    pub keep: bool,
    pub daemon: DaemonProgram,
    /// `[polyfac] max_downstream_backlog` of the daemon (none: its default).
    pub max_downstream_backlog: Option<u64>,
    /// `[polyfac] bundle_size` of the daemon (none: its default).
    pub bundle_size: Option<usize>,
    /// `[polyfac] publish_batch_size` of the daemon (none: its default).
    pub publish_batch_size: Option<usize>,
    /// A PostgreSQL server where the run creates a fresh database for the daemon's ledger
    /// (dropped at the end); none: the SQLite ledger of the data directory.
    pub ledger_admin_url: Option<String>,
    /// Daemons sharing the work (more than one needs `ledger_admin_url`: they share the
    /// PostgreSQL ledger, the broker prefix and the data directory, as a cluster does).
    pub instances: usize,
}

/// The run's directory: kept when asked, or when the run failed (for its daemon log).
pub struct WorkDir {
    pub path: PathBuf,
    keep: bool,
}

impl WorkDir {
    /// `<root>/<name>`, created empty.
    pub fn create(root: Option<&Path>, name: &str, keep: bool) -> Result<Self> {
        let root = root.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = root.join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| BenchError::io(path.display().to_string(), e))?;
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| BenchError::io(path.display().to_string(), e))?;
        Ok(WorkDir { path, keep })
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Generates an export of `invoices` invoices in `<work>/export/<name>`.
    pub fn generate_export(&self, name: &str, invoices: u64) -> Result<export::GeneratedFile> {
        let dir = self.join("export");
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::io(dir.display().to_string(), e))?;
        export::generate(&dir, name, invoices)
    }

    /// Removes the directory unless it is kept; says where it is otherwise.
    pub fn finish(self, succeeded: bool) {
        if succeeded && !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            tracing::info!(path = %self.path.display(), "Work directory kept (export, ledger, files, daemon.log).");
        }
    }
}

/// A broker prefix and directory name no other run uses.
pub fn run_name(kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("encaisse-{kind}-{}-{nanos:x}", std::process::id())
}

fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
}

/// An `invoice.issued` body of the export's mean size: the baseline carries messages as big
/// as the pipeline's.
fn typical_body(export_file: &Path, config: &crate::config::Config) -> Result<Vec<u8>> {
    let mut bodies = Vec::new();
    export::read_invoices(export_file, config, TENANT, |invoice| {
        bodies.push(encaisse_schemas::encode(&invoice));
        if bodies.len() >= 1000 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    let mean = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len().max(1);
    bodies
        .into_iter()
        .min_by_key(|b| b.len().abs_diff(mean))
        .ok_or_else(|| BenchError::Setup("the export holds no valid invoice".into()))
}

/// Runs the whole benchmark.
pub async fn run(options: &BenchOptions) -> Result<Report> {
    let name = run_name("bench");
    let work = WorkDir::create(options.work_root.as_deref(), &name, options.keep)?;
    let outcome = run_in(options, &name, &work).await;
    if let Err(e) = broker::delete_prefix(&options.amqp_url, &options.rabbitmqctl, &name).await {
        tracing::warn!(error = %e, prefix = %name, "Could not delete the run's queues.");
    }
    work.finish(outcome.is_ok());
    outcome
}

async fn run_in(options: &BenchOptions, prefix: &str, work: &WorkDir) -> Result<Report> {
    let load_at_start = procstat::load_average();
    let n = options.invoices;
    let generated = work.generate_export(&format!("FACT_BENCH_{n}.csv"), n)?;
    tracing::info!(
        invoices = generated.tally.invoices,
        lines = generated.tally.lines,
        mb = report::mb(generated.bytes),
        "Export generated."
    );

    // The simulator first: its address goes into the daemon's configuration.
    let sim = Arc::new(
        SimulatorHandle::start(SimulatorOptions {
            serve_contract: false,
            ..SimulatorOptions::default()
        })
        .await
        .map_err(|e| BenchError::Setup(format!("PayFiP simulator: {e}")))?,
    );
    let mut run_settings = RunSettings::for_run(&options.amqp_url, prefix, &work.path)?;
    run_settings.max_downstream_backlog = options.max_downstream_backlog;
    run_settings.bundle_size = options.bundle_size;
    run_settings.publish_batch_size = options.publish_batch_size;
    // Dropped (with its database) when the run ends, after the daemon stopped.
    let database = match &options.ledger_admin_url {
        Some(admin) => {
            let name = prefix.replace(['-', '.'], "_").to_lowercase();
            let database = encaisse_ledger::testing::TestDatabase::create(admin, &name)
                .map_err(|e| BenchError::Setup(format!("cannot create the run's database: {e}")))?;
            run_settings.ledger_url = Some(database.url.clone());
            Some(database)
        }
        None => None,
    };
    let base_url = run_settings.base_url();
    run_settings.payfip = Some(PayfipUrls {
        soap_url: sim.soap_url(),
        payment_page_url: sim.payment_page_url(),
        classic_url: sim.classic_url(),
        public_base_url: base_url.clone(),
    });
    if options.instances > 1 {
        if options.ledger_admin_url.is_none() {
            return Err(BenchError::Setup(
                "several daemons (--instances) need a PostgreSQL ledger (--ledger-url)".into(),
            ));
        }
        run_settings.cluster = true;
    }
    let config_path = work.join("encaisse-bench.toml");
    let config = run_settings.write(&config_path)?;
    // The other daemons: the same configuration but their own HTTP port.
    let mut others = Vec::new();
    for i in 2..=options.instances {
        let settings = RunSettings {
            listen: settings::free_local_addr()?,
            ..run_settings.clone()
        };
        let path = work.join(&format!("encaisse-bench-{i}.toml"));
        settings.write(&path)?;
        others.push(Launch {
            program: options.daemon.clone(),
            config: path,
            base_url: settings.base_url(),
            log: work.join(&format!("daemon-{i}.log")),
        });
    }

    tracing::info!(messages = n, "Raw broker baseline.");
    let baseline = baseline::run(&baseline::BaselineSettings {
        amqp_url: options.amqp_url.clone(),
        queue: format!("{prefix}.baseline"),
        messages: n,
        body: typical_body(&generated.path, &config)?,
        confirm_window: config.broker.confirm_window,
        prefetch: config.broker.prefetch,
    })
    .await?;
    tracing::info!(msgs_per_s = baseline.msgs_per_s, "Baseline measured.");

    let http = reqwest::Client::new();
    let launch = Launch {
        program: options.daemon.clone(),
        config: config_path,
        base_url: base_url.clone(),
        log: work.join("daemon.log"),
    };
    let mut daemon = launch.start(&http, Duration::from_secs(60)).await?;
    let mut other_daemons = Vec::new();
    for other in &others {
        other_daemons.push(other.start(&http, Duration::from_secs(60)).await?);
    }
    let ledger = LedgerView::of(&config).await?;
    let broker_pid = options.rabbitmqctl.os_pid();
    let work_queues = sampler::work_queues(&options.rabbitmqctl, prefix)?;

    let pipeline = pipeline::run(
        &mut daemon,
        pipeline::PipelineInput {
            http: &http,
            ledger: &ledger,
            ctl: &options.rabbitmqctl,
            prefix,
            config: &config,
            tenant: TENANT,
            export: &generated,
            broker_pid,
            timeout: Duration::from_secs(300) + Duration::from_millis(5 * n),
            amqp_url: &options.amqp_url,
            work_queues,
        },
    )
    .await?;
    let bound = config.polyfac.max_downstream_backlog;
    let burst = config.polyfac.publish_batch_size as u64;
    let bundle_size = config.polyfac.bundle_size.max(1) as u64;
    // The bound counts invoices; a queue message carries up to `bundle_size` of them, and
    // the ingest waits on `bound / bundle_size` messages.
    let bound_messages = (bound / bundle_size).max(1) + burst.div_ceil(bundle_size);
    let backlog_bound_held = pipeline
        .max_queue_depth
        .values()
        .all(|depth| *depth <= bound_messages);
    if !backlog_bound_held {
        tracing::warn!(bound, burst, bundle_size, bound_messages, depths = ?pipeline.max_queue_depth, "A work queue went deeper than max_downstream_backlog plus one batch.");
    }
    let rss_after_pipeline = daemon.peak_rss_bytes().unwrap_or(0);

    tracing::info!(payments = options.payments, "Notification latency.");
    let notify_sampler = sampler::Sampler::start(daemon.pid(), "", Vec::new()).await?;
    let notify = notify::run(notify::NotifyInput {
        amqp_url: &options.amqp_url,
        prefix,
        base_url: &base_url,
        http: &http,
        ledger: &ledger,
        sim: sim.clone(),
        payments: options.payments,
        concurrency: options.notify_concurrency,
    })
    .await?;
    let notify_samples = notify_sampler.stop().await;
    let mut phases = pipeline.phases.clone();
    let notify_secs = notify_samples.rss.last().map_or(0.0, |(t, _)| *t);
    phases.push(pipeline::PhasePeak::of(
        "notification",
        &notify_samples,
        0.0,
        notify_secs,
    ));
    let peak_rss = daemon.peak_rss_bytes().unwrap_or(0);
    let status = daemon.terminate(Duration::from_secs(60))?;
    if !status.success() {
        return Err(BenchError::Daemon(format!(
            "the daemon stopped with {status}; see {}",
            launch.log.display()
        )));
    }
    for (other, launch) in other_daemons.into_iter().zip(&others) {
        let status = other.terminate(Duration::from_secs(60))?;
        if !status.success() {
            return Err(BenchError::Daemon(format!(
                "a daemon stopped with {status}; see {}",
                launch.log.display()
            )));
        }
    }

    let pes_titres = options.pes_titres.unwrap_or(n.min(100_000));
    tracing::info!(titres = pes_titres, "PES writing alone.");
    let pes = pes::run(
        &generated.archived(&config, TENANT),
        &config,
        TENANT,
        pes_titres,
        &work.path,
    )?;

    let ratio = pipeline.invoices_per_s / baseline.msgs_per_s.max(1e-9);
    drop(database);
    Ok(Report {
        ledger: if options.ledger_admin_url.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
        .into(),
        instances: options.instances.max(1),
        invoices: n,
        baseline_msgs_per_s: baseline.msgs_per_s,
        pipeline_invoices_per_s: pipeline.invoices_per_s,
        ratio,
        notify_p50_ms: notify.p50_ms,
        notify_p99_ms: notify.p99_ms,
        peak_rss_mb: report::mb(peak_rss),
        peak_rss_after_pipeline_mb: report::mb(rss_after_pipeline),
        phases,
        max_queue_depth: pipeline.max_queue_depth.clone(),
        backlog_bound: bound,
        bundle_size,
        backlog_bound_messages: bound_messages,
        backlog_bound_held,
        pes_titres_per_s: pes.titres_per_s,
        machine: report::Machine {
            cores: procstat::cores(),
            cpu_model: cpu_model(),
            load_at_start,
            load_at_end: procstat::load_average(),
            rabbitmq_url: crate::commands::check::redact_url(&options.amqp_url),
            daemon: options.daemon.describe(),
        },
        baseline,
        pipeline,
        notify,
        pes,
    })
}
