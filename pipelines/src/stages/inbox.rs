//! Watching a tenant's inbox directory: the shared part of every file-fed source
//! (`polyfac.ingest`, `helios.returns`, `sepa.returns`).
//!
//! A file is handled only once it is **stable**: same size and modification time on two
//! scans `settle` apart (a file still being copied is never read half-way). Names starting
//! with `.` are ignored (temporary files of the atomic-rename convention). After handling,
//! the file moves to `archive/` (done) or `rejected/` (with a `<name>.reason.txt` next to it);
//! a transient failure leaves it in place for the next scan. Files are handled one at a
//! time and in isolation: one whose handling panics is rejected like an unreadable one
//! (`encaisse_inbox_panics_total`), and the next file is read. A crash between handling and
//! moving makes the next scan handle the file again: handlers are idempotent (deterministic
//! message ids, ledger records).
//!
//! Several daemons may watch one shared inbox: a file is **claimed** in the ledger before it
//! is read (`inbox_claim`, [`crate::runtime::lease`]), so two daemons never read one file;
//! the claim is renewed while the file is read, given up when it stays in the inbox, marked
//! done once it moved, and taken over when its daemon died (after the lease time to live).
//!
//! Each scan also publishes `encaisse_inbox_files{tenant,area}` and
//! `encaisse_inbox_oldest_age_seconds{tenant,area}` for ops.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use encaisse_schemas::TenantId;
use encaisse_schemas::tenant::ConfigIssue;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use encaisse_ledger::cluster::InboxFileKey;

use crate::runtime::{Source, SourceContext, lease};
use crate::stage::{ErrorClass, StageError};

/// A stable file found in an inbox.
#[derive(Debug, Clone)]
pub struct InboxFile {
    pub tenant: TenantId,
    pub path: PathBuf,
    /// File name without directory.
    pub name: String,
    pub size_bytes: u64,
}

/// What became of a handled file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Done: moved to `archive/`.
    Archived,
    /// Unusable as a whole (unreadable, unknown kind, invalid): moved to `rejected/` with the
    /// reason written next to it.
    Rejected { reason: String },
}

/// The file-type-specific part of a watcher.
pub trait InboxHandler: Send + Sync + 'static {
    /// Source name for logs and metrics (`polyfac.ingest`).
    fn name(&self) -> &str;
    /// The area directory under the tenant (`polyfac`, `helios`, `bank`).
    fn area(&self) -> &str;
    /// Handles one stable file. `Ok(outcome)` moves it; a transient `Err` leaves it for the
    /// next scan; a permanent or poison `Err` rejects it with the error as reason.
    fn handle<'a>(
        &'a self,
        ctx: &'a SourceContext,
        file: &'a InboxFile,
    ) -> BoxFuture<'a, Result<FileOutcome, StageError>>;
}

/// Where a tenant's area directories are.
#[derive(Debug, Clone)]
pub struct AreaDirs {
    pub inbox: PathBuf,
    pub archive: PathBuf,
    pub rejected: PathBuf,
}

impl AreaDirs {
    /// `<data_dir>/<tenant>/<area>/{inbox,archive,rejected}`.
    pub fn new(data_dir: &Path, tenant: &TenantId, area: &str) -> Self {
        let base = data_dir.join(tenant.as_str()).join(area);
        AreaDirs {
            inbox: base.join("inbox"),
            archive: base.join("archive"),
            rejected: base.join("rejected"),
        }
    }
}

/// Settings of a watcher.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Time between scans.
    pub poll_interval: Duration,
    /// How long size and mtime must stay unchanged before a file is read.
    pub settle: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        InboxWatchConfig::default().watch()
    }
}

/// How often a watcher scans its inboxes, in milliseconds, unless configured.
pub fn default_inbox_poll_interval_ms() -> u64 {
    2_000
}

/// How long a file must stay unchanged before it is read, in milliseconds, unless configured.
pub fn default_inbox_settle_ms() -> u64 {
    2_000
}

/// The timing of an inbox watcher, as configured: `[helios]` for `helios.returns` (every
/// tenant's `helios/inbox`), `[sepa]` for `sepa.returns` (every tenant's `bank/inbox`).
/// Both keys are optional. (`[polyfac]` has the same two keys among its own.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxWatchConfig {
    /// Time between two scans of every tenant's inbox, in milliseconds (default 2000, at
    /// least 1). A file waits on average half of it, plus the settle delay, before it is read.
    #[serde(default = "default_inbox_poll_interval_ms")]
    pub inbox_poll_interval_ms: u64,
    /// How long a file's size and modification time must stay unchanged before it is read,
    /// in milliseconds (default 2000): a file still being copied is never read half-way. 0
    /// reads a file as soon as it is seen — only for transfer tools that write under a hidden
    /// name (`.…`) and rename into the inbox.
    #[serde(default = "default_inbox_settle_ms")]
    pub inbox_settle_ms: u64,
}

