//! Polyfac adapter (knows nothing of AMQP): reads billing exports of Polyfac — or of any
//! source described by a [`config::SourceMapping`] — into canonical invoices, and writes the
//! REGLEMENTS files that bring payments back.
//!
//! The pieces a stage wires together, in order:
//! 1. [`reader::prescan`] — first pass: file-level checks, SHA-256 (for the run id), split
//!    invoices;
//! 2. [`reader::ExportReader`] — streams [`reader::ExportItem`]s: valid [`validate::Invoice`]s,
//!    [`reader::RejectedInvoice`]s with their [`error::ValidationError`]s, then a
//!    [`reader::ExportSummary`];
//! 3. [`enrich::enrich`] → `invoice.issued`; [`enrich::billing_run_closed`] →
//!    `billing_run.closed`;
//! 4. [`report::RejectionReport`] — the per-export report for `polyfac/rejected`;
//! 5. [`reglements`] — rows and bytes of `REGLEMENTS_<tenant>_<AAAAMMJJ>_<seq>.csv`.
//!
//! [`generate`] writes realistic exports for tests and benchmarks.

pub mod catalogue;
pub mod config;
pub mod enrich;
pub mod error;
pub mod field;
pub mod generate;
pub mod mapping;
pub mod reader;
pub mod records;
pub mod reglements;
pub mod report;
pub mod validate;
pub mod values;

pub use catalogue::TenantCatalogue;
pub use config::SourceMapping;
pub use enrich::{RunContext, billing_run_closed, content_hash, enrich, run_id};
pub use error::{FileError, Rule, ValidationError};
pub use field::Field;
pub use reader::{
    ExportItem, ExportReader, ExportSummary, Prescan, ReadOptions, RejectedInvoice, prescan,
};
pub use validate::Invoice;
