//! `GET|POST /payfip/{tenant}/classic`: the result of a classic-URL payment (titres), sent to
//! `urlcl` by the gateway (server side) and/or the family's browser, as a form or a query.
//!
//! That channel has **no signature** (spec §2.5) and every field it carries travels through
//! the family's browser: anyone who saw the payment URL can post a matching result. So a
//! result is first checked by `encaisse_payfip::classic::verify` against what the ledger
//! stored for the latest attempt with that `refdet` (our numcli, the titre's exercice, the
//! exact amount, the tenant's mode letter; a test letter is refused in production), and even
//! then it is only believed as far as it cannot hurt:
//! * `P`/`V` ("paid") is a **claim**: recorded on the attempt (`payfip_announced` in the
//!   invoice's journal, `encaisse_payfip_claims_total{outcome="announced"}`), the payments API
//!   answers `payment_in_progress` for `classic_claim_hold_secs`, and **nothing is published**.
//!   The titre becomes paid only when the Trésorerie's PES Retour émargement (`OrgEma` 10)
//!   reports the payment (`payfip.register` then confirms the claim; `payfip.reconcile`
//!   reports a claim never confirmed).
//! * `R`/`Z`/`A` ends the attempt so that the family can try again, and publishes
//!   `payment.failed` (payment id `tipi:<refdet>`) — unless a payment was already announced:
//!   a claim is not undone by a later result.
//!
//! With `[payfip] classic_result_networks` set, a result whose TCP peer is outside those
//! networks is recorded nowhere (the page is still shown).
//!
//! Answers: `200` with a page that sends a browser on to the Kiosque return URL (a server
//! caller just gets its `200`); `400` unreadable result; `404` no attempt with that refdet;
//! `422` a result that does not match — the answer names the field, never the value we
//! expected (that goes to the log); `503` ledger or broker unavailable.

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use encaisse_ledger::{CoreStore, InvoiceFact, LedgerError};
use encaisse_payfip::FeeChannel;
use encaisse_payfip::classic::{ClassicExpectation, ClassicResult, verify};
use encaisse_payfip::{Exer, NumCli, Refdet};
use encaisse_schemas::Money;
use serde_json::json;

use super::page::{page, status_text};
use super::{CLAIMS, PayfipRoutes, return_url_with};
use crate::stage::Outgoing;
use crate::stages::payfip::paris_now;
use crate::stages::payfip::store::{self, Operation, Outcome, Resolution};

fn expectation_of(op: &Operation) -> Option<ClassicExpectation> {
    Some(ClassicExpectation {
        numcli: NumCli::new(&op.numcli).ok()?,
        exer: Some(Exer::new(op.exer).ok()?),
        refdet: Refdet::new(&op.refdet).ok()?,
        amount: op.amount,
        mode: op.mode,
    })
}

/// The handler.
pub async fn result(
    State(routes): State<PayfipRoutes>,
    Path(tenant): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(tenant) = routes.settings().tenant(&tenant).map(|t| t.id.clone()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let body = String::from_utf8_lossy(&body);
    let encoded = if body.trim().is_empty() {
        query.unwrap_or_default()
    } else {
        body.into_owned()
    };
    let result = match ClassicResult::parse(&encoded) {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(tenant = %tenant, error = %e, "Classic PayFiP result unreadable; refused.");
            return (StatusCode::BAD_REQUEST, format!("{}\n", e.public_reason())).into_response();
        }
    };
    let (id, refdet) = (tenant.clone(), result.refdet.clone());
    let op = match routes
        .ledger()
        .inspect(move |tx| store::latest_classic(tx, &id, &refdet))
        .await
    {
        Ok(Some(op)) => op,
        Ok(None) => {
            tracing::warn!(tenant = %tenant, refdet = %result.refdet, "Classic PayFiP result for a payment we never started; refused.");
            return (StatusCode::NOT_FOUND, "unknown payment\n").into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "Classic PayFiP result: ledger unavailable.");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let Some(expected) = expectation_of(&op) else {
        tracing::error!(op_id = %op.op_id, "Classic attempt with unusable stored fields.");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let resultrans = match verify(
        &result,
        &expected,
        &routes.settings().gateway.classic_saisie,
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                tenant = %tenant,
                refdet = %result.refdet,
                error = %e,
                suspicious = e.is_suspicious(),
                "Classic PayFiP result does not match the ledger; refused, nothing published."
            );
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{}\n", e.public_reason()),
            )
                .into_response();
        }
    };
    let gateway = &routes.settings().gateway;
    if !gateway.classic_result_networks.is_empty()
        && !peer.is_some_and(|ip| gateway.classic_result_allowed_from(ip))
    {
        // Recorded nowhere; a family's browser still gets its page back to the Kiosque.
        tracing::warn!(tenant = %tenant, refdet = %result.refdet, peer = ?peer, "Classic PayFiP result from outside [payfip] classic_result_networks; not recorded.");
        metrics::counter!(CLAIMS, "tenant" => tenant.to_string(), "outcome" => "outside_networks")
            .increment(1);
        return result_page(&op, op.status());
    }
    let status = if resultrans.is_paid() {
        match record_claim(&routes, &op, &result).await {
            Ok(()) => "announced",
            Err(response) => return response,
        }
    } else {
        let outcome = Outcome::Result(resultrans);
        let already = op.claim.is_some()
            || op.outcome == Some(outcome)
            || op.outcome.is_some_and(Outcome::is_paid);
        if already {
            op.status()
        } else {
            match publish_failure(&routes, &op, &result, outcome).await {
                Ok(()) => outcome.status(),
                Err(response) => return response,
            }
        }
    };
    result_page(&op, status)
}