impl Default for InboxWatchConfig {
    fn default() -> Self {
        InboxWatchConfig {
            inbox_poll_interval_ms: default_inbox_poll_interval_ms(),
            inbox_settle_ms: default_inbox_settle_ms(),
        }
    }
}

impl InboxWatchConfig {
    /// The watcher's settings.
    pub fn watch(&self) -> WatchSettings {
        WatchSettings {
            poll_interval: Duration::from_millis(self.inbox_poll_interval_ms.max(1)),
            settle: Duration::from_millis(self.inbox_settle_ms),
        }
    }

    /// Problems a person must fix, each naming its field under `prefix` (`helios`).
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.inbox_poll_interval_ms == 0 {
            issues.push(ConfigIssue::new(
                format!("{prefix}.inbox_poll_interval_ms"),
                "must be at least 1",
            ));
        }
        issues
    }
}

/// A [`Source`] that watches one area of every tenant and hands stable files to `H`.
pub struct InboxWatcher<H> {
    handler: Arc<H>,
    data_dir: PathBuf,
    tenants: Vec<TenantId>,
    settings: WatchSettings,
    name: String,
}

impl<H: InboxHandler> InboxWatcher<H> {
    pub fn new(
        handler: H,
        data_dir: PathBuf,
        tenants: Vec<TenantId>,
        settings: WatchSettings,
    ) -> Self {
        let name = handler.name().to_string();
        InboxWatcher {
            handler: Arc::new(handler),
            data_dir,
            tenants,
            settings,
            name,
        }
    }

    /// One pass over every tenant's inbox: handles the files that are stable. Returns how
    /// many files were handled (moved). Public so tests and the demo can drive a scan.
    pub async fn scan_once(
        &self,
        ctx: &SourceContext,
        seen: &mut HashMap<PathBuf, (u64, SystemTime, SystemTime)>,
    ) -> usize {
        let mut handled = 0;
        for tenant in &self.tenants {
            let dirs = AreaDirs::new(&self.data_dir, tenant, self.handler.area());
            let entries = match list_files(&dirs.inbox) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(source = %self.name, tenant = %tenant, dir = %dirs.inbox.display(), error = %e, "Inbox cannot be listed.");
                    continue;
                }
            };
            publish_inbox_metrics(tenant, self.handler.area(), &entries);
            for (path, size, modified) in entries {
                if ctx.shutdown.is_cancelled() {
                    return handled;
                }
                let now = SystemTime::now();
                let stable = match seen.get(&path) {
                    Some((s, m, since)) if *s == size && *m == modified => {
                        now.duration_since(*since).unwrap_or_default() >= self.settings.settle
                    }
                    _ => {
                        seen.insert(path.clone(), (size, modified, now));
                        self.settings.settle.is_zero()
                    }
                };
                if !stable {
                    continue;
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let file = InboxFile {
                    tenant: tenant.clone(),
                    path: path.clone(),
                    name,
                    size_bytes: size,
                };
                let claim = claim_key(&file, self.handler.area(), modified);
                if !self.claim(ctx, &claim, &path, size, modified).await {
                    seen.remove(&path);
                    continue;
                }
                let outcome = tokio::select! {
                    outcome = self.handle_isolated(ctx, &file) => outcome,
                    () = lease::keep_inbox_claim(&ctx.ledger, &claim) => {
                        tracing::warn!(source = %self.name, tenant = %tenant, file = %file.name, "Inbox claim lost to another daemon; this daemon stops reading the file.");
                        continue;
                    }
                };
                let outcome = match outcome {
                    Ok(outcome) => outcome,
                    Err(e) if e.class == ErrorClass::Transient => {
                        tracing::warn!(source = %self.name, tenant = %tenant, file = %file.name, error = %e, "File left in the inbox; will retry.");
                        lease::end_inbox_claim(&ctx.ledger, &claim, false).await;
                        continue;
                    }
                    Err(e) => FileOutcome::Rejected {
                        reason: format!("{} ({}): {}", e.kind, e.class, e.message),
                    },
                };
                seen.remove(&path);
                let moved = move_file(&dirs, &file, &outcome);
                lease::end_inbox_claim(&ctx.ledger, &claim, moved.is_ok()).await;
                match moved {
                    Ok(dest) => {
                        handled += 1;
                        match &outcome {
                            FileOutcome::Archived => {
                                tracing::info!(source = %self.name, tenant = %tenant, file = %file.name, to = %dest.display(), "File handled and archived.")
                            }
                            FileOutcome::Rejected { reason } => {
                                tracing::warn!(source = %self.name, tenant = %tenant, file = %file.name, to = %dest.display(), reason = %reason, "File rejected.")
                            }
                        }
                        let label = match outcome {
                            FileOutcome::Archived => "archived",
                            FileOutcome::Rejected { .. } => "rejected",
                        };
                        metrics::counter!("encaisse_inbox_files_handled_total", "tenant" => tenant.to_string(), "area" => self.handler.area().to_string(), "outcome" => label).increment(1);
                    }
                    Err(e) => {
                        tracing::error!(source = %self.name, tenant = %tenant, file = %file.name, error = %e, "File handled but could not be moved; it will be handled again (idempotently).");
                    }
                }
            }
        }
        handled
    }
}

