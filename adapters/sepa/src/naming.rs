//! Conventional names of the pain.008 files written to `bank/outbox`.
//!
//! Default after Noethysweb's "Secteur public DFT" export (`pes-v2.md` §7,
//! `utils_export_prelevements.py`): `<identifiant service>-DFT-SDD-<YY><quantième>-<séquence>`
//! (quantième = day of year on 3 digits, séquence on 3 digits), the name without `.xml`
//! also being the `MsgId`. Whether the DGFiP requires this naming is not confirmed: the
//! pattern is configuration.

use chrono::{Datelike, NaiveDate};
use encaisse_schemas::identifiers::check_sepa_identifier;

const PLACEHOLDERS: [&str; 9] = [
    "service", "tenant", "regie", "yyyy", "yy", "mm", "dd", "doy", "seq",
];

/// Why a file name could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    #[error("file name pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("file name {name:?} does not give a valid MsgId: {reason}")]
    MessageId { name: String, reason: String },
    #[error("file sequence {0} is out of range (1 to 999 files a day)")]
    Sequence(u32),
}

/// What the placeholders of a pattern stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamingContext<'a> {
    /// `{service}`: the configured `service_id`, or the régie code in upper case.
    pub service: &'a str,
    pub tenant: &'a str,
    pub regie: &'a str,
    /// The day the file is created.
    pub created_on: NaiveDate,
    /// `{seq}`: 1-based number of the file of that day for that régie (kept by the ledger).
    pub sequence: u32,
}

/// A rendered name: the file name and the `MsgId` (the name without its extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub file_name: String,
    pub message_id: String,
}

fn placeholders(pattern: &str) -> Result<Vec<(usize, usize, &str)>, String> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(open) = pattern[rest..].find('{') {
        let start = rest + open;
        let close = pattern[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' at character {start}"))?;
        let name = &pattern[start + 1..start + close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {})",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            ));
        }
        found.push((start, start + close + 1, name));
        rest = start + close + 1;
    }
    if pattern[rest..].contains('}') {
        return Err("'}' without '{'".into());
    }
    Ok(found)
}

/// Checks a pattern: known placeholders, `{seq}` present (several files a day must not
/// share a name), safe literal characters, `.xml` extension.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    let found = placeholders(pattern)?;
    if !found.iter().any(|(_, _, n)| *n == "seq") {
        return Err("must contain {seq}: two files of one day would share a name".into());
    }
    if !pattern.ends_with(".xml") {
        return Err("must end with .xml".into());
    }
    let mut literal = String::new();
    let mut at = 0;
    for (start, end, _) in &found {
        literal.push_str(&pattern[at..*start]);
        at = *end;
    }
    literal.push_str(&pattern[at..]);
    if let Some(bad) = literal
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.')))
    {
        return Err(format!(
            "character {bad:?}: only letters, digits, '-' and '.' (the name is also the MsgId)"
        ));
    }
    Ok(())
}

/// Checks a configured DFT service identifier.
pub fn validate_service_id(service: &str) -> Result<(), String> {
    if service.is_empty() || service.len() > 20 {
        return Err("1 to 20 characters expected".into());
    }
    if !service
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err("only letters, digits and '-'".into());
    }
    Ok(())
}

/// Renders `pattern` for `ctx`. The `MsgId` must pass the SEPA identifier rules.
pub fn render(pattern: &str, ctx: &NamingContext<'_>) -> Result<FileName, NamingError> {
    if !(1..=999).contains(&ctx.sequence) {
        return Err(NamingError::Sequence(ctx.sequence));
    }
    validate_pattern(pattern).map_err(|reason| NamingError::Pattern {
        pattern: pattern.to_string(),
        reason,
    })?;
    let date = ctx.created_on;
    let value = |name: &str| -> String {
        match name {
            "service" => ctx.service.to_string(),
            "tenant" => ctx.tenant.to_string(),
            "regie" => ctx.regie.to_string(),
            "yyyy" => format!("{:04}", date.year()),
            "yy" => format!("{:02}", date.year().rem_euclid(100)),
            "mm" => format!("{:02}", date.month()),
            "dd" => format!("{:02}", date.day()),
            "doy" => format!("{:03}", date.ordinal()),
            _ => format!("{:03}", ctx.sequence),
        }
    };
    let mut file_name = String::new();
    let mut at = 0;
    let found = placeholders(pattern).map_err(|reason| NamingError::Pattern {
        pattern: pattern.to_string(),
        reason,
    })?;
    for (start, end, name) in found {
        file_name.push_str(&pattern[at..start]);
        file_name.push_str(&value(name));
        at = end;
    }
    file_name.push_str(&pattern[at..]);
    let message_id = file_name
        .strip_suffix(".xml")
        .unwrap_or(&file_name)
        .to_string();
    check_sepa_identifier("MsgId", &message_id).map_err(|e| NamingError::MessageId {
        name: file_name.clone(),
        reason: e.to_string(),
    })?;
    Ok(FileName {
        file_name,
        message_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(sequence: u32) -> NamingContext<'static> {
        NamingContext {
            service: "CANTINE",
            tenant: "vitry",
            regie: "regie-cantine",
            created_on: NaiveDate::from_ymd_opt(2026, 2, 3).unwrap(),
            sequence,
        }
    }

    #[test]
    fn default_pattern_follows_the_dft_convention() {
        let name = render("{service}-DFT-SDD-{yy}{doy}-{seq}.xml", &ctx(2)).unwrap();
        assert_eq!(name.file_name, "CANTINE-DFT-SDD-26034-002.xml");
        assert_eq!(name.message_id, "CANTINE-DFT-SDD-26034-002");
    }

    #[test]
    fn other_placeholders() {
        let name = render("{tenant}-{regie}-{yyyy}{mm}{dd}-{seq}.xml", &ctx(12)).unwrap();
        assert_eq!(name.message_id, "vitry-regie-cantine-20260203-012");
    }

    #[test]
    fn bad_patterns_and_values() {
        assert!(validate_pattern("{service}-{seq}.xml").is_ok());
        assert!(
            validate_pattern("{service}.xml")
                .unwrap_err()
                .contains("{seq}")
        );
        assert!(
            validate_pattern("{servic}-{seq}.xml")
                .unwrap_err()
                .contains("unknown")
        );
        assert!(validate_pattern("{seq.xml").is_err());
        assert!(validate_pattern("a}{seq}.xml").is_err());
        assert!(validate_pattern("a_{seq}.xml").unwrap_err().contains('_'));
        assert!(validate_pattern("{seq}.txt").is_err());
        assert_eq!(render("{seq}.xml", &ctx(0)), Err(NamingError::Sequence(0)));
        let long = NamingContext {
            service: "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            ..ctx(1)
        };
        assert!(matches!(
            render("{service}-DFT-SDD-{yy}{doy}-{seq}.xml", &long),
            Err(NamingError::MessageId { .. })
        ));
        assert!(validate_service_id("REGIE-1").is_ok());
        assert!(validate_service_id("régie").is_err());
    }
}
