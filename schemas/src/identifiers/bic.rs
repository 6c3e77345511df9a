use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{IdentifierError, compact_upper};

const KIND: &str = "BIC";

/// Which schema pattern a BIC must satisfy: pain.008.001.02 (`BICIdentifier`, also the PES
/// `Base_Texte11BIC`) is stricter on the location code than pain.008.001.08 (`BICFIDec2014`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BicFlavour {
    /// `[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?` (ISO 9362:2009; pain.008.001.02, PES).
    Iso2009,
    /// `[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?` (ISO 9362:2014; pain.008.001.08).
    Iso2014,
}

/// A BIC (8 or 11 characters), upper case, valid at least for [`BicFlavour::Iso2014`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bic(String);

fn matches_2009(b: &[u8]) -> bool {
    b[..6].iter().all(u8::is_ascii_uppercase)
        && (b[6].is_ascii_uppercase() || (b'2'..=b'9').contains(&b[6]))
        && ((b[7].is_ascii_uppercase() && b[7] != b'O') || b[7].is_ascii_digit())
        && b[8..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn matches_2014(b: &[u8]) -> bool {
    let an = |c: &u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    b[..4].iter().all(an)
        && b[4..6].iter().all(u8::is_ascii_uppercase)
        && b[6..8].iter().all(an)
        && b[8..].iter().all(an)
}

impl Bic {
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        let value = compact_upper(text);
        if value.is_empty() {
            return Err(IdentifierError::Empty { kind: KIND });
        }
        if text.trim().chars().any(|c| c.is_ascii_lowercase()) {
            return Err(IdentifierError::Format {
                kind: KIND,
                reason: "must be upper case".into(),
            });
        }
        if value.len() != 8 && value.len() != 11 {
            return Err(IdentifierError::Format {
                kind: KIND,
                reason: format!("{} characters, 8 or 11 expected", value.len()),
            });
        }
        if !matches_2014(value.as_bytes()) {
            return Err(IdentifierError::Format {
                kind: KIND,
                reason: "expected institution(4) country(2 letters) location(2) [branch(3)]".into(),
            });
        }
        Ok(Bic(value))
    }

    /// Whether this BIC satisfies the pattern of a given schema.
    pub fn satisfies(&self, flavour: BicFlavour) -> bool {
        match flavour {
            BicFlavour::Iso2009 => matches_2009(self.0.as_bytes()),
            BicFlavour::Iso2014 => matches_2014(self.0.as_bytes()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Country of the institution (positions 5–6).
    pub fn country(&self) -> &str {
        &self.0[4..6]
    }
}

impl fmt::Debug for Bic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bic({})", self.0)
    }
}

impl fmt::Display for Bic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Bic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Bic::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Bic {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bic".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "BIC (ISO 9362), 8 or 11 upper-case characters.",
            "pattern": "^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        for v in [
            "BNPAFRPP",
            "BNPAFRPPXXX",
            "CEPAFRPP751",
            "AGRIFRPP882",
            "BDFEFRPPCCT",
            "PSSTFRPPPAR",
        ] {
            let bic = Bic::parse(v).unwrap();
            assert!(bic.satisfies(BicFlavour::Iso2009), "{v}");
            assert!(bic.satisfies(BicFlavour::Iso2014), "{v}");
        }
        let only_2014 = Bic::parse("BNPAFR1P").unwrap();
        assert!(!only_2014.satisfies(BicFlavour::Iso2009));
        assert!(only_2014.satisfies(BicFlavour::Iso2014));
        assert!(Bic::parse("BNPAFRPPXX").is_err());
        assert!(Bic::parse("bnpafrpp").is_err());
    }
}
