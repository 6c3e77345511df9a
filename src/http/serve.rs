//! The accept loop with the listener's limits: a header-read timeout (hyper's own, which also
//! ends idle keep-alive connections), a per-request timeout around the handlers (the body is
//! read inside them, so a trickled body is cut too) and a bound on connections served at once.
//! `axum::serve` offers none of these, and a client sending one header byte every few seconds
//! would otherwise hold its connection forever.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::config::HttpConfig;

/// The limits every connection of the listener is held to (`[http]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl From<&HttpConfig> for HttpLimits {
    fn from(config: &HttpConfig) -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs.max(1)),
            request_timeout: Duration::from_secs(config.request_timeout_secs.max(1)),
            max_connections: config.max_connections.max(1),
        }
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits::from(&HttpConfig::default())
    }
}

/// Counter of connections closed or requests cut by a limit, by `limit`
/// (`request_timeout`), and of connection errors (`header_timeout` among them).
pub const LIMITED: &str = "encaisse_http_limited_total";

/// Adds the per-request timeout to `router`: past it, `408` and the connection is closed.
pub fn with_request_timeout(router: Router, timeout: Duration) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            match tokio::time::timeout(timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    metrics::counter!(LIMITED, "limit" => "request_timeout").increment(1);
                    let mut response =
                        (StatusCode::REQUEST_TIMEOUT, "request timed out\n").into_response();
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    response
                }
            }
        },
    ))
}

/// Serves `router` (already wrapped by [`with_request_timeout`]) until `shutdown`, then lets
/// open requests finish. Each request carries its peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: not fatal.
                    tracing::warn!(error = %e, "HTTP accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move {
                Ok::<Response, Infallible>(
                    router
                        .call(request.map(axum::body::Body::new))
                        .await
                        .unwrap_or_else(|e| match e {}),
                )
            }
        });
        let stop = shutdown.clone();
        connections.spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = served {
                let limit = if e.is_timeout() {
                    "header_timeout"
                } else {
                    "connection_error"
                };
                metrics::counter!(LIMITED, "limit" => limit).increment(1);
                tracing::debug!(peer = %peer, error = %e, "HTTP connection ended with an error.");
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}
