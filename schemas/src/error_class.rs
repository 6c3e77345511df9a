//! The retry class every error of encaisse maps to (ARCHITECTURE.md, "Error classes").
//!
//! It lives here, in the crate every other crate depends on, so that adapters (which know
//! nothing of AMQP) and the runtime share one type instead of mirroring it.

use std::fmt;

/// How a failure must be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// May succeed later (gateway down, broker flow control, disk full, file system
    /// unavailable): retried through the delay tiers, then parked when attempts are exhausted.
    Transient,
    /// The data is wrong (unknown tenant, invalid amount, an invoice breaking a PES rule):
    /// parked now (or the file moved to `rejected/`), replayable once the cause is fixed.
    Permanent,
    /// The input cannot even be decoded (not JSON/XML, DTD present, unknown encoding):
    /// parked now.
    Poison,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Poison => "poison",
        }
    }

    pub fn is_transient(self) -> bool {
        self == ErrorClass::Transient
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
