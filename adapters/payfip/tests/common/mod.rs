//! Shared test helpers: the spec's recorded exchanges (read from `../shared/specs/payfip.md`,
//! never copied), a replay server standing for the gateway, and a receiver standing for our
//! daemon's notification / return / `urlcl` endpoints (built in a later step).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};

/// The spec's text, or `None` (the check skipped, `encaisse_xml::specs`) when the shared
/// specs are absent.
pub fn spec() -> Option<String> {
    let path = encaisse_xml::specs::official("payfip.md", "the PayFiP spec's recorded exchanges")?;
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
}

/// The text of the section whose heading starts with `heading` (`### 6.3`), up to the next
/// heading of level 2 or 3.
pub fn section(spec: &str, heading: &str) -> String {
    let start = spec
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("section {heading} not found in the spec"));
    let rest = &spec[start + 1..];
    let body_start = rest.find('\n').map(|i| i + 1).unwrap_or(rest.len());
    let body = &rest[body_start..];
    let end = [body.find("\n### "), body.find("\n## ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(body.len());
    body[..end].to_string()
}

/// The fenced code blocks of a section, in order (content only, without the fences).
pub fn code_blocks(section: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(lines) => blocks.push(lines.join("\n")),
                None => current = Some(Vec::new()),
            }
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    blocks
}

/// The table row of a section whose first cell starts with `` `key` ``.
pub fn table_row(section: &str, key: &str) -> String {
    section
        .lines()
        .find(|l| l.starts_with(&format!("| `{key}`")))
        .unwrap_or_else(|| panic!("row {key} not found"))
        .to_string()
}

/// The backticked spans of a line.
pub fn backticked(line: &str) -> Vec<String> {
    line.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// Removes the whitespace between tags (the spec's exchanges are re-indented by lxml).
pub fn compact(xml: &str) -> String {
    let mut out = String::new();
    for line in xml.lines() {
        out.push_str(line.trim());
    }
    out
}

/// Drops an XML declaration.
pub fn without_declaration(xml: &str) -> &str {
    match xml.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map(|(_, r)| r.trim_start())
            .unwrap_or(rest),
        None => xml.trim_start(),
    }
}

/// The substring from the first `<{prefix}:{name}` to its closing tag (a payload carrying
/// its own namespace declaration), for XSD validation.
pub fn element(xml: &str, qualified: &str) -> String {
    let open = format!("<{qualified}");
    let close = format!("</{qualified}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("{qualified} not in {xml}"));
    match xml[start..].find(&close) {
        Some(end) => xml[start..start + end + close.len()].to_string(),
        None => {
            // Empty element `<x .../>`.
            let end = xml[start..].find("/>").expect("element end");
            xml[start..start + end + 2].to_string()
        }
    }
}

/// Validates a payload against the service XSD (`PaiementSecuriseService_schema1.xsd`).
pub fn assert_valid_payload(name: &str, payload: &str) {
    let schema = encaisse_xml::specs::specs_dir()
        .join("payfip")
        .join("PaiementSecuriseService_schema1.xsd");
    if let Err(e) = encaisse_xml::specs::validate_bytes_or_skip(&schema, name, payload.as_bytes()) {
        panic!("{name} does not validate: {e}");
    }
}

/// One request the replay server received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub content_type: String,
    pub soap_action: Option<String>,
    pub body: String,
}

#[derive(Default)]
struct ReplayState {
    answers: VecDeque<(u16, String)>,
    captured: Vec<Captured>,
}

/// A server answering SOAP POSTs with canned (status, body) pairs, recording each request.
pub struct Replay {
    pub url: String,
    state: Arc<Mutex<ReplayState>>,
}

impl Replay {
    pub async fn start() -> Replay {
        let state = Arc::new(Mutex::new(ReplayState::default()));
        let app = Router::new()
            .route("/tpa/services/securite", post(replay_answer))
            .with_state(state.clone());
        let addr = serve(app).await;
        Replay {
            url: format!("http://{addr}/tpa/services/securite"),
            state,
        }
    }

    pub fn answer(&self, status: u16, body: impl Into<String>) {
        self.state
            .lock()
            .unwrap()
            .answers
            .push_back((status, body.into()));
    }

    pub fn captured(&self) -> Vec<Captured> {
        self.state.lock().unwrap().captured.clone()
    }
}

async fn replay_answer(
    State(state): State<Arc<Mutex<ReplayState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap();
    state.captured.push(Captured {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        soap_action: headers
            .get("soapaction")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let (status, body) = state
        .answers
        .pop_front()
        .unwrap_or((500, "no canned answer".into()));
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "text/xml;charset=utf-8")],
        body,
    )
        .into_response()
}

/// What the receiver (standing for our daemon) was sent.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// Raw form bodies POSTed to `/notif`.
    pub notifications: Vec<String>,
    /// Raw queries or bodies of browser returns to `/return`.
    pub returns: Vec<String>,
    /// `(method, raw query or body)` sent to `/classic`.
    pub classic: Vec<(String, String)>,
}

/// A server recording notifications, returns and classic results.
pub struct Receiver {
    pub base: String,
    log: Arc<Mutex<Received>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let log = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/notif", post(receive_notification))
            .route("/return", any(receive_return))
            .route("/classic", any(receive_classic))
            .with_state(log.clone());
        let addr = serve(app).await;
        Receiver {
            base: format!("http://{addr}"),
            log,
        }
    }

    pub fn received(&self) -> Received {
        self.log.lock().unwrap().clone()
    }

    /// Notifications received for `idop`.
    pub fn notifications_for(&self, idop: &str) -> usize {
        let wanted = format!("idop={idop}");
        self.received()
            .notifications
            .iter()
            .filter(|n| **n == wanted)
            .count()
    }
}

async fn receive_notification(State(log): State<Arc<Mutex<Received>>>, body: Bytes) -> StatusCode {
    log.lock()
        .unwrap()
        .notifications
        .push(String::from_utf8_lossy(&body).into_owned());
    StatusCode::OK
}

async fn receive_return(
    State(log): State<Arc<Mutex<Received>>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> StatusCode {
    let text = query_or_body(query, &body);
    log.lock().unwrap().returns.push(text);
    StatusCode::OK
}

async fn receive_classic(
    State(log): State<Arc<Mutex<Received>>>,
    method: axum::http::Method,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> StatusCode {
    let text = query_or_body(query, &body);
    log.lock().unwrap().classic.push((method.to_string(), text));
    StatusCode::OK
}

fn query_or_body(query: Option<String>, body: &[u8]) -> String {
    match query {
        Some(q) if !q.is_empty() => q,
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}
