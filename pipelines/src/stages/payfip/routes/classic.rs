//! `GET|POST /payfip/{tenant}/classic`: the result of a classic-URL payment (titres), sent to
//! `urlcl` by the gateway (server side) and/or the family's browser, as a form or a query.
//!
//! That channel has **no signature** (spec §2.5): a result is believed only when
//! `encaisse_payfip::classic::verify` finds that it matches what the ledger stored for the
//! latest attempt with that `refdet` — our numcli, the titre's exercice, the exact amount,
//! the tenant's mode letter (a test letter is refused in production). Only then is
//! `payment.received` or `payment.failed` published (payment id `tipi:<refdet>`), before the
//! outcome is recorded; a repeated delivery of a recorded outcome publishes nothing.
//!
//! Answers: `200` with a page that sends a browser on to the Kiosque return URL (a server
//! caller just gets its `200`); `400` unreadable result; `404` no attempt with that refdet;
//! `422` a result that does not match (logged as suspicious); `503` publishing failed.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use encaisse_ledger::{InvoiceFact, Ledger, LedgerError};
use encaisse_payfip::FeeChannel;
use encaisse_payfip::classic::{ClassicExpectation, ClassicResult, verify};
use encaisse_payfip::{Exer, NumCli, Refdet};
use serde_json::json;

use super::page::{page, status_text};
use super::{PayfipRoutes, return_url_with};
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
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let Some(tenant) = routes.settings().tenant(&tenant).map(|t| t.id.clone()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
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
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let (id, refdet) = (tenant.clone(), result.refdet.clone());
    let op = match routes
        .ledger()
        .read(move |c| store::latest_classic(c, &id, &refdet))
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
            return (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response();
        }
    };
    let outcome = Outcome::Result(resultrans);
    let already = op.outcome == Some(outcome) || op.outcome.is_some_and(Outcome::is_paid);
    if !already && let Err(response) = publish_and_record(&routes, &op, &result, outcome).await {
        return response;
    }
    let status = if already {
        op.outcome.map_or("pending", Outcome::status)
    } else {
        outcome.status()
    };
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

async fn publish_and_record(
    routes: &PayfipRoutes,
    op: &Operation,
    result: &ClassicResult,
    outcome: Outcome,
) -> Result<(), Response> {
    let now = paris_now();
    let commission = FeeChannel::of(result.resultrans).and_then(|channel| {
        let on = result.transaction_at.unwrap_or(now).date_naive();
        match routes
            .settings()
            .gateway
            .commission(result.amount, channel, on)
        {
            Ok(c) => Some(c),
            Err(e) => {
                // No retry is possible here (the gateway may not send the result again): the
                // payment goes out without its commission rather than not at all.
                tracing::error!(refdet = %result.refdet, error = %e, "Commission of a classic PayFiP payment unknown; published without it.");
                None
            }
        }
    });
    let event = match result.payment_received(op.invoice.clone(), commission, now) {
        Some(received) => Outgoing::event(&received),
        None => match result.payment_failed(op.invoice.clone(), now) {
            Some(failed) => Outgoing::event(&failed),
            None => return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        },
    };
    if let Err(e) = routes.publisher().publish(vec![event]).await {
        tracing::warn!(refdet = %result.refdet, error = %e, "Classic PayFiP result not published; answered 503.");
        return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
    }
    tracing::info!(
        invoice = %op.invoice.key(),
        refdet = %result.refdet,
        resultrans = %result.resultrans,
        amount = %result.amount,
        "Classic PayFiP result verified and published."
    );
    let at = store::ts(now.to_utc());
    let resolution = Resolution {
        outcome,
        numauto: result.numauto.clone(),
        commission,
    };
    let payment_id = result.payment_id();
    let fact = InvoiceFact {
        invoice_key: op.invoice.key(),
        tenant: op.invoice.tenant.to_string(),
        at: at.clone(),
        kind: if outcome.is_paid() {
            "payfip_paid".into()
        } else {
            "payfip_failed".into()
        },
        detail: json!({
            "payment_id": payment_id,
            "outcome": outcome.as_str(),
            "channel": outcome.channel(),
            "reference": result.numauto,
            "amount": result.amount.to_dot_string(),
            "commission": commission.map(|m| m.to_dot_string()),
        })
        .to_string(),
        dedupe_key: Some(format!("payfip.classic#{}#{}", op.op_id, outcome.as_str())),
    };
    let op_id = op.op_id.clone();
    let written = routes
        .ledger()
        .write(move |c| {
            if store::resolve(c, &op_id, &resolution, true, &at)? {
                Ledger::record_invoice_fact_in(c, &fact)?;
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
