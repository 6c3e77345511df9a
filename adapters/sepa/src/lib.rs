//! sepa adapter (knows nothing of AMQP).

pub mod config;
