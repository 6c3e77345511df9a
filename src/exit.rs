//! Exit codes of `encaisse` (documented in README.md, "Exit codes"). Where one exists, the
//! BSD `sysexits.h` value is used, as `vector validate` and other daemons' checkers do.

/// Success; for `run`, a graceful stop after SIGTERM/SIGINT.
pub const OK: u8 = 0;
/// `run` stopped because of an error it cannot retry (a topology conflict on the broker, a
/// ledger that fails, an HTTP server that dies), or did not stop within its grace period.
pub const FAILURE: u8 = 1;
/// Bad command line (unknown option or subcommand): clap's own code.
pub const USAGE: u8 = 2;
/// The subcommand exists but its feature has not landed yet (`dlq`, `trace`, `payfip-sim`,
/// `demo`).
pub const NOT_YET_AVAILABLE: u8 = 3;
/// `check --connect`: the broker could not be reached (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;
/// A file or directory could not be created, opened or written: the data directory, the
/// ledger, the HTTP listen address (`EX_IOERR`).
pub const IO_ERROR: u8 = 74;
/// The configuration is unusable: unreadable file, TOML error, unknown key, failed check
/// (`EX_CONFIG`).
pub const CONFIG: u8 = 78;
