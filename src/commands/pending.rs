//! Subcommands whose feature has not landed yet.

use std::io::Write;

use crate::exit;

/// Which issue brings the subcommand.
pub fn issue_of(command: &str) -> Option<u32> {
    match command {
        "dlq" | "trace" => Some(6),
        "demo" => Some(7),
        _ => None,
    }
}

/// Says the subcommand is not available yet and returns [`exit::NOT_YET_AVAILABLE`].
pub fn not_yet_available(command: &str, err: &mut dyn Write) -> u8 {
    let hint = if command == "demo" {
        " (meanwhile: scripts/demo.sh)"
    } else {
        ""
    };
    let issue = issue_of(command).map_or(String::new(), |n| format!(" (issue {n})"));
    let _ = writeln!(
        err,
        "encaisse {command}: not yet available{issue}{hint}; exit code {}",
        exit::NOT_YET_AVAILABLE
    );
    exit::NOT_YET_AVAILABLE
}
