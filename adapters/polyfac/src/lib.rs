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
//!
//! The ingest stage, minus AMQP and files:
//!
//! ```
//! use std::sync::Arc;
//! use encaisse_polyfac::report::{RejectionReport, unreadable_file_report};
//! use encaisse_polyfac::*;
//! use encaisse_schemas::{SequenceType, TenantId};
//!
//! let tenant = TenantId::new("vitry").unwrap();
//! let catalogue = Arc::new(generate::example_catalogue(tenant.clone()).unwrap());
//! let mapping = SourceMapping::polyfac_default();
//! let bytes: &[u8] = include_bytes!("../samples/polyfac-2-invoices.csv");
//! let name = "FACT_202601.csv";
//!
//! // Pass 1: can the file be read at all? Its hash names the run.
//! let scan = match prescan(bytes, &mapping, name) {
//!     Ok(scan) => scan,
//!     Err(e) => {
//!         let _report = unreadable_file_report(name, &e); // → polyfac/rejected, file moved there
//!         panic!("{e}");
//!     }
//! };
//! let ctx = RunContext::for_file(tenant, "polyfac", name, &scan.file_sha256);
//! let options = ReadOptions {
//!     file_name: name.into(),
//!     today: chrono::NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
//!     prescan: Some(scan.clone()),
//! };
//! // Pass 2: publish each valid invoice, report the others.
//! let mut report = RejectionReport::new();
//! let mut published = Vec::new();
//! for item in ExportReader::new(bytes, &mapping, catalogue.clone(), options) {
//!     match item.unwrap() {
//!         ExportItem::Valid(invoice) => {
//!             // The stage asks the ledger's mandate history here.
//!             let event = enrich(&invoice, &ctx, |_rum| {
//!                 Ok::<_, std::convert::Infallible>(SequenceType::Rcur)
//!             })
//!             .unwrap();
//!             published.push(event); // → invoice.issued.<titres|regie>, confirmed
//!         }
//!         ExportItem::Invalid(rejected) => report.add(&rejected),
//!         ExportItem::Summary(summary) => {
//!             // The bytes changed between the passes: retry the file later.
//!             assert_eq!(summary.file_sha256, scan.file_sha256);
//!             let closed = billing_run_closed(&summary, &catalogue, &ctx).unwrap();
//!             assert_eq!(closed.budgets.len(), 2); // → billing_run.closed
//!             let _files = report.finish(&summary); // → polyfac/rejected
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(published.len(), 2);
//! ```

pub mod catalogue;
pub mod cell;
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
pub use enrich::{
    RunContext, billing_run_closed, content_hash, enrich, enrich_credit_note, run_id,
};
pub use error::{FileError, Rule, ValidationError};
pub use field::Field;
pub use reader::{
    ExportItem, ExportReader, ExportSummary, Prescan, ReadOptions, RejectedInvoice, prescan,
    prescan_with,
};
pub use validate::{Invoice, Origin};
