//! The time the direct-debit stages read: the creation time of a pain.008 (`CreDtTm`, local
//! time without offset), the day its `{seq}` counts in, the earliest due date the bank's
//! lead time allows. Always French local time (Europe/Paris): the régie, its bank and the
//! file names live there. Tests and demos use a fixed clock (time is outside the commune).

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use encaisse_ledger::clock::{Clock as _, SystemClock};

/// Where "now" comes from.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> NaiveDateTime + Send + Sync>);

impl Clock {
    /// The system clock, in Europe/Paris local time.
    pub fn system() -> Self {
        Clock(Arc::new(|| {
            SystemClock.now().with_timezone(&Paris).naive_local()
        }))
    }

    /// Always `at` (Europe/Paris local time).
    pub fn fixed(at: NaiveDateTime) -> Self {
        Clock(Arc::new(move || at))
    }

    /// Whatever `now` says (Europe/Paris local time): a clock a test or a demo drives.
    pub fn from_fn(now: impl Fn() -> NaiveDateTime + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now))
    }

    /// Now, local time to the second (the precision of `CreDtTm`).
    pub fn now(&self) -> NaiveDateTime {
        let now = (self.0)();
        now.with_nanosecond_zero()
    }

    /// Today, local date.
    pub fn today(&self) -> NaiveDate {
        self.now().date()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock(..)")
    }
}

trait WithoutFraction {
    fn with_nanosecond_zero(self) -> Self;
}

impl WithoutFraction for NaiveDateTime {
    fn with_nanosecond_zero(self) -> Self {
        chrono::Timelike::with_nanosecond(&self, 0).unwrap_or(self)
    }
}

/// A local Paris time with its offset (for `rejected_at` of events). An ambiguous or
/// skipped local time (the DST changes) takes the earlier offset, else UTC.
pub fn paris(local: NaiveDateTime) -> DateTime<FixedOffset> {
    match Paris.from_local_datetime(&local).earliest() {
        Some(t) => t.fixed_offset(),
        None => Utc.from_utc_datetime(&local).with_timezone(&Utc.fix()),
    }
}

/// Midnight of `day` in Paris.
pub fn paris_midnight(day: NaiveDate) -> DateTime<FixedOffset> {
    paris(day.and_time(chrono::NaiveTime::MIN))
}

/// Now in the ledger's time format (`encaisse_ledger::clock`).
pub use encaisse_ledger::clock::now as ledger_now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_paris_time() {
        let winter = NaiveDate::from_ymd_opt(2026, 12, 9).unwrap();
        assert_eq!(
            paris_midnight(winter).to_rfc3339(),
            "2026-12-09T00:00:00+01:00"
        );
        let summer = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        assert_eq!(
            paris_midnight(summer).to_rfc3339(),
            "2026-07-01T00:00:00+02:00"
        );
        let at = winter.and_hms_milli_opt(9, 30, 0, 250).unwrap();
        assert_eq!(
            Clock::fixed(at).now(),
            winter.and_hms_opt(9, 30, 0).unwrap()
        );
    }
}
