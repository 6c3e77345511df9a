//! Canonical messages of encaisse and the value types they are made of.
//!
//! * [`events`]: the versioned messages that travel on the broker (`invoice.issued`,
//!   `payment.received`, …), their JSON Schemas in `schemas/json/` ([`json_schemas`]).
//! * [`Money`]: euros on `rust_decimal`, exact to the cent, no silent rounding.
//! * [`identifiers`]: IBAN (with clé RIB), BIC, ICS, RUM — valid by construction.
//! * [`text`]: SEPA character set transliteration.
//! * [`tenant`]: the vocabulary a commune configures (budgets, activities, products).
//! * [`seen`]: a compact "seen before?" filter for streaming passes over large files.

pub mod error_class;
pub mod event;
pub mod events;
pub mod identifiers;
pub mod json_schemas;
pub mod mask;
pub mod money;
pub mod seen;
pub mod tenant;
pub mod text;

pub use error_class::ErrorClass;
pub use event::{DecodeError, Event, decode, encode, message_id_for};
pub use events::*;
pub use money::{Money, MoneyError};
pub use tenant::{CollectionPath, TenantId};
