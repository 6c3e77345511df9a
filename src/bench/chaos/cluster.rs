//! The cluster chaos run (`scripts/chaos.sh --instances 2 --ledger-url postgres://…`):
//! several daemons on one fresh PostgreSQL database, one broker prefix and one data
//! directory; while the export flows, the daemon holding the `polyfac.ingest` lease is
//! killed with SIGKILL (the others take its work over: the failover time is measured from
//! the kill to the lease held by a survivor), then restarted; a broker node is restarted
//! once every daemon is back. The end state is checked as strictly as the one-daemon run
//! ([`super::checks`]) on a snapshot of the PostgreSQL ledger copied into an SQLite file
//! (`encaisse_ledger::transfer::snapshot_into_sqlite`), after both daemons stopped, and no
//! lease may be left held.
//!
//! Progress is read from PostgreSQL while the daemons run ([`Progress`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use encaisse_ledger::testing::TestDatabase;
use encaisse_ledger::{ClusterStore, Ledger, LedgerError, LedgerUrl};

use super::super::WorkDir;
use super::super::broker::{BrokerStopped, Rabbitmqctl};
use super::super::daemon::{Daemon, Launch};
use super::super::error::{BenchError, Result};
use super::super::ledger::LedgerView;
use super::super::metrics;
use super::super::settings::{RunSettings, TENANT};
use super::{
    ChaosOptions, ChaosReport, DRAIN_POLLS, READY, SETTLE, TIERS_SECS, broker_link, checks, end,
};

/// The lease the killed daemon holds: the inbox watcher reading the export.
const INGEST_LEASE: &str = "polyfac.ingest";
/// Lease time to live of the run's daemons: a short failover, still three renewals.
const LEASE_TTL_MS: u64 = 5_000;

/// A cluster run's settings.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// Daemons sharing the work (2 or more).
    pub instances: usize,
    /// A PostgreSQL server where the run may create its database
    /// (`postgres://postgres@127.0.0.1:5432/postgres`).
    pub ledger_admin_url: String,
    /// The broker node restarted (`rabbitmqctl -n`); default: the run's node.
    pub restart_node: Option<String>,
}

/// The run's progress, read from its PostgreSQL ledger.
struct Progress {
    ledger: Ledger,
}

fn count(e: LedgerError) -> BenchError {
    BenchError::Daemon(format!("reading the PostgreSQL ledger: {e}"))
}

impl Progress {
    async fn one(&self, sql: &'static str, params: Vec<String>) -> Result<u64> {
        let n: i64 = self
            .ledger
            .inspect(move |tx| {
                let refs: Vec<&dyn encaisse_ledger::sql::Param> = params
                    .iter()
                    .map(|p| p as &dyn encaisse_ledger::sql::Param)
                    .collect();
                tx.query_one(sql, &refs, |r| r.get(0))
            })
            .await
            .map_err(count)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn issued(&self) -> Result<u64> {
        self.one(
            "SELECT CAST(count(*) AS BIGINT) FROM polyfac_issued WHERE tenant = ?1",
            vec![TENANT.into()],
        )
        .await
    }

    async fn collected(&self) -> Result<u64> {
        self.one(
            "SELECT CAST(count(*) AS BIGINT) FROM batch_item
             WHERE stage = 'helios.titres' AND tenant = ?1",
            vec![TENANT.into()],
        )
        .await
    }

    async fn run_id(&self, file: &str) -> Result<Option<String>> {
        let file = file.to_string();
        self.ledger
            .inspect(move |tx| {
                tx.query_opt(
                    "SELECT run_id FROM polyfac_run WHERE tenant = ?1 AND file = ?2
                     ORDER BY closed_at DESC LIMIT 1",
                    &[&TENANT, &file],
                    |r| r.get::<String>(0),
                )
            })
            .await
            .map_err(count)
    }

    /// Files not written yet, and titres written plus refusals, of a run.
    async fn helios(&self, run_id: &str) -> Result<(u64, u64)> {
        let unwritten = self
            .one(
                "SELECT CAST(count(*) - count(written_at) AS BIGINT) FROM helios_file
                 WHERE tenant = ?1 AND run_id = ?2",
                vec![TENANT.into(), run_id.into()],
            )
            .await?;
        let titres = self
            .one(
                "SELECT CAST(coalesce(sum(CASE WHEN written_at IS NOT NULL THEN pieces END), 0)
                        AS BIGINT) FROM helios_file WHERE tenant = ?1 AND run_id = ?2",
                vec![TENANT.into(), run_id.into()],
            )
            .await?;
        let refused = self
            .one(
                "SELECT CAST(count(*) AS BIGINT) FROM helios_refused
                 WHERE tenant = ?1 AND run_id = ?2",
                vec![TENANT.into(), run_id.into()],
            )
            .await?;
        Ok((unwritten, titres + refused))
    }

