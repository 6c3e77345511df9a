//! PayFiP in the daemon: the settings the stages and routes get from `encaisse.toml`, the
//! constructors of the registry entries (`payfip.register`, `payfip.confirm`,
//! `payfip.reconcile`), and the HTTP routes merged into the server by `encaisse run`.
//! The work itself is in `encaisse_pipelines::stages::payfip` (see `docs/payfip.md`).

use std::sync::Arc;

use axum::Router;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::Publisher;
use encaisse_pipelines::stages::payfip::{
    self as stages, ApiToken, ConfirmStage, Gateway, PayfipSettings, Reconciler, RegisterStage,
    TenantPayfip,
};

use crate::config::Config;
use crate::wiring::{Built, Context, WiringError};

/// The PayFiP view of the configuration. Each tenant's API token is read from the
/// environment variable its `[tenants.api] token_env` names; an unset or empty variable
/// leaves the tenant's payment API closed (every call answers 401), as `encaisse check`
/// warns.
pub fn settings(config: &Config) -> PayfipSettings {
    settings_with_env(config, |name| std::env::var(name).ok())
}

/// [`settings`] with a given environment (tests).
pub fn settings_with_env(config: &Config, env: impl Fn(&str) -> Option<String>) -> PayfipSettings {
    let tenants = config.tenants.iter().map(|t| TenantPayfip {
        id: t.id.clone(),
        payfip: t.payfip.clone().unwrap_or_default(),
        budgets: t.budgets.clone(),
        regies: t.regies.clone(),
        api_token: t
            .api
            .as_ref()
            .and_then(|api| env(&api.token_env))
            .and_then(ApiToken::new),
    });
    PayfipSettings::new(config.payfip.clone().unwrap_or_default(), tenants)
}

fn gateway(settings: &PayfipSettings, component: &'static str) -> Result<Gateway, WiringError> {
    Gateway::new(&settings.gateway).map_err(|e| WiringError {
        component,
        message: e.to_string(),
    })
}

/// `payfip.register`.
pub fn build_register(ctx: &Context<'_>) -> Result<Built, WiringError> {
    Ok(Built::Stage(Arc::new(RegisterStage::new(Arc::new(
        settings(ctx.config),
    )))))
}

/// `payfip.confirm`.
pub fn build_confirm(ctx: &Context<'_>) -> Result<Built, WiringError> {
    let settings = Arc::new(settings(ctx.config));
    let gateway = gateway(&settings, stages::CONFIRM_STAGE)?;
    Ok(Built::Stage(Arc::new(ConfirmStage::new(
        settings,
        ctx.ledger.clone(),
        gateway,
    ))))
}

/// `payfip.reconcile`.
pub fn build_reconcile(ctx: &Context<'_>) -> Result<Built, WiringError> {
    Ok(Built::Source(Arc::new(Reconciler::new(Arc::new(
        settings(ctx.config),
    )))))
}

/// The PayFiP routes (payment API, notification, return, classic result), to merge into
/// the daemon's HTTP server.
pub fn routes(
    config: &Config,
    ledger: &Ledger,
    publisher: Publisher,
) -> Result<Router, WiringError> {
    let settings = Arc::new(settings(config));
    let gateway = gateway(&settings, "payfip.routes")?;
    Ok(stages::router(settings, ledger.clone(), publisher, gateway))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_named_variables() {
        let config = crate::config::load_str(
            r#"
            [[tenants]]
            id = "vitry"
            name = "Vitry-sur-Seine"
            [tenants.api]
            token_env = "ENCAISSE_TOKEN_VITRY"
            [tenants.payfip]
            enabled = true

            [[tenants]]
            id = "ivry"
            name = "Ivry-sur-Seine"
            [tenants.api]
            token_env = "ENCAISSE_TOKEN_IVRY"

            [[tenants]]
            id = "orly"
            name = "Orly"
            "#,
            "test.toml",
        )
        .unwrap();
        let env = |name: &str| match name {
            "ENCAISSE_TOKEN_VITRY" => Some("s3cret".to_string()),
            "ENCAISSE_TOKEN_IVRY" => Some(String::new()),
            _ => None,
        };
        let settings = settings_with_env(&config, env);
        let vitry = settings.tenant("vitry").unwrap();
        assert!(vitry.payfip.enabled);
        assert!(vitry.api_token.as_ref().unwrap().matches("s3cret"));
        // An empty variable does not open the API with an empty token.
        assert!(settings.tenant("ivry").unwrap().api_token.is_none());
        assert!(settings.tenant("orly").unwrap().api_token.is_none());
        assert!(!settings.tenant("orly").unwrap().payfip.enabled);
    }
}
