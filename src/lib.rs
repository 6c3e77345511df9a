//! `encaisse`, the binary: command line, configuration, HTTP server, observability and the
//! wiring of stages into the runtime. The work itself lives in the other crates
//! (ARCHITECTURE.md, "Crates"); this crate reads the TOML file and builds them.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod demo;
pub mod dirs;
pub mod exit;
pub mod http;
pub mod instance;
pub mod logging;
pub mod metrics;
pub mod payfip;
pub mod signals;
pub mod wiring;
