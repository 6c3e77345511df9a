//! ORMC article keys `Cle1` (modulo 11) and `Cle2` (modulo 23), `pes-v2.md` §2.10.
//!
//! The dossier names the inputs ("code collectivité + code nature + 2 derniers chiffres de
//! l'exercice + période + numéro de dette" for Cle1, "2 derniers chiffres de l'exercice +
//! période + 00 + numéro de dette" for Cle2) and defers the computation to an annex that was
//! not found (ANNEXE_TECHNIQUE_PES_SEPA_ORMC). The algorithms here are the ones of the only
//! public implementation (Noethys, GPL), re-written from the description in the spec:
//!
//! * mod 11: digits read right to left, weighted 2,3,4,5,6,7,2,3,… (a non-digit counts as
//!   0), key = 11 − (sum mod 11), a key above 9 becomes 1. The older ROLMRE code returns 0
//!   when the sum is a multiple of 11, the PES exports return 1: that choice is
//!   [`Mod11ZeroRemainder`], configurable because it is not confirmed.
//! * mod 23: the decimal value of the digit string mod 23, plus 1, indexes the 23-letter
//!   alphabet `ABCDEFGHJKLMNPQRSTUVWXY` (no I, O, Z).
//!
//! Hélios returns both keys unchanged in the PES Retour (`InfoORMC`).

use serde::{Deserialize, Serialize};

/// The 23 letters of the modulo-23 key (no I, O, Z).
const MOD23_ALPHABET: &[u8; 23] = b"ABCDEFGHJKLMNPQRSTUVWXY";

/// What the modulo-11 key is when the weighted sum is a multiple of 11 (`11 − 0 = 11`).
/// Not confirmed by a DGFiP source (`pes-v2.md` §2.10): the PES exports of Noethys give 1,
/// its older ROLMRE export gives 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mod11ZeroRemainder {
    /// Key 1 (Noethys PES ORMC export, Noethysweb).
    #[default]
    One,
    /// Key 0 (Noethys ROLMRE export).
    Zero,
}

/// The modulo-11 key of a digit string (`Cle1`).
pub fn mod11_key(digits: &str, zero_remainder: Mod11ZeroRemainder) -> u8 {
    const WEIGHTS: [u32; 6] = [2, 3, 4, 5, 6, 7];
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = if b.is_ascii_digit() {
                u32::from(b - b'0')
            } else {
                0
            };
            d * WEIGHTS[i % 6]
        })
        .sum();
    let remainder = sum % 11;
    if remainder == 0 {
        return match zero_remainder {
            Mod11ZeroRemainder::One => 1,
            Mod11ZeroRemainder::Zero => 0,
        };
    }
    let key = 11 - remainder;
    if key > 9 { 1 } else { key as u8 }
}

/// The modulo-23 letter of a digit string (`Cle2`); `None` if the string holds a
/// non-digit or is empty.
pub fn mod23_key(digits: &str) -> Option<char> {
    if digits.is_empty() {
        return None;
    }
    let mut rem: u32 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        rem = (rem * 10 + u32::from(b - b'0')) % 23;
    }
    Some(char::from(MOD23_ALPHABET[rem as usize]))
}

/// The inputs of an ORMC article's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrmcKeyInput<'a> {
    /// `CodCol` (3 digits).
    pub cod_col: &'a str,
    /// The "code nature" of the Cle1 input; not confirmed (`pes-v2.md` §2.10): the spec's
    /// vector uses `01`, Noethys uses the bordereau number.
    pub nature_code: &'a str,
    pub exercice: u16,
    /// `Per` (one digit).
    pub period: u8,
    /// `NumDette` (digits only, at most 13 significant digits for the keys).
    pub num_dette: &'a str,
}

impl OrmcKeyInput<'_> {
    fn exercice2(&self) -> String {
        format!("{:02}", self.exercice % 100)
    }

    fn dette13(&self) -> String {
        format!("{:0>13}", self.num_dette)
    }

    /// The string the modulo-11 key is computed on.
    pub fn cle1_input(&self) -> String {
        format!(
            "{}{}{}{}{}",
            self.cod_col,
            self.nature_code,
            self.exercice2(),
            self.period,
            self.dette13()
        )
    }

    /// The string the modulo-23 key is computed on.
    pub fn cle2_input(&self) -> String {
        format!("{}{}00{}", self.exercice2(), self.period, self.dette13())
    }

    pub fn cle1(&self, zero_remainder: Mod11ZeroRemainder) -> u8 {
        mod11_key(&self.cle1_input(), zero_remainder)
    }

    /// `None` only if an input holds a non-digit (the writer checks them first).
    pub fn cle2(&self) -> Option<char> {
        mod23_key(&self.cle2_input())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of `pes-v2.md` §2.10.
    #[test]
    fn spec_vectors() {
        assert_eq!(
            mod11_key("01040000000000900001", Mod11ZeroRemainder::One),
            8
        );
        assert_eq!(
            mod11_key("39011300000000000303", Mod11ZeroRemainder::One),
            9
        );
        assert_eq!(
            mod11_key("123012410002024000123", Mod11ZeroRemainder::One),
            8
        );
        assert_eq!(mod23_key("241000002024000123"), Some('T'));
        assert_eq!(mod23_key("00000000000900001"), Some('M'));
    }

    #[test]
    fn synthetic_sample_inputs_are_rebuilt_from_their_parts() {
        let input = OrmcKeyInput {
            cod_col: "123",
            nature_code: "01",
            exercice: 2024,
            period: 1,
            num_dette: "2024000123",
        };
        assert_eq!(input.cle1_input(), "123012410002024000123");
        assert_eq!(input.cle2_input(), "241000002024000123");
        assert_eq!(input.cle1(Mod11ZeroRemainder::One), 8);
        assert_eq!(input.cle2(), Some('T'));
    }

    #[test]
    fn zero_remainder_variant() {
        // "0" and "00…" sum to 0: the two conventions differ only there.
        assert_eq!(mod11_key("0000", Mod11ZeroRemainder::One), 1);
        assert_eq!(mod11_key("0000", Mod11ZeroRemainder::Zero), 0);
        // 11 = 1×2 + 3×3: "31" read right to left → 1×2 + 3×3 = 11.
        assert_eq!(mod11_key("31", Mod11ZeroRemainder::One), 1);
        assert_eq!(mod11_key("31", Mod11ZeroRemainder::Zero), 0);
        // remainder 1 → 10 → 1 in both conventions: "5" → 10, 10 mod 11 = 10 → key 1.
        assert_eq!(mod11_key("5", Mod11ZeroRemainder::Zero), 1);
    }

    #[test]
    fn mod23_refuses_non_digits() {
        assert_eq!(mod23_key("12A"), None);
        assert_eq!(mod23_key(""), None);
        // 22 mod 23 = 22 → index 22 → 'Y'; 23 → 0 → 'A'.
        assert_eq!(mod23_key("22"), Some('Y'));
        assert_eq!(mod23_key("23"), Some('A'));
    }
}
