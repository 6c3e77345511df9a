//! Plain-text tables and the shared plumbing of the ops commands (`dlq`, `trace`): opening
//! the ledger of a configuration without creating one, who is acting, exit codes.

use std::io::Write;
use std::path::Path;

use encaisse_ledger::Ledger;

use crate::config::{self, Loaded};
use crate::exit;

/// Exit codes of `encaisse dlq` and `encaisse trace` (README, "Exit codes").
pub mod codes {
    pub use crate::exit::{CONFIG, FAILURE, IO_ERROR, NOT_FOUND, OK, UNAVAILABLE, USAGE};
}

/// A table: left-aligned columns as wide as their widest cell (in characters), two spaces
/// apart; cells longer than `max_width` are cut with an ellipsis.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    max_width: usize,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            rows: Vec::new(),
            max_width: 80,
        }
    }

    /// Cuts cells longer than `width` characters (default 80).
    pub fn with_max_width(mut self, width: usize) -> Self {
        self.max_width = width.max(2);
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let cut = |cell: &str| -> String {
            let cell = cell.replace(['\n', '\r', '\t'], " ");
            if cell.chars().count() <= self.max_width {
                cell
            } else {
                let mut short: String = cell.chars().take(self.max_width - 1).collect();
                short.push('…');
                short
            }
        };
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        let rows: Vec<Vec<String>> = std::iter::once(header)
            .chain(self.rows.iter().map(|r| r.iter().map(|c| cut(c)).collect()))
            .collect();
        let columns = self.header.len();
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                rows.iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == columns {
                    line.push_str(cell);
                } else {
                    let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `-` for a missing cell.
pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}

/// Who is acting: `--by`, else `$USER`, else `$LOGNAME`, else `unknown`.
pub fn actor(by: Option<&str>) -> String {
    by.map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The configuration and its ledger, which must already exist (the ops commands never create
/// one: an empty new ledger would only hide a wrong `--config` or `data_dir`).
pub fn open(config_path: &Path, err: &mut dyn Write) -> Result<(Loaded, Ledger), u8> {
    let loaded = config::load(config_path).map_err(|e| {
        let _ = writeln!(err, "{}", super::check::describe_load_error(&e));
        exit::CONFIG
    })?;
    // Opening the ledger narrows its mode to the configured one: the same as the daemon's.
    loaded.config.file_access.apply();
    let url = loaded.config.usable_ledger_url().map_err(|message| {
        let _ = writeln!(err, "ledger.url: {message}");
        exit::CONFIG
    })?;
    if let encaisse_ledger::LedgerUrl::Sqlite(path) = &url
        && !path.is_file()
    {
        let _ = writeln!(
            err,
            "no ledger at {} (data_dir of {}): has `encaisse run` been started with this configuration?",
            path.display(),
            config_path.display()
        );
        return Err(exit::IO_ERROR);
    }
    let ledger = Ledger::open_url(&url).map_err(|e| {
        let _ = writeln!(err, "cannot open the ledger {}: {e}", url.redacted());
        exit::IO_ERROR
    })?;
    Ok((loaded, ledger))
}

/// Pretty JSON on `out`.
pub fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    writeln!(out, "{text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_characters_and_long_cells_are_cut() {
        let mut table = Table::new(vec!["ID", "ERROR"]).with_max_width(10);
        table.row(vec!["1".into(), "échec".into()]);
        table.row(vec!["1234".into(), "a very long error text".into()]);
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ID    ERROR\n1     échec\n1234  a very lo…\n"
        );
    }
}
