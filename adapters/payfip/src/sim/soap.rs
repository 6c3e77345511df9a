//! The simulated SOAP service (`/tpa/services/securite`) and its contract files.
//!
//! Answers are shaped like the recorded ones (spec §3.5, §6.3–6.5): JAX-WS `S:` envelope,
//! `ns2:` wrapper in the service namespace, unqualified `return` children in XSD order;
//! faults with `faultcode` `S:Server`, the Java exception class as `faultstring`, and the
//! `FonctionnelleErreur` detail (`code`, empty `descriptif`, `libelle`, `severite` 2).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use uuid::Uuid;

use super::state::{Shared, SimOperation, WSDL_FILE, bump, lock};
use super::{OutageKind, SimulatorOptions};
use crate::error::FaultKind;
use crate::soap::{Operation, SERVICE_NS, SOAP_ENV_NS, decode_request};
use crate::xml::{Element, escape};

/// Largest request body accepted (a real request is < 1 KiB).
pub(super) const MAX_REQUEST_BYTES: usize = 64 * 1024;

const XML_CONTENT_TYPE: &str = "text/xml; charset=utf-8";
const FAULT_CLASS_PREFIX: &str = "fr.gouv.finances.cp.tpa.webservice.exceptions.";

/// The libellé of a gateway code. Only A2, R3, P1 and P5 are recorded (their texts are
/// verbatim, including A2's trailing space); the others are the simulator's wording of the
/// meanings in spec §3.5 \[U\].
pub(super) fn libelle(code: &str) -> &'static str {
    match code {
        "A1" => "Adresse mél absente.",
        "A2" => "Adresse mél incorrecte. ",
        "R3" => "Le format du paramètre REFDET n'est pas conforme",
        "P1" => "IdOp incorrect.",
        "P3" => "IdOp déjà utilisé.",
        "P4" => "IdOp enregistré depuis plus de 15 minutes.",
        "P5" => "Résultat de la transaction non connu.",
        "S1" => "Le mode de saisie n'est pas conforme.",
        "T1" => "Le numéro de client n'est pas conforme.",
        "T2" => "Le numéro de client est inconnu.",
        "M1" => "Le format du montant n'est pas conforme.",
        "M3" => "Le montant est inférieur au minimum autorisé.",
        "M5" => "Le montant est supérieur au maximum autorisé.",
        "N1" => "L'URL de notification n'est pas conforme.",
        "D1" => "L'URL de redirection n'est pas conforme.",
        _ => "Erreur.",
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, XML_CONTENT_TYPE)], body).into_response()
}

fn envelope(inner: &str) -> String {
    format!(
        "<?xml version='1.0' encoding='UTF-8'?><S:Envelope xmlns:S=\"{SOAP_ENV_NS}\"><S:Body>{inner}</S:Body></S:Envelope>"
    )
}

/// A successful answer: `<return>` with `fields` (absent optional fields are not passed).
fn return_envelope(op: Operation, fields: &[(&str, &str)]) -> String {
    let mut ret = String::new();
    for (name, value) in fields {
        ret.push_str(&format!("<{name}>{}</{name}>", escape(value)));
    }
    let wrapper = op.response_name();
    envelope(&format!(
        "<ns2:{wrapper} xmlns:ns2=\"{SERVICE_NS}\"><return>{ret}</return></ns2:{wrapper}>"
    ))
}

/// A PayFiP fault of `kind` with `code`, shaped like the recorded ones.
pub(super) fn fault_envelope(kind: FaultKind, code: &str, libelle: &str) -> String {
    let name = kind.element_name();
    envelope(&format!(
        "<S:Fault xmlns:ns4=\"http://www.w3.org/2003/05/soap-envelope\"><faultcode>S:Server</faultcode><faultstring>{FAULT_CLASS_PREFIX}{name}</faultstring><detail><ns2:{name} xmlns:ns2=\"{SERVICE_NS}\"><code>{}</code><descriptif/><libelle>{}</libelle><severite>2</severite></ns2:{name}></detail></S:Fault>",
        escape(code),
        escape(libelle)
    ))
}

