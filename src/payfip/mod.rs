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
/// the daemon's HTTP server, from [`settings`] (or [`settings_with_env`]).
pub fn routes(
    settings: PayfipSettings,
    ledger: &Ledger,
    publisher: Publisher,
) -> Result<Router, WiringError> {
    let settings = Arc::new(settings);
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

    /// The routes as `encaisse run` mounts them: merged into the daemon's server next to the
    /// built-in ones, answering over real HTTP (the broker is not needed for these answers).
    #[tokio::test]
    async fn routes_are_served_by_the_daemon_server() {
        use crate::http::{AppState, Server};
        use encaisse_pipelines::runtime::{Runtime, RuntimeConfig};

        let config = crate::config::load_str(
            r#"
            [payfip]
            public_base_url = "https://encaisse.example.fr"
            [[tenants]]
            id = "vitry"
            name = "Vitry-sur-Seine"
            [tenants.api]
            token_env = "ENCAISSE_TEST_TOKEN_ROUTES"
            [tenants.payfip]
            enabled = true
            "#,
            "test.toml",
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(tmp.path().join("ledger.sqlite")).unwrap();
        let runtime = Runtime::new(RuntimeConfig::default(), ledger.clone());
        let settings = Arc::new(settings_with_env(&config, |_| Some("t0ken".into())));
        let gateway = Gateway::new(&settings.gateway).unwrap();
        let routes = stages::router(settings, ledger.clone(), runtime.publisher(), gateway);
        let state = AppState::new(
            runtime.health(),
            ledger,
            Vec::new(),
            crate::metrics::handle(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(
            Server::new(state)
                .merge(routes)
                .serve(listener, shutdown.clone()),
        );

        let http = reqwest::Client::new();
        let status = |r: reqwest::Response| r.status().as_u16();
        let healthz = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(status(healthz), 200);
        let forged = http
            .post(format!("{base}/payfip/vitry/notification"))
            .form(&[("idop", "0b4e7c1a-5f2d-4c3b-9a8e-7d6f5e4c3b2a")])
            .send()
            .await
            .unwrap();
        assert_eq!(status(forged), 200);
        let api = format!("{base}/api/v1/tenants/vitry/payments");
        let anonymous = http
            .post(&api)
            .header("content-type", "application/json")
            .body(r#"{"invoice":"F1"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(status(anonymous), 401);
        let unknown = http
            .post(&api)
            .bearer_auth("t0ken")
            .header("content-type", "application/json")
            .body(r#"{"invoice":"F1"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(status(unknown), 404);
        shutdown.cancel();
    }
}
