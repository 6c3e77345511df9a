//! The régie direct-debit path (issue 5 §3–4; `docs/sepa.md`): the `sepa.batch` stage
//! (one pain.008 per régie and billing run, crash-safe), the `sepa.returns` source (pain.002
//! and camt.054 from `bank/inbox` → `payment.rejected`, re-presentation), and the mandate
//! history other stages ask for a sequence type ([`mandates::sequence_for`]).

pub mod clock;
pub mod mandates;

pub use clock::Clock;
pub use mandates::{SequenceError, sequence_for};
