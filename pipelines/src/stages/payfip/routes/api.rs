//! `POST /api/v1/tenants/{tenant}/payments`: Kiosque famille starts an online payment.
//!
//! ```text
//! Authorization: Bearer <token of [tenants.api] token_env>
//! {"invoice": "F2026-000123", "exercice": 2026, "email": "famille@example.org",
//!  "return_url": "https://kiosque.vitry.fr/paiement/retour"}
//! → 201 {"payment_id": "payfip:<idop>", "redirect_url": "https://www.payfip.gouv.fr/tpa/paiementws.web?idop=…",
//!        "channel": "web_service", "invoice": "F2026-000123", "exercice": 2026, "amount": "45.60"}
//! ```
//!
//! `exercice` is needed only when the number exists in several exercices; `email` defaults to
//! the payer's address on the invoice; `return_url` must start with one of the tenant's
//! `return_url_prefixes` (without it the family lands on a plain page of ours).
//!
//! Régie invoices are paid through the web service (`creerPaiementSecurise`, then the
//! payment page of the idOp); titres, once taken in charge and loaded into PayFiP (J+1),
//! through the classic URL. One attempt is active per invoice: another one is refused for
//! `[payfip] attempt_lock_secs` (the earlier idOp may still complete) unless the earlier one
//! ended. Errors are JSON (`routes::error`), codes listed in `docs/payfip.md`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use encaisse_ledger::{CoreStore, InvoiceFact, Ledger, LedgerError};
use encaisse_payfip::attempt::{
    Endpoints, InvoicePayment, TitrePayment, classic_request, create_request, titre_refdet,
};
use encaisse_payfip::result::payment_id;
use encaisse_payfip::{Email, PayfipError, RetryClass};
use encaisse_schemas::{CollectionPath, Money};
use serde::Deserialize;
use serde_json::json;

use super::PayfipRoutes;
use super::error::ApiError;
use crate::stages::payfip::paris_now;
use crate::stages::payfip::settings::TenantPayfip;
use crate::stages::payfip::store::{
    self, Coverage, InvoiceRecord, OpChannel, OpState, Operation, Reserved, TitreRecord,
};

/// The request body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// The invoice number (`NumFacture`).
    invoice: String,
    /// Its exercice, when the number is not unique across exercices.
    #[serde(default)]
    exercice: Option<u16>,
    /// Where the gateway sends the ticket; default: the invoice's payer address.
    #[serde(default)]
    email: Option<String>,
    /// Where the family's browser goes back to at the end.
    #[serde(default)]
    return_url: Option<String>,
}

/// The handler.
pub async fn create_payment(
    State(routes): State<PayfipRoutes>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match start(&routes, &tenant, &headers, &body).await {
        Ok(created) => (StatusCode::CREATED, axum::Json(created)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `Authorization: Bearer <token>`, compared in constant time.
fn authenticate(tenant: &TenantPayfip, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match (&tenant.api_token, presented) {
        (Some(expected), Some(given)) if expected.matches(given) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

/// Reads a payment request body (JSON, `Content-Type` checked when given). Public for the
/// hostile-input test suite, which feeds it random bodies.
pub fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<PaymentRequest, ApiError> {
    if let Some(kind) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && !kind
            .trim()
            .to_ascii_lowercase()
            .starts_with("application/json")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the body is not a valid payment request: {e}"),
        )
    })
}

/// Finds the invoice, by number and optionally exercice.
async fn find_invoice(
    ledger: &Ledger,
    tenant: &TenantPayfip,
    number: &str,
    exercice: Option<u16>,
) -> Result<InvoiceRecord, ApiError> {
    let (id, key) = (tenant.id.clone(), number.to_string());
    let found = ledger
        .inspect(move |tx| store::invoices_by_number(tx, &id, &key))
        .await
        .map_err(|e| ApiError::ledger(&e))?;
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_invoice",
            format!("no invoice {number} is known for this tenant"),
        )
    };
    match exercice {
        Some(year) => found
            .into_iter()
            .find(|i| i.invoice.exercice == year)
            .ok_or_else(unknown),
        None if found.len() > 1 => Err(ApiError::conflict(
            "ambiguous_invoice",
            format!("invoice number {number} exists in several exercices; give `exercice`"),
        )
        .with(
            "exercices",
            found.iter().map(|i| i.invoice.exercice).collect::<Vec<_>>(),
        )),
        None => found.into_iter().next().ok_or_else(unknown),
    }
}

