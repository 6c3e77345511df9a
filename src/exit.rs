//! Exit codes of `encaisse` (documented in README.md, "Exit codes"). Where one exists, the
//! BSD `sysexits.h` value is used, as `vector validate` and other daemons' checkers do.

/// Success; for `run` and `payfip-sim`, a graceful stop after SIGTERM/SIGINT.
pub const OK: u8 = 0;
/// `run` stopped because of an error it cannot retry (a topology conflict on the broker, a
/// ledger that fails, an HTTP server that dies), did not stop within its grace period, or
/// was stopped at once by a second signal; `dlq replay`: some replays failed; `demo`: a step
/// of the story went wrong.
pub const FAILURE: u8 = 1;
/// Bad command line (unknown option or subcommand: clap's own code; a `dlq` filter or a
/// discard without a reason; an ambiguous `trace` key).
pub const USAGE: u8 = 2;
/// `preview`: the export has invoices the daemon would reject, or would be rejected whole;
/// `ledger migrate`: the PostgreSQL target is not empty, or a table cannot be copied
/// (`EX_DATAERR`).
pub const DATA_ERROR: u8 = 65;
/// `dlq show|replay|discard`, `trace`: an ID or invoice that the ledger does not know
/// (`EX_NOINPUT`); `preview`: the export file does not exist.
pub const NOT_FOUND: u8 = 66;
/// The broker could not be reached: `check --connect`, `dlq replay`, `demo`
/// (`EX_UNAVAILABLE`).
pub const UNAVAILABLE: u8 = 69;
/// A file or directory could not be created, opened or written: the data directory, the
/// ledger (missing for the ops commands), the HTTP listen address (`EX_IOERR`).
pub const IO_ERROR: u8 = 74;
/// `run`: another daemon already runs on the same data directory (its lock file) or the
/// same broker prefix (`<prefix>.instance`); the message names its pid and host. Not worth
/// restarting until that one stops (`EX_TEMPFAIL`).
pub const ALREADY_RUNNING: u8 = 75;
/// The configuration is unusable: unreadable file, TOML error, unknown key, failed check
/// (`EX_CONFIG`).
pub const CONFIG: u8 = 78;