impl<H: InboxHandler> InboxWatcher<H> {
    /// Claims a stable file for this daemon before it is read (module
    /// [`crate::runtime::lease`]): `false` when another daemon has it, when the claim could
    /// not be recorded (the next scan tries again), or when the file left the inbox or
    /// changed between the listing and the claim (another daemon finished it meanwhile).
    async fn claim(
        &self,
        ctx: &SourceContext,
        claim: &InboxFileKey,
        path: &Path,
        size: u64,
        modified: SystemTime,
    ) -> bool {
        match lease::claim_inbox_file(&ctx.ledger, claim).await {
            Ok(lease::Claimed::Mine) => {}
            Ok(lease::Claimed::Theirs) => {
                tracing::debug!(source = %self.name, tenant = %claim.tenant, file = %claim.name, "File claimed by another daemon; left to it.");
                return false;
            }
            Err(error) => {
                tracing::warn!(source = %self.name, tenant = %claim.tenant, file = %claim.name, %error, "File not claimed; will retry.");
                return false;
            }
        }
        let unchanged = std::fs::symlink_metadata(path)
            .ok()
            .is_some_and(|m| m.len() == size && m.modified().ok() == Some(modified));
        if !unchanged {
            lease::end_inbox_claim(&ctx.ledger, claim, false).await;
        }
        unchanged
    }

    /// Handles one file so that nothing in it can stop the watcher: a panic while handling
    /// it (a hostile input reaching a bug) is a permanent failure of that file alone, which
    /// is then set aside like any unreadable file, and the next file is read.
    async fn handle_isolated(
        &self,
        ctx: &SourceContext,
        file: &InboxFile,
    ) -> Result<FileOutcome, StageError> {
        AssertUnwindSafe(self.handler.handle(ctx, file))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                metrics::counter!("encaisse_inbox_panics_total", "tenant" => file.tenant.to_string(), "area" => self.handler.area().to_string()).increment(1);
                tracing::error!(source = %self.name, tenant = %file.tenant, file = %file.name, "Handling the file panicked; it is set aside.");
                Err(StageError::permanent(
                    "handler_panicked",
                    format!(
                        "handling the file panicked: {}",
                        crate::runtime::handling::panic_message(panic.as_ref())
                    ),
                ))
            })
    }
}

impl<H: InboxHandler> Source for InboxWatcher<H> {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(self: Arc<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async move {
            for tenant in &self.tenants {
                let dirs = AreaDirs::new(&self.data_dir, tenant, self.handler.area());
                encaisse_ledger::access::create_inbox_dir_all(&dirs.inbox)
                    .map_err(|e| format!("cannot create {}: {e}", dirs.inbox.display()))?;
                for dir in [&dirs.archive, &dirs.rejected] {
                    encaisse_ledger::access::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
            }
            let mut seen = HashMap::new();
            loop {
                self.scan_once(&ctx, &mut seen).await;
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                }
            }
        })
    }
}

/// The claim of one version of an inbox file: tenant, area, name, size and modification
/// time (a file dropped again under its name is another claim).
fn claim_key(file: &InboxFile, area: &str, modified: SystemTime) -> InboxFileKey {
    let mtime_ns = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    InboxFileKey {
        tenant: file.tenant.to_string(),
        area: area.to_string(),
        name: file.name.clone(),
        size_bytes: i64::try_from(file.size_bytes).unwrap_or(i64::MAX),
        mtime_ns,
    }
}