/// A protocol-level fault (unreadable envelope, unknown operation), as JAX-WS answers them.
fn client_fault(message: &str) -> String {
    envelope(&format!(
        "<S:Fault xmlns:ns4=\"http://www.w3.org/2003/05/soap-envelope\"><faultcode>S:Client</faultcode><faultstring>{}</faultstring></S:Fault>",
        escape(message)
    ))
}

/// A business fault answer.
struct SimFault(&'static str);

impl SimFault {
    fn response(&self, shared: &Shared, status: StatusCode) -> Response {
        bump(&shared.counters.soap_faults);
        xml_response(
            status,
            fault_envelope(FaultKind::Fonctionnelle, self.0, libelle(self.0)),
        )
    }
}

/// `POST /tpa/services/securite`.
pub(super) async fn endpoint(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let options = shared.options();
    let latency = options.latency_ms + shared.random_up_to(options.latency_jitter_ms);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let fault_status = StatusCode::from_u16(options.fault_http_status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if shared.outage_now(options.http_500_rate) {
        bump(&shared.counters.injected_outages);
        tracing::info!("Simulated PayFiP outage answered.");
        return match options.outage {
            OutageKind::Html => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>"),
            )
                .into_response(),
            OutageKind::TechFault => xml_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                fault_envelope(
                    FaultKind::TechIndisponibilite,
                    "I1",
                    "Service momentanément indisponible.",
                ),
            ),
        };
    }
    let (name, arg0) = match decode_request(&body, MAX_REQUEST_BYTES as u64) {
        Ok(decoded) => decoded,
        Err(e) => {
            bump(&shared.counters.soap_faults);
            return xml_response(
                fault_status,
                client_fault(&format!(
                    "Couldn't create SOAP message due to exception: {e}"
                )),
            );
        }
    };
    let Some(op) = Operation::from_name(&name) else {
        bump(&shared.counters.soap_faults);
        return xml_response(
            fault_status,
            client_fault(&format!(
                "Cannot find dispatch method for {{{SERVICE_NS}}}{name}"
            )),
        );
    };
    let arg0 = arg0.unwrap_or_default();
    let answer = match op {
        Operation::CreerPaiementSecurise => {
            bump(&shared.counters.creer);
            creer(&shared, &options, &arg0)
        }
        Operation::RecupererDetailPaiementSecurise => {
            bump(&shared.counters.recuperer_detail_paiement);
            recuperer_detail_paiement(&shared, &options, &arg0)
        }
        Operation::RecupererDetailClient => {
            bump(&shared.counters.recuperer_detail_client);
            recuperer_detail_client(&options, &arg0)
        }
    };
    match answer {
        Ok(body) => xml_response(StatusCode::OK, body),
        Err(fault) => fault.response(&shared, fault_status),
    }
}

fn field<'a>(arg0: &'a Element, name: &str) -> Option<&'a str> {
    arg0.child_value(name)
}

fn is_http_url(value: &str) -> bool {
    crate::config::http_url(value).is_ok()
}

/// Whether `value` is a well-formed e-mail for the gateway (`@`, 6–80 characters).
pub(super) fn mel_code(value: Option<&str>) -> Option<&'static str> {
    match value {
        None => Some("A1"),
        Some(m) if !m.contains('@') || !(6..=80).contains(&m.chars().count()) => Some("A2"),
        Some(_) => None,
    }
}

