//! Parsing of the scalar values of an export: decimals, amounts, dates, postal codes,
//! e-mail addresses. Pure functions, each saying why a value is refused.

use std::str::FromStr;

use chrono::NaiveDate;
use encaisse_schemas::{Money, MoneyError};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::config::LineRounding;

/// Parses a decimal written with `separator` (`,` or `.`) as decimal mark. Spaces and
/// (narrow) non-breaking spaces are thousands separators; the other punctuation mark is
/// refused (`1.500` under a decimal comma is ambiguous), and so are exponents.
pub fn parse_decimal(text: &str, separator: char) -> Result<Decimal, String> {
    let other = if separator == ',' { '.' } else { ',' };
    let mut cleaned = String::with_capacity(text.len());
    for c in text.trim().chars() {
        match c {
            ' ' | '\u{a0}' | '\u{202f}' => {}
            c if c == separator => cleaned.push('.'),
            c if c == other => {
                return Err(format!(
                    "{text:?}: unexpected {other:?} (the decimal separator is {separator:?})"
                ));
            }
            '0'..='9' | '-' | '+' => cleaned.push(c),
            _ => return Err(format!("{text:?} is not a number")),
        }
    }
    if cleaned.is_empty() {
        return Err(format!("{text:?} is not a number"));
    }
    Decimal::from_str(&cleaned).map_err(|_| format!("{text:?} is not a number"))
}

/// Parses an amount (at most two decimals, `Money` range).
pub fn parse_amount(text: &str, separator: char) -> Result<Money, String> {
    let value = parse_decimal(text, separator)?;
    Money::new(value).map_err(|e| match e {
        MoneyError::SubCent(_) => format!("{text:?} has more than two decimals"),
        MoneyError::OutOfRange(_) => format!("{text:?} is out of range"),
        other => other.to_string(),
    })
}

/// `quantity × unit_price`, rounded to the cent as configured.
pub fn line_amount(
    quantity: Decimal,
    unit_price: Money,
    rounding: LineRounding,
) -> Result<Money, MoneyError> {
    let exact = unit_price.times(quantity)?;
    match rounding {
        LineRounding::HalfAwayFromZero => Money::round_half_up(exact),
        LineRounding::TowardZero => Money::round_down(exact),
        LineRounding::HalfEven => {
            Money::new(exact.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven))
        }
    }
}

