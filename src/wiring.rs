//! Which stages and sources the daemon runs, built from the configuration.
//!
//! Each area adds one [`Component`] to [`REGISTRY`] (ARCHITECTURE.md, "Routing keys and
//! stages"): its name (the stage's queue is `<prefix>.<name>`), its kind, and a constructor
//! that takes what it needs from the [`Context`] — adapter settings from the configuration,
//! the ledger, the data directory. `encaisse check` lists the names; `encaisse run` builds them.
//!
//! ```text
//! Component {
//!     name: "helios.titres",
//!     kind: Kind::Stage,
//!     build: |ctx| Ok(Built::Stage(encaisse_pipelines::stages::helios_titres(ctx.config, ctx.ledger.clone())?)),
//! },
//! ```

use std::path::Path;
use std::sync::Arc;

use encaisse_ledger::Ledger;
use encaisse_pipelines::Stage;
use encaisse_pipelines::runtime::{Drain, Runtime, Source};

use crate::config::Config;

/// What a constructor gets.
pub struct Context<'a> {
    pub config: &'a Config,
    pub ledger: &'a Ledger,
    pub data_dir: &'a Path,
}

/// A stage consumes its queue; a source feeds the broker (inbox watcher, timer); a drain
/// consumes queues the stages declare but do not consume (the parking lots, for ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stage,
    Source,
    Drain,
}

/// What a constructor built.
pub enum Built {
    Stage(Arc<dyn Stage>),
    Source(Arc<dyn Source>),
    Drain(Arc<dyn Drain>),
}

