//! The stages and sources that wire adapters to queues (ARCHITECTURE.md, "Routing keys and
//! stages"), and the pieces they share.

pub mod helios;
pub mod inbox;
pub mod ops;
pub mod payfip;
pub mod polyfac;
pub mod sepa;
pub mod untrusted_file;
