//! JSON errors of the payment API: `{"error": "<code>", "message": "<text>", …}` with a
//! status that says who must act (4xx the caller, 5xx us or the gateway).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use encaisse_ledger::LedgerError;
use serde_json::{Map, Value, json};

/// An error answer of the payment API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine code (`already_paid`), documented in `docs/payfip.md`.
    pub code: &'static str,
    pub message: String,
    /// Extra fields of the body (`payment_id`, `retry_after_secs`, …).
    pub extra: Map<String, Value>,
    /// `Retry-After`, in seconds.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
            retry_after_secs: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self.with("retry_after_secs", secs)
    }

    /// Missing or wrong credentials (also for an unknown tenant: the answer does not tell
    /// which tenants exist).
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token for this tenant is required",
        )
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// The ledger failed: try again later.
    pub fn ledger(e: &LedgerError) -> Self {
        tracing::error!(error = %e, "Payment API: ledger failure.");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the payment service is temporarily unavailable; try again",
        )
        .retry_after(5)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        body.extend(self.extra);
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"encaisse\""),
            );
        }
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