/// One entry of the registry.
pub struct Component {
    /// `helios.titres`: lower case, dots.
    pub name: &'static str,
    pub kind: Kind,
    pub build: fn(&Context<'_>) -> Result<Built, WiringError>,
}

/// A component that cannot be built from this configuration (exit code 78).
#[derive(Debug, thiserror::Error)]
#[error("{component}: {message}")]
pub struct WiringError {
    pub component: &'static str,
    pub message: String,
}

/// Every stage and source of the daemon, built in this order by `encaisse run` and listed
/// by `encaisse check`.
pub const REGISTRY: &[Component] = &[
    Component {
        name: "polyfac.ingest",
        kind: Kind::Source,
        build: build_polyfac_ingest,
    },
    Component {
        name: "polyfac.export",
        kind: Kind::Stage,
        build: build_polyfac_export,
    },
    Component {
        name: "polyfac.export.flush",
        kind: Kind::Source,
        build: build_polyfac_flush,
    },
    Component {
        name: "sepa.batch",
        kind: Kind::Stage,
        build: build_sepa_batch,
    },
    Component {
        name: "sepa.returns",
        kind: Kind::Source,
        build: build_sepa_returns,
    },
    Component {
        name: "helios.titres",
        kind: Kind::Stage,
        build: build_helios_titres,
    },
    Component {
        name: "helios.titres.flush",
        kind: Kind::Source,
        build: build_helios_flush,
    },
    Component {
        name: "helios.returns",
        kind: Kind::Source,
        build: build_helios_returns,
    },
    Component {
        name: "payfip.register",
        kind: Kind::Stage,
        build: crate::payfip::build_register,
    },
    Component {
        name: "payfip.confirm",
        kind: Kind::Stage,
        build: crate::payfip::build_confirm,
    },
    Component {
        name: "payfip.reconcile",
        kind: Kind::Source,
        build: crate::payfip::build_reconcile,
    },
    Component {
        name: "ops.parking",
        kind: Kind::Drain,
        build: build_ops_parking,
    },
    Component {
        name: "ops.metrics",
        kind: Kind::Source,
        build: build_ops_metrics,
    },
];

/// Names and kinds, for `encaisse check`.
pub fn plan() -> Vec<(&'static str, Kind)> {
    REGISTRY.iter().map(|c| (c.name, c.kind)).collect()
}

/// Builds every component and adds it to `runtime`.
pub fn install(ctx: &Context<'_>, runtime: &mut Runtime) -> Result<(), WiringError> {
    for component in REGISTRY {
        match (component.build)(ctx)? {
            Built::Stage(stage) => {
                if stage.name() != component.name {
                    return Err(WiringError {
                        component: component.name,
                        message: format!(
                            "built a stage named {:?}; the registry and the stage must agree",
                            stage.name()
                        ),
                    });
                }
                runtime.add_stage(stage);
            }
            Built::Source(source) => {
                runtime.add_source(source);
            }
            Built::Drain(drain) => {
                runtime.add_drain(drain);
            }
        }
        tracing::info!(
            component = component.name,
            kind = ?component.kind,
            "Component wired."
        );
    }
    Ok(())
}

/// The Polyfac stages' view of every tenant: its source mapping (`source` →
/// `[sources.<name>]`, or the built-in Polyfac contract), catalogue and mandate policy.
fn polyfac_tenants(
    ctx: &Context<'_>,
    component: &'static str,
) -> Result<encaisse_pipelines::stages::polyfac::PolyfacTenants, WiringError> {
    let tenants = ctx
        .config
        .tenants
        .iter()
        .map(|t| {
            polyfac_tenant(ctx.config, t, &t.source)
                .map_err(|message| WiringError { component, message })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(encaisse_pipelines::stages::polyfac::PolyfacTenants::new(
        tenants,
    ))
}

/// One tenant as the Polyfac stages see it when it reads the exports of `source` (a
/// `[sources.<name>]` key, or the built-in Polyfac contract): the daemon and `encaisse
/// preview` build it the same way.
pub fn polyfac_tenant(
    config: &Config,
    t: &crate::config::TenantConfig,
    source: &str,
) -> Result<encaisse_pipelines::stages::polyfac::PolyfacTenant, String> {
    use encaisse_pipelines::mandates::SequencePolicy;
    use encaisse_pipelines::stages::polyfac::PolyfacTenant;
    use encaisse_polyfac::{SourceMapping, TenantCatalogue};

    let mapping = match config.sources.get(source) {
        Some(mapping) => mapping.clone(),
        None if source == crate::config::DEFAULT_SOURCE => SourceMapping::polyfac_default(),
        None => return Err(format!("tenant {}: unknown source {source:?}", t.id)),
    };
    let catalogue = TenantCatalogue::new(
        t.id.clone(),
        t.budgets.clone(),
        t.activities.clone(),
        t.products.clone(),
        t.regies.clone(),
    )
    .map_err(|issues| {
        issues
            .iter()
            .map(|i| format!("{}: {}", i.field, i.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let sepa = t.sepa.clone().unwrap_or_default();
    Ok(PolyfacTenant {
        tenant: t.id.clone(),
        application: source.to_string(),
        mapping,
        catalogue: Arc::new(catalogue),
        sequence_policy: SequencePolicy::from(&sepa),
    })
}

/// Each further source (`extra_sources`), with the tenants that receive it as that source
/// sees them (its mapping: how its exports are read and its REGLEMENTS written).
fn further_sources(
    ctx: &Context<'_>,
    component: &'static str,
) -> Result<Vec<(String, encaisse_pipelines::stages::polyfac::PolyfacTenants)>, WiringError> {
    use encaisse_pipelines::stages::polyfac::PolyfacTenants;
    let mut names: Vec<&String> = ctx
        .config
        .tenants
        .iter()
        .flat_map(|t| &t.extra_sources)
        .collect();
    names.sort();
    names.dedup();
    let mut further = Vec::new();
    for name in names {
        let receiving = ctx
            .config
            .tenants
            .iter()
            .filter(|t| t.extra_sources.contains(name))
            .map(|t| {
                polyfac_tenant(ctx.config, t, name)
                    .map_err(|message| WiringError { component, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        further.push((name.clone(), PolyfacTenants::new(receiving)));
    }
    Ok(further)
}

fn build_polyfac_ingest(ctx: &Context<'_>) -> Result<Built, WiringError> {
    const COMPONENT: &str = "polyfac.ingest";
    let tenants = polyfac_tenants(ctx, COMPONENT)?;
    let further = further_sources(ctx, COMPONENT)?;
    Ok(Built::Source(
        encaisse_pipelines::stages::polyfac::ingest_sources(
            tenants,
            further,
            ctx.data_dir.to_path_buf(),
            &ctx.config.polyfac,
        ),
    ))
}

fn build_polyfac_export(ctx: &Context<'_>) -> Result<Built, WiringError> {
    const COMPONENT: &str = "polyfac.export";
    let tenants = polyfac_tenants(ctx, COMPONENT)?.with_further(&further_sources(ctx, COMPONENT)?);
    Ok(Built::Stage(Arc::new(
        encaisse_pipelines::stages::polyfac::PolyfacExport::new(tenants, ctx.ledger.clone()),
    )))
}

fn build_polyfac_flush(ctx: &Context<'_>) -> Result<Built, WiringError> {
    const COMPONENT: &str = "polyfac.export.flush";
    let tenants = polyfac_tenants(ctx, COMPONENT)?.with_further(&further_sources(ctx, COMPONENT)?);
    Ok(Built::Source(
        encaisse_pipelines::stages::polyfac::flush_source(
            tenants,
            ctx.data_dir.to_path_buf(),
            &ctx.config.polyfac,
        ),
    ))
}

/// A tenant's régie direct-debit settings, when it has a `[tenants.sepa]` section (the
/// daemon's `sepa.batch` and `encaisse preview` alike).
pub fn tenant_sepa(
    t: &crate::config::TenantConfig,
) -> Option<encaisse_pipelines::stages::sepa::TenantSepa> {
    t.sepa
        .as_ref()
        .map(|sepa| encaisse_pipelines::stages::sepa::TenantSepa {
            id: t.id.clone(),
            sepa: sepa.clone(),
            regies: t.regies.clone(),
        })
}

/// The régie direct-debit settings of the tenants that have a `[tenants.sepa]` section
/// (the others send no pain.008), with the system clock (Europe/Paris).
fn sepa_settings(ctx: &Context<'_>) -> encaisse_pipelines::stages::sepa::SepaSettings {
    use encaisse_pipelines::stages::sepa::{Clock, SepaSettings};
    SepaSettings {
        tenants: ctx.config.tenants.iter().filter_map(tenant_sepa).collect(),
        data_dir: ctx.data_dir.to_path_buf(),
        clock: Clock::system(),
    }
}

fn build_sepa_batch(ctx: &Context<'_>) -> Result<Built, WiringError> {
    Ok(Built::Stage(encaisse_pipelines::stages::sepa::batch_stage(
        sepa_settings(ctx),
        ctx.ledger.clone(),
    )))
}

fn build_sepa_returns(ctx: &Context<'_>) -> Result<Built, WiringError> {
    Ok(Built::Source(
        encaisse_pipelines::stages::sepa::returns_source(
            sepa_settings(ctx),
            ctx.config.sepa.watch(),
        ),
    ))
}

/// The Hélios settings of the tenants that have a `[tenants.helios]` section (the others
/// send no titres: their titres invoices are parked with kind `no_helios_config`), with
/// their budgets, the mandate policy of `[tenants.sepa]` (or its defaults) and the system
/// clock (Europe/Paris).
fn helios_settings(ctx: &Context<'_>) -> encaisse_pipelines::stages::helios::HeliosSettings {
    use encaisse_pipelines::stages::helios::HeliosSettings;
    use encaisse_pipelines::stages::sepa::Clock;
    HeliosSettings {
        tenants: ctx
            .config
            .tenants
            .iter()
            .filter_map(tenant_helios)
            .collect(),
        data_dir: ctx.data_dir.to_path_buf(),
        clock: Clock::system(),
    }
}

/// A tenant's Hélios settings, when it has a `[tenants.helios]` section.
pub fn tenant_helios(
    t: &crate::config::TenantConfig,
) -> Option<encaisse_pipelines::stages::helios::TenantHelios> {
    use encaisse_pipelines::mandates::SequencePolicy;
    use encaisse_pipelines::stages::helios::TenantHelios;
    t.helios.as_ref().map(|helios| TenantHelios {
        id: t.id.clone(),
        config: helios.clone(),
        budgets: t.budgets.clone(),
        sequence_policy: SequencePolicy::from(&t.sepa.clone().unwrap_or_default()),
    })
}

fn build_helios_titres(ctx: &Context<'_>) -> Result<Built, WiringError> {
    Ok(Built::Stage(
        encaisse_pipelines::stages::helios::titres_stage(helios_settings(ctx), ctx.ledger.clone()),
    ))
}

/// How often `helios.titres.flush` looks for planned PES Aller files left unwritten (after
/// a crash, or a failure the stage could not retry); it also runs at start-up.
const HELIOS_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn build_helios_flush(ctx: &Context<'_>) -> Result<Built, WiringError> {
    Ok(Built::Source(
        encaisse_pipelines::stages::helios::flush_source(
            helios_settings(ctx),
            HELIOS_FLUSH_INTERVAL,
        ),
    ))
}

fn build_helios_returns(ctx: &Context<'_>) -> Result<Built, WiringError> {
    Ok(Built::Source(
        encaisse_pipelines::stages::helios::returns_source(
            helios_settings(ctx),
            ctx.config.helios.watch(),
        ),
    ))
}

/// `ops.parking`: every stage's parking lot copied into the ledger for `encaisse dlq`.
fn build_ops_parking(ctx: &Context<'_>) -> Result<Built, WiringError> {
    use encaisse_pipelines::stages::ops::{ParkedGauges, ParkingDrain};
    Ok(Built::Drain(Arc::new(ParkingDrain::new(
        ctx.config.broker.prefix.clone(),
        ctx.ledger.clone(),
        ParkedGauges::new(ctx.ledger.clone()),
    ))))
}

/// `ops.metrics`: parked-message and last-file gauges, read from the ledger.
fn build_ops_metrics(ctx: &Context<'_>) -> Result<Built, WiringError> {
    use encaisse_pipelines::stages::ops::{GaugeSource, ParkedGauges};
    Ok(Built::Source(GaugeSource::new(ParkedGauges::new(
        ctx.ledger.clone(),
    ))))
}
