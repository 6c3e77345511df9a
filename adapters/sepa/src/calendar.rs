//! TARGET2 business days: a due date (`ReqdColltnDt`) must be one (spec §8). TARGET is
//! closed on Saturdays, Sundays, 1 January, Good Friday, Easter Monday, 1 May, 25 and
//! 26 December.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// Easter Sunday of `year` (anonymous Gregorian algorithm, Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// Whether TARGET settles on `date`.
pub fn is_target_day(date: NaiveDate) -> bool {
    if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
        return false;
    }
    if matches!(
        (date.month(), date.day()),
        (1, 1) | (5, 1) | (12, 25) | (12, 26)
    ) {
        return false;
    }
    if let Some(easter) = easter_sunday(date.year()) {
        let good_friday = easter.checked_sub_days(Days::new(2));
        let easter_monday = easter.checked_add_days(Days::new(1));
        if Some(date) == good_friday || Some(date) == easter_monday {
            return false;
        }
    }
    true
}

/// `date` itself when it is a TARGET day, else the next one.
pub fn next_target_day(date: NaiveDate) -> NaiveDate {
    let mut day = date;
    while !is_target_day(day) {
        match day.succ_opt() {
            Some(next) => day = next,
            None => return day,
        }
    }
    day
}

/// The earliest due date a file created on `created_on` may carry: `lead_days` TARGET
/// days later.
pub fn earliest_due_date(created_on: NaiveDate, lead_days: u32) -> NaiveDate {
    let mut day = created_on;
    for _ in 0..lead_days {
        day = match day.succ_opt() {
            Some(next) => next_target_day(next),
            None => return day,
        };
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn easter_dates() {
        assert_eq!(easter_sunday(2024), Some(d(2024, 3, 31)));
        assert_eq!(easter_sunday(2026), Some(d(2026, 4, 5)));
        assert_eq!(easter_sunday(2027), Some(d(2027, 3, 28)));
    }

    #[test]
    fn closing_days() {
        assert!(!is_target_day(d(2026, 4, 3)), "Good Friday 2026");
        assert!(!is_target_day(d(2026, 4, 6)), "Easter Monday 2026");
        assert!(!is_target_day(d(2026, 5, 1)));
        assert!(!is_target_day(d(2026, 12, 26)), "Saturday and Boxing Day");
        assert!(!is_target_day(d(2026, 12, 25)));
        assert!(!is_target_day(d(2027, 1, 1)));
        assert!(!is_target_day(d(2026, 6, 6)), "Saturday");
        assert!(is_target_day(d(2026, 7, 14)), "French holiday, TARGET open");
        assert!(is_target_day(d(2026, 4, 2)));
    }

    #[test]
    fn moving_forward() {
        assert_eq!(next_target_day(d(2026, 4, 3)), d(2026, 4, 7));
        assert_eq!(next_target_day(d(2026, 4, 7)), d(2026, 4, 7));
        // Created Thursday 2 April 2026, D-2: Tuesday 7 April is the 1st TARGET day after,
        // Wednesday 8 April the 2nd.
        assert_eq!(earliest_due_date(d(2026, 4, 2), 2), d(2026, 4, 8));
        assert_eq!(earliest_due_date(d(2026, 6, 1), 0), d(2026, 6, 1));
    }
}