/// The `200` page sending a browser on to the Kiosque return URL with `status`.
fn result_page(op: &Operation, status: &str) -> Response {
    let next = op
        .return_url
        .as_deref()
        .and_then(|url| return_url_with(url, status, op.payment_id.as_deref(), &op.invoice.number));
    page(
        StatusCode::OK,
        "Paiement en ligne",
        status_text(status),
        next.as_deref(),
    )
}

/// The commission of a paid result, from the dated tariff of its Paris date.
fn commission_of(routes: &PayfipRoutes, result: &ClassicResult) -> Option<Money> {
    let channel = FeeChannel::of(result.resultrans)?;
    let on = result.transaction_at.unwrap_or_else(paris_now).date_naive();
    match routes
        .settings()
        .gateway
        .commission(result.amount, channel, on)
    {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(refdet = %result.refdet, error = %e, "Commission of a classic PayFiP payment unknown; recorded without it.");
            None
        }
    }
}

/// A verified "paid" result: recorded as a claim on its attempt, with a journal fact. The
/// first announcement counts; a repeated one changes nothing.
async fn record_claim(
    routes: &PayfipRoutes,
    op: &Operation,
    result: &ClassicResult,
) -> Result<(), Response> {
    if op.claim.is_some() || op.outcome.is_some_and(Outcome::is_paid) {
        return Ok(());
    }
    let at = store::ts(Utc::now());
    let commission = commission_of(routes, result);
    let fact = InvoiceFact {
        invoice_key: op.invoice.key(),
        tenant: op.invoice.tenant.to_string(),
        at: at.clone(),
        kind: "payfip_announced".into(),
        detail: json!({
            "payment_id": result.payment_id(),
            "claim": result.resultrans.as_str(),
            "reference": result.numauto,
            "amount": result.amount.to_dot_string(),
            "awaits": "PES Retour émargement (OrgEma 10)",
        })
        .to_string(),
        dedupe_key: Some(format!("payfip.classic#{}#claim", op.op_id)),
    };
    let (op_id, letter, numauto) = (op.op_id.clone(), result.resultrans, result.numauto.clone());
    let recorded = routes
        .ledger()
        .transact(move |tx| {
            let changed =
                store::record_claim(tx, &op_id, letter, numauto.as_deref(), commission, &at)?;
            if changed {
                tx.record_fact(&fact)?;
            }
            Ok::<bool, LedgerError>(changed)
        })
        .await;
    match recorded {
        Ok(true) => {
            metrics::counter!(CLAIMS, "tenant" => op.invoice.tenant.to_string(), "outcome" => "announced")
                .increment(1);
            tracing::info!(
                invoice = %op.invoice.key(),
                refdet = %result.refdet,
                resultrans = %result.resultrans,
                amount = %result.amount,
                "Classic PayFiP result announces a payment; awaiting the PES Retour émargement."
            );
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            tracing::warn!(refdet = %result.refdet, error = %e, "Classic PayFiP claim not recorded; answered 503.");
            Err(StatusCode::SERVICE_UNAVAILABLE.into_response())
        }
    }
}

/// A verified result that did not pay: `payment.failed`, then the attempt is ended.
async fn publish_failure(
    routes: &PayfipRoutes,
    op: &Operation,
    result: &ClassicResult,
    outcome: Outcome,
) -> Result<(), Response> {
    let now = paris_now();
    let Some(failed) = result.payment_failed(op.invoice.clone(), now) else {
        return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    if let Err(e) = routes
        .publisher()
        .publish(vec![Outgoing::event(&failed)])
        .await
    {
        tracing::warn!(refdet = %result.refdet, error = %e, "Classic PayFiP result not published; answered 503.");
        return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    tracing::info!(
        invoice = %op.invoice.key(),
        refdet = %result.refdet,
        resultrans = %result.resultrans,
        "Classic PayFiP result (not paid) verified and published."
    );
    let at = store::ts(now.to_utc());
    let resolution = Resolution {
        outcome,
        numauto: result.numauto.clone(),
        commission: None,
    };
    let fact = InvoiceFact {
        invoice_key: op.invoice.key(),
        tenant: op.invoice.tenant.to_string(),
        at: at.clone(),
        kind: "payfip_failed".into(),
        detail: json!({
            "payment_id": result.payment_id(),
            "outcome": outcome.as_str(),
            "reference": result.numauto,
            "amount": result.amount.to_dot_string(),
        })
        .to_string(),
        dedupe_key: Some(format!("payfip.classic#{}#{}", op.op_id, outcome.as_str())),
    };
    let op_id = op.op_id.clone();
    let written = routes
        .ledger()
        .transact(move |tx| {
            if store::resolve(tx, &op_id, &resolution, true, &at)? {
                tx.record_fact(&fact)?;
            }
            Ok::<(), LedgerError>(())
        })
        .await;
    if let Err(e) = written {
        // Published but not recorded: a repeated delivery publishes the same event again
        // (same message id), which consumers deduplicate.
        tracing::warn!(refdet = %result.refdet, error = %e, "Classic PayFiP outcome not recorded.");
    }
    Ok(())
}
