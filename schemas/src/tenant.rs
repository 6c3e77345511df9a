//! The vocabulary a tenant (a commune) configures and every component shares: its budgets,
//! its activities and the products it bills. The TOML configuration embeds these types
//! (`config/encaisse.toml`, `[[tenants.budgets]]`, `[[tenants.activities]]`,
//! `[[tenants.products]]`).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Identifies a tenant (commune) everywhere: config, directories, routing, ledger.
/// Lower-case letters, digits and `-`, 1 to 32 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct TenantId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant id {0:?} must be 1-32 characters of a-z, 0-9 and '-'")]
pub struct TenantIdError(pub String);

impl TenantId {
    pub fn new(value: impl Into<String>) -> Result<Self, TenantIdError> {
        let value = value.into();
        let ok = !value.is_empty()
            && value.len() <= 32
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-');
        if ok {
            Ok(TenantId(value))
        } else {
            Err(TenantIdError(value))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = TenantIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TenantId::new(value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// How an activity's invoices are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CollectionPath {
    /// Titres de recette sent to the Trésorerie in PES V2 (Hélios); paid online through the
    /// classic TIPI/PayFiP URL once taken in charge, debited by Hélios.
    Titres,
    /// Invoices of a régie de recettes: paid online through the PayFiP web service and
    /// debited through the régie's own pain.008 files.
    Regie,
}

/// A budget of the commune as the Trésorerie knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Our key for the budget, referenced by activities (e.g. `principal`, `caisse-ecoles`).
    pub code: String,
    /// Hélios budget code `CodBud` (2 characters, `[0-9A-Z][0-9]`).
    pub cod_bud: String,
    /// Hélios collectivité code `CodCol` (3 digits) of this budget.
    pub cod_col: String,
    /// SIRET of the budget (`IdColl`, 14 digits).
    pub siret: String,
    /// Label (`LibelleColBud`).
    pub label: String,
    /// PayFiP client number (6 digits) under which this budget's titres are paid online
    /// with the classic TIPI/PayFiP URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payfip_numcli: Option<String>,
}

/// An activity billed by the commune (Polyfac `Activite`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    /// `PERISCOLAIRE`, `CRECHE`, `SEJOUR`, `CLASSE_DECOUVERTE`, `ANTENNE_QUARTIER`, …
    pub code: String,
    /// Key of the budget that receives this activity's revenue.
    pub budget: String,
    /// Titres (Hélios) or régie.
    pub collection: CollectionPath,
    /// For `regie`: the key of the régie (`[[tenants.regies]]`) that collects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regie: Option<String>,
    /// Whether families may pay this activity's invoices online (PayFiP).
    #[serde(default = "default_true")]
    pub online_payment: bool,
}

fn default_true() -> bool {
    true
}

/// A product billed on invoice lines (Polyfac `CodeProduit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Polyfac product code (`CANTINE`, `ETUDE`, …).
    pub code: String,
    /// The activity this product belongs to.
    pub activity: String,
    /// Hélios local product code `CodProdLoc` (1–4 alphanumerics), given by the Trésorerie.
    pub cod_prod_loc: String,
    /// Budget nature account (`Nature`, e.g. `7067`).
    pub nature: String,
    /// Functional account (`Fonction`, M57/M14), when the budget uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fonction: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_id_rules() {
        assert!(TenantId::new("vitry-sur-seine").is_ok());
        assert!(TenantId::new("Vitry").is_err());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("-x").is_err());
        assert!(TenantId::new("a".repeat(33)).is_err());
    }
}

/// A régie de recettes of the commune: collects its activities' invoices itself (online
/// through the PayFiP web service, by direct debit through its own pain.008 files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Regie {
    /// Our key for the régie, referenced by activities (`regie-creche`).
    pub code: String,
    pub label: String,
    /// PayFiP client number of the régie (6 digits), for the web service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payfip_numcli: Option<String>,
    /// SEPA creditor identifier used in the régie's pain.008 files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ics: Option<crate::identifiers::Ics>,
    /// Creditor name in pain.008 (≤ 70, SEPA characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creditor_name: Option<String>,
    /// The régie's account (DFT) credited by its direct debits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creditor_iban: Option<crate::identifiers::Iban>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creditor_bic: Option<crate::identifiers::Bic>,
}

/// A problem found while checking a configuration, naming the field (`tenants[1].budgets[0].siret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub field: String,
    pub message: String,
}

impl ConfigIssue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
