//! The commission the State charges the commune for an online payment (spec §5).
//!
//! A dated tariff table, per payment means: for a payment on date D by means M, the tariff is
//! the one of means M with the latest `valid_from` ≤ D; within it, the first tier whose upper
//! bound admits the amount; commission = fixed part + amount × rate, rounded to the cent by
//! the tariff's rounding rule. Arithmetic is exact (`rust_decimal`), rounding happens once.
//!
//! Defaults (all configurable, `[[payfip.tariffs]]`):
//! * TIPI era, from 2010-01-01: card 0.25 % + 0.10 € per transaction \[C\];
//! * tiers of the ministerial answer (published 2023), from 2023-06-01: euro-zone card
//!   0.03 € + 0.20 % below 20 €, 0.05 € + 0.25 % above; non-euro-zone card 0.05 € + 0.50 % \[C\].
//!   Their start date is **not** known: 2023-06-01 is the date of the Senate question that
//!   already describes them, the earliest date they are attested \[U\];
//! * the tier of exactly 20.00 € is not stated: by default 20.00 € is charged at the upper
//!   tier ("below 20 €" read as strictly below) \[U\], see [`Tier::up_to_inclusive`];
//! * the rounding of commissions is not stated: half away from zero by default \[U\]
//!   (45.60 € → 0.164 € → 0.16 €; 12.00 € → 0.054 € → 0.05 €);
//! * SEPA one-off debit: free \[C\].

use chrono::NaiveDate;
use encaisse_schemas::Money;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::result::Resultrans;

/// How the family paid, as far as the commission is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeChannel {
    /// A card issued in the euro zone. PayFiP's result (`P`) does not tell where the card was
    /// issued, so card payments are charged at this tariff; the rare non-euro card shows as a
    /// difference against the DGFiP's statement.
    Card,
    /// A card issued outside the euro zone.
    CardOutsideEuroZone,
    /// SEPA one-off debit (`V`).
    SepaDebit,
}

impl FeeChannel {
    /// The channel of a paid result (`P` → card, `V` → SEPA debit); `None` for a result that
    /// did not pay (no commission).
    pub fn of(result: Resultrans) -> Option<Self> {
        match result {
            Resultrans::P => Some(FeeChannel::Card),
            Resultrans::V => Some(FeeChannel::SepaDebit),
            Resultrans::R | Resultrans::Z | Resultrans::A => None,
        }
    }
}

/// How a computed commission is rounded to the cent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Half away from zero (0.165 → 0.17): the commercial rule, the default.
    #[default]
    HalfUp,
    /// Half to even (0.165 → 0.16).
    HalfEven,
    /// Towards zero (0.169 → 0.16).
    Down,
    /// Away from zero (0.161 → 0.17).
    Up,
}

impl Rounding {
    fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::Down => RoundingStrategy::ToZero,
            Rounding::Up => RoundingStrategy::AwayFromZero,
        }
    }
}

/// `[[payfip.tariffs]]`: the tariff of one payment means from a date on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tariff {
    /// First day (payment date in Europe/Paris) this tariff applies to; it applies until the
    /// next tariff of the same means.
    pub valid_from: NaiveDate,
    /// The payment means this tariff prices.
    pub channel: FeeChannel,
    /// Amount tiers, in increasing order; the last one has no upper bound.
    pub tiers: Vec<Tier>,
    /// Rounding of the commission to the cent (not published: configurable).
    #[serde(default)]
    pub rounding: Rounding,
}

/// One amount tier of a tariff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Upper bound of the tier's amounts (euros, `"20.00"`); absent on the last tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<Money>,
    /// Whether an amount equal to `up_to` belongs to this tier (default false: "below 20 €"
    /// read as strictly below; the official reading is unknown).
    #[serde(default)]
    pub up_to_inclusive: bool,
    /// Fixed part per transaction, in euros (`"0.05"`).
    pub fixed: Money,
    /// Proportional part in percent of the amount (`"0.25"` for 0.25 %).
    pub rate_percent: Decimal,
}

