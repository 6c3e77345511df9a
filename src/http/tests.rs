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
    start_with(extra, HttpLimits::default()).await
}

async fn start_with(extra: Option<Router>, limits: HttpLimits) -> Fixture {
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
    let mut server = Server::new(state).with_limits(limits);
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
async fn readyz_counts_a_directory_that_is_gone_without_showing_paths() {
    let fx = start(None).await;
    let gone = fx.dirs[3].clone();
    std::fs::remove_dir(&gone).unwrap();
    let (status, body) = get_text(&format!("{}/readyz", fx.base)).await;
    assert_eq!(status, 503);
    let readiness: Readiness = serde_json::from_str(&body).unwrap();
    assert!(!readiness.checks.data_dirs.ok);
    assert_eq!(
        readiness.checks.data_dirs.detail,
        "1 of 13 directories not writable (which ones: the daemon's log)"
    );
    let root = fx._tmp.path().display().to_string();
    assert!(!body.contains(&root) && !body.contains("/data"), "{body}");
    fx.shutdown.cancel();
}

#[tokio::test]
async fn readyz_called_50_times_at_once_answers_the_same() {
    let fx = start(None).await;
    let http = reqwest::Client::new();
    let calls = (0..50).map(|_| {
        let (http, url) = (http.clone(), format!("{}/readyz", fx.base));
        tokio::spawn(async move {
            let response = http.get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let readiness: Readiness =
                serde_json::from_str(&response.text().await.unwrap()).unwrap();
            (status, readiness)
        })
    });
    let answers: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (status, readiness) in &answers {
        assert_eq!(*status, 503, "the broker is not connected in this fixture");
        assert!(readiness.checks.data_dirs.ok, "{readiness:?}");
        assert_eq!(readiness, &answers[0].1);
    }
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

#[tokio::test]
async fn connections_beyond_the_bound_wait_until_idle_ones_are_cut() {
    let limits = HttpLimits {
        header_read_timeout: std::time::Duration::from_secs(2),
        request_timeout: std::time::Duration::from_secs(5),
        max_connections: 2,
    };
    let fx = start_with(None, limits).await;
    let addr = fx.base.trim_start_matches("http://").to_string();
    // Two clients that connect and send nothing hold both slots.
    let idle: Vec<_> =
        futures::future::join_all((0..2).map(|_| tokio::net::TcpStream::connect(addr.clone())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(700))
        .build()
        .unwrap();
    let url = format!("{}/healthz", fx.base);
    assert!(
        http.get(&url).send().await.is_err(),
        "a third connection was served beyond the bound"
    );
    // The header-read timeout closes the idle ones; the next client is served.
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let status = http.get(&url).send().await.unwrap().status().as_u16();
    assert_eq!(status, 200);
    drop(idle);
    fx.shutdown.cancel();
}