/// Regular files of a directory, not hidden, with size and mtime, sorted by name (so files
/// are handled in the order their names give, e.g. dated names).
fn list_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64, SystemTime)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        files.push((entry.path(), meta.len(), meta.modified()?));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn publish_inbox_metrics(tenant: &TenantId, area: &str, files: &[(PathBuf, u64, SystemTime)]) {
    let now = SystemTime::now();
    let oldest = files
        .iter()
        .map(|(_, _, m)| now.duration_since(*m).unwrap_or_default())
        .max()
        .unwrap_or_default();
    metrics::gauge!("encaisse_inbox_files", "tenant" => tenant.to_string(), "area" => area.to_string())
        .set(files.len() as f64);
    metrics::gauge!("encaisse_inbox_oldest_age_seconds", "tenant" => tenant.to_string(), "area" => area.to_string())
        .set(oldest.as_secs_f64());
}

/// Moves a handled file to `archive/` or `rejected/`, never overwriting an earlier file of
/// the same name (a suffix with the time is added).
fn move_file(dirs: &AreaDirs, file: &InboxFile, outcome: &FileOutcome) -> std::io::Result<PathBuf> {
    let target_dir = match outcome {
        FileOutcome::Archived => &dirs.archive,
        FileOutcome::Rejected { .. } => &dirs.rejected,
    };
    encaisse_ledger::access::create_dir_all(target_dir)?;
    let mut dest = target_dir.join(&file.name);
    if dest.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        dest = target_dir.join(format!("{}.{stamp}", file.name));
    }
    std::fs::rename(&file.path, &dest)?;
    // The sender chose the mode; in the archive it is the daemon's.
    encaisse_ledger::access::restrict_file(&dest)?;
    if let FileOutcome::Rejected { reason } = outcome {
        let reason_path = PathBuf::from(format!("{}.reason.txt", dest.display()));
        encaisse_ledger::access::write_file(&reason_path, format!("{reason}\n").as_bytes())?;
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_timing_defaults_reads_and_checks() {
        let defaults: InboxWatchConfig = toml::from_str("").unwrap();
        assert_eq!(defaults, InboxWatchConfig::default());
        let watch = defaults.watch();
        assert_eq!(watch.poll_interval, Duration::from_secs(2));
        assert_eq!(watch.settle, Duration::from_secs(2));
        let fast: InboxWatchConfig =
            toml::from_str("inbox_poll_interval_ms = 200\ninbox_settle_ms = 0").unwrap();
        assert_eq!(fast.watch().poll_interval, Duration::from_millis(200));
        assert_eq!(fast.watch().settle, Duration::ZERO);
        assert!(fast.validate("sepa").is_empty());
        let zero = InboxWatchConfig {
            inbox_poll_interval_ms: 0,
            ..fast
        };
        let fields: Vec<String> = zero
            .validate("helios")
            .into_iter()
            .map(|i| i.field)
            .collect();
        assert_eq!(fields, ["helios.inbox_poll_interval_ms"]);
        assert!(toml::from_str::<InboxWatchConfig>("inbox_settle_secs = 2").is_err());
    }

    #[test]
    fn move_never_overwrites_and_writes_reason() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = TenantId::new("vitry").unwrap();
        let dirs = AreaDirs::new(dir.path(), &tenant, "bank");
        std::fs::create_dir_all(&dirs.inbox).unwrap();
        for round in 0..2 {
            let path = dirs.inbox.join("x.xml");
            std::fs::write(&path, format!("{round}")).unwrap();
            let file = InboxFile {
                tenant: tenant.clone(),
                path,
                name: "x.xml".into(),
                size_bytes: 1,
            };
            move_file(
                &dirs,
                &file,
                &FileOutcome::Rejected {
                    reason: "bad".into(),
                },
            )
            .unwrap();
        }
        let names: Vec<String> = std::fs::read_dir(&dirs.rejected)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "two files and two reasons: {names:?}");
        assert!(names.iter().filter(|n| n.ends_with(".reason.txt")).count() == 2);
    }

    #[test]
    fn hidden_and_directories_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".tmp"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.csv"), "x").unwrap();
        std::fs::write(dir.path().join("a.csv"), "x").unwrap();
        let files = list_files(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|(p, _, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.csv", "b.csv"]);
    }
}