/// What kind of attempt an invoice allows, or why none.
enum Payable {
    Regie { numcli: String },
    Titre { numcli: String, titre: TitreRecord },
}

async fn payability(
    routes: &PayfipRoutes,
    tenant: &TenantPayfip,
    invoice: &InvoiceRecord,
) -> Result<Payable, ApiError> {
    if !invoice.online_payable {
        return Err(ApiError::unprocessable(
            "not_payable_online",
            "this invoice is not payable online (activity setting or direct debit)",
        ));
    }
    if !invoice.amount.is_positive() {
        return Err(ApiError::conflict(
            "cancelled",
            "this invoice was cancelled by credit notes: nothing is left to pay",
        ));
    }
    let numcli = invoice
        .numcli
        .clone()
        .or_else(|| {
            tenant.numcli_for(
                invoice.collection,
                &invoice.budget,
                invoice.regie.as_deref(),
            )
        })
        .ok_or_else(|| {
            ApiError::unprocessable(
                "not_payable_online",
                "no PayFiP client number is configured for this invoice's budget or régie",
            )
        })?;
    match invoice.collection {
        CollectionPath::Regie => Ok(Payable::Regie { numcli }),
        CollectionPath::Titres => {
            let key = invoice.invoice.clone();
            let titre = routes
                .ledger()
                .inspect(move |tx| store::titre_of(tx, &key))
                .await
                .map_err(|e| ApiError::ledger(&e))?
                .ok_or_else(|| {
                    ApiError::conflict(
                        "not_yet_payable",
                        "the titre of this invoice is not taken in charge by the Trésorerie yet",
                    )
                })?;
            let days = routes.settings().gateway.titre_payable_after_days;
            let payable_from = titre
                .taken_in_charge_on
                .checked_add_days(chrono::Days::new(u64::from(days)))
                .unwrap_or(titre.taken_in_charge_on);
            if paris_now().date_naive() < payable_from {
                return Err(ApiError::conflict(
                    "not_yet_payable",
                    "the titre is loaded into PayFiP the day after its prise en charge",
                )
                .with("payable_from", payable_from.to_string()));
            }
            Ok(Payable::Titre { numcli, titre })
        }
    }
}

/// Why an attempt cannot be reserved.
enum Refusal {
    AlreadyPaid {
        payment_id: Option<String>,
    },
    PartiallyPaid {
        received: Money,
    },
    InProgress {
        op: Box<Operation>,
        retry_after_secs: u64,
    },
}

/// How long an invoice's current attempt blocks a new one.
#[derive(Clone, Copy)]
struct Blocks {
    /// An open attempt: its idOp or classic URL may still be paid.
    lock: chrono::Duration,
    /// A reservation whose gateway call is running.
    reservation_timeout: chrono::Duration,
    /// A classic result announced a payment: wait for the PES Retour to confirm it.
    claim_hold: chrono::Duration,
}

impl Blocks {
    fn until(self, active: &Operation) -> DateTime<Utc> {
        // The announced payment replaces the attempt's own lock: the family went through the
        // gateway, and only the hold keeps a second payment from starting.
        if let Some(claim) = active.claim {
            return claim.at + self.claim_hold;
        }
        let blocks_for = match active.state {
            OpState::Creating => self.reservation_timeout,
            OpState::Open => self.lock,
            OpState::Resolved => chrono::Duration::zero(),
        };
        active.created_at + blocks_for
    }
}

