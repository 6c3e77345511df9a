//! The PayFiP HTTP routes, mounted on the daemon's listener (`http::Server::merge`):
//!
//! | route | who calls | module |
//! | --- | --- | --- |
//! | `POST /api/v1/tenants/{tenant}/payments` | Kiosque famille (bearer token) | [`api`] |
//! | `POST /payfip/{tenant}/notification` | the gateway (`urlnotif`, form `idop`) | [`notify`] |
//! | `GET\|POST /payfip/{tenant}/return` | the family's browser (`urlredirect`) | [`notify`] |
//! | `GET\|POST /payfip/{tenant}/classic` | gateway and browser (`urlcl`, titres) | [`classic`] |
//!
//! Bodies are limited to [`MAX_BODY_BYTES`]. E-mail addresses are never logged in clear.

pub mod api;
pub mod classic;
pub mod error;
pub mod notify;
mod page;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use encaisse_ledger::Ledger;

use super::gateway::Gateway;
use super::settings::PayfipSettings;
use crate::runtime::Publisher;

/// Largest request body the routes read (a payment request or a form is far smaller).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Counter of notifications and browser returns, by route and outcome.
pub const NOTIFICATIONS: &str = "encaisse_payfip_notifications_total";

/// Counter of classic "paid" results, which are claims until a PES Retour confirms them, by
/// tenant and outcome: `announced` (recorded), `confirmed` (the émargement came),
/// `unconfirmed` (none came within `classic_claim_confirm_secs`: reported to ops).
pub const CLAIMS: &str = "encaisse_payfip_claims_total";

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct PayfipRoutes {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<PayfipSettings>,
    ledger: Ledger,
    publisher: Publisher,
    gateway: Gateway,
}

impl PayfipRoutes {
    pub fn new(
        settings: Arc<PayfipSettings>,
        ledger: Ledger,
        publisher: Publisher,
        gateway: Gateway,
    ) -> Self {
        PayfipRoutes {
            inner: Arc::new(Inner {
                settings,
                ledger,
                publisher,
                gateway,
            }),
        }
    }

    pub(crate) fn settings(&self) -> &PayfipSettings {
        &self.inner.settings
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    pub(crate) fn publisher(&self) -> &Publisher {
        &self.inner.publisher
    }

    pub(crate) fn gateway(&self) -> &Gateway {
        &self.inner.gateway
    }

    /// The routes, with this state.
    pub fn into_router(self) -> Router {
        Router::new()
            .route(
                "/api/v1/tenants/{tenant}/payments",
                post(api::create_payment),
            )
            .route(
                encaisse_payfip::attempt::NOTIFICATION_ROUTE,
                post(notify::notification),
            )
            .route(
                encaisse_payfip::attempt::RETURN_ROUTE,
                get(notify::browser_return).post(notify::browser_return),
            )
            .route(
                encaisse_payfip::attempt::CLASSIC_ROUTE,
                get(classic::result).post(classic::result),
            )
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
    }
}

/// The PayFiP routes (what the binary merges into its HTTP server).
pub fn router(
    settings: Arc<PayfipSettings>,
    ledger: Ledger,
    publisher: Publisher,
    gateway: Gateway,
) -> Router {
    PayfipRoutes::new(settings, ledger, publisher, gateway).into_router()
}

/// Adds `status`, `payment_id` and `invoice` to a Kiosque return URL.
pub(crate) fn return_url_with(
    return_url: &str,
    status: &str,
    payment_id: Option<&str>,
    invoice: &str,
) -> Option<String> {
    let mut url = url::Url::parse(return_url).ok()?;
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("status", status);
        if let Some(id) = payment_id {
            pairs.append_pair("payment_id", id);
        }
        pairs.append_pair("invoice", invoice);
    }
    Some(url.to_string())
}
