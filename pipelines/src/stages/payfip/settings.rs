//! What the PayFiP stages and routes take from the configuration. The binary builds it from
//! `encaisse.toml` (`[payfip]`, each tenant's `[tenants.payfip]`, budgets, régies and
//! `[tenants.api] token_env`, whose variable it reads); tests build it directly.

use std::collections::BTreeMap;
use std::fmt;

use encaisse_payfip::{GatewayConfig, PayfipTenantConfig};
use encaisse_schemas::tenant::{Budget, Regie};
use encaisse_schemas::{CollectionPath, TenantId};
use sha2::{Digest, Sha256};

/// The gateway and every tenant's PayFiP settings.
#[derive(Debug, Clone)]
pub struct PayfipSettings {
    /// `[payfip]` (URLs, timeouts, policies, tariffs, reconciliation).
    pub gateway: GatewayConfig,
    /// Tenants by id.
    pub tenants: BTreeMap<TenantId, TenantPayfip>,
}

impl PayfipSettings {
    pub fn new(gateway: GatewayConfig, tenants: impl IntoIterator<Item = TenantPayfip>) -> Self {
        PayfipSettings {
            gateway,
            tenants: tenants.into_iter().map(|t| (t.id.clone(), t)).collect(),
        }
    }

    /// The tenant named in a URL path, if it exists.
    pub fn tenant(&self, id: &str) -> Option<&TenantPayfip> {
        self.tenants
            .iter()
            .find(|(k, _)| k.as_str() == id)
            .map(|(_, t)| t)
    }
}

/// One tenant's settings.
#[derive(Debug, Clone)]
pub struct TenantPayfip {
    pub id: TenantId,
    /// `[tenants.payfip]` (enabled, mode, return URL prefixes, …).
    pub payfip: PayfipTenantConfig,
    /// Budgets (their `payfip_numcli` serves titres).
    pub budgets: Vec<Budget>,
    /// Régies (their `payfip_numcli` serves the web service).
    pub regies: Vec<Regie>,
    /// The bearer token of the Kiosque famille API; `None` refuses every call.
    pub api_token: Option<ApiToken>,
}

impl TenantPayfip {
    /// The PayFiP client number of an invoice's budget (titres) or régie.
    pub fn numcli_for(
        &self,
        collection: CollectionPath,
        budget: &str,
        regie: Option<&str>,
    ) -> Option<String> {
        match collection {
            CollectionPath::Titres => self
                .budgets
                .iter()
                .find(|b| b.code == budget)
                .and_then(|b| b.payfip_numcli.clone()),
            CollectionPath::Regie => {
                let regie = regie?;
                self.regies
                    .iter()
                    .find(|r| r.code == regie)
                    .and_then(|r| r.payfip_numcli.clone())
            }
        }
    }
}

/// A bearer token. Never printed; compared in constant time.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// `None` for an empty value (an unset variable must not open the API to an empty token).
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let value = value.into();
        (!value.trim().is_empty()).then_some(ApiToken(value))
    }

    /// Whether `presented` is this token. Both sides are hashed first, so the comparison
    /// runs over 32 bytes whatever the lengths, and every byte is compared (no early exit):
    /// the time taken says nothing about how much of the token was right.
    pub fn matches(&self, presented: &str) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let given = Sha256::digest(presented.as_bytes());
        let difference = expected
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let token = ApiToken::new("s3cret-token").unwrap();
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-tokem"));
        assert!(!token.matches("s3cret-token "));
        assert!(!token.matches(""));
        assert!(ApiToken::new("  ").is_none());
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn numcli_by_collection() {
        let tenant = TenantPayfip {
            id: TenantId::new("vitry").unwrap(),
            payfip: PayfipTenantConfig::default(),
            budgets: vec![Budget {
                code: "principal".into(),
                cod_bud: "01".into(),
                cod_col: "123".into(),
                siret: "21940081700018".into(),
                label: "Budget principal".into(),
                payfip_numcli: Some("012345".into()),
            }],
            regies: vec![Regie {
                code: "regie-creche".into(),
                label: "Crèche".into(),
                payfip_numcli: Some("090909".into()),
                ics: None,
                creditor_name: None,
                creditor_iban: None,
                creditor_bic: None,
            }],
            api_token: None,
        };
        assert_eq!(
            tenant.numcli_for(CollectionPath::Titres, "principal", None),
            Some("012345".into())
        );
        assert_eq!(
            tenant.numcli_for(CollectionPath::Regie, "principal", Some("regie-creche")),
            Some("090909".into())
        );
        assert_eq!(
            tenant.numcli_for(CollectionPath::Regie, "principal", None),
            None
        );
        assert_eq!(
            tenant.numcli_for(CollectionPath::Titres, "annexe", None),
            None
        );
    }
}
