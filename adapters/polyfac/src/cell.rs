//! Text cells of the CSV files finance staff open in a spreadsheet (REGLEMENTS, rejection
//! reports). A cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is a
//! formula to Excel and LibreOffice ("CSV injection": `=HYPERLINK(…)`, `=cmd|…`), and the
//! text comes from outside (invoice numbers, family codes, file names, gateway references,
//! bank reasons). Such a cell is written with a leading `'`, which spreadsheets show as
//! text and never evaluate. Amounts are numbers the daemon formats itself and are written
//! as they are: a negative amount stays a number.

use std::borrow::Cow;

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `text`, with a leading `'` when its first character (after spaces) starts a formula.
pub fn neutralise_formula(text: &str) -> Cow<'_, str> {
    match text.trim_start_matches(' ').chars().next() {
        Some(c) if FORMULA_STARTS.contains(&c) => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_quoted_plain_text_is_not() {
        for formula in [
            "=1+2",
            "+33 1 23",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "  =HYPERLINK(\"http://x\")",
        ] {
            assert_eq!(neutralise_formula(formula), format!("'{formula}"));
        }
        for text in ["F2026-000102", "AM04 Opération", "", "a=b", "1-2"] {
            assert_eq!(neutralise_formula(text), text);
        }
    }
}
