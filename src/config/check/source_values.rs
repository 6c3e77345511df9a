//! A source's value maps and fixed values checked against a tenant that reads it: a mapping
//! whose target is not a product or activity of the tenant, or a fixed value the reader
//! would refuse, rejects every invoice at run time — `check` says so first, naming the key
//! (`sources.creche.product_values.HEURES`, `sources.creche.fixed.quantity`).

use std::collections::BTreeMap;

use encaisse_polyfac::config::{Field, SourceMapping};
use encaisse_polyfac::values::{
    check_email, is_postal_code, parse_amount, parse_date, parse_decimal,
};

use super::Report;
use crate::config::TenantConfig;

/// Checks `mapping` (`[sources.<name>]`) against `tenant`; issues go in `report`.
pub fn check(name: &str, mapping: &SourceMapping, tenant: &TenantConfig, report: &mut Report) {
    let at = |key: &str| format!("sources.{name}.{key}");
    let whose = format!("tenant {} ({})", tenant.id, tenant.name);
    let activity = |code: &str| tenant.activities.iter().any(|a| a.code == code);
    let product = |code: &str| tenant.products.iter().find(|p| p.code == code);
    for (key, target) in &mapping.activity_values {
        if !activity(target) {
            report.issue(
                at(&format!("activity_values.{key}")),
                format!("{target:?} is not an activity of {whose}"),
            );
        }
    }
    // A fixed activity: every invoice has it, so every product must belong to it.
    let fixed_activity = mapping
        .fixed
        .get(&Field::Activity)
        .map(|v| mapped(&mapping.activity_values, v));
    for (key, target) in &mapping.product_values {
        match product(target) {
            None => report.issue(
                at(&format!("product_values.{key}")),
                format!("{target:?} is not a product of {whose}"),
            ),
            Some(p) => {
                if let Some(fixed) = &fixed_activity
                    && p.activity != *fixed
                {
                    report.issue(
                        at(&format!("product_values.{key}")),
                        format!(
                            "product {target:?} belongs to activity {:?}, but the source's activity is fixed to {fixed:?}: every such line would be rejected",
                            p.activity
                        ),
                    );
                }
            }
        }
    }
    for (field, value) in &mapping.fixed {
        if let Some(problem) = fixed_problem(mapping, *field, value, &activity, &|code| {
            product(code).is_some()
        }) {
            report.issue(at(&format!("fixed.{field}")), problem);
        }
    }
}

/// The value a value map gives `value` (keys ignore case and surrounding spaces), or itself.
fn mapped(map: &BTreeMap<String, String>, value: &str) -> String {
    let wanted = value.trim().to_uppercase();
    map.iter()
        .find(|(k, _)| k.trim().to_uppercase() == wanted)
        .map_or_else(|| value.trim().to_string(), |(_, v)| v.clone())
}

fn has_key<V>(map: &BTreeMap<String, V>, value: &str) -> bool {
    let wanted = value.trim().to_uppercase();
    map.keys().any(|k| k.trim().to_uppercase() == wanted)
}

/// Why the reader would refuse `value` as the fixed value of `field`, if it would.
fn fixed_problem(
    mapping: &SourceMapping,
    field: Field,
    value: &str,
    activity: &dyn Fn(&str) -> bool,
    product: &dyn Fn(&str) -> bool,
) -> Option<String> {
    let value = value.trim();
    let keys = |map_name: &str| {
        format!("{value:?} is not a key of {map_name}: every invoice would be rejected")
    };
    match field {
        Field::Activity => {
            let code = mapped(&mapping.activity_values, value);
            (!activity(&code)).then(|| format!("{code:?} is not an activity of the tenant"))
        }
        Field::Product => {
            let code = mapped(&mapping.product_values, value);
            (!product(&code)).then(|| format!("{code:?} is not a product of the tenant"))
        }
        Field::PaymentMode => {
            (!has_key(&mapping.payment_mode_values, value)).then(|| keys("payment_mode_values"))
        }
        Field::Civilite => {
            (!has_key(&mapping.civilite_values, value)).then(|| keys("civilite_values"))
        }
        Field::Sequence => {
            (!has_key(&mapping.sequence_values, value)).then(|| keys("sequence_values"))
        }
        Field::Quantity => parse_decimal(value, mapping.decimal_separator).err(),
        Field::UnitPrice | Field::LineAmount | Field::InvoiceTotal => {
            parse_amount(value, mapping.decimal_separator).err()
        }
        Field::Period => match value.parse::<u8>() {
            Ok(1..=12) => None,
            _ => Some(format!("{value:?} is not a month (1 to 12)")),
        },
        Field::Exercice => (!(value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit())))
            .then(|| format!("{value:?} is not a four-digit year")),
        Field::IssueDate | Field::DueDate | Field::MandateSignedOn => {
            parse_date(value, &mapping.date_format).is_none().then(|| {
                format!(
                    "{value:?} is not a date in the source's date_format {:?}",
                    mapping.date_format
                )
            })
        }
        Field::PostalCode => {
            (!is_postal_code(value)).then(|| format!("{value:?} is not a 5-digit postal code"))
        }
        Field::Email => check_email(value)
            .err()
            .map(|why| format!("not an e-mail address: {why}")),
        _ => None,
    }
}
