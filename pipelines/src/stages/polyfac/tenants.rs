//! What the Polyfac stages know of each tenant, built once by the daemon from the
//! configuration (`[[tenants]]`, its `source` and `[sources.<name>]`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
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

/// Tenants by id (their default source), with the further sources each receives.
#[derive(Debug, Clone, Default)]
pub struct PolyfacTenants {
    by_id: HashMap<String, Arc<PolyfacTenant>>,
    /// `(tenant, source name)` → the tenant as that further source sees it: its REGLEMENTS
    /// lines go back to that source's own outbox, in its own dialect.
    further: HashMap<(String, String), Arc<PolyfacTenant>>,
}

/// The REGLEMENTS outbox of one source of a tenant.
#[derive(Debug, Clone)]
pub struct ReturnOutbox {
    /// `""` for the tenant's default source (`<tenant>/polyfac/outbox`), else the further
    /// source's name (`<tenant>/sources/<name>/outbox`). The ledger's `source` column.
    pub source: String,
    /// The tenant as that source sees it (its mapping gives the return dialect).
    pub setup: Arc<PolyfacTenant>,
}

impl ReturnOutbox {
    /// `<data_dir>/<tenant>/polyfac/outbox`, or `<data_dir>/<tenant>/sources/<name>/outbox`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        let area = if self.source.is_empty() {
            "polyfac".to_string()
        } else {
            super::source_area(&self.source)
        };
        data_dir
            .join(self.setup.tenant.as_str())
            .join(area)
            .join("outbox")
    }
}

impl PolyfacTenants {
    pub fn new(tenants: impl IntoIterator<Item = PolyfacTenant>) -> Self {
        PolyfacTenants {
            by_id: tenants
                .into_iter()
                .map(|t| (t.tenant.as_str().to_string(), Arc::new(t)))
                .collect(),
            further: HashMap::new(),
        }
    }

    /// Adds the further sources (each with the tenants receiving it), whose invoices get
    /// their REGLEMENTS lines in their own outbox ([`Self::outbox_for`]).
    pub fn with_further(mut self, further: &[(String, PolyfacTenants)]) -> Self {
        for (source, tenants) in further {
            for t in tenants.by_id.values() {
                self.further
                    .insert((t.tenant.as_str().to_string(), source.clone()), t.clone());
            }
        }
        self
    }

    /// Where the REGLEMENTS lines of an invoice of `tenant` issued by `application` (its
    /// `source.application`) go: the further source of that name when the tenant receives
    /// one, else the default source's outbox (Polyfac, and applications publishing
    /// canonical messages themselves). `None`: unknown tenant.
    pub fn outbox_for(&self, tenant: &str, application: &str) -> Option<ReturnOutbox> {
        if let Some(setup) = self
            .further
            .get(&(tenant.to_string(), application.to_string()))
        {
            return Some(ReturnOutbox {
                source: application.to_string(),
                setup: setup.clone(),
            });
        }
        self.get(tenant).map(|setup| ReturnOutbox {
            source: String::new(),
            setup: setup.clone(),
        })
    }

    /// Every outbox of `tenant`: its default source's first, then its further sources' by
    /// name.
    pub fn outboxes(&self, tenant: &str) -> Vec<ReturnOutbox> {
        let mut further: Vec<ReturnOutbox> = self
            .further
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, source), setup)| ReturnOutbox {
                source: source.clone(),
                setup: setup.clone(),
            })
            .collect();
        further.sort_by(|a, b| a.source.cmp(&b.source));
        self.outbox_for(tenant, "")
            .into_iter()
            .chain(further)
            .collect()
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
