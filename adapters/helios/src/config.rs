//! Configuration of the helios adapter (sections of `encaisse.toml`). Every field is documented; defaults live in functions.

use encaisse_schemas::tenant::ConfigIssue;
use serde::{Deserialize, Serialize};

/// `[tenants.helios]`: a commune's Hélios settings (IdPost, bordereau kind, ASAP edition, file naming).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeliosTenantConfig {}

impl HeliosTenantConfig {
    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let _ = prefix;
        Vec::new()
    }
}
