//! `encaisse console hash-password`: reads a password on standard input (one line, or all of
//! it when piped) and prints its Argon2id PHC string, for `[[console.users]] password_hash`.

use std::io::{BufRead, Write};

use clap::{Args, Subcommand};

use super::dlq_table::codes;
use crate::console::password;

/// `encaisse console …`
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    pub command: ConsoleCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Read a password on standard input and print its Argon2id hash (PHC string) for
    /// `[[console.users]] password_hash`.
    HashPassword,
}

/// Runs `encaisse console …`; returns the exit code.
pub fn run(
    args: &ConsoleArgs,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    match args.command {
        ConsoleCommand::HashPassword => hash_password(input, out, err),
    }
}

/// The longest password read (a bound on what standard input may make us hash).
const MAX_PASSWORD_BYTES: u64 = 1024;

fn hash_password(input: &mut dyn BufRead, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut line = String::new();
    if let Err(e) = std::io::Read::take(input, MAX_PASSWORD_BYTES + 1).read_line(&mut line) {
        let _ = writeln!(
            err,
            "encaisse console hash-password: cannot read standard input: {e}"
        );
        return codes::IO_ERROR;
    }
    if line.len() as u64 > MAX_PASSWORD_BYTES {
        let _ = writeln!(
            err,
            "encaisse console hash-password: the password is longer than {MAX_PASSWORD_BYTES} bytes"
        );
        return codes::USAGE;
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        let _ = writeln!(
            err,
            "encaisse console hash-password: no password on standard input (e.g. `read -rs P; printf '%s' \"$P\" | encaisse console hash-password`)"
        );
        return codes::USAGE;
    }
    match password::hash(password) {
        Ok(phc) => {
            let _ = writeln!(out, "{phc}");
            codes::OK
        }
        Err(e) => {
            let _ = writeln!(err, "encaisse console hash-password: {e}");
            codes::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(input: &str) -> (u8, String, String) {
        let args = ConsoleArgs {
            command: ConsoleCommand::HashPassword,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, &mut input.as_bytes(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn prints_a_hash_that_verifies_the_line_read() {
        let (code, out, _) = hash_of("s3cret pass\n");
        assert_eq!(code, codes::OK);
        assert!(password::verify("s3cret pass", out.trim()), "{out}");
        assert!(!password::verify("s3cret pass\n", out.trim()));
    }

    #[test]
    fn refuses_empty_and_oversized_input() {
        assert_eq!(hash_of("\n").0, codes::USAGE);
        let (code, _, err) = hash_of(&"x".repeat(2000));
        assert_eq!(code, codes::USAGE);
        assert!(err.contains("longer than 1024"), "{err}");
    }
}