/// Whether a new attempt may start, given what is paid and the invoice's current attempt:
/// refuse a paid invoice or one with a recent attempt; an older attempt is superseded.
/// [`store::reserve_attempt`] runs it with the invoice's row locked, so that two concurrent
/// requests for an invoice (on one daemon or several) cannot both pass.
fn decide(
    op: &Operation,
    invoice_amount: Money,
    blocks: Blocks,
    coverage: &Coverage,
    active: Option<&Operation>,
) -> Result<(), Refusal> {
    if coverage.is_paid(invoice_amount) {
        return Err(Refusal::AlreadyPaid {
            payment_id: coverage.paid_attempt.clone(),
        });
    }
    if coverage.received.is_positive() {
        return Err(Refusal::PartiallyPaid {
            received: coverage.received,
        });
    }
    if let Some(active) = active {
        let until = blocks.until(active);
        if op.created_at < until {
            let retry_after_secs =
                u64::try_from((until - op.created_at).num_seconds().max(1)).unwrap_or(1);
            return Err(Refusal::InProgress {
                op: Box::new(active.clone()),
                retry_after_secs,
            });
        }
    }
    Ok(())
}

fn refusal_error(routes: &PayfipRoutes, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::AlreadyPaid { payment_id } => {
            let e = ApiError::conflict("already_paid", "this invoice is already paid");
            match payment_id {
                Some(id) => e.with("payment_id", id),
                None => e,
            }
        }
        Refusal::PartiallyPaid { received } => ApiError::conflict(
            "partially_paid",
            "part of this invoice is already paid; the rest cannot be paid online",
        )
        .with("received", received.to_dot_string()),
        Refusal::InProgress {
            op,
            retry_after_secs,
        } => {
            let mut e = match op.claim {
                Some(claim) => ApiError::conflict(
                    "payment_in_progress",
                    "the payment gateway announced a payment of this invoice; it awaits the Trésorerie's confirmation",
                )
                .with("announced_at", store::ts(claim.at)),
                None => ApiError::conflict(
                    "payment_in_progress",
                    "a payment of this invoice is in progress; wait for it to end",
                ),
            }
            .retry_after(retry_after_secs);
            if let Some(id) = &op.payment_id {
                e = e.with("payment_id", id.clone());
            }
            // The family may go back to the page of the running attempt while it can open.
            let lifetime = routes.settings().gateway.idop_lifetime();
            if let Some(idop) = op.idop.as_deref()
                && Utc::now() - op.created_at < lifetime
                && let Ok(idop) = encaisse_payfip::IdOp::new(idop)
            {
                e = e.with(
                    "redirect_url",
                    routes.gateway().payment_page(&idop).to_string(),
                );
            }
            e
        }
    }
}

fn gateway_error(e: &PayfipError) -> ApiError {
    if e.fault_code() == Some("A2") || e.fault_code() == Some("A1") {
        return ApiError::unprocessable("invalid_email", "the gateway refused the e-mail address");
    }
    match e.class() {
        RetryClass::Transient => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "gateway_unavailable",
            "the payment gateway is unavailable; try again in a moment",
        )
        .retry_after(30),
        RetryClass::Permanent | RetryClass::UnknownOperation => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "gateway_refused",
            format!("the payment gateway refused the payment ({})", e.kind()),
        ),
    }
}

/// What a successful request answers.
#[derive(serde::Serialize)]
struct Created {
    payment_id: String,
    redirect_url: String,
    channel: &'static str,
    invoice: String,
    exercice: u16,
    amount: String,
}

async fn start(
    routes: &PayfipRoutes,
    tenant_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Created, ApiError> {
    let tenant = routes
        .settings()
        .tenant(tenant_id)
        .ok_or_else(ApiError::unauthorized)?;
    authenticate(tenant, headers)?;
    if !tenant.payfip.enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "online_payment_disabled",
            "online payment is not enabled for this tenant",
        ));
    }
    let request = parse_request(headers, body)?;
    let invoice = find_invoice(routes.ledger(), tenant, &request.invoice, request.exercice).await?;
    let payable = payability(routes, tenant, &invoice).await?;
    let email = request
        .email
        .as_deref()
        .or(invoice.email.as_deref())
        .ok_or_else(|| {
            ApiError::unprocessable(
                "email_required",
                "the invoice has no payer e-mail address; give `email`",
            )
        })?;
    let email =
        Email::new(email).map_err(|e| ApiError::unprocessable("invalid_email", e.rule.clone()))?;
    if let Some(url) = &request.return_url
        && !tenant.payfip.allows_return_url(url)
    {
        return Err(ApiError::unprocessable(
            "return_url_not_allowed",
            "return_url does not start with one of this tenant's allowed prefixes",
        ));
    }
    let gateway = &routes.settings().gateway;
    let endpoints = Endpoints::for_tenant(gateway, &tenant.payfip, &tenant.id).map_err(|e| {
        tracing::error!(tenant = %tenant.id, error = %e, "Payment API: no public base URL.");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_configured",
            "online payment is not fully configured for this tenant",
        )
    })?;
    let start = Start {
        routes,
        tenant,
        invoice: &invoice,
        email: &email,
        endpoints: &endpoints,
        return_url: request.return_url.clone(),
    };
    let created = match payable {
        Payable::Regie { numcli } => start.regie(numcli).await?,
        Payable::Titre { numcli, titre } => start.titre(numcli, &titre).await?,
    };
    tracing::info!(
        tenant = %tenant.id,
        invoice = %invoice.invoice.key(),
        payment_id = %created.payment_id,
        channel = created.channel,
        amount = %invoice.amount,
        mel = %email,
        "Online payment started."
    );
    Ok(created)
}

