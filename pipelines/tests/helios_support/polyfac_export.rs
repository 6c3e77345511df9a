//! `polyfac.export` beside the Hélios stages, for tests that follow what Polyfac is told.

use std::sync::Arc;

use encaisse_pipelines::runtime::Runtime;
use encaisse_pipelines::stages::polyfac::{PolyfacExport, PolyfacTenants, export};
use encaisse_polyfac::SourceMapping;
use encaisse_schemas::TenantId;

use super::helios::Flow;
use super::{polyfac, support};

/// `polyfac.export` on `flow`'s broker namespace and ledger, for `tenant` (the daemon runs
/// it beside `helios.titres`).
pub async fn polyfac_export(flow: &Flow, tenant: &TenantId) -> support::Running {
    let tiers = [1];
    flow.ns.stage(export::NAME, &tiers);
    let mut runtime = Runtime::new(
        flow.ns
            .config(&support::broker_url(support::BROKER), &tiers),
        flow.ledger.clone(),
    );
    let tenants = PolyfacTenants::new([polyfac::tenant(
        tenant.as_str(),
        "polyfac",
        SourceMapping::polyfac_default(),
    )]);
    runtime.add_stage(Arc::new(PolyfacExport::new(tenants, flow.ledger.clone())));
    let running = support::Running::start(runtime);
    support::wait_connected(&running.health).await;
    running
}

/// `(invoice, line)` of every REGLEMENTS line recorded, by invoice. The lines are
/// Windows-1252: the `é` of Hélios comes back as `é` here.
pub async fn reglements_lines(flow: &Flow) -> Vec<(String, String)> {
    flow.ledger
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT invoice_key, bytes FROM polyfac_reglement_line ORDER BY invoice_key",
            )?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, Vec<u8>>(1)?)))?
                .collect::<Result<Vec<(String, Vec<u8>)>, _>>()?;
            Ok(rows)
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(key, bytes)| {
            let line = String::from_utf8_lossy(&bytes).replace('\u{FFFD}', "é");
            (key, line.trim_end().to_string())
        })
        .collect()
}
