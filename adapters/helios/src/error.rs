//! How a failure of this adapter must be handled by whoever calls it.
//!
//! The adapter knows nothing of AMQP (ARCHITECTURE.md), so it cannot name the runtime's
//! `ErrorClass`; this enum has the same three values and the stages map it one to one.

use std::fmt;

/// Retry class of an error of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// May succeed later (disk full, file system unavailable): retry.
    Transient,
    /// The data is wrong (an invoice breaks a PES rule, a return file names unknown codes):
    /// retrying cannot help; park the message or move the file to `rejected/`.
    Permanent,
    /// The input cannot even be decoded (not XML, DTD present, unknown encoding).
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
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
