//! Once-only work under leases, for several daemons sharing one PostgreSQL ledger.
//!
//! Stages need no coordination (the broker gives each delivery to one consumer), but the
//! sources must run on one daemon at a time: an inbox watcher, a flush timer, the PayFiP
//! reconciliation, the gauges refresh, the dedupe pruning. With several daemons
//! ([`Coordination::Shared`]) the runtime runs each source under a lease named after it
//! ([`Leased`]): a daemon runs the source only while its lease row in the ledger
//! ([`encaisse_ledger::ClusterStore`]) names it, renews it every `ttl / 3`, and stops the
//! source itself when it lost the lease or could not renew it for `ttl − ttl / 3` (before the
//! lease can expire, so two daemons never run it at once). A survivor tries every `ttl / 3`:
//! a dead holder's work moves within `ttl + ttl / 3` of its last renewal. A daemon that stops
//! cleanly releases its leases, so the others take them at their next attempt.
//!
//! With one daemon ([`Coordination::Single`], an SQLite ledger, guarded by the data
//! directory's `flock` and the exclusive prefix queue) the sources run directly, as before.
//!
//! Inbox files are claimed in the ledger before they are read ([`claim_inbox_file`], used
//! by `stages::inbox`): the lease keeps one watcher per inbox, the claim keeps one reader per
//! file even while a lease moves.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use encaisse_ledger::cluster::{ClusterStore, InboxFileKey, LeaseGrant};
use encaisse_ledger::{Ledger, LedgerError};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Source, SourceContext};

/// The shortest lease: renewals every `ttl / 3` must not hammer the ledger.
pub const MIN_LEASE_TTL_MS: u64 = 300;

fn default_lease_ttl_ms() -> u64 {
    10_000
}

/// `[cluster]`: several daemons on one PostgreSQL ledger and one broker prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// How long a lease on once-only work (an inbox watcher, a flush timer, …) and a claim of
    /// an inbox file last without renewal, in milliseconds (default 10 000, at least 300).
    /// Holders renew every third of it; a dead daemon's work moves to a survivor within
    /// `lease_ttl_ms × 4/3` (13.3 s by default). Shorter moves work sooner after a crash and
    /// costs more ledger writes (one per source every third of it).
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease_ttl_ms: default_lease_ttl_ms(),
        }
    }
}

impl ClusterConfig {
    /// The lease time to live.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms.max(MIN_LEASE_TTL_MS))
    }

    /// Problems a person must fix, each naming its field.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        if self.lease_ttl_ms < MIN_LEASE_TTL_MS {
            issues.push((
                "cluster.lease_ttl_ms".to_string(),
                format!("must be at least {MIN_LEASE_TTL_MS}"),
            ));
        }
        issues
    }
}

/// How this daemon shares once-only work with others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coordination {
    /// The only daemon of its ledger (SQLite): sources run directly; inbox claims are still
    /// recorded, and a claim left by an earlier run of the daemon (which died: the `flock`
    /// guard proves it) is taken over at once.
    Single { holder: String },
    /// One of several daemons (PostgreSQL): sources run under leases, claims expire after
    /// `ttl` without renewal.
    Shared { holder: String, ttl: Duration },
}

impl Coordination {
    /// One daemon, named by [`daemon_id`].
    pub fn single() -> Self {
        Coordination::Single {
            holder: daemon_id(),
        }
    }

    /// One of several daemons, named by [`daemon_id`].
    pub fn shared(config: &ClusterConfig) -> Self {
        Coordination::Shared {
            holder: daemon_id(),
            ttl: config.lease_ttl(),
        }
    }

    /// This daemon's name in leases and claims.
    pub fn holder(&self) -> &str {
        match self {
            Coordination::Single { holder } | Coordination::Shared { holder, .. } => holder,
        }
    }

    /// How long a lease or a claim lasts without renewal (zero for a single daemon: its
    /// claims are taken over at once by its next run).
    pub fn ttl(&self) -> Duration {
        match self {
            Coordination::Single { .. } => Duration::ZERO,
            Coordination::Shared { ttl, .. } => *ttl,
        }
    }

    /// How often a holder renews: a third of the time to live.
    pub fn renew_every(&self) -> Duration {
        (self.ttl() / 3).max(Duration::from_millis(100))
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl().as_millis()).unwrap_or(i64::MAX)
    }
}

