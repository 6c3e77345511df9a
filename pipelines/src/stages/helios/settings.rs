//! What the Hélios stages know of each tenant, built once by the daemon from the
//! configuration (`[[tenants]]` with a `[tenants.helios]` section, its budgets, and the
//! mandate policy of `[tenants.sepa]`).

use std::path::PathBuf;

use encaisse_helios::config::HeliosTenantConfig;
use encaisse_schemas::TenantId;
use encaisse_schemas::tenant::Budget;

use crate::mandates::SequencePolicy;
use crate::stages::sepa::Clock;

/// One tenant that sends titres to Hélios.
#[derive(Debug, Clone)]
pub struct TenantHelios {
    pub id: TenantId,
    /// `[tenants.helios]`.
    pub config: HeliosTenantConfig,
    /// `[[tenants.budgets]]`: `CodCol`, `CodBud`, SIRET of each budget.
    pub budgets: Vec<Budget>,
    /// How a direct-debit invoice's SEPA sequence is derived when the source did not give it
    /// (the tenant's `[tenants.sepa]` settings, or their defaults).
    pub sequence_policy: SequencePolicy,
}

impl TenantHelios {
    /// The budget with this key.
    pub fn budget(&self, code: &str) -> Option<&Budget> {
        self.budgets.iter().find(|b| b.code == code)
    }

    /// The budget Hélios names (`CodCol`, `CodBud`).
    pub fn budget_by_codes(&self, cod_col: &str, cod_bud: &str) -> Option<&Budget> {
        self.budgets
            .iter()
            .find(|b| b.cod_col == cod_col && b.cod_bud == cod_bud)
    }
}

/// Everything the Hélios stages need.
#[derive(Debug, Clone)]
pub struct HeliosSettings {
    /// The tenants with a `[tenants.helios]` section (the others send no titres).
    pub tenants: Vec<TenantHelios>,
    /// The data directory: `<tenant>/helios/{outbox,inbox,archive,rejected}` under it.
    pub data_dir: PathBuf,
    /// Europe/Paris clock: the bordereau date, the PES_ACQUIT_RETOUR date.
    pub clock: Clock,
}

impl HeliosSettings {
    pub fn tenant(&self, id: &str) -> Option<&TenantHelios> {
        self.tenants.iter().find(|t| t.id.as_str() == id)
    }

    /// `<data_dir>/<tenant>/helios/<dir>`.
    pub fn dir(&self, tenant: &TenantId, dir: &str) -> PathBuf {
        self.data_dir.join(tenant.as_str()).join("helios").join(dir)
    }
}
