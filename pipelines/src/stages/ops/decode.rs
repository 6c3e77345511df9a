//! A parked message in domain terms (tenant, invoice, family code, amount, channel) and its
//! body with personal data masked, for `encaisse dlq show`.
//!
//! Bodies are read as JSON by field name rather than as typed events: a parked message may
//! be of any type or version (or not JSON at all, which is why some were parked), and ops
//! must still see what can be seen.

use encaisse_schemas::identifiers::{Iban, mask_middle};
use encaisse_schemas::mask;
use serde::Serialize;
use serde_json::Value;

/// What a message is about, as far as its body says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub tenant: Option<String>,
    /// `tenant/exercice/number`.
    pub invoice: Option<String>,
    pub family_code: Option<String>,
    /// Euros, as the body writes them (`12.30`): the invoice total or the payment amount.
    pub amount: Option<String>,
    /// Payment channel (`CB`, `PRELEVEMENT`) or, for an invoice, its payment mode.
    pub channel: Option<String>,
    /// `titres` or `regie`, for an invoice.
    pub collection: Option<String>,
    /// Payment id, titre reference, idop: the external reference the message carries.
    pub reference: Option<String>,
    /// Billing run, for invoices and run closings.
    pub run_id: Option<String>,
}

/// The body as JSON, if it is JSON.
pub fn body_json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

fn string_at(value: &Value, path: &[&str]) -> Option<String> {
    let mut current = value;
    for key in path {
        current = current.get(key)?;
    }
    match current {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `tenant/exercice/number` of an `InvoiceRef` object.
fn invoice_key(value: &Value) -> Option<String> {
    let tenant = string_at(value, &["tenant"])?;
    let exercice = string_at(value, &["exercice"])?;
    let number = string_at(value, &["number"])?;
    Some(format!("{tenant}/{exercice}/{number}"))
}

/// Reads the domain facts a canonical event carries (see `schemas/src/events.rs`).
pub fn domain(body: &Value) -> Domain {
    let invoice = body.get("invoice").and_then(invoice_key);
    let titre = body.get("titre").and_then(|t| {
        Some(format!(
            "{}/{}/{}/{}",
            string_at(t, &["exercice"])?,
            string_at(t, &["bordereau_type"])?,
            string_at(t, &["id_bord"])?,
            string_at(t, &["id_pce"])?
        ))
    });
    Domain {
        tenant: string_at(body, &["invoice", "tenant"]).or_else(|| string_at(body, &["tenant"])),
        invoice,
        family_code: string_at(body, &["family_code"]),
        amount: string_at(body, &["total"]).or_else(|| string_at(body, &["amount"])),
        channel: string_at(body, &["channel"]).or_else(|| string_at(body, &["payment_mode"])),
        collection: string_at(body, &["collection"]),
        reference: string_at(body, &["payment_id"])
            .or(titre)
            .or_else(|| string_at(body, &["idop"])),
        run_id: string_at(body, &["source", "run_id"]).or_else(|| string_at(body, &["run_id"])),
    }
}

/// How a field holding personal data is masked.
fn mask_field(key: &str, text: &str) -> Option<String> {
    Some(match key {
        "last_name" | "first_name" | "holder" | "debtor_name" | "payer_name" => mask::name(text),
        "email" => mask::email(text),
        "iban" => Iban::parse(text)
            .map(|iban| iban.masked())
            .unwrap_or_else(|_| mask_middle(text)),
        "street" | "complement" | "locality" | "city" | "phone" | "address_line" => {
            mask::generic(text)
        }
        _ => return None,
    })
}

/// Masks personal data in place: names to initials, e-mail addresses to their first letter
/// and domain, IBANs to their ends, street addresses and phone numbers to their ends
/// (`encaisse_schemas::mask`). Everything else (amounts, references, codes) stays.
pub fn mask_personal(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match field {
                    Value::String(text) => {
                        if let Some(masked) = mask_field(key, text) {
                            *text = masked;
                        }
                    }
                    other => mask_personal(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_personal),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issued() -> Value {
        json!({
            "schema_version": 1,
            "invoice": {"tenant": "vitry", "exercice": 2026, "number": "F0001"},
            "source": {"application": "polyfac", "run_id": "run-7", "file": "export.csv", "lines": [2, 3]},
            "family_code": "FAM042",
            "collection": "regie",
            "payer": {
                "civilite": "MME",
                "last_name": "Dupont-Martin",
                "first_name": "Jeanne",
                "address": {"street": "12 rue de la Paix", "postal_code": "94400", "city": "Vitry-sur-Seine"},
                "email": "jeanne.dupont@example.com"
            },
            "mandate": {"rum": "RUM-42", "iban": "FR7630006000011234567890189", "holder": "Jeanne Dupont"},
            "total": "42.50",
            "payment_mode": "PRELEVEMENT"
        })
    }

    #[test]
    fn an_invoice_in_domain_terms() {
        let d = domain(&issued());
        assert_eq!(d.tenant.as_deref(), Some("vitry"));
        assert_eq!(d.invoice.as_deref(), Some("vitry/2026/F0001"));
        assert_eq!(d.family_code.as_deref(), Some("FAM042"));
        assert_eq!(d.amount.as_deref(), Some("42.50"));
        assert_eq!(d.channel.as_deref(), Some("PRELEVEMENT"));
        assert_eq!(d.collection.as_deref(), Some("regie"));
        assert_eq!(d.run_id.as_deref(), Some("run-7"));
    }

    #[test]
    fn a_payment_and_a_titre_in_domain_terms() {
        let paid = json!({
            "invoice": {"tenant": "ivry", "exercice": 2026, "number": "T9"},
            "payment_id": "payfip:123", "amount": "10.00", "channel": "CB"
        });
        let d = domain(&paid);
        assert_eq!(
            (
                d.invoice.as_deref(),
                d.amount.as_deref(),
                d.channel.as_deref(),
                d.reference.as_deref()
            ),
            (
                Some("ivry/2026/T9"),
                Some("10.00"),
                Some("CB"),
                Some("payfip:123")
            )
        );
        let accepted = json!({
            "invoice": {"tenant": "ivry", "exercice": 2026, "number": "T9"},
            "titre": {"budget": "principal", "exercice": 2026, "bordereau_type": "01", "id_bord": 12, "id_pce": 345}
        });
        assert_eq!(
            domain(&accepted).reference.as_deref(),
            Some("2026/01/12/345")
        );
        let confirm = json!({"tenant": "ivry", "idop": "abc"});
        let d = domain(&confirm);
        assert_eq!(
            (d.tenant.as_deref(), d.reference.as_deref()),
            (Some("ivry"), Some("abc"))
        );
    }

    #[test]
    fn personal_data_is_masked_and_the_rest_kept() {
        let mut body = issued();
        mask_personal(&mut body);
        let text = body.to_string();
        for secret in [
            "Dupont",
            "Jeanne",
            "jeanne.dupont",
            "rue de la Paix",
            "0006000011234567890",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(body["payer"]["last_name"], "D.");
        assert_eq!(body["payer"]["email"], "j…@example.com");
        assert_eq!(body["mandate"]["iban"], "FR76…0189");
        assert_eq!(body["payer"]["address"]["postal_code"], "94400");
        assert_eq!(body["total"], "42.50");
        assert_eq!(body["family_code"], "FAM042");
        assert_eq!(body["mandate"]["rum"], "RUM-42");
    }
}