/// The gateway-facing fields of a new attempt.
struct AttemptFields {
    channel: OpChannel,
    numcli: String,
    exer: u16,
    refdet: String,
    mode: encaisse_payfip::PayfipMode,
}

/// One payment request being served.
struct Start<'a> {
    routes: &'a PayfipRoutes,
    tenant: &'a TenantPayfip,
    invoice: &'a InvoiceRecord,
    email: &'a Email,
    endpoints: &'a Endpoints,
    return_url: Option<String>,
}

fn new_operation(
    invoice: &InvoiceRecord,
    fields: AttemptFields,
    return_url: Option<String>,
    now: DateTime<Utc>,
) -> Operation {
    Operation {
        op_id: uuid::Uuid::new_v4().to_string(),
        invoice: invoice.invoice.clone(),
        channel: fields.channel,
        state: OpState::Creating,
        active: true,
        idop: None,
        payment_id: None,
        numcli: fields.numcli,
        exer: fields.exer,
        refdet: fields.refdet,
        amount: invoice.amount,
        mode: fields.mode,
        return_url,
        created_at: now,
        notified_at: None,
        requested_at: None,
        outcome: None,
        numauto: None,
        commission: None,
        resolved_at: None,
        claim: None,
    }
}

async fn reserve_or_refuse(routes: &PayfipRoutes, op: &Operation) -> Result<(), ApiError> {
    let gateway = &routes.settings().gateway;
    let blocks = Blocks {
        lock: gateway.attempt_lock(),
        reservation_timeout: chrono::Duration::milliseconds(
            i64::try_from(gateway.request_timeout_ms.saturating_mul(2)).unwrap_or(i64::MAX / 2),
        ),
        claim_hold: gateway.reconciliation.classic_claim_hold(),
    };
    let stored = op.clone();
    let amount = op.amount;
    let decided = routes
        .ledger()
        .transact(move |tx| {
            store::reserve_attempt(tx, &stored, |coverage, active| {
                decide(&stored, amount, blocks, coverage, active)
            })
        })
        .await
        .map_err(|e: LedgerError| ApiError::ledger(&e))?;
    match decided {
        Reserved::Reserved => Ok(()),
        Reserved::Refused(refusal) => Err(refusal_error(routes, refusal)),
    }
}

fn attempt_fact(op: &Operation, payment_id: &str) -> InvoiceFact {
    InvoiceFact {
        invoice_key: op.invoice.key(),
        tenant: op.invoice.tenant.to_string(),
        at: store::ts(op.created_at),
        kind: "payfip_attempt".into(),
        detail: json!({
            "payment_id": payment_id,
            "channel": op.channel.as_str(),
            "amount": op.amount.to_dot_string(),
        })
        .to_string(),
        dedupe_key: Some(format!("payfip_attempt#{}", op.op_id)),
    }
}

