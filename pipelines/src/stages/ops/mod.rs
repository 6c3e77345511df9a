//! Operations tooling (issue 6): what ops need when something is stuck.
//!
//! - [`drain`]: `ops.parking`, a runtime [`Drain`](crate::runtime::Drain) that copies every
//!   stage's parking lot (`<prefix>.<stage>.parked`) into the ledger — original bytes,
//!   properties and headers as they came — and acks only once the row is durable. Inspecting
//!   parked messages then never consumes or reorders anything on the broker.
//! - [`parked`]: what a parked message is (stage, error class and kind, attempts, times,
//!   origin), from the runtime's failure headers or, when the broker parked it (delivery
//!   limit), from `x-death`.
//! - [`store`]: the types of the `parked_message` table (list, group by stage + error kind,
//!   show, mark), whose operations are the ledger's `OpsStore` (SQLite and PostgreSQL).
//! - [`replay`]: republish to the stage's work queue with confirms (fresh attempts), or
//!   discard with a reason; both idempotent and audited.
//! - [`decode`]: a body in domain terms, personal data masked; [`show`]: the view of one
//!   parked message.
//! - [`trace`]: the life of one invoice from the ledger.
//! - [`gauges`]: `encaisse_parked_messages`, oldest parked age, last file emitted per tenant
//!   and kind, refreshed by the `ops.metrics` source.
//!
//! The CLI (`encaisse dlq`, `encaisse trace`) works on the ledger (and the broker for a
//! replay) without the daemon running. Operator's guide: `docs/operating.md`.

pub mod decode;
pub mod drain;
pub mod gauges;
pub mod parked;
pub mod reconciliation;
pub mod replay;
pub mod show;
pub mod since;
pub mod store;
pub mod trace;
pub mod wire;

pub use drain::ParkingDrain;
pub use gauges::{GaugeSource, ParkedGauges};
