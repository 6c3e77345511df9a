//! Liveness, readiness and metrics.
//!
//! * `/healthz`: 200 as long as the process answers (liveness: restart it if this fails).
//! * `/readyz`: 200 when the broker is connected, every data directory is writable and the
//!   ledger answers a read; 503 otherwise. The body lists each check, so ops see which one —
//!   without paths or error texts (anyone may call it): those are logged.
//! * `/metrics`: Prometheus text format.

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use encaisse_pipelines::runtime::BrokerState;
use serde::Serialize;

use super::AppState;
use crate::dirs;

/// The `/readyz` body.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Readiness {
    /// `true` when every check passed.
    pub ready: bool,
    pub checks: Checks,
}

/// Each readiness check by name.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Checks {
    pub broker: Check,
    pub data_dirs: Check,
    pub ledger: Check,
}

/// One readiness check.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    /// What was seen (`connected`, `25 directories writable`) or what failed.
    pub detail: String,
}

impl Check {
    fn from_result(result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Check { ok: true, detail },
            Err(detail) => Check { ok: false, detail },
        }
    }
}

pub(super) async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(serde_json::json!({ "alive": true })))
}

pub(super) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let readiness = readiness(&state).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.inner.metrics.render(),
    )
}

async fn readiness(state: &AppState) -> Readiness {
    let broker = broker_check(state.inner.health.state());
    let dirs = state.inner.dirs.clone();
    let data_dirs = tokio::task::spawn_blocking(move || dirs_check(&dirs))
        .await
        .unwrap_or_else(|e| Err(format!("directory check did not complete: {e}")));
    let ledger = state
        .inner
        .ledger
        .inspect(|tx| {
            tx.query_one("SELECT count(*) FROM schema_migration", &[], |row| {
                row.get::<i64>(0)
            })
        })
        .await
        .map(|migrations| format!("readable (schema migrations applied: {migrations})"))
        .map_err(|e| {
            tracing::warn!(error = %e, "Readiness: the ledger does not answer.");
            "does not answer (the cause is in the daemon's log)".to_string()
        });
    let checks = Checks {
        broker: Check::from_result(broker),
        data_dirs: Check::from_result(data_dirs),
        ledger: Check::from_result(ledger),
    };
    Readiness {
        ready: checks.broker.ok && checks.data_dirs.ok && checks.ledger.ok,
        checks,
    }
}

fn broker_check(state: BrokerState) -> Result<String, String> {
    match state {
        BrokerState::Connected => Ok("connected".into()),
        BrokerState::Connecting => Err("connecting".into()),
        BrokerState::Blocked => Err("blocked by the broker (memory or disk alarm)".into()),
        BrokerState::Disconnected => Err("disconnected (reconnecting)".into()),
    }
}

/// The answer counts the directories; which ones and why go to the log only: `/readyz` is
/// anonymous, and the layout of the server's disk is none of its callers' business.
fn dirs_check(dirs: &[PathBuf]) -> Result<String, String> {
    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|dir| dirs::probe_writable(dir).err())
        .map(|e| e.to_string())
        .collect();
    if failures.is_empty() {
        Ok(format!("{} directories writable", dirs.len()))
    } else {
        tracing::warn!(failures = %failures.join("; "), "Readiness: data directories not writable.");
        Err(format!(
            "{} of {} directories not writable (which ones: the daemon's log)",
            failures.len(),
            dirs.len()
        ))
    }
}