impl Start<'_> {
    async fn regie(&self, numcli: String) -> Result<Created, ApiError> {
        let (routes, tenant, invoice) = (self.routes, self.tenant, self.invoice);
        let gateway = &routes.settings().gateway;
        let now = Utc::now();
        gateway
            .ws_bounds()
            .montant(invoice.amount)
            .map_err(|e| ApiError::unprocessable("amount_out_of_bounds", e.rule))?;
        let create = create_request(
            gateway,
            &tenant.payfip,
            self.endpoints,
            &InvoicePayment {
                numcli: &numcli,
                invoice_number: &invoice.invoice.number,
                amount: invoice.amount,
                email: self.email.as_str(),
            },
            now,
        )
        .map_err(|e| ApiError::unprocessable("invalid_payment", e.to_string()))?;
        let op = new_operation(
            invoice,
            AttemptFields {
                channel: OpChannel::Ws,
                numcli,
                exer: create.exer.year(),
                refdet: create.refdet.to_string(),
                mode: tenant.payfip.mode,
            },
            self.return_url.clone(),
            now,
        );
        reserve_or_refuse(routes, &op).await?;
        let idop = match routes.gateway().create_payment(&create).await {
            Ok(idop) => idop,
            Err(e) => {
                let op_id = op.op_id.clone();
                if let Err(le) = routes
                    .ledger()
                    .transact(move |tx| store::delete_reservation(tx, &op_id))
                    .await
                {
                    tracing::warn!(error = %le, "Payment API: reservation not released; the reconciliation job will.");
                }
                tracing::warn!(tenant = %tenant.id, invoice = %invoice.invoice.key(), error = %e, kind = %e.kind(), "PayFiP refused or failed to create the payment.");
                return Err(gateway_error(&e));
            }
        };
        let pid = payment_id(&idop);
        let fact = attempt_fact(&op, &pid);
        let (op_id, idop_text, pid_stored) = (op.op_id.clone(), idop.to_string(), pid.clone());
        routes
            .ledger()
            .transact(move |tx| {
                store::open_ws(tx, &op_id, &idop_text, &pid_stored)?;
                tx.record_fact(&fact)
            })
            .await
            .map_err(|e| ApiError::ledger(&e))?;
        Ok(Created {
            payment_id: pid,
            redirect_url: routes.gateway().payment_page(&idop).to_string(),
            channel: "web_service",
            invoice: invoice.invoice.number.clone(),
            exercice: invoice.invoice.exercice,
            amount: invoice.amount.to_dot_string(),
        })
    }

    async fn titre(&self, numcli: String, titre: &TitreRecord) -> Result<Created, ApiError> {
        let (routes, tenant, invoice) = (self.routes, self.tenant, self.invoice);
        let gateway = &routes.settings().gateway;
        let refdet = titre_refdet(&gateway.titre_refdet_template, &titre.titre)
            .map_err(|e| ApiError::unprocessable("invalid_payment", e.to_string()))?;
        let (url, expectation) = classic_request(
            gateway,
            &tenant.payfip,
            self.endpoints,
            &TitrePayment {
                numcli: &numcli,
                exer: titre.titre.exercice,
                refdet: refdet.as_str(),
                amount: invoice.amount,
                email: self.email.as_str(),
                invoice_number: &invoice.invoice.number,
            },
        )
        .map_err(|e| {
            if e.field == "montant" {
                ApiError::unprocessable("amount_out_of_bounds", e.rule)
            } else {
                ApiError::unprocessable("invalid_payment", e.to_string())
            }
        })?;
        let mut op = new_operation(
            invoice,
            AttemptFields {
                channel: OpChannel::Classic,
                numcli,
                exer: titre.titre.exercice,
                refdet: expectation.refdet.to_string(),
                mode: expectation.mode,
            },
            self.return_url.clone(),
            Utc::now(),
        );
        let pid = format!("tipi:{}", expectation.refdet);
        op.state = OpState::Open;
        op.payment_id = Some(pid.clone());
        reserve_or_refuse(routes, &op).await?;
        let fact = attempt_fact(&op, &pid);
        if let Err(e) = routes.ledger().record_invoice_fact(fact).await {
            tracing::warn!(error = %e, "Payment API: attempt not journaled.");
        }
        Ok(Created {
            payment_id: pid,
            redirect_url: url.to_string(),
            channel: "classic",
            invoice: invoice.invoice.number.clone(),
            exercice: invoice.invoice.exercice,
            amount: invoice.amount.to_dot_string(),
        })
    }
}
