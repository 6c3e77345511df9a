use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::IdentifierError;

const KIND: &str = "RUM";

/// Référence Unique de Mandat (`MndtId`): 1–35 characters of the SEPA set without space
/// (`A-Z a-z 0-9 / - ? : ( ) . , ' +`), not starting or ending with `/`, no `//`
/// (EPC230-15). RUMs compare case-insensitively at the bank, so [`Rum::key`] gives the
/// upper-case form for uniqueness checks.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rum(String);

/// Checks the SEPA identifier rules shared by RUM, EndToEndId, MsgId, PmtInfId.
pub fn check_sepa_identifier(kind: &'static str, value: &str) -> Result<(), IdentifierError> {
    if value.is_empty() {
        return Err(IdentifierError::Empty { kind });
    }
    if value.chars().count() > 35 {
        return Err(IdentifierError::Format {
            kind,
            reason: format!("{} characters, at most 35", value.chars().count()),
        });
    }
    if let Some(bad) = value.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(
                c,
                '/' | '-' | '?' | ':' | '(' | ')' | '.' | ',' | '\'' | '+'
            ))
    }) {
        return Err(IdentifierError::Format {
            kind,
            reason: format!("character {bad:?} is outside the SEPA identifier set"),
        });
    }
    if value.starts_with('/') || value.ends_with('/') {
        return Err(IdentifierError::Format {
            kind,
            reason: "must not start or end with '/'".into(),
        });
    }
    if value.contains("//") {
        return Err(IdentifierError::Format {
            kind,
            reason: "must not contain '//'".into(),
        });
    }
    Ok(())
}

impl Rum {
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        let value = text.trim();
        check_sepa_identifier(KIND, value)?;
        Ok(Rum(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-insensitive identity of the mandate reference.
    pub fn key(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

impl fmt::Debug for Rum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rum({})", self.0)
    }
}

impl fmt::Display for Rum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Rum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Rum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Rum::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Rum {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rum".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "SEPA mandate reference (RUM): 1-35 chars of A-Za-z0-9/-?:().,'+, no leading/trailing '/', no '//'.",
            "pattern": "^[A-Za-z0-9?:().,'+-]([A-Za-z0-9/?:().,'+-]{0,33}[A-Za-z0-9?:().,'+-])?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(Rum::parse("VITRY-CANT-000123").is_ok());
        assert!(Rum::parse("++123456").is_ok());
        assert!(Rum::parse("/ABC").is_err());
        assert!(Rum::parse("ABC/").is_err());
        assert!(Rum::parse("AB//C").is_err());
        assert!(Rum::parse("AB C").is_err());
        assert!(Rum::parse("ABÉ").is_err());
        assert!(Rum::parse(&"A".repeat(36)).is_err());
        assert_eq!(Rum::parse("abc-1").unwrap().key(), "ABC-1");
    }
}
