//! `dattrans` (`DDMMYYYY`) and `heurtrans` (`HHMM`): the gateway's transaction date and time,
//! French local time (spec §3.3, §6.7: `18092025` + `1104` → `2025-09-18T11:04:00+02:00`).

use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{TimeZone, Utc};
use chrono_tz::Europe::Paris;

/// Why a transaction date or time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("dattrans {0:?} is not a date DDMMYYYY")]
    Date(String),
    #[error("heurtrans {0:?} is not a time HHMM")]
    Time(String),
}

/// The transaction instant, with the Europe/Paris offset in force at that time.
///
/// Local times that happen twice (the autumn change, 02:00–02:59) are read as the first
/// occurrence; local times that do not exist (the spring gap) are read with the offset in
/// force just before the change (02:30 → 03:30+02:00). Neither case is documented by the
/// DGFiP; both are one hour wide at night.
pub fn parse_paris(dattrans: &str, heurtrans: &str) -> Result<DateTime<FixedOffset>, DateError> {
    let dattrans = dattrans.trim();
    let heurtrans = heurtrans.trim();
    if dattrans.len() != 8 || !dattrans.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Date(dattrans.to_string()));
    }
    if heurtrans.len() != 4 || !heurtrans.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Time(heurtrans.to_string()));
    }
    let date = NaiveDate::parse_from_str(dattrans, "%d%m%Y")
        .map_err(|_| DateError::Date(dattrans.to_string()))?;
    let time = NaiveTime::parse_from_str(heurtrans, "%H%M")
        .map_err(|_| DateError::Time(heurtrans.to_string()))?;
    Ok(paris_local(NaiveDateTime::new(date, time)).fixed_offset())
}

/// A Paris local date-time as an instant (see [`parse_paris`] for the DST rules).
pub fn paris_local(local: NaiveDateTime) -> DateTime<chrono_tz::Tz> {
    match Paris.from_local_datetime(&local) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(first, _) => first,
        LocalResult::None => {
            // In the spring gap: the same wall-clock reading one hour later exists and names
            // the instant the pre-change offset would have given.
            match Paris.from_local_datetime(&(local + Duration::hours(1))) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t,
                LocalResult::None => Paris.from_utc_datetime(&(local - Duration::hours(1))),
            }
        }
    }
}

/// `(dattrans, heurtrans)` for an instant, in Paris local time (what the gateway sends).
pub fn format_paris(at: DateTime<Utc>) -> (String, String) {
    let local = at.with_timezone(&Paris);
    (
        local.format("%d%m%Y").to_string(),
        local.format("%H%M").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        // Spec §6.7 (eopayment `get_transaction_datetime`).
        let t = parse_paris("18092025", "1104").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-09-18T11:04:00+02:00");
        // Spec §6.4 recorded result (winter time).
        let t = parse_paris("12122019", "1311").unwrap();
        assert_eq!(t.to_rfc3339(), "2019-12-12T13:11:00+01:00");
        // Spec §6.2 OCA payload.
        let t = parse_paris("04052021", "1325").unwrap();
        assert_eq!(t.to_rfc3339(), "2021-05-04T13:25:00+02:00");
        assert!(parse_paris("t", "1104").is_err());
        assert!(parse_paris("18092025", "t").is_err());
        assert!(parse_paris("", "1104").is_err());
        assert!(parse_paris("31022025", "1104").is_err());
        assert!(parse_paris("18092025", "2460").is_err());
    }

    #[test]
    fn daylight_saving_edges() {
        // 2025-10-26 02:30 happens twice: the first (summer time) is chosen.
        let t = parse_paris("26102025", "0230").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-10-26T02:30:00+02:00");
        // 2025-03-30 02:30 does not exist: read with the winter offset.
        let t = parse_paris("30032025", "0230").unwrap();
        assert_eq!(
            t.with_timezone(&Utc).to_rfc3339(),
            "2025-03-30T01:30:00+00:00"
        );
    }

    #[test]
    fn format_round_trips() {
        let at = Utc.with_ymd_and_hms(2019, 12, 12, 12, 11, 0).unwrap();
        assert_eq!(
            format_paris(at),
            ("12122019".to_string(), "1311".to_string())
        );
        let (d, h) = format_paris(at);
        assert_eq!(parse_paris(&d, &h).unwrap().with_timezone(&Utc), at);
    }
}
