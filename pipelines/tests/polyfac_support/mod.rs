//! Helpers shared by the Polyfac stages' integration tests (`polyfac_*.rs`): a running
//! runtime on its own broker namespace, a ledger and a data directory in a temporary
//! directory, the example tenant `vitry`, the adapter's samples.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use encaisse_ledger::Ledger;
use encaisse_pipelines::Stage;
use encaisse_pipelines::mandates::SequencePolicy;
use encaisse_pipelines::runtime::{Runtime, SourceContext};
use encaisse_pipelines::stages::polyfac::{PolyfacTenant, PolyfacTenants};
use encaisse_polyfac::SourceMapping;
use encaisse_polyfac::generate::example_catalogue;
use encaisse_schemas::TenantId;
use tokio_util::sync::CancellationToken;

pub use crate::support::count;
use crate::support::{self, BROKER, Client, Namespace, Running};

/// The example tenant of the adapter's generator and samples, with a source mapping.
pub fn tenant(id: &str, application: &str, mapping: SourceMapping) -> PolyfacTenant {
    let tenant = TenantId::new(id).unwrap();
    PolyfacTenant {
        catalogue: Arc::new(example_catalogue(tenant.clone()).unwrap()),
        tenant,
        application: application.to_string(),
        mapping,
        sequence_policy: SequencePolicy::from(&encaisse_sepa::config::SepaTenantConfig::default()),
    }
}

/// `vitry` with the built-in Polyfac contract.
pub fn vitry() -> PolyfacTenants {
    PolyfacTenants::new([tenant("vitry", "polyfac", SourceMapping::polyfac_default())])
}

/// A file of the adapter's samples (never copied: read from the adapter's directory).
pub fn sample(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/polyfac/samples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Everything a test needs, running.
pub struct Harness {
    pub ns: Namespace,
    pub client: Client,
    pub dir: tempfile::TempDir,
    pub ledger: Ledger,
    pub ctx: SourceContext,
    running: Option<Running>,
}

impl Harness {
    /// Starts a runtime with `stages` (their queues are cleaned up with the namespace).
    /// `sinks`: (name, pattern) test queues bound before anything is published.
    pub async fn start(
        stages: impl FnOnce(&Ledger) -> Vec<Arc<dyn Stage>>,
        sinks: &[(&str, &str)],
    ) -> Self {
        Self::start_with(stages, sinks, false).await
    }

    /// [`Harness::start`] with every sink also watched by the sources' back-pressure, as a
    /// stage's work queue would be (`Runtime::watch_downstream`).
    pub async fn start_watching_sinks(
        stages: impl FnOnce(&Ledger) -> Vec<Arc<dyn Stage>>,
        sinks: &[(&str, &str)],
    ) -> Self {
        Self::start_with(stages, sinks, true).await
    }

    async fn start_with(
        stages: impl FnOnce(&Ledger) -> Vec<Arc<dyn Stage>>,
        sinks: &[(&str, &str)],
        watch_sinks: bool,
    ) -> Self {
        let ns = Namespace::new();
        let client = Client::new().await;
        for (name, pattern) in sinks {
            client.sink(&ns, name, pattern).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
        let config = ns.config(&support::broker_url(BROKER), &[1]);
        let mut runtime = Runtime::new(config, ledger.clone());
        for stage in stages(&ledger) {
            ns.stage(stage.name(), &[1]);
            runtime.add_stage(stage);
        }
        if watch_sinks {
            for (name, pattern) in sinks {
                runtime.watch_downstream(format!("{}.{name}", ns.prefix), &[pattern]);
            }
        }
        let ctx = SourceContext {
            publisher: runtime.publisher(),
            ledger: ledger.clone(),
            shutdown: CancellationToken::new(),
        };
        let running = Running::start(runtime);
        support::wait_connected(&running.health).await;
        Harness {
            ns,
            client,
            dir,
            ledger,
            ctx,
            running: Some(running),
        }
    }

    /// `<tmp>/data`: the data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `<data>/<tenant>/polyfac/<sub>`.
    pub fn area(&self, tenant: &str, sub: &str) -> PathBuf {
        self.data_dir().join(tenant).join("polyfac").join(sub)
    }

    /// The name of a sink queue.
    pub fn queue(&self, name: &str) -> String {
        format!("{}.{name}", self.ns.prefix)
    }

    /// Names of every entry of a directory, hidden ones too (a temporary file left behind
    /// shows), sorted; none when it does not exist.
    pub fn files(&self, dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Waits until `sql` (one integer) returns at least `n`.
    pub async fn wait_count(&self, what: &str, sql: &'static str, n: i64) {
        let ledger = self.ledger.clone();
        support::wait_until(what, Duration::from_secs(30), || {
            let ledger = ledger.clone();
            async move { count(&ledger, sql).await >= n }
        })
        .await;
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}
