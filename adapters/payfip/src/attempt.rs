//! Building one payment attempt from what the daemon knows, so that the HTTP handlers and the
//! stages stay thin: our public endpoints for a tenant, the `creerPaiementSecurise` request
//! of an invoice, the classic URL of a titre.
//!
//! Paths of our endpoints (mounted by the daemon, issue 4 §3):
//! `POST /payfip/{tenant}/notification` (the gateway's `urlnotif`), `GET /payfip/{tenant}/return`
//! (the browser's `urlredirect`), `GET|POST /payfip/{tenant}/classic` (the classic `urlcl`).

use chrono::{DateTime, Utc};
use encaisse_schemas::{Money, TenantId, TitreRef};
use url::Url;

use crate::classic::{ClassicExpectation, ClassicRequest};
use crate::client::CreatePayment;
use crate::config::{GatewayConfig, PayfipTenantConfig, http_url};
use crate::fields::{Email, Exer, FieldError, NumCli, Objet, Refdet};

/// Route of the gateway's notification, `{tenant}` being the tenant id.
pub const NOTIFICATION_ROUTE: &str = "/payfip/{tenant}/notification";
/// Route of the browser's return from the payment page.
pub const RETURN_ROUTE: &str = "/payfip/{tenant}/return";
/// Route receiving classic (`paiement.web`) results.
pub const CLASSIC_ROUTE: &str = "/payfip/{tenant}/classic";

/// Our public endpoints for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub notification: Url,
    pub browser_return: Url,
    pub classic_result: Url,
}

impl Endpoints {
    /// The endpoints of `tenant` under its public base URL (the tenant's, else the gateway's).
    pub fn for_tenant(
        gateway: &GatewayConfig,
        tenant_config: &PayfipTenantConfig,
        tenant: &TenantId,
    ) -> Result<Self, FieldError> {
        let base = gateway.public_base_for(tenant_config).ok_or_else(|| {
            FieldError::new(
                "urlnotif",
                "no public base URL is configured for this tenant",
            )
        })?;
        let base = http_url(base).map_err(|rule| FieldError::new("urlnotif", rule))?;
        let route = |template: &str| {
            let path = template.replace("{tenant}", tenant.as_str());
            let mut url = base.clone();
            let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
            url.set_path(&joined);
            url.set_query(None);
            url
        };
        Ok(Endpoints {
            notification: route(NOTIFICATION_ROUTE),
            browser_return: route(RETURN_ROUTE),
            classic_result: route(CLASSIC_ROUTE),
        })
    }
}

/// What a régie invoice payment attempt needs.
#[derive(Debug, Clone)]
pub struct InvoicePayment<'a> {
    /// The régie's PayFiP client number.
    pub numcli: &'a str,
    /// The invoice number (goes into `objet`; `refdet` is new for each attempt).
    pub invoice_number: &'a str,
    pub amount: Money,
    /// The payer's e-mail address.
    pub email: &'a str,
}

/// The `creerPaiementSecurise` request of one attempt: a fresh `refdet`, the current year as
/// `exer`, the tenant's mode letter, `objet` = label + invoice number, our endpoints. The
/// amount is checked against the bounds when the request is sent.
pub fn create_request(
    gateway: &GatewayConfig,
    tenant_config: &PayfipTenantConfig,
    endpoints: &Endpoints,
    payment: &InvoicePayment<'_>,
    now: DateTime<Utc>,
) -> Result<CreatePayment, FieldError> {
    gateway.ws_bounds().montant(payment.amount)?;
    Ok(CreatePayment {
        numcli: NumCli::new(payment.numcli)?,
        exer: Exer::current(now),
        refdet: Refdet::generate(now),
        amount: payment.amount,
        mel: Email::new(payment.email)?,
        objet: Objet::for_invoice(&tenant_config.objet_label, payment.invoice_number),
        saisie: gateway.ws_saisie.code(tenant_config.mode)?,
        urlnotif: endpoints.notification.clone(),
        urlredirect: endpoints.browser_return.clone(),
    })
}

/// What a titre payment through the classic URL needs (the debt as DGFiP knows it).
#[derive(Debug, Clone)]
pub struct TitrePayment<'a> {
    /// The budget's PayFiP client number.
    pub numcli: &'a str,
    /// The titre's exercice.
    pub exer: u16,
    /// The debt's reference as DGFiP knows it (spec §4.1: rule not public, opaque here).
    pub refdet: &'a str,
    pub amount: Money,
    pub email: &'a str,
    pub invoice_number: &'a str,
}

