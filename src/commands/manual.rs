//! `encaisse completions <shell>` and `encaisse man`: generated from the command line's own
//! definition, so they never disagree with `--help`.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit;

/// Prints the completion script of `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> u8 {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "encaisse", out);
    exit::OK
}

/// Prints the man page (roff), with one section per subcommand.
pub fn man(out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match render_man(out) {
        Ok(()) => exit::OK,
        Err(e) => {
            let _ = writeln!(err, "cannot write the man page: {e}");
            exit::IO_ERROR
        }
    }
}

fn render_man(out: &mut dyn Write) -> std::io::Result<()> {
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        writeln!(out, ".SH \"ENCAISSE {}\"", sub.get_name().to_uppercase())?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(out, "{}", roff_text(&about.to_string()))?;
        }
        let usage = sub
            .clone()
            .bin_name(format!("encaisse {}", sub.get_name()))
            .render_usage();
        writeln!(out, ".PP\n{}", roff_text(&usage.to_string()))?;
    }
    man.render_version_section(out)?;
    writeln!(
        out,
        ".SH FILES\n/etc/encaisse/encaisse.toml (ENCAISSE_CONFIG), /etc/encaisse/encaisse.env, \
         /var/lib/encaisse (ENCAISSE_DATA_DIR)"
    )?;
    Ok(())
}

/// Text for a roff body: a line starting with `.` or `'` would be read as a request.
fn roff_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\\\");
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_completions_name_every_subcommand() {
        let mut out = Vec::new();
        assert_eq!(completions(Shell::Bash, &mut out), exit::OK);
        let text = String::from_utf8(out).unwrap();
        for sub in [
            "run",
            "check",
            "dlq",
            "trace",
            "payfip-sim",
            "demo",
            "completions",
            "man",
        ] {
            assert!(text.contains(sub), "{sub} missing from the completions");
        }
    }

    #[test]
    fn the_man_page_has_a_section_per_subcommand_and_the_exit_codes() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        assert_eq!(man(&mut out, &mut err), exit::OK);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH encaisse"),
            "{text}"
        );
        for section in ["ENCAISSE RUN", "ENCAISSE DLQ", "ENCAISSE TRACE"] {
            assert!(text.contains(section), "{section} missing");
        }
        assert!(text.contains("75"), "the exit codes are in the description");
        assert!(text.contains("ENCAISSE_CONFIG"), "{text}");
    }

    #[test]
    fn roff_requests_in_text_are_escaped() {
        assert_eq!(
            roff_text(".not a request\nplain"),
            "\\&.not a request\nplain"
        );
    }
}
