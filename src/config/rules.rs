//! Format rules of the identifiers a commune configures. Each returns `Err(reason)` with a
//! sentence a person can act on.

use encaisse_schemas::identifiers::check_siret;

/// SIRET: 14 digits, Luhn check (La Poste's sum-of-digits exception included).
pub fn siret(value: &str) -> Result<(), String> {
    check_siret(value).map_err(|e| e.to_string())
}

/// Hélios collectivité code `CodCol`: 3 digits, not `000`.
pub fn cod_col(value: &str) -> Result<(), String> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit()) && value != "000" {
        Ok(())
    } else {
        Err(format!(
            "CodCol {value:?} must be 3 digits other than 000 (given by the Trésorerie)"
        ))
    }
}

/// Hélios budget code `CodBud`: 2 characters, `[0-9A-Z][0-9]`.
pub fn cod_bud(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    if b.len() == 2 && (b[0].is_ascii_digit() || b[0].is_ascii_uppercase()) && b[1].is_ascii_digit()
    {
        Ok(())
    } else {
        Err(format!(
            "CodBud {value:?} must be 2 characters: a digit or capital letter, then a digit"
        ))
    }
}

/// Fewest characters of a payment API token: 32 random characters cannot be guessed
/// online, a short word can.
pub const MIN_API_TOKEN_CHARS: usize = 32;

/// A payment API token read from `variable`: at least [`MIN_API_TOKEN_CHARS`] characters.
/// The message names the variable and the length, never the token.
pub fn api_token(variable: &str, token: &str) -> Result<(), String> {
    let chars = token.trim().chars().count();
    if chars >= MIN_API_TOKEN_CHARS {
        Ok(())
    } else {
        Err(format!(
            "the token in {variable} has {chars} characters; at least {MIN_API_TOKEN_CHARS} are required (e.g. `openssl rand -hex 32`)"
        ))
    }
}

/// PayFiP client number `numcli`: 6 digits.
pub fn numcli(value: &str) -> Result<(), String> {
    if value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "PayFiP client number {value:?} must be 6 digits (given by the DGFiP on subscription)"
        ))
    }
}

/// Hélios local product code `CodProdLoc`: 1–4 letters or digits.
pub fn cod_prod_loc(value: &str) -> Result<(), String> {
    if (1..=4).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!(
            "CodProdLoc {value:?} must be 1 to 4 letters or digits"
        ))
    }
}

/// Budget nature account (`7067`, `70632`): 1–10 digits, as the M57/M14 nomenclatures write them.
pub fn nature(value: &str) -> Result<(), String> {
    if (1..=10).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("nature account {value:?} must be 1 to 10 digits"))
    }
}

/// An environment variable name: `[A-Z_][A-Z0-9_]*`.
pub fn env_var_name(value: &str) -> Result<(), String> {
    let mut bytes = value.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_');
    if first_ok && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not an environment variable name (capitals, digits and _)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siret_uses_the_shared_check() {
        assert!(siret("21940081000012").is_ok());
        let err = siret("21940081000013").unwrap_err();
        assert!(err.contains("Luhn"), "{err}");
        assert!(siret("2194008100001").is_err());
    }

    #[test]
    fn cod_col_rules() {
        assert!(cod_col("123").is_ok());
        assert!(cod_col("000").is_err());
        assert!(cod_col("12").is_err());
        assert!(cod_col("12A").is_err());
    }

    #[test]
    fn cod_bud_rules() {
        assert!(cod_bud("00").is_ok());
        assert!(cod_bud("A1").is_ok());
        assert!(cod_bud("a1").is_err());
        assert!(cod_bud("1A").is_err());
        assert!(cod_bud("001").is_err());
    }

    #[test]
    fn numcli_rules() {
        assert!(numcli("012345").is_ok());
        assert!(numcli("12345").is_err());
        assert!(numcli("12345X").is_err());
    }

    #[test]
    fn product_rules() {
        assert!(cod_prod_loc("CANT").is_ok());
        assert!(cod_prod_loc("CANTI").is_err());
        assert!(cod_prod_loc("").is_err());
        assert!(nature("7067").is_ok());
        assert!(nature("70-67").is_err());
    }

    #[test]
    fn names() {
        assert!(env_var_name("ENCAISSE_TOKEN_VITRY").is_ok());
        assert!(env_var_name("encaisse_token").is_err());
        assert!(env_var_name("1TOKEN").is_err());
        assert!(env_var_name("").is_err());
    }
}
