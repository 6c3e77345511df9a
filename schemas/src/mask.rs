//! Masking of personal data for logs and error messages (DESIGN §5: "personal data masked").
//!
//! Families' e-mail addresses, names, phone numbers and bank details must never reach a log in
//! clear. IBANs already mask themselves ([`crate::identifiers::Iban`]'s `Display`); this module
//! covers the rest, as functions returning a `String` and as wrappers that mask on `Display`
//! so that a log line allocates nothing more than it would with the clear value:
//!
//! ```
//! use encaisse_schemas::mask;
//! assert_eq!(mask::email("jeanne.dupont@example.com"), "j…@example.com");
//! assert_eq!(mask::name("Jeanne Dupont-Martin"), "J. D.");
//! assert_eq!(mask::generic("0612345678"), "0…8");
//! assert_eq!(format!("{}", mask::Email("jeanne@example.com")), "j…@example.com");
//! ```
//!
//! The rule for names: at `info` level and above, a person appears only by initials (or,
//! better, by an invoice or family reference). Full names may appear at `debug`/`trace`,
//! which production does not enable.

use std::fmt;

/// The ellipsis used everywhere a part of a value is hidden.
pub const ELLIPSIS: char = '…';

/// Masks an e-mail address: the first character of the local part, an ellipsis, the domain
/// (`jeanne.dupont@example.com` → `j…@example.com`). The domain is kept because it helps ops
/// tell a typo (`gmial.com`) from a gateway problem, and it does not identify a person.
/// Something that is not an e-mail address is masked with [`generic`].
pub fn email(value: &str) -> String {
    Email(value).to_string()
}

/// Masks a person's name to its initials: `Jeanne Dupont-Martin` → `J. D.`, `de la Tour` →
/// `D. L. T.`. Upper-cased, one initial per word (a hyphenated word counts once).
pub fn name(value: &str) -> String {
    Name(value).to_string()
}

/// Masks any other personal value (phone number, address, free text): the first and last
/// characters of values of at least 6 characters, an ellipsis alone for shorter ones
/// (`0612345678` → `0…8`).
pub fn generic(value: &str) -> String {
    Generic(value).to_string()
}

/// Displays an e-mail address masked (see [`email`]).
#[derive(Clone, Copy)]
pub struct Email<'a>(pub &'a str);

/// Displays a person's name masked (see [`name`]).
#[derive(Clone, Copy)]
pub struct Name<'a>(pub &'a str);

/// Displays any personal value masked (see [`generic`]).
#[derive(Clone, Copy)]
pub struct Generic<'a>(pub &'a str);

impl fmt::Display for Email<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0.trim();
        match value.rsplit_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains(char::is_whitespace) =>
            {
                let first = local.chars().next().unwrap_or(ELLIPSIS);
                write!(f, "{first}{ELLIPSIS}@{domain}")
            }
            _ => Generic(value).fmt(f),
        }
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first_word = true;
        for word in self.0.split_whitespace() {
            let Some(initial) = word.chars().find(|c| c.is_alphanumeric()) else {
                continue;
            };
            if !first_word {
                f.write_str(" ")?;
            }
            first_word = false;
            for upper in initial.to_uppercase() {
                write!(f, "{upper}")?;
            }
            f.write_str(".")?;
        }
        if first_word {
            write!(f, "{ELLIPSIS}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Generic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0.trim();
        let count = value.chars().count();
        if count < 6 {
            return write!(f, "{ELLIPSIS}");
        }
        let first = value.chars().next().unwrap_or(ELLIPSIS);
        let last = value.chars().last().unwrap_or(ELLIPSIS);
        write!(f, "{first}{ELLIPSIS}{last}")
    }
}

impl fmt::Debug for Email<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({self})")
    }
}

impl fmt::Debug for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

impl fmt::Debug for Generic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Generic({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_keeps_first_letter_and_domain() {
        assert_eq!(email("jeanne.dupont@example.com"), "j…@example.com");
        assert_eq!(email("  J@ville-vitry.fr "), "J…@ville-vitry.fr");
        // The last `@` separates the domain (quoted local parts may contain one).
        assert_eq!(email("\"a@b\"@example.org"), "\"…@example.org");
    }

    #[test]
    fn email_that_is_not_one_is_masked_generically() {
        assert_eq!(email("not-an-address"), "n…s");
        assert_eq!(email("@example.com"), "@…m");
        assert_eq!(email("abc@"), "…");
        assert_eq!(email(""), "…");
    }

    #[test]
    fn email_never_contains_the_local_part() {
        let masked = email("secret.person@example.com");
        assert!(!masked.contains("secret"));
        assert!(!masked.contains("person"));
    }

    #[test]
    fn names_become_initials() {
        assert_eq!(name("Jeanne Dupont-Martin"), "J. D.");
        assert_eq!(name("élodie  de la Tour"), "É. D. L. T.");
        assert_eq!(name("  "), "…");
        assert_eq!(name("O'Brien"), "O.");
        assert!(!name("Hélène Œuvray").contains("lène"));
    }

    #[test]
    fn generic_keeps_only_the_ends_of_long_values() {
        assert_eq!(generic("0612345678"), "0…8");
        assert_eq!(generic("12 rue de la Paix"), "1…x");
        assert_eq!(generic("75001"), "…");
        assert_eq!(generic("éèàùç€"), "é…€");
    }

    #[test]
    fn wrappers_mask_in_debug_too() {
        assert_eq!(
            format!("{:?}", Email("jeanne@example.com")),
            "Email(j…@example.com)"
        );
        assert_eq!(format!("{:?}", Name("Jeanne Dupont")), "Name(J. D.)");
        assert_eq!(format!("{:?}", Generic("0612345678")), "Generic(0…8)");
    }
}
