//! The PayFiP web-service client: `creerPaiementSecurise`, `recupererDetailPaiementSecurise`,
//! `recupererDetailClient` (spec §3).
//!
//! Every call has a connect timeout and a whole-call timeout; the response body is read up to
//! a size limit; a SOAP fault is decoded whatever the HTTP status (the gateway answers faults
//! with 500, the recorded fixtures with 200).

use std::time::Instant;

use encaisse_schemas::Money;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use url::Url;

use crate::config::{GatewayConfig, http_url};
use crate::error::PayfipError;
use crate::fields::{AmountBounds, Email, Exer, FieldError, IdOp, NumCli, Objet, Refdet, Saisie};
use crate::result::{ClientDetail, PaymentDetail};
use crate::soap::{self, Decoded, Operation};
use crate::xml::Element;

/// The fields of `creerPaiementSecurise` (spec §3.3), each already valid; the amount is checked
/// against the configured bounds when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePayment {
    pub numcli: NumCli,
    pub exer: Exer,
    /// New for every attempt ([`Refdet::generate`]).
    pub refdet: Refdet,
    pub amount: Money,
    pub mel: Email,
    pub objet: Option<Objet>,
    pub saisie: Saisie,
    /// Where the gateway POSTs `idop=<idOp>` when the payment ends.
    pub urlnotif: Url,
    /// Where the browser is sent back with `?idop=<idOp>`.
    pub urlredirect: Url,
}

impl CreatePayment {
    /// The SOAP request body, fields in the XSD's order (as zeep writes them).
    pub fn envelope(&self, bounds: AmountBounds) -> Result<String, FieldError> {
        let montant = bounds.montant(self.amount)?.to_string();
        for (field, url) in [
            ("urlnotif", &self.urlnotif),
            ("urlredirect", &self.urlredirect),
        ] {
            http_url(url.as_str()).map_err(|rule| FieldError::new(field, rule))?;
        }
        let exer = self.exer.to_string();
        let mut fields = vec![
            ("exer", exer.as_str()),
            ("mel", self.mel.as_str()),
            ("montant", montant.as_str()),
            ("numcli", self.numcli.as_str()),
        ];
        if let Some(objet) = &self.objet {
            fields.push(("objet", objet.as_str()));
        }
        fields.extend([
            ("refdet", self.refdet.as_str()),
            ("saisie", self.saisie.as_str()),
            ("urlnotif", self.urlnotif.as_str()),
            ("urlredirect", self.urlredirect.as_str()),
        ]);
        Ok(soap::request_envelope(
            Operation::CreerPaiementSecurise,
            &fields,
        ))
    }
}

/// The body of `recupererDetailPaiementSecurise` (`idOp`, capital O).
pub fn detail_envelope(idop: &IdOp) -> String {
    soap::request_envelope(
        Operation::RecupererDetailPaiementSecurise,
        &[("idOp", idop.as_str())],
    )
}

/// The body of `recupererDetailClient` (`numCli`, capital C).
pub fn client_envelope(numcli: &NumCli) -> String {
    soap::request_envelope(
        Operation::RecupererDetailClient,
        &[("numCli", numcli.as_str())],
    )
}

/// Reads a `creerPaiementSecurise` answer (body bytes, whatever the status).
pub fn read_create_response(
    status: u16,
    body: &[u8],
    limit_bytes: u64,
) -> Result<IdOp, PayfipError> {
    let op = Operation::CreerPaiementSecurise;
    let ret = read_return(op, status, body, limit_bytes)?;
    let value = ret
        .child_value("idOp")
        .ok_or_else(|| bad(op, "no <idOp> in the answer"))?;
    IdOp::new(value).map_err(|e| bad(op, e.to_string()))
}

/// Reads a `recupererDetailPaiementSecurise` answer about `requested`.
pub fn read_detail_response(
    status: u16,
    body: &[u8],
    limit_bytes: u64,
    requested: &IdOp,
) -> Result<PaymentDetail, PayfipError> {
    let op = Operation::RecupererDetailPaiementSecurise;
    let ret = read_return(op, status, body, limit_bytes)?;
    PaymentDetail::from_return(&ret, requested).map_err(|reason| bad(op, reason))
}

/// Reads a `recupererDetailClient` answer.
pub fn read_client_response(
    status: u16,
    body: &[u8],
    limit_bytes: u64,
) -> Result<ClientDetail, PayfipError> {
    let op = Operation::RecupererDetailClient;
    let ret = read_return(op, status, body, limit_bytes)?;
    ClientDetail::from_return(&ret).map_err(|reason| bad(op, reason))
}

fn bad(op: Operation, reason: impl Into<String>) -> PayfipError {
    PayfipError::BadResponse {
        operation: op.name(),
        reason: reason.into(),
    }
}

