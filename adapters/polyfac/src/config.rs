//! Configuration of the polyfac adapter (sections of `encaisse.toml`). Every field is documented; defaults live in functions.

use encaisse_schemas::tenant::ConfigIssue;
use serde::{Deserialize, Serialize};

/// `[sources.<name>]`: how to read one source application's export (columns, encoding, formats, value maps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMapping {}

impl SourceMapping {
    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let _ = prefix;
        Vec::new()
    }
}
