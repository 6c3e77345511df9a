//! Configuration of the sepa adapter (sections of `encaisse.toml`). Every field is documented; defaults live in functions.

use encaisse_schemas::tenant::ConfigIssue;
use serde::{Deserialize, Serialize};

/// `[tenants.sepa]`: a commune's régie direct-debit settings (pain.008 version, lead times, re-presentation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SepaTenantConfig {}

impl SepaTenantConfig {
    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let _ = prefix;
        Vec::new()
    }
}
