//! SOAP 1.1 envelopes of the PayFiP web service, exactly as recorded (spec §3.2, §6.3–6.5).
//!
//! Requests are written the way zeep (eopayment's client) writes them, byte for byte:
//! `soap-env` prefix, operation wrapper `ns0:<operation>` in the service namespace,
//! **unqualified** `arg0` and field elements in the XSD's sequence order. Responses are read
//! by local name, whatever the prefixes.

use crate::error::{Fault, FaultKind};
use crate::xml::{self, Element, XmlError};

/// Namespace of the operation wrappers and fault details (WSDL `targetNamespace`).
pub const SERVICE_NS: &str = "http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/contrat_paiement_securise/PaiementSecuriseService";
/// SOAP 1.1 envelope namespace.
pub const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// `Content-Type` of requests (as zeep sends them) and of the gateway's responses.
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// The three operations of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    CreerPaiementSecurise,
    RecupererDetailPaiementSecurise,
    RecupererDetailClient,
}

impl Operation {
    pub const ALL: [Operation; 3] = [
        Operation::CreerPaiementSecurise,
        Operation::RecupererDetailPaiementSecurise,
        Operation::RecupererDetailClient,
    ];

    /// The operation (and wrapper element) name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CreerPaiementSecurise => "creerPaiementSecurise",
            Operation::RecupererDetailPaiementSecurise => "recupererDetailPaiementSecurise",
            Operation::RecupererDetailClient => "recupererDetailClient",
        }
    }

    /// The response wrapper element name.
    pub fn response_name(self) -> &'static str {
        match self {
            Operation::CreerPaiementSecurise => "creerPaiementSecuriseResponse",
            Operation::RecupererDetailPaiementSecurise => "recupererDetailPaiementSecuriseResponse",
            Operation::RecupererDetailClient => "recupererDetailClientResponse",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// A request envelope: `fields` are the `arg0` children, in order, with their text values
/// (escaped here). Absent optional fields are simply not passed.
pub fn request_envelope(operation: Operation, fields: &[(&str, &str)]) -> String {
    let mut arg0 = String::new();
    for (name, value) in fields {
        arg0.push('<');
        arg0.push_str(name);
        arg0.push('>');
        arg0.push_str(&xml::escape(value));
        arg0.push_str("</");
        arg0.push_str(name);
        arg0.push('>');
    }
    let op = operation.name();
    format!(
        "<?xml version='1.0' encoding='utf-8'?>\n<soap-env:Envelope xmlns:soap-env=\"{SOAP_ENV_NS}\"><soap-env:Body><ns0:{op} xmlns:ns0=\"{SERVICE_NS}\"><arg0>{arg0}</arg0></ns0:{op}></soap-env:Body></soap-env:Envelope>"
    )
}

/// The content of a SOAP body: a fault or the operation's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Fault(Fault),
    /// The `return` element of the expected response wrapper (`None` when absent: every
    /// element of the contract is optional).
    Return(Option<Element>),
}

/// Why a body is not the SOAP message expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("{0}")]
    Shape(String),
}

/// The first element child of `Envelope/Body`.
fn body_payload(root: &Element) -> Result<&Element, EnvelopeError> {
    if root.name != "Envelope" {
        return Err(EnvelopeError::Shape(format!(
            "root element is {:?}, not a SOAP Envelope",
            root.name
        )));
    }
    let body = root
        .child("Body")
        .ok_or_else(|| EnvelopeError::Shape("SOAP Envelope has no Body".into()))?;
    body.children
        .first()
        .ok_or_else(|| EnvelopeError::Shape("SOAP Body is empty".into()))
}

/// Reads a response body to `operation`: a fault (whatever the HTTP status), or the `return`
/// element of `<operation>Response`.
pub fn decode_response(
    bytes: &[u8],
    limit_bytes: u64,
    operation: Operation,
) -> Result<Decoded, EnvelopeError> {
    let root = xml::parse_untrusted(bytes, limit_bytes)?;
    let payload = body_payload(&root)?;
    if payload.name == "Fault" {
        return Ok(Decoded::Fault(decode_fault(payload)));
    }
    if payload.name != operation.response_name() {
        return Err(EnvelopeError::Shape(format!(
            "expected {}, got {}",
            operation.response_name(),
            payload.name
        )));
    }
    Ok(Decoded::Return(payload.child("return").cloned()))
}

/// A SOAP 1.1 `Fault` element, with its PayFiP detail when present.
pub fn decode_fault(fault: &Element) -> Fault {
    let detail = fault.child("detail").and_then(|d| d.children.first());
    let kind = detail
        .map(|d| FaultKind::from_element_name(&d.name))
        .unwrap_or(FaultKind::Other);
    let field = |name: &str| -> Option<String> {
        detail
            .and_then(|d| d.child_text(name))
            .filter(|t| !t.trim().is_empty())
            .map(str::to_string)
    };
    Fault {
        kind,
        faultcode: fault
            .child_text("faultcode")
            .unwrap_or("")
            .trim()
            .to_string(),
        faultstring: fault
            .child_text("faultstring")
            .unwrap_or("")
            .trim()
            .to_string(),
        code: field("code").map(|c| c.trim().to_string()),
        libelle: field("libelle"),
        descriptif: field("descriptif"),
        message: field("message"),
        severite: detail
            .and_then(|d| d.child_value("severite"))
            .and_then(|s| s.parse().ok()),
    }
}

/// Reads a request body (the simulator's side): the operation wrapper's local name and its
/// `arg0` element.
pub fn decode_request(
    bytes: &[u8],
    limit_bytes: u64,
) -> Result<(String, Option<Element>), EnvelopeError> {
    let root = xml::parse_untrusted(bytes, limit_bytes)?;
    let payload = body_payload(&root)?;
    Ok((payload.name.clone(), payload.child("arg0").cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_without_detail_and_unexpected_wrapper() {
        let body = br#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode><faultstring>Cannot find dispatch method</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let Decoded::Fault(f) =
            decode_response(body, 4096, Operation::RecupererDetailClient).unwrap()
        else {
            panic!("fault expected")
        };
        assert_eq!(f.kind, FaultKind::Other);
        assert_eq!(f.faultcode, "soapenv:Client");
        assert_eq!(f.text(), "Cannot find dispatch method");

        let wrong = br#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><ns2:recupererDetailClientResponse xmlns:ns2="x"/></S:Body></S:Envelope>"#;
        assert!(matches!(
            decode_response(wrong, 4096, Operation::CreerPaiementSecurise),
            Err(EnvelopeError::Shape(_))
        ));
        assert!(matches!(
            decode_response(
                b"<html><body>Bad gateway</body></html>",
                4096,
                Operation::CreerPaiementSecurise
            ),
            Err(EnvelopeError::Shape(_))
        ));
    }

    #[test]
    fn values_are_escaped() {
        let env = request_envelope(Operation::RecupererDetailClient, &[("numCli", "a<b&c")]);
        assert!(env.contains("<numCli>a&lt;b&amp;c</numCli>"));
        let (op, arg0) = decode_request(env.as_bytes(), 4096).unwrap();
        assert_eq!(op, "recupererDetailClient");
        assert_eq!(arg0.unwrap().child_text("numCli"), Some("a<b&c"));
    }
}
