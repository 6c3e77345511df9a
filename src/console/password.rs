//! Console passwords: Argon2id PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), made by
//! `encaisse console hash-password` and checked at login. Verification costs the same whether
//! or not the user exists, so timing does not tell which names are valid.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};

/// A password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// The Argon2id PHC string of `password`, with a fresh random salt and the crate's default
/// cost (19 MiB, 2 passes: OWASP's recommendation).
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (false for a malformed string).
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user name is unknown, so that the answer takes as long.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password never used").unwrap_or_default())
}

/// Checks that `phc` is an Argon2id PHC string (what the configuration must hold).
pub fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| {
        format!("not a PHC string ({e}): make one with `encaisse console hash-password`")
    })?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!(
            "algorithm {} is not argon2id: make one with `encaisse console hash-password`",
            parsed.algorithm
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the PHC string has no salt or no hash".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(check_phc(&phc).is_ok());
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct hors", &phc));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(phc, hash("correct horse").unwrap(), "salts differ");
    }

    #[test]
    fn other_algorithms_and_garbage_are_refused() {
        assert!(check_phc("plain").unwrap_err().contains("PHC"));
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$Zm9vYmFyYmF6cXV4";
        assert!(check_phc(argon2i).unwrap_err().contains("argon2id"));
    }
}
