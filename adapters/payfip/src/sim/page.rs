//! The simulated payment page (`/tpa/paiementws.web`), completion, notification, redirect.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::html;
use super::soap::libelle;
use super::state::{Shared, SimOperation, SimResult, bump, lock};
use super::{NotificationOptions, NotifyOrder, ReturnMethod};
use crate::result::Resultrans;

/// Why the page cannot be used for an idOp (the code is shown on the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PageError(pub &'static str);

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, libelle(self.0).trim())
    }
}

/// A completed payment: where the browser goes next.
pub(super) struct Completion {
    pub redirect_url: String,
    pub idop: String,
    pub urlredirect: String,
}

/// `P1` unknown or purged, `P3` already used, `P4` too old (spec §8) [U: codes and
/// presentation of P3/P4 come from a single low-confidence source].
fn usable(shared: &Shared, op: Option<&SimOperation>) -> Result<(), PageError> {
    let op = op.ok_or(PageError("P1"))?;
    let options = shared.options();
    let lifetime =
        chrono::Duration::seconds(options.idop_lifetime_secs.min(i64::MAX as u64 / 1000) as i64);
    let expired = shared.now() - op.created_at > lifetime;
    match &op.result {
        Some(r) if r.resultrans == Resultrans::A && options.allow_retry_after_abandon => {
            if expired {
                Err(PageError("P4"))
            } else {
                Ok(())
            }
        }
        Some(_) => Err(PageError("P3")),
        None if expired => Err(PageError("P4")),
        None => Ok(()),
    }
}

fn idop_param(params: &HashMap<String, String>) -> &str {
    params
        .get("idop")
        .or_else(|| params.get("idOp"))
        .map(|s| s.trim())
        .unwrap_or("")
}

/// `GET /tpa/paiementws.web?idop=…`: the outcome form (or the automatic outcome).
pub(super) async fn show(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    bump(&shared.counters.page_views);
    let idop = idop_param(&params).to_string();
    if shared.purge_if_due(&idop) {
        return html::error_page("P1", libelle("P1"));
    }
    let op = shared.operation(&idop);
    if let Err(e) = usable(&shared, op.as_ref()) {
        return html::error_page(e.0, libelle(e.0));
    }
    if let Some(outcome) = shared.options().auto_outcome {
        return respond(&shared, &idop, outcome.into()).await;
    }
    let Some(op) = op else {
        return html::error_page("P1", libelle("P1"));
    };
    let amount = crate::fields::parse_montant(&op.montant)
        .map(|m| format!("{m} EUR"))
        .unwrap_or_else(|_| op.montant.clone());
    html::outcome_form(
        "Paiement en ligne",
        &[
            ("Référence", op.refdet.clone()),
            ("Montant", amount),
            ("Objet", op.objet.clone().unwrap_or_default()),
            ("Mode", op.saisie.clone()),
        ],
        "/tpa/paiementws.web",
        &[("idop", &idop)],
    )
}

/// `POST /tpa/paiementws.web` (`idop`, `resultrans`): completes the payment.
pub(super) async fn submit(
    State(shared): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let idop = idop_param(&form).to_string();
    let Some(outcome) = form.get("resultrans").and_then(|r| Resultrans::parse(r)) else {
        return html::bad_request("resultrans must be one of P, V, R, Z, A.");
    };
    respond(&shared, &idop, outcome).await
}

async fn respond(shared: &Arc<Shared>, idop: &str, outcome: Resultrans) -> Response {
    match complete(shared, idop, outcome).await {
        Ok(done) => match shared.options().redirect_method {
            ReturnMethod::Get => Redirect::to(&done.redirect_url).into_response(),
            ReturnMethod::Post => html::auto_post(&done.urlredirect, &[("idop", &done.idop)]),
        },
        Err(e) => html::error_page(e.0, libelle(e.0)),
    }
}

/// Records the outcome, sends the notification as configured, and says where the browser
/// goes (`urlredirect?idop=…`).
pub(super) async fn complete(
    shared: &Arc<Shared>,
    idop: &str,
    outcome: Resultrans,
) -> Result<Completion, PageError> {
    if shared.purge_if_due(idop) {
        return Err(PageError("P1"));
    }
    let now = shared.now();
    let numauto = outcome.is_paid().then(|| shared.numauto());
    let op = {
        let mut ops = lock(&shared.operations);
        usable(shared, ops.get(idop))?;
        let op = ops.get_mut(idop).ok_or(PageError("P1"))?;
        op.result = Some(SimResult {
            resultrans: outcome,
            numauto,
            at: now,
        });
        op.clone()
    };
    bump(&shared.counters.completions);
    tracing::info!(idop = %op.idop, resultrans = %outcome, "Simulated PayFiP payment completed.");

    let mut redirect = url::Url::parse(&op.urlredirect).map_err(|_| PageError("D1"))?;
    redirect.query_pairs_mut().append_pair("idop", &op.idop);

    let options = shared.options();
    let notification = options.notification.clone();
    if shared.chance(notification.drop_rate) {
        bump(&shared.counters.notifications_dropped);
        tracing::info!(idop = %op.idop, "Simulated PayFiP notification dropped.");
    } else {
        match notification.order {
            NotifyOrder::BeforeRedirect => {
                notify(
                    shared.clone(),
                    op.urlnotif.clone(),
                    op.idop.clone(),
                    notification,
                )
                .await
            }
            NotifyOrder::AfterRedirect => {
                tokio::spawn(notify(
                    shared.clone(),
                    op.urlnotif.clone(),
                    op.idop.clone(),
                    notification,
                ));
            }
        }
    }
    Ok(Completion {
        redirect_url: redirect.to_string(),
        idop: op.idop,
        urlredirect: op.urlredirect,
    })
}

/// Sends every copy of the notification (`POST urlnotif`, form `idop=…`).
async fn notify(shared: Arc<Shared>, urlnotif: String, idop: String, options: NotificationOptions) {
    for _ in 0..options.copies {
        if options.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(options.delay_ms)).await;
        }
        deliver(&shared, &urlnotif, &idop, &options).await;
    }
}

async fn deliver(shared: &Shared, urlnotif: &str, idop: &str, options: &NotificationOptions) {
    for attempt in 0..=options.retries {
        let sent = shared
            .http
            .post(urlnotif)
            .timeout(Duration::from_millis(options.timeout_ms))
            .form(&[("idop", idop)])
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                bump(&shared.counters.notifications_delivered);
                return;
            }
            Ok(response) => {
                bump(&shared.counters.notifications_failed);
                tracing::warn!(
                    idop,
                    status = response.status().as_u16(),
                    attempt,
                    "Simulated PayFiP notification refused by the receiver."
                );
            }
            Err(e) => {
                bump(&shared.counters.notifications_failed);
                tracing::warn!(idop, error = %e, attempt, "Simulated PayFiP notification failed.");
            }
        }
        if attempt < options.retries {
            tokio::time::sleep(Duration::from_millis(options.retry_delay_ms)).await;
        }
    }
}
