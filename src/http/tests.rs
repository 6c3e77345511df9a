use std::path::PathBuf;

use axum::routing::get;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{Runtime, RuntimeConfig};

use super::*;

struct Fixture {
    base: String,
    shutdown: CancellationToken,
    _tmp: tempfile::TempDir,
    dirs: Vec<PathBuf>,
}

/// A server with a real ledger and a runtime that is not running (broker never connected).
async fn start(extra: Option<Router>) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let tenant = encaisse_schemas::TenantId::new("vitry").unwrap();
    let dirs = crate::dirs::create_all(&data, [&tenant]).unwrap();
    let ledger = Ledger::open(crate::dirs::ledger_path(&data)).unwrap();
    let runtime = Runtime::new(RuntimeConfig::default(), ledger.clone());
    let state = AppState::new(
        runtime.health(),
        ledger,
        dirs.clone(),
        crate::metrics::handle(),
    );
    let mut server = Server::new(state);
    if let Some(router) = extra {
        server = server.merge(router);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(server.serve(listener, shutdown.clone()));
    Fixture {
        base,
        shutdown,
        _tmp: tmp,
        dirs,
    }
}

async fn get_text(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn healthz_is_200() {
    let fx = start(None).await;
    let (status, body) = get_text(&format!("{}/healthz", fx.base)).await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"alive":true}"#);
    fx.shutdown.cancel();
}

#[tokio::test]
async fn readyz_is_503_while_the_broker_is_not_connected() {
    let fx = start(None).await;
    let (status, body) = get_text(&format!("{}/readyz", fx.base)).await;
    assert_eq!(status, 503);
    let readiness: Readiness = serde_json::from_str(&body).unwrap();
    assert!(!readiness.ready);
    assert!(!readiness.checks.broker.ok);
    assert_eq!(readiness.checks.broker.detail, "connecting");
    assert!(readiness.checks.data_dirs.ok, "{body}");
    assert_eq!(readiness.checks.data_dirs.detail, "13 directories writable");
    assert!(readiness.checks.ledger.ok, "{body}");
    fx.shutdown.cancel();
}

#[tokio::test]
async fn readyz_names_a_directory_that_is_gone() {
    let fx = start(None).await;
    let gone = fx.dirs[3].clone();
    std::fs::remove_dir(&gone).unwrap();
    let (status, body) = get_text(&format!("{}/readyz", fx.base)).await;
    assert_eq!(status, 503);
    let readiness: Readiness = serde_json::from_str(&body).unwrap();
    assert!(!readiness.checks.data_dirs.ok);
    assert!(
        readiness
            .checks
            .data_dirs
            .detail
            .contains(&gone.display().to_string()),
        "{body}"
    );
    fx.shutdown.cancel();
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let fx = start(None).await;
    let response = reqwest::get(format!("{}/metrics", fx.base)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body = response.text().await.unwrap();
    assert!(body.contains("encaisse_build_info{version=\""), "{body}");
    fx.shutdown.cancel();
}

#[tokio::test]
async fn merged_routes_are_served_beside_the_built_in_ones() {
    let extra = Router::new().route("/payfip/ping", get(|| async { "pong" }));
    let fx = start(Some(extra)).await;
    assert_eq!(
        get_text(&format!("{}/payfip/ping", fx.base)).await,
        (200, "pong".to_string())
    );
    assert_eq!(get_text(&format!("{}/healthz", fx.base)).await.0, 200);
    assert_eq!(get_text(&format!("{}/nothing", fx.base)).await.0, 404);
    fx.shutdown.cancel();
}
