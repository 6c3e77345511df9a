//! PayFiP in the daemon (issue 4): online payment of invoices by the families, through the
//! DGFiP gateway (`encaisse_payfip`).
//!
//! ```text
//! invoice.issued.#, titre.accepted,      ┌──────────────────┐
//! payment.received, payment.reversed ──► │ payfip.register  │ ─► ledger: payfip_invoice, payfip_titre, payfip_payment
//!                                        └──────────────────┘
//! Kiosque famille ─ POST /api/v1/tenants/{t}/payments ─► creerPaiementSecurise (régie) | classic URL (titres)
//!                                                        ─► ledger: payfip_operation (one active per invoice)
//! gateway ─ POST /payfip/{t}/notification (idop) ─┐
//! browser ─ GET  /payfip/{t}/return?idop=…  ──────┼─► payfip.confirm ─► recupererDetailPaiementSecurise
//! payfip.reconcile (lost notifications) ──────────┘        └─► payment.received | payment.failed (once per operation)
//! gateway/browser ─ GET|POST /payfip/{t}/classic ─► verified against the ledger ─► claim (P/V, unsigned) | payment.failed
//! PES Retour émargement (payment.received, helios) ─► payfip.register ─► claim confirmed; payfip.reconcile reports the others
//! ```
//!
//! * [`settings`]: what the stages and routes take from the configuration (resolved by the
//!   binary, tokens included).
//! * [`store`]: the SQL of the `payfip_*` tables (migration `payfip_0001`).
//! * [`register`]: the `payfip.register` stage.
//! * [`confirm`]: the `payfip.confirm` stage.
//! * [`reconcile`]: the `payfip.reconcile` source.
//! * [`routes`]: the HTTP routes (Kiosque famille API, gateway notification, browser return,
//!   classic result), mounted on the daemon's listener.
//! * [`gateway`]: the adapter's client with the gateway metrics.

pub mod confirm;
pub mod gateway;
pub mod reconcile;
pub mod register;
pub mod routes;
pub mod settings;
pub mod store;

pub use confirm::ConfirmStage;
pub use gateway::Gateway;
pub use reconcile::Reconciler;
pub use register::RegisterStage;
pub use routes::{PayfipRoutes, router};
pub use settings::{ApiToken, PayfipSettings, TenantPayfip};

/// Name (and queue suffix) of the register stage.
pub const REGISTER_STAGE: &str = "payfip.register";
/// Name (and queue suffix) of the confirmation stage.
pub const CONFIRM_STAGE: &str = "payfip.confirm";
/// Name of the reconciliation source.
pub const RECONCILE_SOURCE: &str = "payfip.reconcile";

/// Paris wall-clock for dates and event times (`dattrans` is Paris time; so are the tariff
/// dates and the "J+1" of titres).
pub(crate) fn paris_now() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .fixed_offset()
}
