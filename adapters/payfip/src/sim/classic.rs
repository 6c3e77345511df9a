//! The simulated classic URL (`/tpa/paiement.web`, spec §2 and §8).
//!
//! `GET` validates the parameters (same codes as the web service, \[U\] for the classic page),
//! looks the debt up when titres debts are configured (outside test mode), and shows the
//! outcome form; the form's `POST` completes the payment and sends the result — the echoed
//! parameters plus `resultrans`, `numauto` (paid only), `dattrans`, `heurtrans` — to `urlcl`
//! server-side (POST form by default), then returns the browser to `urlcl` too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::html;
use super::soap::{libelle, mel_code, montant_code, numcli_ok, refdet_ok};
use super::state::{ClassicSession, Shared, bump, lock};
use super::{ReturnMethod, SimulatorOptions};
use crate::result::Resultrans;

/// The request parameters echoed in the result, in the order they are sent back.
const ECHOED: [&str; 7] = [
    "numcli", "exer", "refdet", "objet", "montant", "mel", "saisie",
];

/// Simulator-specific refusals of titres debts (the real presentation is unknown \[U\]).
const UNKNOWN_DEBT: (&str, &str) = ("DETTE_INCONNUE", "Cette dette n'est pas connue de PayFiP.");
const WRONG_AMOUNT: (&str, &str) = (
    "MONTANT_INCORRECT",
    "Le montant ne correspond pas à la dette : le paiement partiel n'est pas autorisé.",
);
const ALREADY_PAID: (&str, &str) = ("DEJA_PAYE", "Cette dette a déjà été payée par Internet.");
const BAD_URLCL: (&str, &str) = ("URLCL", "L'URL de retour n'est pas conforme.");

/// The request parameters, names lower-cased, empty values dropped.
fn read_params(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .filter(|(k, v)| !v.is_empty() && (ECHOED.contains(&k.as_str()) || k == "urlcl"))
        .collect()
}

/// A refusal: a gateway code and its text.
type Refusal = (&'static str, &'static str);

fn validate(
    shared: &Shared,
    options: &SimulatorOptions,
    p: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    let get = |k: &str| p.get(k).map(String::as_str);
    let code = |c: &'static str| (c, libelle(c));
    if !numcli_ok(get("numcli")) {
        return Err(code("T1"));
    }
    let saisie = get("saisie").unwrap_or_default();
    if !options.classic_saisie.iter().any(|s| s == saisie) {
        return Err(code("S1"));
    }
    if !refdet_ok(get("refdet")) {
        return Err(code("R3"));
    }
    if let Some(c) = montant_code(
        get("montant"),
        options.min_amount_cents,
        options.classic_max_amount_cents,
    ) {
        return Err(code(c));
    }
    if let Some(c) = mel_code(get("mel")) {
        return Err(code(c));
    }
    if let Some(urlcl) = get("urlcl")
        && crate::config::http_url(urlcl).is_err()
    {
        return Err(BAD_URLCL);
    }
    if options.classic_require_known_debt && saisie != "T" {
        let key = (
            get("numcli").unwrap_or_default().to_string(),
            get("exer").unwrap_or_default().to_string(),
            get("refdet").unwrap_or_default().to_string(),
        );
        let debt = options
            .debts
            .iter()
            .find(|d| {
                (d.numcli.as_str(), d.exer.as_str(), d.refdet.as_str()) == (&key.0, &key.1, &key.2)
            })
            .ok_or(UNKNOWN_DEBT)?;
        if get("montant").and_then(|m| m.parse::<i64>().ok()) != Some(debt.montant_cents) {
            return Err(WRONG_AMOUNT);
        }
        if lock(&shared.paid_debts).contains(&key) {
            return Err(ALREADY_PAID);
        }
    }
    Ok(())
}