tokio::task_local! {
    /// The coordination of the daemon a source runs in (set by the runtime around each
    /// source), read by the inbox watchers for their claims.
    static CURRENT: Coordination;
}

/// The coordination of the running source; a single daemon when none was set (a test or the
/// demo driving a watcher directly).
pub fn current() -> Coordination {
    CURRENT
        .try_with(Coordination::clone)
        .unwrap_or_else(|_| Coordination::single())
}

/// Runs `work` with `coordination` as [`current`].
pub fn scope<F: Future>(coordination: Coordination, work: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(coordination, work)
}

/// This process, as leases and claims name it: host, pid and start time (a restarted daemon
/// is another holder, whose predecessor's leases expire).
pub fn daemon_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_string());
        let started = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        format!("{host}:{}:{started}", std::process::id())
    })
    .clone()
}

/// A source that runs only while this daemon holds the lease named after it.
pub struct Leased {
    inner: Arc<dyn Source>,
    lease: String,
    coordination: Coordination,
}

impl Leased {
    /// `inner` under the lease `lease` (its name, usually).
    pub fn new(
        inner: Arc<dyn Source>,
        lease: impl Into<String>,
        coordination: Coordination,
    ) -> Self {
        Leased {
            inner,
            lease: lease.into(),
            coordination,
        }
    }

    /// Wraps `source` when several daemons share the work; as it is otherwise.
    pub fn wrap(source: Arc<dyn Source>, coordination: &Coordination) -> Arc<dyn Source> {
        match coordination {
            Coordination::Single { .. } => source,
            Coordination::Shared { .. } => {
                let lease = source.name().to_string();
                Arc::new(Leased::new(source, lease, coordination.clone()))
            }
        }
    }

    async fn acquire(&self, ledger: &Ledger) -> Result<Option<LeaseGrant>, LedgerError> {
        let (name, holder) = (self.lease.clone(), self.coordination.holder().to_string());
        let ttl = self.coordination.ttl_ms();
        ledger
            .transact(move |tx| tx.acquire_or_renew_lease(&name, &holder, ttl))
            .await
    }

    async fn release(&self, ledger: &Ledger) {
        let (name, holder) = (self.lease.clone(), self.coordination.holder().to_string());
        match ledger
            .transact(move |tx| tx.release_lease(&name, &holder))
            .await
        {
            Ok(_) => tracing::info!(lease = %self.lease, "Lease released."),
            Err(error) => {
                tracing::warn!(lease = %self.lease, %error, "Lease not released; it will expire.")
            }
        }
    }

    /// Renews the lease every [`Coordination::renew_every`]; returns when it is lost, or
    /// when it could not be renewed for long enough that it may expire before the next try.
    async fn keep(&self, ledger: &Ledger) {
        let every = self.coordination.renew_every();
        let give_up = self.coordination.ttl().saturating_sub(every);
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(every).await;
            let attempt = Instant::now();
            match self.acquire(ledger).await {
                Ok(Some(_)) => renewed = attempt,
                Ok(None) => {
                    tracing::warn!(lease = %self.lease, "Lease lost to another daemon; stopping the work.");
                    return;
                }
                Err(error) if renewed.elapsed() >= give_up => {
                    tracing::warn!(lease = %self.lease, %error, "Lease not renewed in time; stopping the work before it expires.");
                    return;
                }
                Err(error) => {
                    tracing::warn!(lease = %self.lease, %error, "Lease not renewed; will try again.")
                }
            }
        }
    }

    /// Runs the source while the lease is held. `Ok` when the lease was lost (the caller
    /// tries to acquire it again) or the daemon stops; the source's own failure otherwise.
    async fn run_held(&self, ctx: &SourceContext, grant: LeaseGrant) -> Result<(), String> {
        tracing::info!(lease = %self.lease, fencing = grant.fencing, holder = %self.coordination.holder(), "Lease acquired; running the work.");
        metrics::gauge!("encaisse_lease_held", "lease" => self.lease.clone()).set(1.0);
        metrics::counter!("encaisse_lease_acquired_total", "lease" => self.lease.clone())
            .increment(1);
        let work = ctx.shutdown.child_token();
        let inner_ctx = SourceContext {
            shutdown: work.clone(),
            ..ctx.clone()
        };
        let mut running = std::pin::pin!(self.inner.clone().run(inner_ctx));
        let outcome = tokio::select! {
            outcome = &mut running => Some(outcome),
            () = self.keep(&ctx.ledger) => None,
        };
        let result = match outcome {
            Some(outcome) => {
                // Stopped by itself (the daemon stops, or the work failed): let another
                // daemon take over at once.
                self.release(&ctx.ledger).await;
                outcome
            }
            None => {
                work.cancel();
                if let Err(error) = running.await {
                    tracing::warn!(lease = %self.lease, %error, "Work failed while stopping after the lease was lost.");
                }
                Ok(())
            }
        };
        metrics::gauge!("encaisse_lease_held", "lease" => self.lease.clone()).set(0.0);
        result
    }
}