/// The classic URL of a titre and what its result must match (store the expectation with the
/// attempt; [`crate::classic::verify`] checks the result against it).
pub fn classic_request(
    gateway: &GatewayConfig,
    tenant_config: &PayfipTenantConfig,
    endpoints: &Endpoints,
    titre: &TitrePayment<'_>,
) -> Result<(Url, ClassicExpectation), FieldError> {
    let request = ClassicRequest {
        numcli: NumCli::new(titre.numcli)?,
        exer: Some(Exer::new(titre.exer)?),
        refdet: Refdet::new(titre.refdet)?,
        amount: titre.amount,
        mel: Email::new(titre.email)?,
        objet: Objet::for_invoice(&tenant_config.objet_label, titre.invoice_number),
        urlcl: Some(endpoints.classic_result.clone()),
        saisie: gateway.classic_saisie.code(tenant_config.mode)?,
    };
    let base = http_url(&gateway.classic_url).map_err(|rule| FieldError::new("url", rule))?;
    let url = request.url(&base, gateway.classic_bounds())?;
    let expectation = ClassicExpectation {
        numcli: request.numcli,
        exer: request.exer,
        refdet: request.refdet,
        amount: request.amount,
        mode: tenant_config.mode,
    };
    Ok((url, expectation))
}

/// One piece of a titre `refdet` template.
enum TemplatePart<'a> {
    Literal(char),
    Field { name: &'a str, width: usize },
}

/// The placeholders a titre `refdet` template may use.
const TITRE_FIELDS: [&str; 4] = ["exercice", "bordereau_type", "id_bord", "id_pce"];

fn parse_template(template: &str) -> Result<Vec<TemplatePart<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            let end = rest
                .find('}')
                .ok_or_else(|| format!("{template:?}: '{{' without '}}'"))?;
            let inner = &rest[1..end];
            let (name, width) = match inner.split_once(':') {
                Some((name, width)) => {
                    let width: usize = width.parse().map_err(|_| {
                        format!("{template:?}: width {width:?} of {{{name}}} is not a number")
                    })?;
                    (name, width)
                }
                None => (inner, 0),
            };
            if !TITRE_FIELDS.contains(&name) {
                return Err(format!(
                    "{template:?}: unknown placeholder {{{name}}} (known: {})",
                    TITRE_FIELDS.join(", ")
                ));
            }
            parts.push(TemplatePart::Field { name, width });
            rest = &rest[end + 1..];
        } else if c.is_ascii_alphanumeric() {
            parts.push(TemplatePart::Literal(c));
            rest = &rest[1..];
        } else {
            return Err(format!(
                "{template:?}: {c:?} is neither a letter, a digit nor a placeholder (refdet is alphanumeric)"
            ));
        }
    }
    if !parts
        .iter()
        .any(|p| matches!(p, TemplatePart::Field { name, .. } if *name == "id_pce"))
    {
        return Err(format!(
            "{template:?} must use {{id_pce}}: every titre needs its own reference"
        ));
    }
    Ok(parts)
}

/// Checks a titre `refdet` template ([`GatewayConfig::titre_refdet_template`]).
pub fn check_titre_refdet_template(template: &str) -> Result<(), String> {
    parse_template(template).map(|_| ())
}

