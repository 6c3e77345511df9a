//! How the adapter's errors are handled by the runtime: the retry class is the
//! workspace-wide `encaisse_schemas::ErrorClass`, shared with the runtime.

pub use encaisse_schemas::ErrorClass;
