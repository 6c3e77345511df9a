//! How a failure of this adapter must be handled by whoever calls it.
//!
//! The retry class is the workspace-wide `encaisse_schemas::ErrorClass`, shared with the
//! runtime, so stages pass it through unchanged.

pub use encaisse_schemas::ErrorClass;
