//! The subcommands. Each returns its exit code ([`crate::exit`]); output meant for people
//! goes to the writers it is given (standard output and error in the binary), logs to
//! `tracing`.

pub mod check;
pub mod console;
pub mod demo;
pub mod dlq;
pub mod dlq_table;
pub mod ledger;
pub mod mandates;
pub mod manual;
pub mod payfip_sim;
pub mod preview;
pub mod report;
pub mod run;
pub mod trace;