/// `refdet`: 6–30 ASCII alphanumerics (`R3` otherwise, recorded for `ABCD`).
pub(super) fn refdet_ok(value: Option<&str>) -> bool {
    value.is_some_and(|r| {
        (6..=30).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// `montant` in cents within bounds: `M1` format, `M3` below, `M5` above.
pub(super) fn montant_code(value: Option<&str>, min: i64, max: i64) -> Option<&'static str> {
    let Some(text) = value else {
        return Some("M1");
    };
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Some("M1");
    }
    match text.parse::<i64>() {
        Ok(cents) if cents < min => Some("M3"),
        Ok(cents) if cents > max => Some("M5"),
        Ok(_) => None,
        Err(_) => Some("M1"),
    }
}

pub(super) fn numcli_ok(value: Option<&str>) -> bool {
    value.is_some_and(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Validation order (unknown, spec §8): numcli, saisie, refdet, mel, montant, urlnotif,
/// urlredirect — consistent with the recordings (`A2` came back for a request whose amount
/// was also wrong).
fn creer(shared: &Shared, options: &SimulatorOptions, arg0: &Element) -> Result<String, SimFault> {
    let numcli = field(arg0, "numcli");
    if !numcli_ok(numcli) {
        return Err(SimFault("T1"));
    }
    let numcli = numcli.unwrap_or_default();
    if !options.accept_unknown_clients && !options.clients.iter().any(|c| c.numcli == numcli) {
        return Err(SimFault("T2"));
    }
    let saisie = field(arg0, "saisie").unwrap_or_default();
    if !options.ws_saisie.iter().any(|s| s == saisie) {
        return Err(SimFault("S1"));
    }
    let refdet = field(arg0, "refdet");
    if !refdet_ok(refdet) {
        return Err(SimFault("R3"));
    }
    let mel = field(arg0, "mel");
    if let Some(code) = mel_code(mel) {
        return Err(SimFault(code));
    }
    let montant = field(arg0, "montant");
    if let Some(code) = montant_code(montant, options.min_amount_cents, options.max_amount_cents) {
        return Err(SimFault(code));
    }
    let urlnotif = field(arg0, "urlnotif").unwrap_or_default();
    if !is_http_url(urlnotif) {
        return Err(SimFault("N1"));
    }
    let urlredirect = field(arg0, "urlredirect").unwrap_or_default();
    if !is_http_url(urlredirect) {
        return Err(SimFault("D1"));
    }
    let op = SimOperation {
        idop: Uuid::new_v4().to_string(),
        numcli: numcli.to_string(),
        exer: field(arg0, "exer").unwrap_or_default().to_string(),
        refdet: refdet.unwrap_or_default().to_string(),
        montant: montant.unwrap_or_default().to_string(),
        mel: mel.unwrap_or_default().to_string(),
        objet: field(arg0, "objet").map(str::to_string),
        saisie: saisie.to_string(),
        urlnotif: urlnotif.to_string(),
        urlredirect: urlredirect.to_string(),
        created_at: shared.now(),
        result: None,
    };
    tracing::info!(
        idop = %op.idop,
        numcli = %op.numcli,
        refdet = %op.refdet,
        montant = %op.montant,
        mel = %encaisse_schemas::mask::Email(&op.mel),
        saisie = %op.saisie,
        "Simulated PayFiP operation created."
    );
    let idop = op.idop.clone();
    lock(&shared.operations).insert(idop.clone(), op);
    Ok(return_envelope(
        Operation::CreerPaiementSecurise,
        &[("idOp", &idop)],
    ))
}

fn recuperer_detail_paiement(
    shared: &Shared,
    options: &SimulatorOptions,
    arg0: &Element,
) -> Result<String, SimFault> {
    // Element names are case-sensitive: `<idop>` is not `<idOp>` and yields P1.
    let idop = field(arg0, "idOp").unwrap_or_default();
    if shared.purge_if_due(idop) {
        return Err(SimFault("P1"));
    }
    let op = shared.operation(idop).ok_or(SimFault("P1"))?;
    let result = op.result.as_ref().ok_or(SimFault("P5"))?;
    let (dattrans, heurtrans) = crate::datetime::format_paris(result.at);
    let exer = if options.truncate_exer_echo && op.exer.len() > 2 {
        op.exer[..2].to_string()
    } else {
        op.exer.clone()
    };
    let mut fields: Vec<(&str, &str)> = vec![
        ("dattrans", &dattrans),
        ("exer", &exer),
        ("heurtrans", &heurtrans),
        ("idOp", &op.idop),
        ("mel", &op.mel),
        ("montant", &op.montant),
    ];
    if let Some(numauto) = &result.numauto {
        fields.push(("numauto", numauto));
    }
    fields.push(("numcli", &op.numcli));
    if let Some(objet) = &op.objet {
        fields.push(("objet", objet));
    }
    fields.extend([
        ("refdet", op.refdet.as_str()),
        ("resultrans", result.resultrans.as_str()),
        ("saisie", op.saisie.as_str()),
    ]);
    Ok(return_envelope(
        Operation::RecupererDetailPaiementSecurise,
        &fields,
    ))
}

fn recuperer_detail_client(options: &SimulatorOptions, arg0: &Element) -> Result<String, SimFault> {
    let numcli = field(arg0, "numCli");
    if !numcli_ok(numcli) {
        return Err(SimFault("T1"));
    }
    let numcli = numcli.unwrap_or_default();
    let (n1, n2, n3) = match options.clients.iter().find(|c| c.numcli == numcli) {
        Some(c) => (
            c.libelle_n1.clone(),
            c.libelle_n2.clone(),
            c.libelle_n3.clone(),
        ),
        None if options.accept_unknown_clients => (
            format!("CLIENT {numcli}"),
            "SIMULATEUR PAYFIP".to_string(),
            String::new(),
        ),
        None => return Err(SimFault("T2")),
    };
    let mut fields = Vec::new();
    for (name, value) in [("libelleN1", &n1), ("libelleN2", &n2), ("libelleN3", &n3)] {
        if !value.is_empty() {
            fields.push((name, value.as_str()));
        }
    }
    fields.push(("numcli", numcli));
    Ok(return_envelope(Operation::RecupererDetailClient, &fields))
}

/// `GET /tpa/services/securite`: the WSDL with `?wsdl`, a short index page otherwise.
pub(super) async fn wsdl_or_index(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if !query.is_some_and(|q| q.eq_ignore_ascii_case("wsdl")) {
        return Html("<html><body><h1>PaiementSecuriseService</h1><p>Web service (simulateur). Contrat : <a href=\"?wsdl\">?wsdl</a></p></body></html>").into_response();
    }
    if shared.contract.wsdl.is_empty() {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    bump(&shared.counters.wsdl_served);
    let options = shared.options();
    let mut wsdl = shared.contract.wsdl.clone();
    if options.rewrite_wsdl_address {
        let base = match &options.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()) && !h.contains('"'))
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        wsdl = rewrite_address(&wsdl, &format!("{base}/tpa/services/securite"));
    }
    xml_response(StatusCode::OK, wsdl)
}

/// Replaces the `location` of `<soap:address …/>`.
fn rewrite_address(wsdl: &str, location: &str) -> String {
    const MARK: &str = "soap:address location=\"";
    let Some(start) = wsdl.find(MARK).map(|i| i + MARK.len()) else {
        return wsdl.to_string();
    };
    let Some(len) = wsdl[start..].find('"') else {
        return wsdl.to_string();
    };
    format!(
        "{}{}{}",
        &wsdl[..start],
        escape(location),
        &wsdl[start + len..]
    )
}

/// `GET /tpa/services/<file>.xsd`: the XSDs the WSDL names, by relative name.
pub(super) async fn contract_file(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
) -> Response {
    if file == WSDL_FILE && !shared.contract.wsdl.is_empty() {
        return xml_response(StatusCode::OK, shared.contract.wsdl.clone());
    }
    match shared.contract.xsds.get(&file) {
        Some(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, XML_CONTENT_TYPE)],
            bytes.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_rewrite() {
        let wsdl = r#"<port><soap:address location="https://www.payfip.gouv.fr/tpa/services/securite"/></port>"#;
        assert_eq!(
            rewrite_address(wsdl, "http://127.0.0.1:9/tpa/services/securite"),
            r#"<port><soap:address location="http://127.0.0.1:9/tpa/services/securite"/></port>"#
        );
    }

    #[test]
    fn validation_codes() {
        assert_eq!(mel_code(None), Some("A1"));
        assert_eq!(mel_code(Some("john.doeexample.com")), Some("A2"));
        assert_eq!(mel_code(Some("john.doe@example.com")), None);
        assert!(!refdet_ok(Some("ABCD")));
        assert!(refdet_ok(Some("ABCDEFGH")));
        assert_eq!(montant_code(Some("99"), 100, 1000), Some("M3"));
        assert_eq!(montant_code(Some("1001"), 100, 1000), Some("M5"));
        assert_eq!(montant_code(Some("10.00"), 100, 1000), Some("M1"));
        assert_eq!(montant_code(Some("100"), 100, 1000), None);
    }
}
