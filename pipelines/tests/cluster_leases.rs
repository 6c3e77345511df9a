//! Several daemons on one ledger, without a broker: the runtime's leases
//! (`runtime::lease::Leased`) run a once-only source on one daemon at a time and move it to a
//! survivor within the bounded failover time when its holder stops or dies; the inbox
//! watchers' claims let two daemons scanning one shared inbox read each file exactly once.
//! On both ledger backends (PostgreSQL from `ENCAISSE_TEST_POSTGRES_URL`, skipped visibly
//! when unset, required in CI with `ENCAISSE_REQUIRE_POSTGRES=1`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use encaisse_ledger::ClusterStore;
use encaisse_ledger::testing::Fixture;
use encaisse_pipelines::StageError;
use encaisse_pipelines::runtime::lease::{self, Coordination, Leased};
use encaisse_pipelines::runtime::{Runtime, RuntimeConfig, Source, SourceContext};
use encaisse_pipelines::stages::inbox::{
    FileOutcome, InboxFile, InboxHandler, InboxWatcher, WatchSettings,
};
use encaisse_schemas::TenantId;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

encaisse_ledger::on_both_backends!(
    a_leased_source_runs_on_one_daemon_and_fails_over_within_the_bound,
    two_daemons_scanning_one_inbox_read_each_file_once,
    a_single_daemon_takes_over_the_claims_of_its_previous_run,
);

const TTL: Duration = Duration::from_millis(600);

/// Which daemons run the work now, and the most that ever ran it at once.
#[derive(Default)]
struct Work {
    running: Mutex<Vec<String>>,
    most_at_once: AtomicUsize,
}

/// A once-only source: says who runs it while it runs.
struct Job {
    daemon: String,
    work: Arc<Work>,
}

/// Takes the daemon off the running list however the source stops (returned, dropped).
struct Running {
    daemon: String,
    work: Arc<Work>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.work.running.lock().unwrap();
        running.retain(|d| *d != self.daemon);
    }
}

impl Source for Job {
    fn name(&self) -> &str {
        "helios.titres.flush"
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            let _running = {
                let mut running = self.work.running.lock().unwrap();
                running.push(self.daemon.clone());
                self.work
                    .most_at_once
                    .fetch_max(running.len(), Ordering::SeqCst);
                Running {
                    daemon: self.daemon.clone(),
                    work: self.work.clone(),
                }
            };
            ctx.shutdown.cancelled().await;
            Ok(())
        })
    }
}

fn context(f: &Fixture, shutdown: &CancellationToken) -> SourceContext {
    let runtime = Runtime::new(RuntimeConfig::default(), f.ledger.clone());
    SourceContext {
        publisher: runtime.publisher(),
        ledger: f.ledger.clone(),
        shutdown: shutdown.clone(),
    }
}

fn shared(holder: &str) -> Coordination {
    Coordination::Shared {
        holder: holder.into(),
        ttl: TTL,
    }
}

/// Starts `daemon`'s copy of the job under its lease; its shutdown token and task.
fn start(
    f: &Fixture,
    daemon: &str,
    work: &Arc<Work>,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), String>>,
) {
    let shutdown = CancellationToken::new();
    let job: Arc<dyn Source> = Arc::new(Job {
        daemon: daemon.into(),
        work: work.clone(),
    });
    let coordination = shared(daemon);
    let leased = Leased::wrap(job, &coordination);
    let task = tokio::spawn(lease::scope(
        coordination,
        leased.run(context(f, &shutdown)),
    ));
    (shutdown, task)
}

async fn runner(work: &Work) -> Vec<String> {
    work.running.lock().unwrap().clone()
}

/// Waits until exactly one daemon other than `not` runs the work; how long it took.
async fn until_run_by_other_than(work: &Work, not: &str, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let running = runner(work).await;
        if running.len() == 1 && running[0] != not {
            return (running[0].clone(), started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "no other daemon took the work within {within:?}: {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_leased_source_runs_on_one_daemon_and_fails_over_within_the_bound(f: &Fixture) {
    let work = Arc::new(Work::default());
    let mut daemons: HashMap<String, _> = HashMap::new();
    for daemon in ["a", "b", "c"] {
        daemons.insert(daemon.to_string(), start(f, daemon, &work));
    }
    let (first, _) = until_run_by_other_than(&work, "", TTL * 2).await;
    tokio::time::sleep(TTL * 2).await;
    assert_eq!(
        runner(&work).await,
        std::slice::from_ref(&first),
        "one daemon runs it, still"
    );

    // A clean stop releases the lease: another daemon takes it at its next attempt.
    let (stop, task) = daemons.remove(&first).unwrap();
    stop.cancel();
    task.await.unwrap().unwrap();
    let (second, moved) = until_run_by_other_than(&work, &first, TTL * 2).await;
    assert!(
        moved <= TTL / 3 + Duration::from_millis(300),
        "a released lease moves at the next attempt, took {moved:?}"
    );

    // A killed daemon keeps its lease until it expires: the survivor takes it within
    // ttl + ttl/3 of the last renewal.
    let (_, task) = daemons.remove(&second).unwrap();
    task.abort();
    let _ = task.await;
    let killed = Instant::now();
    assert!(
        runner(&work).await.is_empty(),
        "the killed daemon's work stopped with it"
    );
    let (third, _) = until_run_by_other_than(&work, &second, TTL * 3).await;
    let failover = killed.elapsed();
    eprintln!("failover after a kill: {failover:?} (lease ttl {TTL:?})");
    assert!(
        failover <= TTL + TTL / 3 + Duration::from_millis(400),
        "failover took {failover:?}, more than ttl + ttl/3"
    );
    assert!(
        failover >= TTL / 3,
        "the dead holder's lease was not respected: {failover:?}"
    );
    assert_eq!(
        work.most_at_once.load(Ordering::SeqCst),
        1,
        "never two at once"
    );

    let leases = f.ledger.inspect(|tx| tx.leases()).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].holder, third);
    assert_eq!(leases[0].fencing, 3, "three holders, one token each");
    for (_, (stop, task)) in daemons {
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}

/// Reads files slowly and counts the reads of each.
struct SlowReader {
    reads: Arc<Mutex<HashMap<String, usize>>>,
}

impl InboxHandler for SlowReader {
    fn name(&self) -> &str {
        "polyfac.ingest"
    }

    fn area(&self) -> &str {
        "polyfac"
    }

    fn handle<'a>(
        &'a self,
        _ctx: &'a SourceContext,
        file: &'a InboxFile,
    ) -> BoxFuture<'a, Result<FileOutcome, StageError>> {
        Box::pin(async move {
            *self
                .reads
                .lock()
                .unwrap()
                .entry(file.name.clone())
                .or_default() += 1;
            std::fs::read(&file.path)
                .map_err(|e| StageError::transient("inbox_io", e.to_string()))?;
            tokio::time::sleep(Duration::from_millis(80)).await;
            Ok(FileOutcome::Archived)
        })
    }
}