/// Parses a date in `format` (strftime). `%d/%m/%Y` and `%Y-%m-%d` take a fast path that
/// does exactly what chrono would: the reader parses two or three dates per line.
pub fn parse_date(text: &str, format: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let num = |s: &[u8]| -> Option<u32> {
        s.iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    match format {
        "%d/%m/%Y" if b.len() == 10 && b[2] == b'/' && b[5] == b'/' => {
            NaiveDate::from_ymd_opt(num(&b[6..])? as i32, num(&b[3..5])?, num(&b[..2])?)
        }
        "%Y-%m-%d" if b.len() == 10 && b[4] == b'-' && b[7] == b'-' => {
            NaiveDate::from_ymd_opt(num(&b[..4])? as i32, num(&b[5..7])?, num(&b[8..])?)
        }
        _ => NaiveDate::parse_from_str(text, format).ok(),
    }
}

/// A French postal code: exactly five digits.
pub fn is_postal_code(text: &str) -> bool {
    text.len() == 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Syntax check of an e-mail address (the subset that mail systems and PayFiP accept):
/// `local@domain.tld`, no spaces, local part ≤ 64 without leading/trailing/double dots,
/// domain labels of letters, digits and `-`, a top-level domain of two letters or more.
/// Returns why the address is refused, without repeating it (personal data).
pub fn check_email(text: &str) -> Result<(), &'static str> {
    if text.len() > 254 {
        return Err("longer than 254 characters");
    }
    let (local, domain) = text.split_once('@').ok_or("no '@'")?;
    if domain.contains('@') {
        return Err("more than one '@'");
    }
    if local.is_empty() || local.len() > 64 {
        return Err("local part must be 1 to 64 characters");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("misplaced '.' in the local part");
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
    {
        return Err("invalid character in the local part");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("domain has no '.'");
    }
    for label in &labels {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err("invalid domain");
        }
    }
    let tld = labels[labels.len() - 1];
    if tld.len() < 2 || !tld.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err("invalid top-level domain");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_follow_the_configured_separator() {
        assert_eq!(parse_decimal("12,50", ','), Ok(Decimal::new(1250, 2)));
        assert_eq!(parse_decimal("1 234,5", ','), Ok(Decimal::new(12345, 1)));
        assert_eq!(parse_decimal("-3", ','), Ok(Decimal::new(-3, 0)));
        assert_eq!(parse_decimal("12.50", '.'), Ok(Decimal::new(1250, 2)));
        assert!(parse_decimal("1.500", ',').is_err());
        assert!(parse_decimal("1,5", '.').is_err());
        assert!(parse_decimal("1e3", ',').is_err());
        assert!(parse_decimal("", ',').is_err());
        assert!(parse_decimal("12,5,0", ',').is_err());
    }

    #[test]
    fn amounts_refuse_sub_cents() {
        assert_eq!(parse_amount("3,35", ',').unwrap().cents(), 335);
        assert_eq!(parse_amount("2,500", ',').unwrap().cents(), 250);
        assert!(
            parse_amount("3,355", ',')
                .unwrap_err()
                .contains("two decimals")
        );
    }

    #[test]
    fn line_amount_rounding_modes() {
        let price = Money::parse("3,35").unwrap();
        let q = Decimal::new(15, 1); // 1.5 × 3.35 = 5.025
        let round = |r| line_amount(q, price, r).unwrap().cents();
        assert_eq!(round(LineRounding::HalfAwayFromZero), 503);
        assert_eq!(round(LineRounding::HalfEven), 502);
        assert_eq!(round(LineRounding::TowardZero), 502);
        let neg = Money::parse("-3,35").unwrap();
        assert_eq!(
            line_amount(q, neg, LineRounding::HalfAwayFromZero)
                .unwrap()
                .cents(),
            -503
        );
    }

    #[test]
    fn rounding_agrees_with_integer_arithmetic() {
        // Exhaustive over a grid instead of random sampling: every quantity with 0–3
        // decimals up to 20 against a spread of prices, checked against the same rounding
        // done in integer thousandths of a cent.
        for price_cents in (-2_000i64..=2_000).step_by(37) {
            let price = Money::from_cents(price_cents).unwrap();
            for q_milli in (0i64..=20_000).step_by(113) {
                let q = Decimal::new(q_milli, 3);
                // price_cents × q_milli = amount in 1e-5 €; round to cents (1e-2) = /1000.
                let exact = i128::from(price_cents) * i128::from(q_milli);
                let (quot, rem) = (exact / 1000, exact % 1000);
                let half_up = if rem.abs() >= 500 {
                    quot + exact.signum()
                } else {
                    quot
                };
                let got = line_amount(q, price, LineRounding::HalfAwayFromZero).unwrap();
                assert_eq!(i128::from(got.cents()), half_up, "{price_cents} × {q}");
                let down = line_amount(q, price, LineRounding::TowardZero).unwrap();
                assert_eq!(i128::from(down.cents()), quot, "{price_cents} × {q}");
            }
        }
    }

    #[test]
    fn amounts_round_trip_through_both_notations() {
        // Every cent from -20 000,00 to 20 000,00 in steps that hit every last digit.
        for cents in (-2_000_000i64..=2_000_000).step_by(997) {
            let m = Money::from_cents(cents).unwrap();
            assert_eq!(parse_amount(&m.to_comma_string(), ','), Ok(m));
            assert_eq!(parse_amount(&m.to_dot_string(), '.'), Ok(m));
            let text = m.to_comma_string();
            if cents.abs() >= 100_000 {
                // `-12 345,67`: a (non-breaking) space before the thousands.
                let (head, tail) = text.split_at(text.len() - 6);
                let spaced = format!("{head}\u{a0}{tail}");
                assert_eq!(parse_amount(&spaced, ','), Ok(m), "{spaced}");
            }
        }
    }

    #[test]
    fn dates_fast_path_matches_chrono() {
        for text in [
            "31/01/2026",
            "29/02/2024",
            "29/02/2026",
            "1/1/2026",
            "32/01/2026",
            "aa/bb/cccc",
        ] {
            assert_eq!(
                parse_date(text, "%d/%m/%Y"),
                NaiveDate::parse_from_str(text, "%d/%m/%Y").ok(),
                "{text}"
            );
        }
        assert_eq!(
            parse_date("2026-01-31", "%Y-%m-%d"),
            NaiveDate::from_ymd_opt(2026, 1, 31)
        );
        assert_eq!(
            parse_date("31.01.2026", "%d.%m.%Y"),
            NaiveDate::from_ymd_opt(2026, 1, 31)
        );
    }

    #[test]
    fn postal_codes_and_emails() {
        assert!(is_postal_code("94400"));
        assert!(!is_postal_code("9440"));
        assert!(!is_postal_code("9440A"));
        assert!(check_email("jean.dupont@example.fr").is_ok());
        assert!(check_email("a+b@mail.example.com").is_ok());
        for bad in [
            "jean.dupont",
            "jean@",
            "@example.fr",
            "jean@example",
            "jean dupont@example.fr",
            "jean..dupont@example.fr",
            "jean@exa_mple.fr",
            "jean@example.f",
            "a@b@example.fr",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
