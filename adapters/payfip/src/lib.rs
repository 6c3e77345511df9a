//! PayFiP / TIPI: the DGFiP's online payment gateway for local authorities
//! (`../shared/specs/payfip.md`). Knows nothing of AMQP.
//!
//! * [`client`]: the web-service client (`creerPaiementSecurise`,
//!   `recupererDetailPaiementSecurise`, `recupererDetailClient`), SOAP 1.1 as recorded;
//!   failures are [`PayfipError`]s with a [`RetryClass`].
//! * [`fields`]: request values valid by construction (numcli, exer, refdet and its
//!   generator, amount bounds, e-mail, `objet` normalisation, idOp).
//! * [`result`]: `resultrans`, the result record, what P1/P5/`A` mean over time
//!   ([`result::interpret`]), and the `payment.received` / `payment.failed` events.
//! * [`classic`]: the classic `paiement.web` URL for titres, its `urlcl` result, and
//!   [`classic::verify`] (that channel has no signature).
//! * [`commission`](mod@commission): the dated commission tariff table.
//! * [`notification`]: the idOp of a notification or browser return (nothing else is read).
//! * [`sim`]: a local gateway simulator with fault injection (`encaisse payfip-sim`).
//! * [`attempt`]: one payment attempt from the daemon's data (our endpoints, the SOAP request of
//!   an invoice, the classic URL of a titre and the expectation its result must meet).
//! * [`config`]: `[payfip]` and `[tenants.payfip]`.

pub mod attempt;
pub mod classic;
pub mod client;
pub mod commission;
pub mod config;
pub mod datetime;
pub mod error;
pub mod fields;
pub mod notification;
pub mod result;
pub mod sim;
pub mod soap;
pub mod xml;

pub use client::{CreatePayment, PayfipClient};
pub use commission::{FeeChannel, commission};
pub use config::{GatewayConfig, PayfipMode, PayfipTenantConfig};
pub use error::{Fault, FaultKind, PayfipError, RetryClass};
pub use fields::{Email, Exer, IdOp, NumCli, Objet, Refdet, Saisie};
pub use result::{OperationStatus, PaymentDetail, Resultrans};
