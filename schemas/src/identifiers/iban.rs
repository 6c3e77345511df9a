use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{IdentifierError, compact_upper, mask_middle, mod97};

const KIND: &str = "IBAN";

/// An IBAN, normalised (no spaces, upper case), with valid MOD 97 check digits, the length of
/// its country, and — for France and Monaco — a valid clé RIB (an IBAN can pass MOD 97 with a
/// wrong RIB key: `FR0630006000011234567890188`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iban(String);

/// IBAN lengths of the SEPA countries (SWIFT IBAN registry).
fn sepa_length(country: &str) -> Option<usize> {
    Some(match country {
        "AD" => 24,
        "AT" => 20,
        "BE" => 16,
        "BG" => 22,
        "CH" => 21,
        "CY" => 28,
        "CZ" => 24,
        "DE" => 22,
        "DK" => 18,
        "EE" => 20,
        "ES" => 24,
        "FI" => 18,
        "FR" => 27,
        "GB" => 22,
        "GI" => 23,
        "GR" => 27,
        "HR" => 21,
        "HU" => 28,
        "IE" => 22,
        "IS" => 26,
        "IT" => 27,
        "LI" => 21,
        "LT" => 20,
        "LU" => 20,
        "LV" => 21,
        "MC" => 27,
        "MT" => 31,
        "NL" => 18,
        "NO" => 15,
        "PL" => 28,
        "PT" => 25,
        "RO" => 24,
        "SE" => 24,
        "SI" => 19,
        "SK" => 24,
        "SM" => 27,
        "VA" => 22,
        _ => return None,
    })
}

/// French clé RIB over bank (5 digits), branch (5 digits) and account (11 alphanumerics):
/// `97 − ((89 × bank + 15 × branch + 3 × account) mod 97)`, letters of the account
/// replaced by digits (A,J→1 B,K,S→2 … I,R,Z→9).
pub fn cle_rib(bank: &str, branch: &str, account: &str) -> Option<u32> {
    let digits = |s: &str| -> Option<u64> {
        let mut n: u64 = 0;
        for c in s.chars() {
            let d = match c {
                '0'..='9' => c as u64 - '0' as u64,
                'A' | 'J' => 1,
                'B' | 'K' | 'S' => 2,
                'C' | 'L' | 'T' => 3,
                'D' | 'M' | 'U' => 4,
                'E' | 'N' | 'V' => 5,
                'F' | 'O' | 'W' => 6,
                'G' | 'P' | 'X' => 7,
                'H' | 'Q' | 'Y' => 8,
                'I' | 'R' | 'Z' => 9,
                _ => return None,
            };
            n = n * 10 + d;
        }
        Some(n)
    };
    let b = digits(bank)?;
    let g = digits(branch)?;
    let a = digits(account)?;
    let rem = (89 * (b % 97) + 15 * (g % 97) + 3 * (a % 97)) % 97;
    Some(97 - rem as u32)
}

impl Iban {
    /// Parses an IBAN as typed by a person (spaces, lower case accepted).
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        let value = compact_upper(text);
        if value.is_empty() {
            return Err(IdentifierError::Empty { kind: KIND });
        }
        if value.len() < 15 || value.len() > 34 {
            return Err(IdentifierError::Format {
                kind: KIND,
                reason: format!("{} characters (15 to 34 expected)", value.len()),
            });
        }
        let bytes = value.as_bytes();
        if !bytes[..2].iter().all(u8::is_ascii_uppercase)
            || !bytes[2..4].iter().all(u8::is_ascii_digit)
            || !bytes[4..].iter().all(u8::is_ascii_alphanumeric)
        {
            return Err(IdentifierError::Format {
                kind: KIND,
                reason: "expected 2 letters, 2 digits, then letters and digits".into(),
            });
        }
        let country = &value[..2];
        match sepa_length(country) {
            Some(len) if len != value.len() => {
                return Err(IdentifierError::Format {
                    kind: KIND,
                    reason: format!(
                        "{country} IBAN has {} characters, {len} expected",
                        value.len()
                    ),
                });
            }
            Some(_) => {}
            None => {
                return Err(IdentifierError::Format {
                    kind: KIND,
                    reason: format!("country {country} is not in the SEPA area"),
                });
            }
        }
        let rearranged = format!("{}{}", &value[4..], &value[..4]);
        if mod97(&rearranged) != Some(1) {
            return Err(IdentifierError::CheckDigits {
                kind: KIND,
                reason: "MOD 97 check failed".into(),
            });
        }
        if country == "FR" || country == "MC" {
            let bban = &value[4..];
            let (bank, branch, account, key) =
                (&bban[..5], &bban[5..10], &bban[10..21], &bban[21..23]);
            if !bank.bytes().all(|b| b.is_ascii_digit())
                || !branch.bytes().all(|b| b.is_ascii_digit())
                || !key.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(IdentifierError::Format {
                    kind: KIND,
                    reason: "French BBAN must be bank(5 digits) branch(5 digits) account(11) key(2 digits)".into(),
                });
            }
            let expected = cle_rib(bank, branch, account).ok_or(IdentifierError::Format {
                kind: KIND,
                reason: "invalid character in the account number".into(),
            })?;
            let given: u32 = key.parse().unwrap_or(u32::MAX);
            if expected != given {
                return Err(IdentifierError::CheckDigits {
                    kind: KIND,
                    reason: format!("clé RIB is {key}, {expected:02} expected"),
                });
            }
        }
        Ok(Iban(value))
    }

    /// The full IBAN, for the files that must carry it. Never log this.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn country(&self) -> &str {
        &self.0[..2]
    }

    /// `FR76…0189`.
    pub fn masked(&self) -> String {
        mask_middle(&self.0)
    }
}

impl fmt::Debug for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Iban({})", self.masked())
    }
}

impl fmt::Display for Iban {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for Iban {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Iban {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Iban::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Iban {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Iban".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "IBAN without spaces, upper case; MOD 97 and (FR, MC) clé RIB checked.",
            "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors_valid() {
        for v in [
            "FR7630006000011234567890189",
            "FR1420041010050500013M02606",
            "FR7630001007941234567890185",
            "MC5811222000010123456789030",
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "NL91ABNA0417164300",
            "fr76 3000 6000 0112 3456 7890 189",
        ] {
            assert!(Iban::parse(v).is_ok(), "{v} should be valid");
        }
    }

    #[test]
    fn spec_vectors_invalid() {
        for v in [
            "FR7630006000011234567890188",
            "FR1420041010050500013M02607",
            "FR763000600001123456789018",
            "NL50BANK1234567890",
            "IE98BOFI90393912121212",
            "IE16AIBK93110187654321",
        ] {
            assert!(Iban::parse(v).is_err(), "{v} should be invalid");
        }
    }

    #[test]
    fn mod97_valid_but_wrong_rib_key_is_refused() {
        let err = Iban::parse("FR0630006000011234567890188").unwrap_err();
        assert!(err.to_string().contains("clé RIB"), "{err}");
    }

    #[test]
    fn cle_rib_with_letters() {
        assert_eq!(cle_rib("20041", "01005", "0500013M026"), Some(6));
    }

    #[test]
    fn display_masks() {
        let iban = Iban::parse("FR7630006000011234567890189").unwrap();
        assert_eq!(iban.to_string(), "FR76…0189");
        assert_eq!(format!("{iban:?}"), "Iban(FR76…0189)");
        assert_eq!(iban.as_str(), "FR7630006000011234567890189");
    }
}
