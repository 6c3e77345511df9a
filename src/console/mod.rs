//! The web console for ops and finance, on its own listener (`[console] listen`): the same
//! ledger queries as `encaisse dlq` and `encaisse trace`, a month's reconciliation, the files
//! emitted and received, and an audit trail of every action taken there.
//!
//! Server-rendered HTML ([`html`]), assets embedded ([`assets`]), sessions and login
//! throttling in memory ([`session`]), passwords as Argon2id PHC strings ([`password`]).
//! Operator's guide: `docs/console.md`.

pub mod assets;
pub mod audit;
mod broker;
pub mod html;
pub mod pages;
pub mod password;
pub mod session;
mod web;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{Health, RuntimeConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::console::ConsoleConfig;
use crate::http::HttpLimits;
use session::{Sessions, Throttle};

pub use web::{Ctx, Page};

/// How long failed logins are remembered for throttling.
const LOGIN_WINDOW: Duration = Duration::from_secs(300);

/// One tenant as the console shows it.
#[derive(Debug, Clone)]
pub struct TenantView {
    pub id: String,
    pub name: String,
}

/// Everything the console's pages read. Shared by every request.
pub struct Console {
    pub settings: ConsoleConfig,
    pub ledger: Ledger,
    pub health: Health,
    /// Broker settings, for replays (a connection per replay request).
    pub runtime: RuntimeConfig,
    pub data_dir: PathBuf,
    pub tenants: Vec<TenantView>,
    /// The stages' work and parking queues, whose depths the overview shows.
    pub queues: Vec<String>,
    pub sessions: Sessions,
    pub throttle: Throttle,
}

impl Console {
    pub fn new(
        settings: ConsoleConfig,
        ledger: Ledger,
        health: Health,
        runtime: RuntimeConfig,
        data_dir: PathBuf,
        tenants: Vec<TenantView>,
        queues: Vec<String>,
    ) -> Arc<Console> {
        Arc::new(Console {
            sessions: Sessions::new(Duration::from_secs(settings.idle_timeout_secs)),
            throttle: Throttle::new(settings.max_failed_logins, LOGIN_WINDOW),
            settings,
            ledger,
            health,
            runtime,
            data_dir,
            tenants,
            queues,
        })
    }

    /// Ready messages per queue, or why the broker could not be asked.
    pub async fn queue_depths(&self) -> Result<Vec<(String, u32)>, String> {
        if self.queues.is_empty() {
            return Ok(Vec::new());
        }
        broker::depths(&self.runtime, &self.queues).await
    }

    /// The tenants `ctx`'s user may see.
    pub fn visible_tenants(&self, ctx: &Ctx) -> Vec<&TenantView> {
        self.tenants
            .iter()
            .filter(|t| ctx.session.sees(&t.id))
            .collect()
    }
}

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    web::router(console)
}

/// Serves the console on `listener` until `shutdown`, held to the same `[http]` limits as the
/// daemon's main listener (header-read and request timeouts, bounded connections): a slow
/// client must not hold the ops' console either.
pub async fn serve(
    console: Arc<Console>,
    listener: TcpListener,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = crate::http::with_request_timeout(router(console), limits.request_timeout);
    crate::http::serve_limited(router, listener, limits, shutdown).await
}

/// Starts the console when `[console] listen` is set: binds its listener and serves it until
/// `shutdown`. `Ok(None)`: no console configured; `Err(code)`: the address cannot be bound.
pub async fn start(
    config: &crate::config::Config,
    ledger: &Ledger,
    health: Health,
    queues: Vec<String>,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, u8> {
    let Some(addr) = config.console.listen else {
        return Ok(None);
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(addr = %addr, error = %e, "Cannot listen for the console.");
            return Err(crate::exit::IO_ERROR);
        }
    };
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    let tenants = config
        .tenants
        .iter()
        .map(|t| TenantView {
            id: t.id.as_str().to_string(),
            name: t.name.clone(),
        })
        .collect();
    let console = Console::new(
        config.console.clone(),
        ledger.clone(),
        health,
        config.runtime(),
        config.data_dir.clone(),
        tenants,
        queues,
    );
    let limits = HttpLimits::from(&config.http);
    tracing::info!(addr = %bound, users = config.console.users.len(), "Console listening.");
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = serve(console, listener, limits, shutdown).await {
            tracing::error!(error = %e, "Console server stopped with an error.");
        }
    })))
}
