//! SIRET (French establishment number): 14 digits, SIREN (9) + NIC (5), with a Luhn key.

use super::IdentifierError;

const KIND: &str = "SIRET";

/// SIREN of La Poste, whose establishments' SIRETs do not follow the Luhn rule: for them the
/// sum of the 14 digits is a multiple of 5 (INSEE's published exception).
const LA_POSTE_SIREN: &str = "356000000";

/// Checks a SIRET: exactly 14 digits and a valid Luhn key (La Poste's sum-of-digits
/// exception included). Used for `IdColl` in PES files and `InitgPty` in pain.008.
pub fn check_siret(value: &str) -> Result<(), IdentifierError> {
    if value.len() != 14 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdentifierError::Format {
            kind: KIND,
            reason: format!("{value:?} is not exactly 14 digits"),
        });
    }
    let digits: Vec<u32> = value.bytes().map(|b| u32::from(b - b'0')).collect();
    let valid = if value.starts_with(LA_POSTE_SIREN) {
        digits.iter().sum::<u32>().is_multiple_of(5)
    } else {
        luhn(&digits)
    };
    if valid {
        Ok(())
    } else {
        Err(IdentifierError::CheckDigits {
            kind: KIND,
            reason: format!("{value} fails the Luhn check (a digit is wrong)"),
        })
    }
}

/// Luhn (mod 10) over digits, the rightmost one undoubled.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2 == 1, d * 2) {
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
            (false, _) => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_key() {
        assert!(check_siret("21940081000012").is_ok());
        assert!(check_siret("12002701600357").is_ok());
        assert!(matches!(
            check_siret("21940081000013"),
            Err(IdentifierError::CheckDigits { .. })
        ));
        // Two adjacent digits swapped.
        assert!(check_siret("12940081000012").is_err());
    }

    #[test]
    fn format() {
        for bad in ["2194008100001", "219400810000120", "2194008100001A", ""] {
            assert!(
                matches!(check_siret(bad), Err(IdentifierError::Format { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn la_poste_exception() {
        // Digits sum to 20: valid for La Poste although the Luhn key is wrong.
        assert!(!luhn(&[3, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1]));
        assert!(check_siret("35600000000051").is_ok());
        assert!(check_siret("35600000000052").is_err());
    }
}
