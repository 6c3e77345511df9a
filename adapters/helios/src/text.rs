//! Text values of PES files: the characters and lengths the schema and the dossier allow.
//!
//! * `Base_TexteN` (names, addresses, objects): 1..N characters; the schema refuses the
//!   values `"."`, `" "`, `"nc"` and, for alphanumeric bases, strings made only of `0`. The
//!   dossier asks for the postal norm on names and addresses ("saisir en majuscule, sans
//!   accent, sans caractère de ponctuation"), which is what [`TextStyle::UpperAscii`] does
//!   (the default, as Noethysweb does for every text).
//! * `Base_TexteNSEPA` (RUM, `LibPrel`): the SEPA basic set, transliterated with
//!   `encaisse_schemas::text` (EPC217-08 table).

use encaisse_schemas::text::{to_sepa, truncate_chars};
use serde::{Deserialize, Serialize};

/// How free texts (names, addresses, objects) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextStyle {
    /// Accents removed (EPC transliteration), upper case, SEPA punctuation only: the postal
    /// norm the dossier recommends, and safe in any encoding.
    #[default]
    UpperAscii,
    /// Accents removed, case kept.
    Ascii,
    /// Kept as given (accents included); only control characters are removed. In an
    /// ISO-8859-1 file, characters outside Latin-1 become character references.
    Preserve,
}

/// Whether the schema's base text type refuses `value` (`V_BaseString`: `"."`, `" "`,
/// `"nc"`; `V_BaseAlphanum`: also strings of `0` only).
pub fn is_forbidden_value(value: &str) -> bool {
    value.is_empty()
        || value == "."
        || value == " "
        || value == "nc"
        || value.chars().all(|c| c == '0')
}

/// Normalises a free text for a `Base_TexteN` field of at most `max_chars` characters.
/// `None` when nothing acceptable is left (empty, or a value the schema refuses).
pub fn pes_text(value: &str, max_chars: usize, style: TextStyle) -> Option<String> {
    let normalised = match style {
        TextStyle::UpperAscii => {
            let mut s = to_sepa(value);
            s.make_ascii_uppercase();
            s
        }
        TextStyle::Ascii => to_sepa(value),
        TextStyle::Preserve => collapse_spaces(value),
    };
    let cut = truncate_chars(normalised.trim(), max_chars).trim_end();
    if is_forbidden_value(cut) {
        None
    } else {
        Some(cut.to_string())
    }
}

/// A `Base_TexteNSEPA` value: SEPA basic set, at most `max_chars`; `None` when empty.
pub fn sepa_text(value: &str, max_chars: usize) -> Option<String> {
    let s = encaisse_schemas::text::to_sepa_max(value, max_chars);
    let s = s.trim();
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

/// Control characters (line breaks, tabs) become spaces, runs of spaces collapse.
fn collapse_spaces(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut last_space = true;
    for c in value.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

/// Upper-case letters, digits and spaces only (`[0-9A-Z\s]`, the talon optique lines).
pub fn is_upper_alnum_space(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postal_norm() {
        assert_eq!(
            pes_text("  Hélène  d'Œuvray\n", 38, TextStyle::UpperAscii).as_deref(),
            Some("HELENE D'OUVRAY")
        );
        assert_eq!(
            pes_text("12, rue de l'Église", 38, TextStyle::Ascii).as_deref(),
            Some("12, rue de l'Eglise")
        );
        assert_eq!(
            pes_text("Zoé\tÉcole", 38, TextStyle::Preserve).as_deref(),
            Some("Zoé École")
        );
    }

    #[test]
    fn lengths_are_cut_on_characters() {
        let long = "é".repeat(50);
        assert_eq!(
            pes_text(&long, 38, TextStyle::Preserve)
                .unwrap()
                .chars()
                .count(),
            38
        );
        assert_eq!(
            pes_text(&long, 38, TextStyle::UpperAscii).unwrap().len(),
            38
        );
    }

    #[test]
    fn values_the_schema_refuses() {
        assert_eq!(pes_text(".", 10, TextStyle::Preserve), None);
        assert_eq!(pes_text("   ", 10, TextStyle::Preserve), None);
        assert_eq!(pes_text("nc", 10, TextStyle::Preserve), None);
        assert_eq!(pes_text("000", 10, TextStyle::Preserve), None);
        assert_eq!(pes_text("@@", 10, TextStyle::UpperAscii), None);
        // "NC" is not the refused lower-case value.
        assert_eq!(
            pes_text("nc", 10, TextStyle::UpperAscii).as_deref(),
            Some("NC")
        );
    }

    #[test]
    fn sepa_labels() {
        assert_eq!(
            sepa_text("Cantine & étude — septembre", 140).as_deref(),
            Some("Cantine + etude - septembre")
        );
        assert_eq!(sepa_text("€", 140).as_deref(), Some("E"));
        assert_eq!(sepa_text("@@", 140), None);
        assert_eq!(sepa_text(&"a".repeat(200), 140).unwrap().len(), 140);
    }
}
