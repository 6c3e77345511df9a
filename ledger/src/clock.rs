//! The ledger's one clock and one timestamp format.
//!
//! Every instant the ledger stores is text in one format: RFC 3339, UTC, six fractional
//! digits, `Z` (`2026-05-04T08:00:00.123456Z`). One fixed width matters because the SQL
//! compares and orders these columns as text (retention cut-offs, `dlq --since`, the
//! reconciliation's "older than"): text order is time order only when every value has the
//! same shape. Values written before this format was the only one (milliseconds) still
//! parse with [`parse`].
//!
//! "Now" comes from a [`Clock`]: the system clock in production, a fixed one in tests and
//! demos. With several daemons on one shared ledger their clocks must agree (NTP); see
//! `docs/scaling.md`.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::LedgerError;

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// The current instant in the ledger's format.
    fn stamp(&self) -> String {
        format(self.now())
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Always the same instant (tests, demos).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// `at` in the ledger's format.
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The system clock's now, in the ledger's format.
pub fn now() -> String {
    SystemClock.stamp()
}

/// Reads a stored instant (any RFC 3339 text, so rows written with milliseconds too).
pub fn parse(text: &str) -> Result<DateTime<Utc>, LedgerError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| LedgerError::Corrupt(format!("timestamp {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn one_width_so_text_order_is_time_order() {
        let instants = [
            at("2026-05-04T08:00:00Z"),
            at("2026-05-04T08:00:00.000001Z"),
            at("2026-05-04T08:00:00.1Z"),
            at("2026-05-04T10:00:00+02:00"),
            at("2026-05-04T08:00:01.5Z"),
        ];
        let texts: Vec<String> = instants.iter().map(|t| format(*t)).collect();
        assert_eq!(texts[0], "2026-05-04T08:00:00.000000Z");
        assert_eq!(texts[3], texts[0], "offsets are brought to UTC");
        assert!(texts.iter().all(|t| t.len() == 27), "{texts:?}");
        for pair in instants.windows(2).zip(texts.windows(2)) {
            let (times, texts) = pair;
            assert_eq!(
                times[0].cmp(&times[1]),
                texts[0].cmp(&texts[1]),
                "{texts:?}"
            );
        }
    }

    #[test]
    fn stored_values_read_back_whatever_their_precision() {
        let fixed = FixedClock(at("2026-12-06T23:59:59.999999Z"));
        assert_eq!(parse(&fixed.stamp()).unwrap(), fixed.now());
        assert_eq!(
            parse("2026-12-06T23:59:59.999Z").unwrap(),
            at("2026-12-06T23:59:59.999Z"),
            "rows written with milliseconds"
        );
        assert!(matches!(parse("yesterday"), Err(LedgerError::Corrupt(_))));
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let (a, b) = (now(), now());
        assert!(a <= b, "{a} then {b}");
        assert!(parse(&a).is_ok());
    }
}
