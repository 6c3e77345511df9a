//! The gateway's notification (`POST urlnotif`) and the browser's return (`urlredirect`):
//! both carry only the operation id (spec §3.3, §6.6), and neither is trusted — the result is
//! always fetched back with `recupererDetailPaiementSecurise`.

use crate::fields::{FieldError, IdOp};

/// The idOp of a notification or return: the form body or query string must carry exactly
/// one `idop` field (any letter case: `idop`, `idOp`); anything else in it is ignored.
pub fn idop_from_form(encoded: &str) -> Result<IdOp, FieldError> {
    let encoded = encoded.strip_prefix('?').unwrap_or(encoded);
    let mut found: Option<String> = None;
    for (key, value) in url::form_urlencoded::parse(encoded.as_bytes()) {
        if !key.eq_ignore_ascii_case("idop") {
            continue;
        }
        match &found {
            Some(previous) if previous != value.as_ref() => {
                return Err(FieldError::new("idop", "given twice with different values"));
            }
            _ => found = Some(value.into_owned()),
        }
    }
    let value = found.ok_or_else(|| FieldError::new("idop", "missing"))?;
    IdOp::new(&value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(idop_from_form("idop=abc-1").unwrap().as_str(), "abc-1");
        assert_eq!(idop_from_form("?IDOP=abc&x=1").unwrap().as_str(), "abc");
        assert!(idop_from_form("").is_err());
        assert!(idop_from_form("idop=a&idOp=b").is_err());
        assert!(idop_from_form("idop=a&idOp=a").is_ok());
        assert!(idop_from_form("idop=%3Cscript%3E").is_err());
    }
}
