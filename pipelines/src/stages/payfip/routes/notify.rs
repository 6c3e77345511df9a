//! The gateway's notification and the browser's return (web service, spec §3.3).
//!
//! Both carry only an idOp, and neither is trusted: they can only *ask* the confirmation
//! stage to fetch the result from the gateway (`payfip.confirm`, confirmed publish).
//!
//! `POST /payfip/{tenant}/notification` (form `idop=…`, any letter case; the query string is
//! read when the body has none) answers:
//! * `200` with an empty body once the idOp is handled — the first notification of an
//!   unresolved operation of this tenant publishes `payfip.confirm`; duplicates, resolved
//!   operations, **unknown idOps and other tenants' idOps change nothing and get the same
//!   `200`**, so a forger learns nothing and the gateway never retries for nothing;
//! * `400` when the body carries no valid idop; `404` for a tenant we do not serve;
//! * `503` when the command could not be published (the broker is away): the claim is undone,
//!   so a retried notification or the reconciliation job asks again.
//!
//! `GET|POST /payfip/{tenant}/return?idop=…` asks the same way (a browser return proves the
//! payment page is done), then sends the browser to the Kiosque `return_url` with
//! `status` (`pending`, `paid`, `refused`, `abandoned`, `expired`), `payment_id` and `invoice`
//! — the outcome known so far — or shows a plain page when the payment had no return URL.
//! An unknown idOp gets a `404` page and no redirect.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use encaisse_payfip::IdOp;
use encaisse_payfip::notification::idop_from_form;
use encaisse_schemas::TenantId;

use super::page::{page, status_text};
use super::{NOTIFICATIONS, PayfipRoutes, return_url_with};
use crate::stages::payfip::confirm::command;
use crate::stages::payfip::store::{self, Operation};

/// What a notification (or return) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// `payfip.confirm` was published.
    Published,
    /// A confirmation was already asked for by an earlier notification.
    Duplicate,
    /// The operation already has its outcome.
    Resolved,
    /// No operation of this tenant has this idOp.
    Unknown,
}

impl Asked {
    fn label(self) -> &'static str {
        match self {
            Asked::Published => "published",
            Asked::Duplicate => "duplicate",
            Asked::Resolved => "resolved",
            Asked::Unknown => "unknown",
        }
    }
}

