//! The values exchanged with PayFiP, valid by construction (spec §2.2, §3.3).
//!
//! Every request field is checked here before anything is sent: the gateway's own checks
//! come back as faults (`R3`, `A2`, …) only after a network round trip, and some of its rules
//! are not even documented. An e-mail address is personal data: [`Email`] masks itself in
//! `Display` and `Debug`.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use encaisse_schemas::Money;
use encaisse_schemas::mask;

/// A value refused before it was sent, naming the PayFiP field and the rule it breaks.
/// Personal values (the e-mail address) never appear in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PayFiP field `{field}`: {rule}")]
pub struct FieldError {
    /// The PayFiP parameter name (`refdet`, `mel`, `montant`, …).
    pub field: &'static str,
    /// The rule the value breaks, with the value when it is not personal data.
    pub rule: String,
}

impl FieldError {
    pub fn new(field: &'static str, rule: impl Into<String>) -> Self {
        FieldError {
            field,
            rule: rule.into(),
        }
    }
}

/// `numcli`: the collectivité's (budget's or régie's) client number, exactly 6 digits,
/// leading zeros significant (`090909`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NumCli(String);

impl NumCli {
    pub fn new(value: &str) -> Result<Self, FieldError> {
        if value.len() == 6 && value.bytes().all(|b| b.is_ascii_digit()) {
            Ok(NumCli(value.to_string()))
        } else {
            Err(FieldError::new(
                "numcli",
                format!("{value:?} must be exactly 6 digits"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NumCli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `exer`: the exercice (year) of the debt, sent as 4 digits. For régie web-service payments
/// every known client sends the current civil year; for titres it is the titre's exercice
/// (test mode conventionally uses `9999`, spec §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Exer(u16);

impl Exer {
    pub fn new(year: u16) -> Result<Self, FieldError> {
        if (1000..=9999).contains(&year) {
            Ok(Exer(year))
        } else {
            Err(FieldError::new(
                "exer",
                format!("{year} must be a 4-digit year"),
            ))
        }
    }

    /// The civil year of `now` in Europe/Paris (what every régie client sends).
    pub fn current(now: DateTime<Utc>) -> Self {
        use chrono::Datelike;
        // The calendar keeps years within 4 digits for any date this software will see.
        Exer(now.with_timezone(&Paris).year().clamp(1000, 9999) as u16)
    }

    pub fn year(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Exer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// `refdet`: the reference of the debt, 6 to 30 ASCII letters and digits (the gateway answers
/// `R3` to `ABCD`). For régie payments it must be new for every attempt: use
/// [`Refdet::generate`] and keep the invoice number in `objet` (spec §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Refdet(String);

impl Refdet {
    pub const MIN_LEN: usize = 6;
    pub const MAX_LEN: usize = 30;

    pub fn new(value: &str) -> Result<Self, FieldError> {
        let len_ok = (Self::MIN_LEN..=Self::MAX_LEN).contains(&value.len());
        if len_ok && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Refdet(value.to_string()))
        } else {
            Err(FieldError::new(
                "refdet",
                format!(
                    "{value:?} must be {}-{} ASCII letters or digits",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ))
        }
    }

    /// A fresh reference for one payment attempt: the Paris local time `YYYYMMDDhhmmss`
    /// followed by 10 random digits (24 characters, the shape eopayment generates, e.g.
    /// `201912261758460053903194`). Two attempts in the same second collide with a
    /// probability of 10⁻¹⁰; the ledger's uniqueness constraint is the final guard.
    pub fn generate(now: DateTime<Utc>) -> Self {
        let random = uuid::Uuid::new_v4().as_u128() % 10_000_000_000;
        Self::from_parts(now, random as u64)
    }

    /// The deterministic part of [`Refdet::generate`], for tests and replays.
    pub fn from_parts(now: DateTime<Utc>, random: u64) -> Self {
        let stamp = now.with_timezone(&Paris).format("%Y%m%d%H%M%S");
        Refdet(format!("{stamp}{:010}", random % 10_000_000_000))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Refdet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `mel`: the payer's e-mail address (receives the gateway's ticket): contains `@`, 6 to 80
/// characters (spec §2.2, §3.3; the gateway answers `A2` otherwise). Personal data:
/// `Display` and `Debug` show it masked (`j…@example.com`); [`Email::as_str`] gives the clear
/// value for the request itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MIN_LEN: usize = 6;
    pub const MAX_LEN: usize = 80;

    pub fn new(value: &str) -> Result<Self, FieldError> {
        let value = value.trim();
        let len = value.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(FieldError::new(
                "mel",
                format!(
                    "e-mail address must be {}-{} characters (got {len})",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err(FieldError::new("mel", "e-mail address must contain '@'"));
        };
        if local.is_empty() || domain.is_empty() {
            return Err(FieldError::new(
                "mel",
                "e-mail address needs text on both sides of '@'",
            ));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FieldError::new(
                "mel",
                "e-mail address must not contain spaces or control characters",
            ));
        }
        Ok(Email(value.to_string()))
    }

    /// The clear value, for the request body only: never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        mask::Email(&self.0).fmt(f)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", mask::Email(&self.0))
    }
}

/// `objet`: a free label, restricted to `[A-Za-z0-9 ]{0,100}` (spec §2.2, §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Objet(String);

impl Objet {
    pub const MAX_LEN: usize = 100;

    /// Checks a label that must already be in the allowed alphabet.
    pub fn new(value: &str) -> Result<Self, FieldError> {
        if value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b' ')
        {
            Ok(Objet(value.to_string()))
        } else {
            Err(FieldError::new(
                "objet",
                format!("{value:?} must be at most 100 ASCII letters, digits or spaces"),
            ))
        }
    }

    /// Turns any label into the allowed alphabet, as eopayment's `normalize_objet` does
    /// (spec §6.7): accents removed, `'` and `-` become spaces, other punctuation is dropped,
    /// runs of spaces collapse, cut to 100 characters. Two deliberate refinements, invisible
    /// on the spec's vectors: letters without a Unicode decomposition are folded rather than
    /// dropped (`Œ` → `OE`, `ß` → `ss`, where NFKD loses them), and typographic apostrophes
    /// and dashes (`’`, `–`, `—`) are treated like their ASCII forms; a trailing space left
    /// by the cut is trimmed. `None` when nothing remains.
    pub fn normalize(text: &str) -> Option<Self> {
        let mut folded = String::with_capacity(text.len());
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                folded.push(c);
            } else if c.is_whitespace() || matches!(c, '\'' | '-' | '’' | '‘' | '–' | '—' | '‐')
            {
                folded.push(' ');
            } else if !c.is_ascii()
                && c.is_alphanumeric()
                && let Some(ascii) = deunicode::deunicode_char(c)
            {
                folded.extend(ascii.chars().filter(char::is_ascii_alphanumeric));
            }
            // Any other character (ASCII punctuation, symbols) is dropped.
        }
        let mut out = String::with_capacity(folded.len());
        for word in folded.split(' ').filter(|w| !w.is_empty()) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
        out.truncate(Self::MAX_LEN);
        let out = out.trim_end();
        if out.is_empty() {
            None
        } else {
            Some(Objet(out.to_string()))
        }
    }

    /// The label of an invoice's payment: `label` then the invoice number, normalised
    /// (`Facture` + `F/2026-001` → `Facture F2026 001`). The invoice number travels here
    /// because `refdet` is new for every attempt (spec §4.1).
    pub fn for_invoice(label: &str, invoice_number: &str) -> Option<Self> {
        Self::normalize(&format!("{label} {invoice_number}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Objet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `saisie`: the mode letter (`T` test, `X` activation, `W` web-service production, `A`/`M`
/// classic production — the values are configuration, see
/// [`crate::config::SaisieCodes`]). One ASCII capital letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Saisie(String);

impl Saisie {
    pub fn new(value: &str) -> Result<Self, FieldError> {
        if value.len() == 1 && value.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Saisie(value.to_string()))
        } else {
            Err(FieldError::new(
                "saisie",
                format!("{value:?} must be one capital letter"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Saisie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `idOp`: the gateway's operation id (a 36-character UUID in every recorded exchange).
/// Also arrives in untrusted notifications, so it is kept to `[A-Za-z0-9-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdOp(String);

impl IdOp {
    pub const MAX_LEN: usize = 64;

    pub fn new(value: &str) -> Result<Self, FieldError> {
        let value = value.trim();
        if !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            Ok(IdOp(value.to_string()))
        } else {
            Err(FieldError::new(
                "idOp",
                "must be 1-64 ASCII letters, digits or '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The amount bounds the gateway accepts, in cents (configuration: the official maximum is
/// not public, spec §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountBounds {
    pub min_cents: i64,
    pub max_cents: i64,
}

impl AmountBounds {
    /// `montant`: the amount in whole cents (`123.12` → `12312`), refused outside the bounds.
    pub fn montant(self, amount: Money) -> Result<i64, FieldError> {
        let cents = amount.cents();
        if cents < self.min_cents || cents > self.max_cents {
            return Err(FieldError::new(
                "montant",
                format!(
                    "{amount} EUR is outside the accepted range {} - {} EUR",
                    cents_to_money_text(self.min_cents),
                    cents_to_money_text(self.max_cents)
                ),
            ));
        }
        Ok(cents)
    }
}

fn cents_to_money_text(cents: i64) -> String {
    Money::from_cents(cents)
        .map(|m| m.to_string())
        .unwrap_or_else(|_| format!("{cents} cents"))
}

/// Longest `numauto`: the gateway stores it in a `varchar(16)`.
pub const NUMAUTO_MAX_LEN: usize = 16;

/// `numauto`, the card authorisation number of a paid result: 1 to 16 ASCII letters, digits
/// or `-` (`00000001`, `112233445566-tip`). It is written into the REGLEMENTS file Polyfac
/// imports, so nothing else (separators, quotes, a leading `=`) may get through.
pub fn check_numauto(value: &str) -> Result<String, FieldError> {
    if (1..=NUMAUTO_MAX_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        Ok(value.to_string())
    } else {
        Err(FieldError::new(
            "numauto",
            format!("must be 1 to {NUMAUTO_MAX_LEN} letters, digits or '-'"),
        ))
    }
}

/// Parses a `montant` received from the gateway (digits only, cents) into an amount.
pub fn parse_montant(text: &str) -> Result<Money, FieldError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            "montant",
            format!("{text:?} is not an amount in cents"),
        ));
    }
    let cents: i64 = text
        .parse()
        .map_err(|_| FieldError::new("montant", format!("{text:?} is not an amount in cents")))?;
    Money::from_cents(cents).map_err(|e| FieldError::new("montant", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numauto_is_letters_digits_and_dashes_only() {
        for good in ["00000001", "112233445566-tip", "A"] {
            assert_eq!(check_numauto(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "=1+2",
            "12;34",
            "12 34",
            "\"x",
            "12345678901234567",
            "é1",
        ] {
            assert_eq!(check_numauto(bad).unwrap_err().field, "numauto", "{bad:?}");
        }
    }
    use chrono::TimeZone;

    #[test]
    fn numcli_is_six_digits() {
        assert!(NumCli::new("090909").is_ok());
        assert!(NumCli::new("12345").is_err());
        assert!(NumCli::new("1234567").is_err());
        assert!(NumCli::new("09090a").is_err());
    }

    #[test]
    fn refdet_lengths_and_alphabet() {
        assert!(
            Refdet::new("ABCD").is_err(),
            "the gateway answers R3 to ABCD"
        );
        assert!(Refdet::new("ABCDE").is_err());
        assert!(Refdet::new("ABCDEF").is_ok());
        assert!(Refdet::new(&"9".repeat(30)).is_ok());
        assert!(Refdet::new(&"9".repeat(31)).is_err());
        assert!(Refdet::new("TR-12345").is_err());
        assert!(Refdet::new("F/20190003").is_err());
        assert!(Refdet::new("ÉCOLE123").is_err());
    }

    #[test]
    fn generated_refdet_is_valid_dated_and_unique() {
        let now = Utc.with_ymd_and_hms(2019, 12, 26, 16, 58, 46).unwrap();
        let fixed = Refdet::from_parts(now, 53903194);
        assert_eq!(fixed.as_str(), "201912261758460053903194");
        let a = Refdet::generate(now);
        let b = Refdet::generate(now);
        assert_eq!(a.as_str().len(), 24);
        assert!(Refdet::new(a.as_str()).is_ok());
        assert!(a.as_str().starts_with("20191226175846"));
        assert_ne!(a, b);
    }

    #[test]
    fn email_rules_and_masking() {
        let e = Email::new("john.doe@example.com").unwrap();
        assert_eq!(e.to_string(), "j…@example.com");
        assert!(!format!("{e:?}").contains("john.doe"));
        assert_eq!(e.as_str(), "john.doe@example.com");
        assert!(
            Email::new("john.doeexample.com").is_err(),
            "recorded A2 case"
        );
        assert!(Email::new("a@b.c").is_err(), "5 characters");
        assert!(Email::new("a@b.co").is_ok());
        let long = format!("{}@example.com", "x".repeat(68));
        assert_eq!(long.len(), 80);
        assert!(Email::new(&long).is_ok());
        assert!(Email::new(&format!("x{long}")).is_err());
        assert!(Email::new("jo hn@example.com").is_err());
        let err = Email::new("john.doeexample.com").unwrap_err();
        assert!(!err.to_string().contains("john"));
    }

    #[test]
    fn objet_normalisation_follows_the_spec_vectors() {
        // Spec §6.7, eopayment `normalize_objet`.
        assert_eq!(
            Objet::normalize("18/09/2020  Établissement attestation hors-sol n#1234")
                .unwrap()
                .as_str(),
            "18092020 Etablissement attestation hors sol n1234"
        );
        // Spec §6.7 objet compositions (the parts eopayment joins before normalising).
        assert_eq!(
            Objet::normalize("O F20190003 S Précompte famille #1234")
                .unwrap()
                .as_str(),
            "O F20190003 S Precompte famille 1234"
        );
        assert_eq!(
            Objet::normalize("Précompte famille #1234 T TR-12345")
                .unwrap()
                .as_str(),
            "Precompte famille 1234 T TR 12345"
        );
        assert_eq!(
            Objet::normalize("O F/20190003 S Précompte famille #1234 T TR-12345")
                .unwrap()
                .as_str(),
            "O F20190003 S Precompte famille 1234 T TR 12345"
        );
        assert_eq!(
            Objet::normalize("Œuvre de l’école – été").unwrap().as_str(),
            "OEuvre de l ecole ete"
        );
        assert_eq!(Objet::normalize(" #/! "), None);
        assert_eq!(
            Objet::for_invoice("Facture", "F/2026-001")
                .unwrap()
                .as_str(),
            "Facture F2026 001"
        );
        let long = Objet::normalize(&"ab ".repeat(60)).unwrap();
        assert!(long.as_str().len() <= 100);
        assert!(!long.as_str().ends_with(' '));
        assert!(Objet::new(long.as_str()).is_ok());
        assert!(Objet::new("coucou").is_ok());
        assert!(Objet::new("cou-cou").is_err());
    }

    #[test]
    fn amount_bounds_and_montant_text() {
        let bounds = AmountBounds {
            min_cents: 100,
            max_cents: 9_999_999,
        };
        assert_eq!(bounds.montant(Money::parse("10.00").unwrap()), Ok(1000));
        assert_eq!(bounds.montant(Money::parse("123.12").unwrap()), Ok(12312));
        assert_eq!(bounds.montant(Money::parse("1.00").unwrap()), Ok(100));
        assert!(bounds.montant(Money::parse("0.99").unwrap()).is_err());
        assert_eq!(
            bounds.montant(Money::parse("99999.99").unwrap()),
            Ok(9_999_999)
        );
        assert!(bounds.montant(Money::parse("100000.00").unwrap()).is_err());
        assert!(bounds.montant(Money::parse("-5").unwrap()).is_err());
        assert_eq!(
            parse_montant("1000").unwrap(),
            Money::parse("10.00").unwrap()
        );
        assert!(parse_montant("10.00").is_err());
        assert!(parse_montant("").is_err());
        assert!(parse_montant("-100").is_err());
    }

    #[test]
    fn idop_and_saisie() {
        assert!(IdOp::new("cc0cb210-1cd4-11ea-8cca-0213ad91a103").is_ok());
        assert!(IdOp::new("1234").is_ok());
        assert!(IdOp::new("").is_err());
        assert!(IdOp::new("a<b").is_err());
        assert!(IdOp::new(&"a".repeat(65)).is_err());
        assert!(Saisie::new("T").is_ok());
        assert!(Saisie::new("t").is_err());
        assert!(Saisie::new("TX").is_err());
        assert_eq!(
            Exer::current(Utc.with_ymd_and_hms(2019, 12, 31, 23, 30, 0).unwrap()).year(),
            2020,
            "the year is the Paris civil year"
        );
        assert_eq!(Exer::new(2019).unwrap().to_string(), "2019");
        assert!(Exer::new(20).is_err());
    }
}
