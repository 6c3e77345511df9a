use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{IdentifierError, compact_upper, mod97};

const KIND: &str = "ICS";

/// Identifiant Créancier SEPA (SEPA creditor identifier): country(2) check(2) business
/// code(3, ignored by the check) national id. French ICS are 13 characters. Check digits are
/// ISO 7064 MOD 97-10 over national id + country + check digits (business code skipped).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ics(String);

impl Ics {
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        let value = compact_upper(text);
        if value.is_empty() {
            return Err(IdentifierError::Empty { kind: KIND });
        }
        let b = value.as_bytes();
        if value.len() < 8
            || value.len() > 35
            || !b[..2].iter().all(u8::is_ascii_uppercase)
            || !b[2..4].iter().all(u8::is_ascii_digit)
            || !b[4..].iter().all(u8::is_ascii_alphanumeric)
        {
            return Err(IdentifierError::Format {
                kind: KIND,
                reason: "expected country(2 letters) check(2 digits) business code(3) national id"
                    .into(),
            });
        }
        if &value[..2] == "FR" && value.len() != 13 {
            return Err(IdentifierError::Format {
                kind: KIND,
                reason: format!("French ICS has {} characters, 13 expected", value.len()),
            });
        }
        let expected =
            Self::check_digits(&value[..2], &value[7..]).ok_or(IdentifierError::Format {
                kind: KIND,
                reason: "invalid character".into(),
            })?;
        if expected != value[2..4] {
            return Err(IdentifierError::CheckDigits {
                kind: KIND,
                reason: format!("check digits are {}, {expected} expected", &value[2..4]),
            });
        }
        Ok(Ics(value))
    }

    /// The two check digits for a country and national identifier.
    pub fn check_digits(country: &str, national_id: &str) -> Option<String> {
        let rem = mod97(&format!("{national_id}{country}00"))?;
        Some(format!("{:02}", 98 - rem))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ics({})", self.0)
    }
}

impl fmt::Display for Ics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Ics {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Ics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ics::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Ics {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Ics".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "SEPA creditor identifier (ICS), e.g. FR72ZZZ123456.",
            "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{4,31}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        for v in [
            "FR72ZZZ123456",
            "FR72ABC123456",
            "FR49ZZZ000001",
            "FR19ZZZ654321",
            "FR22ZZZABC123",
            "DE98ZZZ09999999999",
            "ES23ZZZ47690558N",
        ] {
            assert!(Ics::parse(v).is_ok(), "{v} should be valid");
        }
        for v in [
            "FR12ZZZ123456",
            "DE26ZZZ00000000000",
            "IE03ZZZ123456",
            "BG40ZZZ507778",
        ] {
            assert!(Ics::parse(v).is_err(), "{v} should be invalid");
        }
        assert_eq!(Ics::check_digits("FR", "123456").unwrap(), "72");
    }
}