/// Why a notification could not be handled now.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("ledger: {0}")]
    Ledger(#[from] encaisse_ledger::LedgerError),
    #[error("publishing payfip.confirm: {0}")]
    Publish(#[from] crate::runtime::PublishError),
}

impl NotifyError {
    /// Both pass with time (a busy ledger, a broker reconnecting).
    pub fn is_transient(&self) -> bool {
        match self {
            NotifyError::Ledger(e) => e.is_transient(),
            NotifyError::Publish(e) => e.is_transient(),
        }
    }
}

fn count(route: &'static str, outcome: &'static str) {
    metrics::counter!(NOTIFICATIONS, "route" => route, "outcome" => outcome).increment(1);
}

/// The idOp of a form body, else of the query string.
fn idop_of(body: &[u8], query: Option<&str>) -> Option<IdOp> {
    let body = String::from_utf8_lossy(body);
    idop_from_form(&body)
        .ok()
        .or_else(|| query.and_then(|q| idop_from_form(q).ok()))
}

impl PayfipRoutes {
    /// The operation of `tenant` behind `idop`, if any.
    async fn tenant_operation(
        &self,
        tenant: &TenantId,
        idop: &IdOp,
    ) -> Result<Option<Operation>, NotifyError> {
        let key = idop.to_string();
        let op = self
            .ledger()
            .inspect(move |tx| store::operation_by_idop(tx, &key))
            .await?;
        Ok(op.filter(|op| &op.invoice.tenant == tenant))
    }

    /// Asks the confirmation stage to fetch the result of `op`, once per operation.
    async fn ask(&self, op: &Operation) -> Result<Asked, NotifyError> {
        if op.outcome.is_some() {
            return Ok(Asked::Resolved);
        }
        let Some(idop) = op.idop.clone() else {
            return Ok(Asked::Unknown);
        };
        let (op_id, now) = (op.op_id.clone(), store::ts(Utc::now()));
        let claimed = self
            .ledger()
            .transact(move |tx| store::claim_notification(tx, &op_id, &now))
            .await?;
        if !claimed {
            return Ok(Asked::Duplicate);
        }
        if let Err(e) = self
            .publisher()
            .publish(vec![command(&op.invoice.tenant, &idop)])
            .await
        {
            let op_id = op.op_id.clone();
            if let Err(le) = self
                .ledger()
                .transact(move |tx| store::release_notification(tx, &op_id))
                .await
            {
                tracing::warn!(error = %le, idop = %idop, "Notification claim not released; the reconciliation job will ask.");
            }
            return Err(e.into());
        }
        Ok(Asked::Published)
    }
}

/// `POST /payfip/{tenant}/notification`.
pub async fn notification(
    State(routes): State<PayfipRoutes>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(tenant) = routes.settings().tenant(&tenant).map(|t| t.id.clone()) else {
        count("notification", "unknown_tenant");
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(idop) = idop_of(&body, query.as_deref()) else {
        count("notification", "malformed");
        tracing::warn!(tenant = %tenant, "PayFiP notification without a valid idop refused.");
        return (StatusCode::BAD_REQUEST, "idop is missing or malformed\n").into_response();
    };
    let asked = match routes.tenant_operation(&tenant, &idop).await {
        Ok(Some(op)) => routes.ask(&op).await,
        Ok(None) => Ok(Asked::Unknown),
        Err(e) => Err(e),
    };
    match asked {
        Ok(asked) => {
            count("notification", asked.label());
            if asked == Asked::Unknown {
                tracing::warn!(tenant = %tenant, idop = %idop, "PayFiP notification for an operation this tenant does not have; nothing done.");
            } else {
                tracing::debug!(tenant = %tenant, idop = %idop, outcome = asked.label(), "PayFiP notification handled.");
            }
            StatusCode::OK.into_response()
        }
        Err(e) => {
            count("notification", "failed");
            tracing::warn!(tenant = %tenant, idop = %idop, error = %e, transient = e.is_transient(), "PayFiP notification not handled; answered 503.");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// `GET|POST /payfip/{tenant}/return`.
pub async fn browser_return(
    State(routes): State<PayfipRoutes>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let unknown = || {
        page(
            StatusCode::NOT_FOUND,
            "Paiement inconnu",
            "Ce paiement n'est pas connu.",
            None,
        )
    };
    let Some(tenant) = routes.settings().tenant(&tenant).map(|t| t.id.clone()) else {
        count("return", "unknown_tenant");
        return unknown();
    };
    let Some(idop) = idop_of(&body, query.as_deref()) else {
        count("return", "malformed");
        return unknown();
    };
    let op = match routes.tenant_operation(&tenant, &idop).await {
        Ok(Some(op)) => op,
        Ok(None) => {
            count("return", "unknown");
            tracing::warn!(tenant = %tenant, idop = %idop, "Browser return for an operation this tenant does not have.");
            return unknown();
        }
        Err(e) => {
            count("return", "failed");
            tracing::warn!(error = %e, "Browser return: ledger unavailable.");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service indisponible",
                "Le service est momentanément indisponible ; votre paiement sera traité.",
                None,
            );
        }
    };
    match routes.ask(&op).await {
        Ok(asked) => count("return", asked.label()),
        Err(e) => {
            count("return", "failed");
            tracing::warn!(idop = %idop, error = %e, "Browser return could not ask for the result; the reconciliation job will.");
        }
    }
    let status = op.status();
    let target = op
        .return_url
        .as_deref()
        .and_then(|url| return_url_with(url, status, op.payment_id.as_deref(), &op.invoice.number));
    match target {
        Some(url) => Redirect::to(&url).into_response(),
        None => page(
            StatusCode::OK,
            "Paiement en ligne",
            status_text(status),
            None,
        ),
    }
}