impl Source for Leased {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            metrics::gauge!("encaisse_lease_held", "lease" => self.lease.clone()).set(0.0);
            let mut waiting_said = false;
            loop {
                if ctx.shutdown.is_cancelled() {
                    return Ok(());
                }
                match self.acquire(&ctx.ledger).await {
                    Ok(Some(grant)) => {
                        waiting_said = false;
                        self.run_held(&ctx, grant).await?;
                        if ctx.shutdown.is_cancelled() {
                            return Ok(());
                        }
                    }
                    Ok(None) if !waiting_said => {
                        tracing::info!(lease = %self.lease, "Another daemon holds the lease; standing by.");
                        waiting_said = true;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(lease = %self.lease, %error, "Lease not acquired; will try again.")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.coordination.renew_every()) => {}
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                }
            }
        })
    }
}

/// What became of a claim attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// This daemon has the file: it may read it.
    Mine,
    /// Another daemon's claim is live: leave the file alone.
    Theirs,
}

/// Claims an inbox file for this daemon ([`current`]) before it is read.
pub async fn claim_inbox_file(ledger: &Ledger, key: &InboxFileKey) -> Result<Claimed, LedgerError> {
    let coordination = current();
    let (key, holder) = (key.clone(), coordination.holder().to_string());
    let ttl = coordination.ttl_ms();
    let take_over = matches!(coordination, Coordination::Single { .. });
    let at = encaisse_ledger::clock::now();
    let mine = ledger
        .transact(move |tx| tx.claim_inbox_file(&key, &holder, &at, ttl, take_over))
        .await?;
    Ok(if mine { Claimed::Mine } else { Claimed::Theirs })
}

/// Keeps this daemon's claim of `key` alive while it reads the file; returns when the claim
/// was lost (another daemon took it over after it expired), or could not be renewed before
/// it may expire. Never returns for a single daemon (nobody else can take it).
pub async fn keep_inbox_claim(ledger: &Ledger, key: &InboxFileKey) {
    let coordination = current();
    if let Coordination::Single { .. } = coordination {
        return std::future::pending().await;
    }
    let every = coordination.renew_every();
    let give_up = coordination.ttl().saturating_sub(every);
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let attempt = Instant::now();
        let (k, holder, ttl) = (
            key.clone(),
            coordination.holder().to_string(),
            coordination.ttl_ms(),
        );
        match ledger
            .transact(move |tx| tx.renew_inbox_claim(&k, &holder, ttl))
            .await
        {
            Ok(true) => renewed = attempt,
            Ok(false) => return,
            Err(error) if renewed.elapsed() >= give_up => {
                tracing::warn!(file = %key.name, %error, "Inbox claim not renewed in time.");
                return;
            }
            Err(error) => {
                tracing::warn!(file = %key.name, %error, "Inbox claim not renewed; will try again.")
            }
        }
    }
}

/// Marks this daemon's claim of `key` done (`true`) once the file left the inbox, or gives
/// it up (`false`) when the file stays for another try.
pub async fn end_inbox_claim(ledger: &Ledger, key: &InboxFileKey, done: bool) {
    let holder = current().holder().to_string();
    let k = key.clone();
    let at = encaisse_ledger::clock::now();
    let ended = ledger
        .transact(move |tx| {
            if done {
                tx.finish_inbox_claim(&k, &holder, &at)
            } else {
                tx.release_inbox_claim(&k, &holder)
            }
        })
        .await;
    if let Err(error) = ended {
        tracing::warn!(file = %key.name, %error, "Inbox claim not ended; it will expire.");
    }
}
