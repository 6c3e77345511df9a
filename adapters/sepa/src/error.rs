//! How the adapter's errors are handled by the runtime. Adapters know nothing of AMQP, so
//! this mirrors `encaisse_pipelines::ErrorClass` and the stage maps one to the other.

/// Retry class of an error (ARCHITECTURE.md, "Error classes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// May succeed later (I/O).
    Transient,
    /// Bad data or configuration: park now, fix, replay.
    Permanent,
    /// Undecodable input: park now (a bank file goes to `bank/rejected`).
    Poison,
}