fn watcher(
    data_dir: PathBuf,
    reads: &Arc<Mutex<HashMap<String, usize>>>,
) -> InboxWatcher<SlowReader> {
    InboxWatcher::new(
        SlowReader {
            reads: reads.clone(),
        },
        data_dir,
        vec![TenantId::new("vitry").unwrap()],
        WatchSettings {
            poll_interval: Duration::from_millis(10),
            settle: Duration::ZERO,
        },
    )
}

async fn two_daemons_scanning_one_inbox_read_each_file_once(f: &Fixture) {
    let data_dir = f.dir.path().join("shared");
    let inbox = data_dir.join("vitry/polyfac/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(data_dir.join("vitry/polyfac/archive")).unwrap();
    std::fs::create_dir_all(data_dir.join("vitry/polyfac/rejected")).unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("export_{i:02}.csv")).collect();
    for name in &names {
        std::fs::write(inbox.join(name), format!("content of {name}")).unwrap();
    }
    let reads = Arc::new(Mutex::new(HashMap::new()));
    let shutdown = CancellationToken::new();
    let scans: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|daemon| {
            let watcher = watcher(data_dir.clone(), &reads);
            let ctx = context(f, &shutdown);
            let inbox = inbox.clone();
            tokio::spawn(lease::scope(shared(daemon), async move {
                let mut seen = HashMap::new();
                let mut handled = 0;
                let deadline = Instant::now() + Duration::from_secs(20);
                while std::fs::read_dir(&inbox).unwrap().next().is_some() {
                    assert!(Instant::now() < deadline, "the inbox did not empty");
                    handled += watcher.scan_once(&ctx, &mut seen).await;
                }
                handled
            }))
        })
        .collect();
    let mut handled = Vec::new();
    for scan in scans {
        handled.push(scan.await.unwrap());
    }
    let reads = reads.lock().unwrap().clone();
    for name in &names {
        assert_eq!(reads.get(name), Some(&1), "{name} read once: {reads:?}");
    }
    assert_eq!(handled.iter().sum::<usize>(), names.len(), "{handled:?}");
    let archived = std::fs::read_dir(data_dir.join("vitry/polyfac/archive"))
        .unwrap()
        .count();
    assert_eq!(archived, names.len());
}

async fn a_single_daemon_takes_over_the_claims_of_its_previous_run(f: &Fixture) {
    let data_dir = f.dir.path().join("single");
    let inbox = data_dir.join("vitry/polyfac/inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let path = inbox.join("export.csv");
    std::fs::write(&path, "rows").unwrap();
    // The previous run claimed the file (for a minute) and died before moving it.
    let meta = std::fs::metadata(&path).unwrap();
    let key = encaisse_ledger::cluster::InboxFileKey {
        tenant: "vitry".into(),
        area: "polyfac".into(),
        name: "export.csv".into(),
        size_bytes: i64::try_from(meta.len()).unwrap(),
        mtime_ns: i64::try_from(
            meta.modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        )
        .unwrap(),
    };
    let k = key.clone();
    assert!(
        f.ledger
            .transact(move |tx| tx.claim_inbox_file(&k, "previous-run", "t", 60_000, false))
            .await
            .unwrap()
    );
    let reads = Arc::new(Mutex::new(HashMap::new()));
    let shutdown = CancellationToken::new();
    let ctx = context(f, &shutdown);
    let watcher = watcher(data_dir.clone(), &reads);
    // No coordination set: a single daemon, as the runtime runs with an SQLite ledger.
    let handled = watcher.scan_once(&ctx, &mut HashMap::new()).await;
    assert_eq!(handled, 1);
    assert_eq!(reads.lock().unwrap().get("export.csv"), Some(&1));
    let claim = f
        .ledger
        .inspect(move |tx| tx.inbox_claim(&key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.claimed_by, lease::daemon_id());
    assert!(claim.done_at.is_some(), "finished once moved");
}
