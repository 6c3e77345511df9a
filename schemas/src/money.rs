//! Amounts in euros, exact to the cent.
//!
//! `Money` wraps a [`rust_decimal::Decimal`] that always has exactly two decimal places.
//! Every constructor refuses a value that is not a whole number of cents, and every
//! arithmetic operation is checked: nothing here rounds silently. Where a computation
//! legitimately produces sub-cent values (quantity × unit price, a percentage commission)
//! the caller gets a plain `Decimal` and must say how to round it
//! ([`Money::round_half_up`], [`Money::round_down`]).

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest amount accepted anywhere: 999 999 999 999.99 € (PES `Base_Montant`: 14 digits, 2 decimals).
pub const MAX_ABS_CENTS: i64 = 99_999_999_999_999;

/// An amount in euros with exactly two decimals. May be negative (a reduction line).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

/// Why a value is not a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {0:?} is not a number")]
    NotANumber(String),
    #[error("amount {0:?} has more than two decimals")]
    SubCent(String),
    #[error("amount {0:?} is out of range (|amount| must be at most 999999999999.99)")]
    OutOfRange(String),
    #[error("amount overflow in {0}")]
    Overflow(&'static str),
}

impl Money {
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// Builds an amount from a decimal that must already be a whole number of cents.
    pub fn new(value: Decimal) -> Result<Self, MoneyError> {
        let normalized = value.normalize();
        if normalized.scale() > 2 {
            return Err(MoneyError::SubCent(value.to_string()));
        }
        let mut v = normalized;
        v.rescale(2);
        let cents = v.mantissa();
        if cents.unsigned_abs() > MAX_ABS_CENTS as u128 {
            return Err(MoneyError::OutOfRange(value.to_string()));
        }
        Ok(Money(v))
    }

    /// Builds an amount from integer cents (`1250` → 12.50 €).
    pub fn from_cents(cents: i64) -> Result<Self, MoneyError> {
        if cents.unsigned_abs() > MAX_ABS_CENTS as u64 {
            return Err(MoneyError::OutOfRange(cents.to_string()));
        }
        Ok(Money(Decimal::new(cents, 2)))
    }

    /// Parses `12.50`, `12,50`, `-3`, `1 234,56` (spaces and NBSP as thousands separators).
    /// Refuses more than two decimals.
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        let cleaned: String = text
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
            .map(|c| if c == ',' { '.' } else { c })
            .collect();
        if cleaned.is_empty()
            || !cleaned
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
        {
            return Err(MoneyError::NotANumber(text.to_string()));
        }
        let value =
            Decimal::from_str(&cleaned).map_err(|_| MoneyError::NotANumber(text.to_string()))?;
        Money::new(value).map_err(|e| match e {
            MoneyError::SubCent(_) => MoneyError::SubCent(text.to_string()),
            MoneyError::OutOfRange(_) => MoneyError::OutOfRange(text.to_string()),
            other => other,
        })
    }

    /// The decimal value (scale 2).
    pub fn amount(self) -> Decimal {
        self.0
    }

    /// Whole cents (`12.50` → `1250`).
    pub fn cents(self) -> i64 {
        // The constructor bounds the mantissa to MAX_ABS_CENTS, which fits in i64.
        self.0.mantissa() as i64
    }

    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }

    pub fn is_negative(self) -> bool {
        self.0 < Decimal::ZERO
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let sum = self
            .0
            .checked_add(other.0)
            .ok_or(MoneyError::Overflow("addition"))?;
        Money::new(sum)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let diff = self
            .0
            .checked_sub(other.0)
            .ok_or(MoneyError::Overflow("subtraction"))?;
        Money::new(diff)
    }

    /// Exact sum of amounts.
    pub fn sum<'a, I: IntoIterator<Item = &'a Money>>(items: I) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(*m))
    }

    /// The exact product `self × factor`, unrounded: the caller chooses the rounding.
    pub fn times(self, factor: Decimal) -> Result<Decimal, MoneyError> {
        self.0
            .checked_mul(factor)
            .ok_or(MoneyError::Overflow("multiplication"))
    }

    /// Rounds a computed value to the cent, half away from zero (the usual commercial rule).
    pub fn round_half_up(value: Decimal) -> Result<Money, MoneyError> {
        Money::new(value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
    }

    /// Rounds a computed value to the cent towards zero (truncation).
    pub fn round_down(value: Decimal) -> Result<Money, MoneyError> {
        Money::new(value.round_dp_with_strategy(2, RoundingStrategy::ToZero))
    }

    /// `12.50` (point, two decimals): XML (PES, ISO 20022) and JSON.
    pub fn to_dot_string(self) -> String {
        format!("{:.2}", self.0)
    }

    /// `12,50` (decimal comma): French CSV files.
    pub fn to_comma_string(self) -> String {
        self.to_dot_string().replace('.', ",")
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({:.2} EUR)", self.0)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_dot_string())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.contains(',') {
            return Err(serde::de::Error::custom(format!(
                "amount {text:?}: use a decimal point in JSON"
            )));
        }
        Money::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Amount in euros, decimal point, exactly two decimals (e.g. \"12.50\", \"-3.00\").",
            "pattern": "^-?[0-9]{1,12}\\.[0-9]{2}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_french_and_dot_forms() {
        assert_eq!(Money::parse("12,50").unwrap().cents(), 1250);
        assert_eq!(Money::parse("12.5").unwrap().to_dot_string(), "12.50");
        assert_eq!(Money::parse("-3").unwrap().to_comma_string(), "-3,00");
        assert_eq!(Money::parse("1 234,56").unwrap().cents(), 123_456);
        assert_eq!(Money::parse("0,10").unwrap().to_string(), "0.10");
    }

    #[test]
    fn refuses_sub_cent_and_garbage() {
        assert!(matches!(Money::parse("1,234"), Err(MoneyError::SubCent(_))));
        assert!(matches!(
            Money::parse("12,5x"),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(Money::parse(""), Err(MoneyError::NotANumber(_))));
        assert!(matches!(
            Money::parse("1e3"),
            Err(MoneyError::NotANumber(_))
        ));
        assert!(matches!(
            Money::parse("1000000000000,00"),
            Err(MoneyError::OutOfRange(_))
        ));
    }

    #[test]
    fn trailing_zero_decimals_are_accepted() {
        assert_eq!(Money::parse("2,500").unwrap().cents(), 250);
    }

    #[test]
    fn arithmetic_is_exact_and_rounding_explicit() {
        let price = Money::parse("3,35").unwrap();
        let exact = price.times(Decimal::new(15, 1)).unwrap(); // 1.5 × 3.35 = 5.025
        assert!(
            Money::new(exact).is_err(),
            "sub-cent product must not be accepted silently"
        );
        assert_eq!(Money::round_half_up(exact).unwrap().cents(), 503);
        assert_eq!(Money::round_down(exact).unwrap().cents(), 502);
        let total = Money::sum(&[price, Money::from_cents(-35).unwrap()]).unwrap();
        assert_eq!(total.cents(), 300);
    }

    #[test]
    fn json_round_trip_uses_strings() {
        let m = Money::from_cents(1050).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"10.50\"");
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>("\"10,50\"").is_err());
        assert!(serde_json::from_str::<Money>("\"10.505\"").is_err());
    }
}
