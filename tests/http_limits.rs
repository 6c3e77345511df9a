//! The daemon's listener against slow clients, over real TCP: 60 connections trickling their
//! headers one byte every 2 s are closed by the header-read timeout well within 30 s while
//! `/healthz` and the payments API keep answering; a request whose body stalls gets `408`
//! after the request timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW_CLIENTS: usize = 60;

fn limited_config(dir: &std::path::Path, prefix: &str) -> std::path::PathBuf {
    let path = write_config(dir, prefix, BROKER_URL);
    let text = std::fs::read_to_string(&path).unwrap();
    let limited = text
        .replace(
            "header_read_timeout_secs = 10",
            "header_read_timeout_secs = 5",
        )
        .replace("request_timeout_secs = 30", "request_timeout_secs = 3");
    assert_ne!(text, limited, "the example's [http] shape changed");
    std::fs::write(&path, limited).unwrap();
    path
}

/// A client that sends a request's header one byte every `every`; returns how long the
/// daemon kept the connection open (until it closed it or the client gave up at `give_up`).
async fn trickle(addr: String, every: Duration, give_up: Duration) -> Duration {
    let started = Instant::now();
    let Ok(stream) = TcpStream::connect(&addr).await else {
        return started.elapsed();
    };
    let (mut reader, mut writer) = stream.into_split();
    let header = b"GET /healthz HTTP/1.1\r\nHost: encaisse\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let writing = async {
        for byte in header {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        }
        std::future::pending::<()>().await;
    };
    let mut buf = [0u8; 256];
    tokio::select! {
        _ = writing => {}
        _ = reader.read(&mut buf) => {}
        _ = tokio::time::sleep(give_up) => {}
    }
    started.elapsed()
}

#[tokio::test]
async fn slow_clients_are_cut_while_health_and_the_payments_api_answer() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("http-limits");
    let _topology = Topology(prefix.clone());
    let config = limited_config(dir.path(), &prefix);
    let mut daemon = Daemon::start(&config, &[]);
    let base = daemon.http_base();
    wait_for_status(&format!("{base}/healthz"), 200, Duration::from_secs(30)).await;
    let addr = base.trim_start_matches("http://").to_string();

    let give_up = Duration::from_secs(45);
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| tokio::spawn(trickle(addr.clone(), Duration::from_secs(2), give_up)))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile the daemon answers others at once.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    for _ in 0..4 {
        let health = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let api = http
            .post(format!("{base}/api/v1/tenants/vitry/payments"))
            .bearer_auth(VITRY_TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"invoice": "NO-SUCH-INVOICE"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status().as_u16(), 404, "the payments API answers");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let mut longest = Duration::ZERO;
    for client in slow {
        longest = longest.max(client.await.unwrap());
    }
    eprintln!("{SLOW_CLIENTS} slow clients: the last one was closed after {longest:?}");
    assert!(
        longest < Duration::from_secs(30),
        "a slow client stayed connected {longest:?}"
    );
    assert!(
        longest >= Duration::from_secs(4),
        "closed before the header timeout: {longest:?}"
    );

    // A body that stalls after its headers: 408 once the request timeout passes.
    let started = Instant::now();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /api/v1/tenants/vitry/payments HTTP/1.1\r\nHost: encaisse\r\nAuthorization: Bearer {VITRY_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"invoice\""
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the stalled request was never answered");
    read.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(3));

    daemon.terminate(Duration::from_secs(20));
}