/// The `refdet` of a titre for the classic URL, from the configured template (the DGFiP's
/// rule is not public, spec §4.1 \[U\]). The result must be a valid refdet (6–30 letters or
/// digits).
pub fn titre_refdet(template: &str, titre: &TitreRef) -> Result<Refdet, FieldError> {
    let parts = parse_template(template).map_err(|rule| FieldError::new("refdet", rule))?;
    let mut out = String::new();
    for part in parts {
        match part {
            TemplatePart::Literal(c) => out.push(c),
            TemplatePart::Field { name, width } => {
                let value = match name {
                    "exercice" => titre.exercice.to_string(),
                    "bordereau_type" => titre.bordereau_type.clone(),
                    "id_bord" => titre.id_bord.to_string(),
                    _ => titre.id_pce.to_string(),
                };
                out.push_str(&format!("{value:0>width$}"));
            }
        }
    }
    Refdet::new(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PayfipMode;

    fn configs() -> (GatewayConfig, PayfipTenantConfig) {
        let gateway = GatewayConfig {
            public_base_url: Some("https://encaisse.example.fr/".into()),
            ..GatewayConfig::default()
        };
        let tenant = PayfipTenantConfig {
            enabled: true,
            mode: PayfipMode::Production,
            ..PayfipTenantConfig::default()
        };
        (gateway, tenant)
    }

    #[test]
    fn endpoints_and_create_request() {
        let (gateway, tenant) = configs();
        let id = TenantId::new("vitry").unwrap();
        let endpoints = Endpoints::for_tenant(&gateway, &tenant, &id).unwrap();
        assert_eq!(
            endpoints.notification.as_str(),
            "https://encaisse.example.fr/payfip/vitry/notification"
        );
        assert_eq!(
            endpoints.browser_return.as_str(),
            "https://encaisse.example.fr/payfip/vitry/return"
        );
        let mut own = tenant.clone();
        own.public_base_url = Some("https://paiement.ivry.fr/encaisse".into());
        let e = Endpoints::for_tenant(&gateway, &own, &id).unwrap();
        assert_eq!(
            e.classic_result.as_str(),
            "https://paiement.ivry.fr/encaisse/payfip/vitry/classic"
        );

        let now = DateTime::parse_from_rfc3339("2026-03-02T10:00:00+01:00")
            .unwrap()
            .to_utc();
        let payment = InvoicePayment {
            numcli: "090909",
            invoice_number: "F2026-000123",
            amount: Money::parse("45.60").unwrap(),
            email: "famille@example.org",
        };
        let request = create_request(&gateway, &tenant, &endpoints, &payment, now).unwrap();
        assert_eq!(request.saisie.as_str(), "W");
        assert_eq!(request.exer.year(), 2026);
        assert_eq!(request.objet.unwrap().as_str(), "Facture F2026 000123");
        assert!(request.refdet.as_str().starts_with("20260302100000"));
        let too_much = InvoicePayment {
            amount: Money::parse("100000.00").unwrap(),
            ..payment
        };
        assert!(create_request(&gateway, &tenant, &endpoints, &too_much, now).is_err());
        let no_base = GatewayConfig::default();
        assert!(Endpoints::for_tenant(&no_base, &tenant, &id).is_err());
    }

    #[test]
    fn titre_refdet_templates() {
        let titre = TitreRef {
            budget: "principal".into(),
            exercice: 2026,
            bordereau_type: "01".into(),
            id_bord: 12,
            id_pce: 345,
        };
        let default = GatewayConfig::default().titre_refdet_template;
        assert_eq!(
            titre_refdet(&default, &titre).unwrap().as_str(),
            "202600001200000345"
        );
        assert_eq!(
            titre_refdet("T{exercice}{bordereau_type}{id_pce}", &titre)
                .unwrap()
                .as_str(),
            "T202601345"
        );
        assert!(check_titre_refdet_template("{exercice}-{id_pce}").is_err());
        assert!(check_titre_refdet_template("{exercice}{id_bord}").is_err());
        assert!(check_titre_refdet_template("{annee}{id_pce}").is_err());
        assert!(check_titre_refdet_template("{id_pce:x}").is_err());
        assert!(check_titre_refdet_template("{id_pce").is_err());
        // Too short to be a refdet once rendered.
        assert!(titre_refdet("{id_pce}", &titre).is_err());
    }

    #[test]
    fn classic_titre() {
        let (gateway, tenant) = configs();
        let endpoints =
            Endpoints::for_tenant(&gateway, &tenant, &TenantId::new("vitry").unwrap()).unwrap();
        let (url, expectation) = classic_request(
            &gateway,
            &tenant,
            &endpoints,
            &TitrePayment {
                numcli: "012345",
                exer: 2026,
                refdet: "130000000000123456",
                amount: Money::parse("21.54").unwrap(),
                email: "parent@example.com",
                invoice_number: "T-42",
            },
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://www.payfip.gouv.fr/tpa/paiement.web?numcli=012345&refdet=130000000000123456&montant=2154&mel=parent%40example.com&saisie=A&exer=2026&objet=Facture+T+42&urlcl=https%3A%2F%2Fencaisse.example.fr%2Fpayfip%2Fvitry%2Fclassic"
        );
        assert_eq!(expectation.mode, PayfipMode::Production);
        assert_eq!(expectation.amount, Money::parse("21.54").unwrap());
    }
}
