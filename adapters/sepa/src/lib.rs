//! SEPA direct debit for régies (issue 5 §3–4): the pure part, knowing nothing of AMQP.
//!
//! * Writing: [`collection_for`] turns an `invoice.issued` into a [`Collection`];
//!   [`build`] checks every EPC rule the XSD does not check ([`rules`]) and groups the
//!   collections into blocks by (due date, sequence type) with totals in cents; the
//!   resulting [`Pain008`] is written as pain.008.001.02 or .08 by [`Pain008::to_xml`].
//!   Nothing reads a clock or a random source: the same inputs give the same bytes, so a
//!   crashed batch is rebuilt identically. File names: [`naming`].
//! * Mandates: [`mandate::next_sequence`] decides FRST / RCUR / OOFF from a mandate's
//!   history, or why it cannot be used (closed, suspended, lapsed, one-off used).
//! * Reports: [`report`] writes the CSV reports of refused invoices and unmatched bank
//!   records for `bank/rejected`.
//! * Reading: [`read_bank_file`] reads pain.002 and camt.054 safely into
//!   [`RejectRecord`]s with match keys, idempotency keys, reason texts ([`reasons`]) and a
//!   handling [`Decision`] ([`policy`]).
//!
//! * Simulation: [`sim`] writes the files a bank sends back (pain.002, camt.054), for tests
//!   and `encaisse demo`.
//!
//! See `docs/sepa.md` for the decisions and the assumptions to confirm.

pub mod calendar;
pub mod config;
pub mod error;
mod from_config;
pub mod ids;
pub mod mandate;
mod message;
pub mod model;
pub mod naming;
pub mod policy;
pub mod read;
pub mod reasons;
pub mod report;
pub mod rules;
pub mod sim;
mod writer;

pub use config::SepaTenantConfig;
pub use error::ErrorClass;
pub use from_config::{Presentation, SetupError, collection_for, remittance_for};
pub use message::{Block, Pain008, Totals, Violations, build};
pub use model::{
    Amendment, Collection, Creditor, Debtor, InitiatingParty, MandateInfo, MessageHeader,
    OriginalDebtorAccount, Pain008Version, PartyId, PostalAddress, UltimateCreditor, WriteSettings,
};
pub use policy::{Decision, RepresentationPolicy};
pub use read::{BankFile, ReadError, ReadSettings, RejectRecord, read_bank_file};
pub use writer::WriteError;

impl Violations {
    /// A message that breaks a rule is bad data: park it, fix the data, replay.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

impl WriteError {
    /// Only an I/O failure of the sink: may succeed later.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Transient
    }
}
