//! What the Polyfac stages know of each tenant, built once by the daemon from the
//! configuration (`[[tenants]]`, its `source` and `[sources.<name>]`).

use std::collections::HashMap;
use std::sync::Arc;

use encaisse_polyfac::reglements::ReglementsFormat;
use encaisse_polyfac::{SourceMapping, TenantCatalogue};
use encaisse_schemas::TenantId;

use crate::mandates::SequencePolicy;

/// One tenant, as the Polyfac stages see it.
#[derive(Debug, Clone)]
pub struct PolyfacTenant {
    pub tenant: TenantId,
    /// The source application: the `[sources.<name>]` key the tenant names (`polyfac`, the
    /// built-in default contract, or e.g. `creche`). Written in `source.application`.
    pub application: String,
    /// How the source's exports are read, and the dialect REGLEMENTS files are written in.
    pub mapping: SourceMapping,
    /// Budgets, activities, products and régies (validation and enrichment).
    pub catalogue: Arc<TenantCatalogue>,
    /// How the mandate sequence is derived when an export does not give it (the tenant's
    /// `[tenants.sepa]` settings, or their defaults).
    pub sequence_policy: SequencePolicy,
}

impl PolyfacTenant {
    /// The dialect of the REGLEMENTS files written back to the source.
    pub fn reglements_format(&self) -> ReglementsFormat {
        ReglementsFormat::from_mapping(&self.mapping)
    }
}

/// Tenants by id.
#[derive(Debug, Clone, Default)]
pub struct PolyfacTenants {
    by_id: HashMap<String, Arc<PolyfacTenant>>,
}

impl PolyfacTenants {
    pub fn new(tenants: impl IntoIterator<Item = PolyfacTenant>) -> Self {
        PolyfacTenants {
            by_id: tenants
                .into_iter()
                .map(|t| (t.tenant.as_str().to_string(), Arc::new(t)))
                .collect(),
        }
    }

    pub fn get(&self, tenant: &str) -> Option<&Arc<PolyfacTenant>> {
        self.by_id.get(tenant)
    }

    /// Every tenant id, sorted.
    pub fn ids(&self) -> Vec<TenantId> {
        let mut ids: Vec<TenantId> = self.by_id.values().map(|t| t.tenant.clone()).collect();
        ids.sort();
        ids
    }
}
