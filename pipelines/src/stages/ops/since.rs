//! `--since` for `encaisse dlq`: an instant, a day, or a duration back from now.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Paris;

/// Reads `--since`: RFC 3339 (`2026-05-04T08:00:00Z`), a day (`2026-05-04`, from midnight
/// Europe/Paris: the communes' day), or a duration back from `now` (`90s`, `30m`, `2h`,
/// `3d`, `1w`). Returns the ledger's time format (`encaisse_ledger::clock`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<String, String> {
    let text = text.trim();
    let format = encaisse_ledger::clock::format;
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(format(at.with_timezone(&Utc)));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        return Paris
            .from_local_datetime(&midnight)
            .earliest()
            .map(|at| format(at.with_timezone(&Utc)))
            .ok_or_else(|| format!("--since {text}: no such local time in Europe/Paris"));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().map_err(|_| {
        format!(
            "--since {text:?}: expected RFC 3339, YYYY-MM-DD, or a duration such as 30m, 2h, 3d"
        )
    })?;
    let back = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    }
    .ok_or_else(|| format!("--since {text:?}: the unit must be s, m, h, d or w"))?;
    now.checked_sub_signed(back)
        .map(format)
        .ok_or_else(|| format!("--since {text:?} is too far back"))
}

/// `2026-05-04T09:30:00.123456Z` → `2026-05-04 09:30:00` (UTC, to the second) for tables;
/// anything else as it is.
pub fn short_time(at: &str) -> String {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => t
            .with_timezone(&Utc)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => at.to_string(),
    }
}

/// [`parse_since`] from the current time.
pub fn parse_since_now(text: &str) -> Result<String, String> {
    parse_since(text, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_form_gives_a_utc_instant() {
        assert_eq!(
            parse_since("2h", now()).unwrap(),
            "2026-05-04T08:00:00.000000Z"
        );
        assert_eq!(
            parse_since("3d", now()).unwrap(),
            "2026-05-01T10:00:00.000000Z"
        );
        assert_eq!(
            parse_since("90s", now()).unwrap(),
            "2026-05-04T09:58:30.000000Z"
        );
        // Midnight in Paris is 22:00 UTC the day before in summer.
        assert_eq!(
            parse_since("2026-05-04", now()).unwrap(),
            "2026-05-03T22:00:00.000000Z"
        );
        assert_eq!(
            parse_since("2026-05-04T12:00:00+02:00", now()).unwrap(),
            "2026-05-04T10:00:00.000000Z"
        );
    }

    #[test]
    fn short_times_for_tables() {
        assert_eq!(
            short_time("2026-05-04T11:30:00.123456+02:00"),
            "2026-05-04 09:30:00"
        );
        assert_eq!(short_time("soon"), "soon");
    }

    #[test]
    fn nonsense_is_refused_with_the_accepted_forms() {
        assert!(parse_since("yesterday", now()).unwrap_err().contains("30m"));
        assert!(parse_since("3y", now()).unwrap_err().contains("unit"));
        assert!(parse_since("", now()).is_err());
    }
}
