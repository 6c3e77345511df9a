//! The demo's Polyfac exports, dated for today, and how they are dropped into an inbox.
//!
//! The files under `demo/exports/` are real Polyfac exports (Windows-1252, `;`, decimal
//! comma) whose dates are placeholders, because the stages check them against the clock
//! (a direct debit due at least two TARGET days ahead, a bordereau dated in its exercice, a
//! mandate signed before its first debit):
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{{DATE_FACTURE}}` | today (Paris), `JJ/MM/AAAA` |
//! | `{{EXERCICE}}` | this year |
//! | `{{PERIODE}}` | this month, 1–12 |
//! | `{{ECHEANCE}}` | today + [`DUE_IN_DAYS`] days |
//! | `{{SIGNATURE}}` | today − [`MANDATE_SIGNED_DAYS_AGO`] days (mandates) |

use std::path::{Path, PathBuf};

use chrono::{Datelike, Days, NaiveDate};

/// Days between the invoice and its due date (the debit date of direct debits): more than
/// the SEPA lead time (2 TARGET days) and Hélios's (1 day).
pub const DUE_IN_DAYS: u64 = 14;
/// How long ago the families signed their mandates (well within the 36-month lapse).
pub const MANDATE_SIGNED_DAYS_AGO: u64 = 400;

/// The dates an export is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dates {
    pub today: NaiveDate,
}

impl Dates {
    pub fn exercice(&self) -> i32 {
        self.today.year()
    }

    pub fn due(&self) -> NaiveDate {
        self.today
            .checked_add_days(Days::new(DUE_IN_DAYS))
            .unwrap_or(self.today)
    }

    pub fn signed(&self) -> NaiveDate {
        self.today
            .checked_sub_days(Days::new(MANDATE_SIGNED_DAYS_AGO))
            .unwrap_or(self.today)
    }

    /// `AAAAMM`, for file names.
    pub fn month_tag(&self) -> String {
        self.today.format("%Y%m").to_string()
    }
}

/// The template's bytes with its placeholders replaced (the placeholders are ASCII, so
/// replacing bytes leaves the Windows-1252 text intact).
pub fn render(template: &[u8], dates: &Dates) -> Vec<u8> {
    let french = |d: NaiveDate| d.format("%d/%m/%Y").to_string();
    let values = [
        ("{{DATE_FACTURE}}", french(dates.today)),
        ("{{EXERCICE}}", dates.exercice().to_string()),
        ("{{PERIODE}}", dates.today.month().to_string()),
        ("{{ECHEANCE}}", french(dates.due())),
        ("{{SIGNATURE}}", french(dates.signed())),
    ];
    let mut out = Vec::with_capacity(template.len());
    let mut rest = template;
    'outer: while !rest.is_empty() {
        for (key, value) in &values {
            if rest.starts_with(key.as_bytes()) {
                out.extend_from_slice(value.as_bytes());
                rest = &rest[key.len()..];
                continue 'outer;
            }
        }
        out.push(rest[0]);
        rest = &rest[1..];
    }
    out
}

/// Writes `bytes` into `dir` as a transfer tool should: under a hidden name (the watchers
/// ignore files starting with `.`), then renamed, so the daemon never reads half a file.
pub fn drop_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let hidden = dir.join(format!(".{name}.part"));
    let path = dir.join(name);
    std::fs::write(&hidden, bytes)?;
    std::fs::rename(&hidden, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::scenario::EXPORTS;

    #[test]
    fn every_placeholder_is_replaced_and_the_encoding_kept() {
        let dates = Dates {
            today: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        };
        for export in &EXPORTS {
            let bytes = render(export.template, &dates);
            assert!(!bytes.windows(2).any(|w| w == b"{{"), "{}", export.source);
            let (text, _, bad) = encoding_rs::WINDOWS_1252.decode(&bytes);
            assert!(!bad);
            assert!(text.contains(";27/11/2026;2026;11;"), "{}", export.source);
            assert!(text.contains(";11/12/2026\r\n"), "{}", export.source);
        }
        let vitry = render(EXPORTS[0].template, &dates);
        // Windows-1252 "Œ" is one byte, 0x8C.
        assert!(vitry.contains(&0x8C));
        assert!(
            encoding_rs::WINDOWS_1252
                .decode(&vitry)
                .0
                .contains(";23/10/2025;")
        );
    }
}