impl Tier {
    fn admits(&self, amount: Money) -> bool {
        match self.up_to {
            None => true,
            Some(bound) if self.up_to_inclusive => amount <= bound,
            Some(bound) => amount < bound,
        }
    }
}

/// Why no commission could be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommissionError {
    #[error("no {channel:?} tariff is in force on {date} (the earliest configured starts later)")]
    NoTariff {
        channel: FeeChannel,
        date: NaiveDate,
    },
    #[error("the {channel:?} tariff of {valid_from} has no tier for {amount} EUR")]
    NoTier {
        channel: FeeChannel,
        valid_from: NaiveDate,
        amount: Money,
    },
    #[error("commission of {amount} EUR overflows: {reason}")]
    Arithmetic { amount: Money, reason: String },
}

impl CommissionError {
    /// Every commission error is a configuration problem: retrying cannot help.
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// The commission for a payment of `amount` by `channel` on `date` (Paris local date).
pub fn commission(
    tariffs: &[Tariff],
    amount: Money,
    channel: FeeChannel,
    date: NaiveDate,
) -> Result<Money, CommissionError> {
    let tariff = tariffs
        .iter()
        .filter(|t| t.channel == channel && t.valid_from <= date)
        .max_by_key(|t| t.valid_from)
        .ok_or(CommissionError::NoTariff { channel, date })?;
    let tier = tariff
        .tiers
        .iter()
        .find(|t| t.admits(amount))
        .ok_or(CommissionError::NoTier {
            channel,
            valid_from: tariff.valid_from,
            amount,
        })?;
    let arithmetic = |reason: &str| CommissionError::Arithmetic {
        amount,
        reason: reason.to_string(),
    };
    let rate = tier
        .rate_percent
        .checked_div(Decimal::ONE_HUNDRED)
        .ok_or_else(|| arithmetic("rate"))?;
    let proportional = amount.times(rate).map_err(|e| arithmetic(&e.to_string()))?;
    let exact = proportional
        .checked_add(tier.fixed.amount())
        .ok_or_else(|| arithmetic("addition"))?;
    let rounded = exact.round_dp_with_strategy(2, tariff.rounding.strategy());
    Money::new(rounded).map_err(|e| arithmetic(&e.to_string()))
}

/// Problems in a tariff table, as `(index, message)` pairs (the config layer adds the path).
pub fn check_tariffs(tariffs: &[Tariff]) -> Vec<(usize, String)> {
    let mut issues = Vec::new();
    for (i, tariff) in tariffs.iter().enumerate() {
        if tariff.tiers.is_empty() {
            issues.push((i, "a tariff needs at least one tier".to_string()));
        }
        let mut previous: Option<Money> = None;
        for (j, tier) in tariff.tiers.iter().enumerate() {
            let last = j + 1 == tariff.tiers.len();
            match (tier.up_to, last) {
                (Some(_), true) => issues.push((
                    i,
                    format!("tiers[{j}]: the last tier must not have `up_to`"),
                )),
                (None, false) => issues.push((
                    i,
                    format!("tiers[{j}]: only the last tier may omit `up_to`"),
                )),
                _ => {}
            }
            if let Some(bound) = tier.up_to {
                if previous.is_some_and(|p| bound <= p) {
                    issues.push((i, format!("tiers[{j}]: `up_to` must increase")));
                }
                previous = Some(bound);
            }
            if tier.fixed.is_negative() {
                issues.push((i, format!("tiers[{j}]: `fixed` must not be negative")));
            }
            if tier.rate_percent.is_sign_negative() || tier.rate_percent > Decimal::ONE_HUNDRED {
                issues.push((i, format!("tiers[{j}]: `rate_percent` must be 0-100")));
            }
        }
        if tariffs[..i]
            .iter()
            .any(|t| t.channel == tariff.channel && t.valid_from == tariff.valid_from)
        {
            issues.push((
                i,
                format!(
                    "two {:?} tariffs start on {}",
                    tariff.channel, tariff.valid_from
                ),
            ));
        }
    }
    issues
}

fn euros(text: &str) -> Money {
    // Only called on the literals below, which are valid amounts.
    Money::parse(text).unwrap_or(Money::ZERO)
}

fn percent(text: &str) -> Decimal {
    text.parse().unwrap_or(Decimal::ZERO)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

fn flat(valid_from: NaiveDate, channel: FeeChannel, fixed: &str, rate: &str) -> Tariff {
    Tariff {
        valid_from,
        channel,
        tiers: vec![Tier {
            up_to: None,
            up_to_inclusive: false,
            fixed: euros(fixed),
            rate_percent: percent(rate),
        }],
        rounding: Rounding::HalfUp,
    }
}

/// The default table (see the module documentation for sources and assumptions).
pub fn default_tariffs() -> Vec<Tariff> {
    let tipi = date(2010, 1, 1);
    let tiers_2023 = date(2023, 6, 1);
    vec![
        flat(tipi, FeeChannel::Card, "0.10", "0.25"),
        // The TIPI-era sources give one public-sector card tariff, whatever the card.
        flat(tipi, FeeChannel::CardOutsideEuroZone, "0.10", "0.25"),
        flat(tipi, FeeChannel::SepaDebit, "0.00", "0"),
        Tariff {
            valid_from: tiers_2023,
            channel: FeeChannel::Card,
            tiers: vec![
                Tier {
                    up_to: Some(euros("20.00")),
                    up_to_inclusive: false,
                    fixed: euros("0.03"),
                    rate_percent: percent("0.20"),
                },
                Tier {
                    up_to: None,
                    up_to_inclusive: false,
                    fixed: euros("0.05"),
                    rate_percent: percent("0.25"),
                },
            ],
            rounding: Rounding::HalfUp,
        },
        flat(tiers_2023, FeeChannel::CardOutsideEuroZone, "0.05", "0.50"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn default_table_is_consistent() {
        assert!(check_tariffs(&default_tariffs()).is_empty());
    }

    #[test]
    fn tipi_era_vectors() {
        let t = default_tariffs();
        // 0.10 + 0.25 % × 100.00 = 0.35
        assert_eq!(
            commission(&t, m("100.00"), FeeChannel::Card, d("2015-03-01")),
            Ok(m("0.35"))
        );
        // 0.10 + 0.25 % × 45.60 = 0.214 → 0.21
        assert_eq!(
            commission(&t, m("45.60"), FeeChannel::Card, d("2023-05-31")),
            Ok(m("0.21"))
        );
        // 0.10 + 0.25 % × 10.00 = 0.125 → 0.13 (half up)
        assert_eq!(
            commission(&t, m("10.00"), FeeChannel::Card, d("2020-01-01")),
            Ok(m("0.13"))
        );
        assert_eq!(
            commission(&t, m("10.00"), FeeChannel::Card, d("2009-12-31")),
            Err(CommissionError::NoTariff {
                channel: FeeChannel::Card,
                date: d("2009-12-31")
            })
        );
    }

    #[test]
    fn tiers_2023_vectors_and_boundary() {
        let t = default_tariffs();
        let day = d("2024-02-01");
        // Spec §5 worked examples: 45.60 → 0.164 → 0.16; 12.00 → 0.054 → 0.05.
        assert_eq!(
            commission(&t, m("45.60"), FeeChannel::Card, day),
            Ok(m("0.16"))
        );
        assert_eq!(
            commission(&t, m("12.00"), FeeChannel::Card, day),
            Ok(m("0.05"))
        );
        // Around 20 €: 19.99 → 0.03 + 0.03998 = 0.06998 → 0.07 (lower tier);
        // 20.00 → upper tier by default: 0.05 + 0.05 = 0.10; inclusive: 0.03 + 0.04 = 0.07.
        assert_eq!(
            commission(&t, m("19.99"), FeeChannel::Card, day),
            Ok(m("0.07"))
        );
        assert_eq!(
            commission(&t, m("20.00"), FeeChannel::Card, day),
            Ok(m("0.10"))
        );
        assert_eq!(
            commission(&t, m("20.01"), FeeChannel::Card, day),
            Ok(m("0.10"))
        );
        let mut inclusive = default_tariffs();
        for tariff in &mut inclusive {
            for tier in &mut tariff.tiers {
                tier.up_to_inclusive = true;
            }
        }
        assert_eq!(
            commission(&inclusive, m("20.00"), FeeChannel::Card, day),
            Ok(m("0.07"))
        );
        // Non-euro card: 0.05 + 0.50 % × 45.60 = 0.278 → 0.28.
        assert_eq!(
            commission(&t, m("45.60"), FeeChannel::CardOutsideEuroZone, day),
            Ok(m("0.28"))
        );
        // SEPA debit is free.
        assert_eq!(
            commission(&t, m("45.60"), FeeChannel::SepaDebit, day),
            Ok(m("0.00"))
        );
    }

    #[test]
    fn dates_pick_the_tariff_in_force() {
        let t = default_tariffs();
        assert_eq!(
            commission(&t, m("45.60"), FeeChannel::Card, d("2023-05-31")),
            Ok(m("0.21"))
        );
        assert_eq!(
            commission(&t, m("45.60"), FeeChannel::Card, d("2023-06-01")),
            Ok(m("0.16"))
        );
    }

    #[test]
    fn rounding_rules() {
        // 0.10 + 0.25 % × 26.00 = 0.165 exactly.
        let mut t = vec![flat(d("2010-01-01"), FeeChannel::Card, "0.10", "0.25")];
        let amount = m("26.00");
        let day = d("2012-01-01");
        let run = |t: &[Tariff]| commission(t, amount, FeeChannel::Card, day).unwrap();
        assert_eq!(run(&t), m("0.17"));
        t[0].rounding = Rounding::HalfEven;
        assert_eq!(run(&t), m("0.16"));
        t[0].rounding = Rounding::Down;
        assert_eq!(run(&t), m("0.16"));
        t[0].rounding = Rounding::Up;
        assert_eq!(run(&t), m("0.17"));
        // 0.10 + 0.25 % × 24.40 = 0.161
        let amount = m("24.40");
        assert_eq!(commission(&t, amount, FeeChannel::Card, day), Ok(m("0.17")));
        t[0].rounding = Rounding::HalfUp;
        assert_eq!(commission(&t, amount, FeeChannel::Card, day), Ok(m("0.16")));
    }

    #[test]
    fn bad_tables_are_reported() {
        let mut t = default_tariffs();
        t[3].tiers.swap(0, 1);
        t.push(flat(d("2010-01-01"), FeeChannel::Card, "0.10", "-1"));
        let issues = check_tariffs(&t);
        assert!(
            issues
                .iter()
                .any(|(i, m)| *i == 3 && m.contains("last tier"))
        );
        assert!(
            issues
                .iter()
                .any(|(i, m)| *i == 5 && m.contains("rate_percent"))
        );
        assert!(
            issues
                .iter()
                .any(|(i, m)| *i == 5 && m.contains("two Card tariffs"))
        );
    }

    #[test]
    fn table_reads_from_toml() {
        #[derive(Deserialize)]
        struct Doc {
            tariffs: Vec<Tariff>,
        }
        let doc: Doc = toml::from_str(
            r#"
            [[tariffs]]
            valid_from = "2023-06-01"
            channel = "card"
            rounding = "down"
            tiers = [
              { up_to = "20.00", up_to_inclusive = true, fixed = "0.03", rate_percent = "0.20" },
              { fixed = "0.05", rate_percent = "0.25" },
            ]
            "#,
        )
        .unwrap();
        assert!(check_tariffs(&doc.tariffs).is_empty());
        assert_eq!(
            commission(&doc.tariffs, m("45.60"), FeeChannel::Card, d("2024-01-01")),
            Ok(m("0.16"))
        );
        assert_eq!(
            commission(&doc.tariffs, m("20.00"), FeeChannel::Card, d("2024-01-01")),
            Ok(m("0.07"))
        );
    }
}