/// `GET /tpa/paiement.web?numcli=…&…`.
pub(super) async fn show(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    bump(&shared.counters.classic_pages);
    let options = shared.options();
    let params = read_params(query.as_deref().unwrap_or(""));
    if let Err((code, text)) = validate(&shared, &options, &params) {
        return html::error_page(code, text);
    }
    let token = Uuid::new_v4().simple().to_string();
    lock(&shared.classic_sessions).insert(
        token.clone(),
        ClassicSession {
            params: params.clone(),
            created_at: shared.now(),
        },
    );
    if let Some(outcome) = options.auto_outcome {
        return complete(&shared, &token, outcome.into()).await;
    }
    let amount = params
        .get("montant")
        .and_then(|m| crate::fields::parse_montant(m).ok())
        .map(|m| format!("{m} EUR"))
        .unwrap_or_default();
    html::outcome_form(
        "Paiement de titre",
        &[
            (
                "Référence",
                params.get("refdet").cloned().unwrap_or_default(),
            ),
            ("Exercice", params.get("exer").cloned().unwrap_or_default()),
            ("Montant", amount),
            ("Mode", params.get("saisie").cloned().unwrap_or_default()),
        ],
        "/tpa/paiement.web",
        &[("session", &token)],
    )
}

/// `POST /tpa/paiement.web` (`session`, `resultrans`).
pub(super) async fn submit(
    State(shared): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(outcome) = form.get("resultrans").and_then(|r| Resultrans::parse(r)) else {
        return html::bad_request("resultrans must be one of P, V, R, Z, A.");
    };
    let token = form.get("session").cloned().unwrap_or_default();
    complete(&shared, &token, outcome).await
}

async fn complete(shared: &Arc<Shared>, token: &str, outcome: Resultrans) -> Response {
    let Some(session) = lock(&shared.classic_sessions).remove(token) else {
        return html::bad_request("Unknown or already used payment session.");
    };
    let options = shared.options();
    let params = session.params;
    let now = shared.now();
    let (dattrans, heurtrans) = crate::datetime::format_paris(now);
    let mut fields: Vec<(String, String)> = ECHOED
        .iter()
        .filter_map(|k| params.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    fields.push(("resultrans".into(), outcome.as_str().into()));
    if outcome.is_paid() {
        fields.push(("numauto".into(), shared.numauto()));
        let get = |k: &str| params.get(k).cloned().unwrap_or_default();
        if options.classic_require_known_debt && get("saisie") != "T" {
            lock(&shared.paid_debts).insert((get("numcli"), get("exer"), get("refdet")));
        }
    }
    fields.push(("dattrans".into(), dattrans));
    fields.push(("heurtrans".into(), heurtrans));
    bump(&shared.counters.classic_completions);
    tracing::info!(
        refdet = params.get("refdet").map(String::as_str).unwrap_or(""),
        resultrans = %outcome,
        waited_ms = (now - session.created_at).num_milliseconds(),
        "Simulated classic PayFiP payment completed."
    );
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let Some(urlcl) = params.get("urlcl") else {
        return html::result_page(outcome);
    };
    for _ in 0..options.classic_server_calls {
        send_result(shared, urlcl, &pairs, options.classic_result_method).await;
    }
    if !options.classic_browser_return {
        return html::result_page(outcome);
    }
    match options.classic_result_method {
        ReturnMethod::Post => html::auto_post(urlcl, &pairs),
        ReturnMethod::Get => match with_query(urlcl, &pairs) {
            Some(url) => Redirect::to(&url).into_response(),
            None => html::result_page(outcome),
        },
    }
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(url).ok()?;
    url.query_pairs_mut().extend_pairs(pairs);
    Some(url.to_string())
}

/// One server-side delivery of the result to `urlcl`.
async fn send_result(shared: &Shared, urlcl: &str, pairs: &[(&str, &str)], method: ReturnMethod) {
    let request = match method {
        ReturnMethod::Post => shared.http.post(urlcl).form(pairs),
        ReturnMethod::Get => match with_query(urlcl, pairs) {
            Some(url) => shared.http.get(url),
            None => return,
        },
    };
    match request.timeout(Duration::from_secs(10)).send().await {
        Ok(r) if r.status().is_success() => bump(&shared.counters.classic_results_delivered),
        Ok(r) => {
            bump(&shared.counters.classic_results_failed);
            tracing::warn!(
                status = r.status().as_u16(),
                "Simulated classic PayFiP result refused by the receiver."
            );
        }
        Err(e) => {
            bump(&shared.counters.classic_results_failed);
            tracing::warn!(error = %e, "Simulated classic PayFiP result could not be delivered.");
        }
    }
}
