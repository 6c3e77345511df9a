//! Configuration of the payfip adapter (sections of `encaisse.toml`). Every field is documented; defaults live in functions.

use encaisse_schemas::tenant::ConfigIssue;
use serde::{Deserialize, Serialize};

/// `[payfip]`: the DGFiP gateway (URLs, timeouts, amount bounds, commission tariffs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {}

impl GatewayConfig {
    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let _ = prefix;
        Vec::new()
    }
}

/// `[tenants.payfip]`: a commune's online payment settings (API token variable, mode).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayfipTenantConfig {}

impl PayfipTenantConfig {
    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let _ = prefix;
        Vec::new()
    }
}
