//! What can go wrong talking to PayFiP, and what to do about it.
//!
//! Every [`PayfipError`] has a [`RetryClass`]:
//! * **transient** — try again later: network errors, timeouts, HTTP 5xx without a SOAP
//!   fault, the gateway's technical faults, and `P5` ("result not known yet");
//! * **permanent** — the request itself is wrong: our own checks before sending, the
//!   gateway's validation codes (`A2`, `R3`, `M5`, …), a 4xx status;
//! * **unknown operation** — `P1` ("IdOp incorrect."): the gateway does not know the idOp,
//!   because it expired and was purged (spec §3.4) or because it never came from it (a forged
//!   notification). The caller decides: expire the operation, or ignore the notification.

use std::fmt;

use crate::fields::FieldError;

/// What the caller should do with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryClass {
    /// May succeed later: retry with backoff.
    Transient,
    /// Will fail again unchanged: park for a person.
    Permanent,
    /// `P1`: the idOp is unknown to the gateway (expired and purged, or never issued).
    UnknownOperation,
}

impl RetryClass {
    pub fn is_transient(self) -> bool {
        self == RetryClass::Transient
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RetryClass::Transient => "transient",
            RetryClass::Permanent => "permanent",
            RetryClass::UnknownOperation => "unknown_operation",
        }
    }
}

impl fmt::Display for RetryClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four fault types the WSDL declares for every operation (the `detail` child element).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `FonctionnelleErreur`: a business rule (the only kind ever recorded).
    Fonctionnelle,
    /// `TechDysfonctionnementErreur`: the gateway malfunctioned.
    TechDysfonctionnement,
    /// `TechIndisponibiliteErreur`: the gateway is unavailable.
    TechIndisponibilite,
    /// `TechProtocolaireErreur`: the request broke the protocol.
    TechProtocolaire,
    /// A SOAP fault without one of the declared details (a generic server or client fault).
    Other,
}

impl FaultKind {
    /// The detail element's local name, as declared in the WSDL.
    pub fn element_name(self) -> &'static str {
        match self {
            FaultKind::Fonctionnelle => "FonctionnelleErreur",
            FaultKind::TechDysfonctionnement => "TechDysfonctionnementErreur",
            FaultKind::TechIndisponibilite => "TechIndisponibiliteErreur",
            FaultKind::TechProtocolaire => "TechProtocolaireErreur",
            FaultKind::Other => "",
        }
    }

    pub fn from_element_name(name: &str) -> Self {
        match name {
            "FonctionnelleErreur" => FaultKind::Fonctionnelle,
            "TechDysfonctionnementErreur" => FaultKind::TechDysfonctionnement,
            "TechIndisponibiliteErreur" => FaultKind::TechIndisponibilite,
            "TechProtocolaireErreur" => FaultKind::TechProtocolaire,
            _ => FaultKind::Other,
        }
    }
}

/// A SOAP fault returned by the gateway, decoded (spec §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// `faultcode` (`S:Server`).
    pub faultcode: String,
    /// `faultstring` (the Java exception class, e.g.
    /// `fr.gouv.finances.cp.tpa.webservice.exceptions.FonctionnelleErreur`).
    pub faultstring: String,
    /// `code` (`A2`, `R3`, `P1`, `P5`, …).
    pub code: Option<String>,
    /// `libelle`, kept as sent (the recorded `A2` libellé ends with a space).
    pub libelle: Option<String>,
    pub descriptif: Option<String>,
    pub message: Option<String>,
    /// `severite` (`2` in every recorded fault).
    pub severite: Option<i32>,
}

impl Fault {
    /// The fault code, or `""` when the gateway sent none.
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// The human text: `descriptif`, else `libelle`, else `faultstring` (eopayment's order).
    pub fn text(&self) -> &str {
        [&self.descriptif, &self.libelle]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .unwrap_or(self.faultstring.trim())
    }

