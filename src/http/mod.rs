//! The daemon's HTTP server (axum): `/healthz`, `/readyz`, `/metrics`, and whatever routes
//! other areas mount (the PayFiP payment API and notifications):
//!
//! ```text
//! http::Server::new(state).merge(payfip_routes).serve(listener, shutdown).await?;
//! ```

mod health;
mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::Health;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use health::{Check, Readiness};
pub use serve::{HttpLimits, LIMITED, serve as serve_limited, with_request_timeout};

/// What the built-in routes look at. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    health: Health,
    ledger: Ledger,
    dirs: Vec<PathBuf>,
    metrics: PrometheusHandle,
}

impl AppState {
    /// `dirs`: the directories that must stay writable for the daemon to be ready (the data
    /// directory and every tenant's folders).
    pub fn new(
        health: Health,
        ledger: Ledger,
        dirs: Vec<PathBuf>,
        metrics: PrometheusHandle,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                health,
                ledger,
                dirs,
                metrics,
            }),
        }
    }
}

/// The HTTP server: built-in routes plus merged ones.
pub struct Server {
    router: Router,
    limits: HttpLimits,
}

impl Server {
    pub fn new(state: AppState) -> Self {
        let router = Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/metrics", get(health::metrics))
            .with_state(state);
        Server {
            router,
            limits: HttpLimits::default(),
        }
    }

    /// Mounts another area's routes (they carry their own state). Paths must not clash with
    /// the built-in ones (axum panics on a duplicate route at start-up, before serving).
    pub fn merge(mut self, router: Router) -> Self {
        self.router = self.router.merge(router);
        self
    }

    /// The listener's limits (`[http]`); without this call, the defaults.
    pub fn with_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The assembled router (for tests that call it without a socket).
    pub fn into_router(self) -> Router {
        self.router
    }

    /// Serves until `shutdown` is cancelled, then lets open requests finish; every
    /// connection held to the [`HttpLimits`].
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let router = serve::with_request_timeout(self.router, self.limits.request_timeout);
        serve::serve(router, listener, self.limits, shutdown).await
    }
}

#[cfg(test)]
mod tests;
