//! French and SEPA identifiers, checked on construction (`../shared/specs/sepa.md` §3–4).
//!
//! Each type can only hold a valid value. Values that identify a person's bank account are
//! masked by `Debug` and `Display` (`FR76…0189`), so logging one by mistake leaks nothing;
//! use `as_str()` where the full value must be written (a PES or pain.008 file).

mod bic;
mod iban;
mod ics;
mod rum;
mod siret;

pub use bic::{Bic, BicFlavour};
pub use iban::Iban;
pub use ics::Ics;
pub use rum::{Rum, check_sepa_identifier};
pub use siret::check_siret;

/// Why an identifier was refused. The message names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} has an invalid format: {reason}")]
    Format { kind: &'static str, reason: String },
    #[error("{kind} check digits are wrong ({reason})")]
    CheckDigits { kind: &'static str, reason: String },
}

/// ISO 7064 MOD 97-10 remainder of an alphanumeric string (letters A=10 … Z=35), computed
/// digit by digit so that no big integer is needed. Returns `None` on a character that is
/// neither an ASCII digit nor an upper-case letter.
pub(crate) fn mod97(text: &str) -> Option<u32> {
    let mut rem: u32 = 0;
    for c in text.chars() {
        let value = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return None,
        };
        if value >= 10 {
            rem = (rem * 100 + value) % 97;
        } else {
            rem = (rem * 10 + value) % 97;
        }
    }
    Some(rem)
}

/// Strips spaces and upper-cases: the paper form `fr76 3000 6000 …` becomes `FR763000…`.
pub(crate) fn compact_upper(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Masks all but the first four and last four characters: `FR76…0189`.
pub fn mask_middle(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "…".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mod97_matches_known_values() {
        assert_eq!(mod97("123456152700"), Some(26));
        assert_eq!(mod97("ab"), None);
    }

    #[test]
    fn masking_keeps_only_ends() {
        assert_eq!(mask_middle("FR7630006000011234567890189"), "FR76…0189");
        assert_eq!(mask_middle("short"), "…");
    }
}