    /// The live holder of a lease.
    async fn holder(&self, lease: &'static str) -> Result<Option<String>> {
        self.ledger
            .transact(move |tx| {
                let now = tx.ledger_now_ms()?;
                Ok::<_, LedgerError>(
                    tx.leases()?
                        .into_iter()
                        .find(|l| l.name == lease && l.expires_at_ms > now)
                        .map(|l| l.holder),
                )
            })
            .await
            .map_err(count)
    }

    /// Leases still held (none may be once every daemon stopped cleanly).
    async fn held(&self) -> Result<Vec<String>> {
        self.ledger
            .transact(|tx| {
                let now = tx.ledger_now_ms()?;
                Ok::<_, LedgerError>(
                    tx.leases()?
                        .into_iter()
                        .filter(|l| l.expires_at_ms > now)
                        .map(|l| format!("{} by {}", l.name, l.holder))
                        .collect(),
                )
            })
            .await
            .map_err(count)
    }
}

/// Polls `done` every 20 ms until it holds, every daemon alive meanwhile; on timeout, the
/// last log lines of each.
pub(super) async fn wait_until(
    daemons: &mut [Daemon],
    what: &str,
    timeout: Duration,
    mut done: impl AsyncFnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        for daemon in daemons.iter_mut() {
            daemon.ensure_alive()?;
        }
        if done().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            let tails: Vec<String> = daemons.iter().map(|d| d.log_tail(15)).collect();
            return Err(BenchError::Daemon(format!(
                "{what}: not reached within {timeout:?}; last log lines:\n{}",
                tails.join("\n--\n")
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The daemon a lease holder names (`host:pid:start`).
fn holder_pid(holder: &str) -> Option<u32> {
    holder.split(':').nth(1).and_then(|p| p.parse().ok())
}

async fn open_ledger(url: &str) -> Result<Ledger> {
    let url = LedgerUrl::parse(url).map_err(|e| BenchError::Setup(e.to_string()))?;
    tokio::task::spawn_blocking(move || Ledger::open_url(&url))
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .map_err(|e| BenchError::Setup(format!("the run's PostgreSQL ledger: {e}")))
}

/// Runs the cluster chaos run in `work`.
pub(super) async fn run_in(
    options: &ChaosOptions,
    cluster: &ClusterRun,
    prefix: &str,
    work: &WorkDir,
) -> Result<ChaosReport> {
    if cluster.instances < 2 {
        return Err(BenchError::Setup(
            "a cluster run needs 2 daemons or more".into(),
        ));
    }
    let n = options.invoices;
    let database_name = prefix.replace(['-', '.'], "_").to_lowercase();
    let database = TestDatabase::create(&cluster.ledger_admin_url, &database_name)
        .map_err(|e| BenchError::Setup(format!("cannot create the run's database: {e}")))?;
    let generated = work.generate_export(&format!("FACT_CHAOS_{n}.csv"), n)?;
    let mut launches = Vec::new();
    let mut config = None;
    for i in 1..=cluster.instances {
        let settings = RunSettings {
            tiers_secs: TIERS_SECS.to_vec(),
            ..RunSettings::for_run(&options.amqp_url, prefix, &work.path)?
        };
        let path = work.join(&format!("encaisse-chaos-{i}.toml"));
        let text = format!(
            "{}\n[ledger]\nurl = {:?}\n\n[cluster]\nlease_ttl_ms = {LEASE_TTL_MS}\n",
            settings.render(),
            database.url
        );
        std::fs::write(&path, &text).map_err(|e| BenchError::io(path.display().to_string(), e))?;
        config = Some(super::super::settings::check(&text)?);
        launches.push(Launch {
            program: options.daemon.clone(),
            config: path,
            base_url: settings.base_url(),
            log: work.join(&format!("daemon-{i}.log")),
        });
    }
    let config = config.ok_or_else(|| BenchError::Setup("no daemon configured".into()))?;
    let expected = checks::expected(&generated.path, &config, TENANT)?;
    let http = reqwest::Client::new();
    let mut daemons = Vec::new();
    for launch in &launches {
        daemons.push(launch.start(&http, READY).await?);
    }
    let progress = Progress {
        ledger: open_ledger(&database.url).await?,
    };
    let started = Instant::now();
    generated.drop_into(&config, TENANT)?;

    // Fault 1: SIGKILL of the daemon reading the export, once 30 % is published.
    let kill_at = (n * 3 / 10).max(1);
    wait_until(
        &mut daemons,
        "30 % of the invoices published",
        options.timeout,
        async || {
            Ok(progress.issued().await? >= kill_at
                || progress.run_id(&generated.name).await?.is_some())
        },
    )
    .await?;
    let holder = progress
        .holder(INGEST_LEASE)
        .await?
        .ok_or_else(|| BenchError::Daemon(format!("no daemon holds {INGEST_LEASE}")))?;
    let victim = daemons
        .iter()
        .position(|d| Some(d.pid()) == holder_pid(&holder))
        .ok_or_else(|| BenchError::Daemon(format!("{holder} is none of the run's daemons")))?;
    let killed_at_published = progress.issued().await?;
    let killed_at_collected = progress.collected().await?;
    daemons.remove(victim).kill()?;
    let killed = Instant::now();
    tracing::warn!(%holder, published = killed_at_published, "Daemon holding the ingest lease killed (SIGKILL).");
    wait_until(
        &mut daemons,
        "the ingest lease taken over",
        options.timeout,
        async || {
            Ok(progress
                .holder(INGEST_LEASE)
                .await?
                .is_some_and(|h| h != holder))
        },
    )
    .await?;
    let failover_secs = killed.elapsed().as_secs_f64();
    tracing::info!(failover_secs, "Ingest lease taken over by a survivor.");
    daemons.insert(victim, launches[victim].start(&http, READY).await?);

    // Fault 2: a broker node restarted while helios.titres collects.
    let titres = expected.titres() as u64;
    wait_until(
        &mut daemons,
        "half of the titres collected",
        options.timeout,
        async || Ok(progress.collected().await? >= titres / 2),
    )
    .await?;
    let broker_stopped_at_collected = progress.collected().await?;
    let queues_before: Vec<String> = options
        .rabbitmqctl
        .work_queues(prefix)?
        .into_iter()
        .map(|q| q.name)
        .collect();
    let mut reconnections = Vec::new();
    for launch in &launches {
        reconnections.push(end::Reconnection::after(
            broker_link(&http, &launch.base_url).await,
        ));
    }
    let node = Rabbitmqctl {
        node: cluster
            .restart_node
            .clone()
            .or_else(|| options.rabbitmqctl.node.clone()),
    };
    let stopped = BrokerStopped::stop(&node)?;
    let down = Instant::now();
    tokio::time::sleep(options.broker_down).await;
    stopped.restore()?;
    let broker_down_secs = down.elapsed().as_secs_f64();
    let back = Instant::now();
    wait_until(
        &mut daemons,
        "every daemon connected to the restarted broker",
        options.timeout,
        async || {
            for (launch, reconnection) in launches.iter().zip(&reconnections) {
                if !reconnection.done(broker_link(&http, &launch.base_url).await) {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    let reconnect_secs = back.elapsed().as_secs_f64();

    // The end state: every titre written, every queue empty.
    let expected_refused = expected.refused() as u64;
    wait_until(
        &mut daemons,
        "every titre written",
        options.timeout,
        async || {
            let Some(run_id) = progress.run_id(&generated.name).await? else {
                return Ok(false);
            };
            let (unwritten, done) = progress.helios(&run_id).await?;
            Ok(unwritten == 0 && done >= titres + expected_refused)
        },
    )
    .await?;
    let mut drain = end::DrainWatch::new(queues_before, DRAIN_POLLS, SETTLE);
    let drain_started = Instant::now();
    let mut last = end::Drain::Settling;
    wait_until(
        &mut daemons,
        "every queue drained",
        options.timeout,
        async || {
            let queues = options.rabbitmqctl.work_queues(prefix)?;
            last = drain.observe(drain_started.elapsed(), &queues);
            Ok(last == end::Drain::Drained)
        },
    )
    .await
    .map_err(|e| BenchError::Daemon(format!("{e}\nlast look at the queues: {last:?}")))?;
    let secs = started.elapsed().as_secs_f64();
    let mut stages = Vec::new();
    for launch in &launches {
        stages.extend(
            metrics::fetch(&http, &launch.base_url)
                .await
                .unwrap_or_default(),
        );
    }
    let mut failures = Vec::new();
    for (i, daemon) in daemons.into_iter().enumerate() {
        let status = daemon.terminate(Duration::from_secs(60))?;
        if !status.success() {
            failures.push(format!(
                "daemon {} stopped with {status} after SIGTERM (expected 0)",
                i + 1
            ));
        }
    }
    let held = progress.held().await?;
    if !held.is_empty() {
        failures.push(format!(
            "leases still held after every daemon stopped: {}",
            held.join(", ")
        ));
    }

    // The strict checks, on an SQLite snapshot of the PostgreSQL ledger.
    let snapshot = snapshot(&progress.ledger, work.join("ledger-snapshot.sqlite")).await?;
    let view = LedgerView::open(&snapshot, Duration::from_secs(5)).await?;
    let (counts, more) = checks::check_all(
        &checks::Outputs {
            data_dir: &config.data_dir,
            tenant: TENANT,
            export_name: &generated.name,
            prefix,
        },
        &expected,
        &view,
        &options.rabbitmqctl,
    )?;
    failures.extend(more);
    if failures.is_empty() {
        drop(database);
    } else {
        let kept = database.keep();
        tracing::warn!(ledger = %LedgerUrl::parse(&kept).map(|u| u.redacted()).unwrap_or_default(), "The run's database is kept for a look.");
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
        instances: cluster.instances,
        failover_secs: Some(failover_secs),
    })
}

/// Copies the PostgreSQL ledger into a new SQLite ledger file at `path`.
async fn snapshot(ledger: &Ledger, path: PathBuf) -> Result<PathBuf> {
    let file = path.clone();
    let conn = tokio::task::spawn_blocking(move || {
        drop(Ledger::open(&file)?);
        encaisse_ledger::rusqlite::Connection::open(&file).map_err(LedgerError::from)
    })
    .await
    .map_err(|e| BenchError::Setup(e.to_string()))?
    .map_err(count)?;
    let copied = ledger
        .inspect(move |tx| encaisse_ledger::transfer::snapshot_into_sqlite(tx, &conn))
        .await
        .map_err(|e| BenchError::Daemon(format!("snapshot of the PostgreSQL ledger: {e}")))?;
    tracing::info!(tables = copied.len(), path = %path.display(), "PostgreSQL ledger copied for the checks.");
    Ok(path)
}