    /// The retry class of this fault.
    ///
    /// Only `P1` and `P5` are recorded with a known meaning; the other codes of the spec's table
    /// (`A1`, `M3`, `T1`, …) are unverified but all describe a request the gateway refuses as
    /// such, so every business fault other than `P1`/`P5` is permanent. Technical faults of the
    /// unavailability and malfunction kinds are transient; a protocol fault means our request is
    /// malformed (permanent). A fault without a declared detail is transient when the server
    /// blames itself (`Server`), permanent when it blames us (`Client`).
    pub fn class(&self) -> RetryClass {
        match (self.kind, self.code()) {
            (_, "P1") => RetryClass::UnknownOperation,
            (_, "P5") => RetryClass::Transient,
            (FaultKind::TechIndisponibilite | FaultKind::TechDysfonctionnement, _) => {
                RetryClass::Transient
            }
            (FaultKind::TechProtocolaire | FaultKind::Fonctionnelle, _) => RetryClass::Permanent,
            (FaultKind::Other, _) => {
                if self.faultcode.ends_with("Client") {
                    RetryClass::Permanent
                } else {
                    RetryClass::Transient
                }
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code.as_deref().unwrap_or("?");
        match self.severite {
            Some(s) => write!(f, "{code} {:?} (severite {s})", self.text()),
            None => write!(f, "{code} {:?}", self.text()),
        }
    }
}

/// A PayFiP web-service call that did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum PayfipError {
    /// Refused before sending.
    #[error("request refused before sending: {0}")]
    Invalid(#[from] FieldError),
    /// The gateway answered with a SOAP fault.
    #[error("PayFiP {operation} fault {fault}")]
    Fault {
        operation: &'static str,
        /// Boxed: faults carry several strings and errors travel in `Result`s.
        fault: Box<Fault>,
    },
    #[error("PayFiP {operation} timed out after {timeout_ms} ms")]
    Timeout {
        operation: &'static str,
        timeout_ms: u64,
    },
    #[error("PayFiP {operation}: network error: {source}")]
    Network {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A non-success status without a readable SOAP fault (a proxy's error page, an outage).
    #[error("PayFiP {operation} answered HTTP {status} without a SOAP fault")]
    HttpStatus {
        operation: &'static str,
        status: u16,
    },
    #[error("PayFiP {operation} response is larger than {limit_bytes} bytes")]
    TooLarge {
        operation: &'static str,
        limit_bytes: u64,
    },
    /// A success status whose body is not the expected SOAP response.
    #[error("PayFiP {operation} response is not usable: {reason}")]
    BadResponse {
        operation: &'static str,
        reason: String,
    },
    #[error("PayFiP client configuration: {0}")]
    Config(String),
}

impl PayfipError {
    /// What the caller should do (see the module documentation).
    pub fn class(&self) -> RetryClass {
        match self {
            PayfipError::Invalid(_) | PayfipError::Config(_) => RetryClass::Permanent,
            PayfipError::Fault { fault, .. } => fault.class(),
            PayfipError::Timeout { .. } | PayfipError::Network { .. } => RetryClass::Transient,
            PayfipError::HttpStatus { status, .. } => {
                if *status >= 500 || *status == 408 || *status == 429 {
                    RetryClass::Transient
                } else {
                    RetryClass::Permanent
                }
            }
            // A truncated or foreign body (a proxy page served with 200) or an oversized one:
            // the gateway's own answers are small, well-formed envelopes, so try again later.
            PayfipError::TooLarge { .. } | PayfipError::BadResponse { .. } => RetryClass::Transient,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class().is_transient()
    }

    /// The gateway's fault code, when the failure is a fault.
    pub fn fault_code(&self) -> Option<&str> {
        match self {
            PayfipError::Fault { fault, .. } => fault.code.as_deref(),
            _ => None,
        }
    }

    /// A short machine-readable kind for grouping failures (`encaisse-error-kind`):
    /// `payfip_fault_r3`, `payfip_timeout`, `payfip_unavailable`, …
    pub fn kind(&self) -> String {
        match self {
            PayfipError::Invalid(e) => format!("payfip_invalid_{}", e.field.to_ascii_lowercase()),
            PayfipError::Fault { fault, .. } => match &fault.code {
                Some(code) if !code.is_empty() => {
                    format!("payfip_fault_{}", code.to_ascii_lowercase())
                }
                _ => "payfip_fault".to_string(),
            },
            PayfipError::Timeout { .. } => "payfip_timeout".to_string(),
            PayfipError::Network { .. } => "payfip_unreachable".to_string(),
            PayfipError::HttpStatus { .. } => "payfip_unavailable".to_string(),
            PayfipError::TooLarge { .. } | PayfipError::BadResponse { .. } => {
                "payfip_bad_response".to_string()
            }
            PayfipError::Config(_) => "payfip_config".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, faultcode: &str, code: Option<&str>) -> Fault {
        Fault {
            kind,
            faultcode: faultcode.into(),
            faultstring: "x".into(),
            code: code.map(Into::into),
            libelle: None,
            descriptif: None,
            message: None,
            severite: Some(2),
        }
    }

    #[test]
    fn fault_classes() {
        use FaultKind::*;
        assert_eq!(
            fault(Fonctionnelle, "S:Server", Some("P1")).class(),
            RetryClass::UnknownOperation
        );
        assert_eq!(
            fault(Fonctionnelle, "S:Server", Some("P5")).class(),
            RetryClass::Transient
        );
        for code in [
            "A1", "A2", "R3", "M1", "M3", "M5", "S1", "T1", "T2", "N1", "D1", "ZZ",
        ] {
            assert_eq!(
                fault(Fonctionnelle, "S:Server", Some(code)).class(),
                RetryClass::Permanent,
                "{code}"
            );
        }
        assert_eq!(
            fault(TechIndisponibilite, "S:Server", Some("X9")).class(),
            RetryClass::Transient
        );
        assert_eq!(
            fault(TechDysfonctionnement, "S:Server", None).class(),
            RetryClass::Transient
        );
        assert_eq!(
            fault(TechProtocolaire, "S:Server", None).class(),
            RetryClass::Permanent
        );
        assert_eq!(
            fault(Other, "S:Server", None).class(),
            RetryClass::Transient
        );
        assert_eq!(
            fault(Other, "soap:Client", None).class(),
            RetryClass::Permanent
        );
    }

    #[test]
    fn http_status_classes() {
        let e = |status| PayfipError::HttpStatus {
            operation: "x",
            status,
        };
        assert!(e(500).is_transient());
        assert!(e(503).is_transient());
        assert!(e(429).is_transient());
        assert_eq!(e(404).class(), RetryClass::Permanent);
    }
}