/// The `return` element of a successful answer, or the error the answer stands for.
fn read_return(
    op: Operation,
    status: u16,
    body: &[u8],
    limit_bytes: u64,
) -> Result<Element, PayfipError> {
    let success = (200..300).contains(&status);
    match soap::decode_response(body, limit_bytes, op) {
        Ok(Decoded::Fault(fault)) => Err(PayfipError::Fault {
            operation: op.name(),
            fault: Box::new(fault),
        }),
        Ok(Decoded::Return(Some(ret))) if success => Ok(ret),
        Ok(Decoded::Return(None)) if success => Err(bad(op, "no <return> in the answer")),
        Err(e) if success => Err(bad(op, e.to_string())),
        _ => Err(PayfipError::HttpStatus {
            operation: op.name(),
            status,
        }),
    }
}

/// A client of one PayFiP endpoint. Cheap to clone (the HTTP connection pool is shared).
#[derive(Debug, Clone)]
pub struct PayfipClient {
    http: reqwest::Client,
    soap_url: Url,
    payment_page_url: Url,
    bounds: AmountBounds,
    max_response_bytes: u64,
    timeout_ms: u64,
}

impl PayfipClient {
    /// A client for the gateway described by `config` (URLs, timeouts, bounds).
    pub fn new(config: &GatewayConfig) -> Result<Self, PayfipError> {
        let soap_url = http_url(&config.soap_url).map_err(PayfipError::Config)?;
        let payment_page_url = http_url(&config.payment_page_url).map_err(PayfipError::Config)?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .timeout(config.request_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("encaisse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PayfipError::Config(format!("HTTP client: {e}")))?;
        Ok(PayfipClient {
            http,
            soap_url,
            payment_page_url,
            bounds: config.ws_bounds(),
            max_response_bytes: config.max_response_bytes,
            timeout_ms: config.request_timeout_ms,
        })
    }

    /// `creerPaiementSecurise`: registers a payment and returns its idOp.
    pub async fn create_payment(&self, request: &CreatePayment) -> Result<IdOp, PayfipError> {
        let body = request.envelope(self.bounds)?;
        let (status, bytes) = self.call(Operation::CreerPaiementSecurise, body).await?;
        let idop = read_create_response(status, &bytes, self.max_response_bytes)?;
        tracing::info!(
            idop = %idop,
            numcli = %request.numcli,
            refdet = %request.refdet,
            amount = %request.amount,
            mel = %request.mel,
            "PayFiP operation created."
        );
        Ok(idop)
    }

    /// `recupererDetailPaiementSecurise`: the result of an operation (`P5` while unknown,
    /// `P1` when the idOp is unknown or purged).
    pub async fn payment_detail(&self, idop: &IdOp) -> Result<PaymentDetail, PayfipError> {
        let (status, bytes) = self
            .call(
                Operation::RecupererDetailPaiementSecurise,
                detail_envelope(idop),
            )
            .await?;
        read_detail_response(status, &bytes, self.max_response_bytes, idop)
    }

    /// `recupererDetailClient`: the labels of a client number (checks a numcli).
    pub async fn client_detail(&self, numcli: &NumCli) -> Result<ClientDetail, PayfipError> {
        let (status, bytes) = self
            .call(Operation::RecupererDetailClient, client_envelope(numcli))
            .await?;
        read_client_response(status, &bytes, self.max_response_bytes)
    }

    /// The payment page for an operation (`…/paiementws.web?idop=<idOp>`).
    pub fn payment_page(&self, idop: &IdOp) -> Url {
        let mut url = self.payment_page_url.clone();
        url.query_pairs_mut().append_pair("idop", idop.as_str());
        url
    }

    /// One POST; returns the status and the body read within the size limit.
    async fn call(&self, op: Operation, body: String) -> Result<(u16, Vec<u8>), PayfipError> {
        let started = Instant::now();
        let network = |e: reqwest::Error| {
            if e.is_timeout() {
                PayfipError::Timeout {
                    operation: op.name(),
                    timeout_ms: self.timeout_ms,
                }
            } else {
                PayfipError::Network {
                    operation: op.name(),
                    source: e,
                }
            }
        };
        let mut response = self
            .http
            .post(self.soap_url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(soap::CONTENT_TYPE))
            .header("SOAPAction", HeaderValue::from_static("\"\""))
            .body(body)
            .send()
            .await
            .map_err(network)?;
        let status = response.status().as_u16();
        let too_large = || PayfipError::TooLarge {
            operation: op.name(),
            limit_bytes: self.max_response_bytes,
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if (bytes.len() + chunk.len()) as u64 > self.max_response_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        tracing::debug!(
            operation = op.name(),
            status,
            bytes = bytes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "PayFiP call answered."
        );
        Ok((status, bytes))
    }
}
