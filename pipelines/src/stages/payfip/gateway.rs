//! The adapter's web-service client, measured: every call records its latency in
//! `encaisse_payfip_call_duration_seconds{operation}` and every failure counts in
//! `encaisse_payfip_errors_total{operation,code}` (`code`: the gateway's fault code such as
//! `P5`, or the kind of failure: `timeout`, `unreachable`, `unavailable`, …).

use std::future::Future;
use std::time::Instant;

use encaisse_payfip::client::CreatePayment;
use encaisse_payfip::{GatewayConfig, IdOp, PayfipClient, PayfipError, PaymentDetail};
use url::Url;

/// Name of the latency histogram.
pub const CALL_DURATION: &str = "encaisse_payfip_call_duration_seconds";
/// Name of the error counter.
pub const ERRORS: &str = "encaisse_payfip_errors_total";

/// Describes the gateway metrics (once per process is enough; repeating is harmless).
pub fn describe() {
    metrics::describe_histogram!(
        CALL_DURATION,
        metrics::Unit::Seconds,
        "Time taken by a PayFiP web-service call, by operation."
    );
    metrics::describe_counter!(
        ERRORS,
        "PayFiP web-service calls that failed, by operation and fault code or failure kind."
    );
    metrics::describe_counter!(
        crate::stages::payfip::routes::NOTIFICATIONS,
        "PayFiP notifications and browser returns received, by outcome."
    );
}

/// A PayFiP client that reports its calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    client: PayfipClient,
}

impl Gateway {
    pub fn new(config: &GatewayConfig) -> Result<Self, PayfipError> {
        describe();
        Ok(Gateway {
            client: PayfipClient::new(config)?,
        })
    }

    /// `creerPaiementSecurise`.
    pub async fn create_payment(&self, request: &CreatePayment) -> Result<IdOp, PayfipError> {
        observe("creerPaiementSecurise", self.client.create_payment(request)).await
    }

    /// `recupererDetailPaiementSecurise`.
    pub async fn payment_detail(&self, idop: &IdOp) -> Result<PaymentDetail, PayfipError> {
        observe(
            "recupererDetailPaiementSecurise",
            self.client.payment_detail(idop),
        )
        .await
    }

    /// The payment page of an operation.
    pub fn payment_page(&self, idop: &IdOp) -> Url {
        self.client.payment_page(idop)
    }
}

async fn observe<T>(
    operation: &'static str,
    call: impl Future<Output = Result<T, PayfipError>>,
) -> Result<T, PayfipError> {
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!(CALL_DURATION, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        metrics::counter!(ERRORS, "operation" => operation, "code" => error_code(e)).increment(1);
    }
    result
}

/// The `code` label of a failure: a fault code when it looks like one (one letter and a
/// digit or two: the gateway's codes), else the kind without its `payfip_` prefix. Bounded,
/// so a strange gateway answer cannot explode the metric's cardinality.
pub fn error_code(e: &PayfipError) -> String {
    match e.fault_code() {
        Some(code)
            if (2..=3).contains(&code.len())
                && code.starts_with(|c: char| c.is_ascii_uppercase())
                && code[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            code.to_string()
        }
        Some(_) => "fault_other".to_string(),
        None => {
            let kind = e.kind();
            let kind = kind.strip_prefix("payfip_").unwrap_or(&kind);
            if kind.starts_with("invalid_") {
                "invalid".to_string()
            } else {
                kind.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encaisse_payfip::{Fault, FaultKind};

    fn fault(code: &str) -> PayfipError {
        PayfipError::Fault {
            operation: "recupererDetailPaiementSecurise",
            fault: Box::new(Fault {
                kind: FaultKind::Fonctionnelle,
                faultcode: "S:Server".into(),
                faultstring: String::new(),
                code: Some(code.into()),
                libelle: None,
                descriptif: None,
                message: None,
                severite: Some(2),
            }),
        }
    }

    #[test]
    fn codes_are_bounded() {
        assert_eq!(error_code(&fault("P5")), "P5");
        assert_eq!(error_code(&fault("A2")), "A2");
        assert_eq!(error_code(&fault("<script>")), "fault_other");
        let timeout = PayfipError::Timeout {
            operation: "x",
            timeout_ms: 1,
        };
        assert_eq!(error_code(&timeout), "timeout");
        let status = PayfipError::HttpStatus {
            operation: "x",
            status: 500,
        };
        assert_eq!(error_code(&status), "unavailable");
        let invalid = PayfipError::Invalid(encaisse_payfip::fields::FieldError::new("mel", "x"));
        assert_eq!(error_code(&invalid), "invalid");
    }
}
