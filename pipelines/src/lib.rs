//! Pipelines: the AMQP runtime and the stages.
//!
//! A stage is a plain async function from a message to effects and output messages
//! ([`Stage`], [`stage_fn`]); the [`runtime`] owns everything else — topology, publisher
//! confirms, acks after durable effects, retries through delay tiers, parking lots,
//! deduplication, reconnection and graceful shutdown (DESIGN §3).

pub mod bundle;
pub mod mandates;
pub mod runtime;
pub mod stage;
pub mod stages;

pub use stage::{
    ErrorClass, Handled, HeaderValue, Incoming, LedgerEffect, Outgoing, Stage, StageError, stage_fn,
};
