//! What happens to a rejected or returned collection: re-presented once on a later date
//! (AM04, MS03 by default — configurable) or final, and what it does to the mandate.

use chrono::{Days, NaiveDate};

use crate::calendar::next_target_day;
use crate::config::RepresentationConfig;
use crate::reasons::{self, Handling, MandateEffect};

/// The handling decided for one reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Present the invoice again as presentation `attempt` (with a new end-to-end id), due
    /// on `due_date` (a TARGET day). The mandate stays usable.
    Represent { attempt: u32, due_date: NaiveDate },
    /// Do not present again automatically.
    Final {
        /// The spec's suggested handling, for people (`contact_debtor`, `final`, …);
        /// `Final` for an unknown or missing code.
        handling: Handling,
        /// What the reject does to the mandate.
        mandate: MandateEffect,
        /// Why it is final, for the journal.
        why: String,
    },
}

impl Decision {
    pub fn will_represent(&self) -> bool {
        matches!(self, Decision::Represent { .. })
    }
}

/// The configured re-presentation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepresentationPolicy {
    codes: Vec<String>,
    max_representations: u32,
    delay_days: u32,
}

impl From<&RepresentationConfig> for RepresentationPolicy {
    fn from(config: &RepresentationConfig) -> Self {
        RepresentationPolicy {
            codes: config
                .codes
                .iter()
                .map(|c| c.trim().to_ascii_uppercase())
                .collect(),
            max_representations: config.max_representations,
            delay_days: config.delay_days,
        }
    }
}

impl RepresentationPolicy {
    /// Decides for a collection rejected with `code`.
    ///
    /// * `attempt`: the presentation that was rejected (1 = the first; see
    ///   [`crate::ids::attempt_of`]);
    /// * `reported_on`: the day the bank reported it;
    /// * `original_due_date`: the rejected collection's due date, when known.
    ///
    /// The new due date is `delay_days` after the later of the two dates, moved to the next
    /// TARGET day; the caller still makes it respect the bank's lead time.
    pub fn decide(
        &self,
        code: Option<&str>,
        attempt: u32,
        reported_on: NaiveDate,
        original_due_date: Option<NaiveDate>,
    ) -> Decision {
        let info = code.and_then(reasons::lookup);
        let mandate = info.map_or(MandateEffect::Keep, |i| i.mandate);
        let handling = info.map_or(Handling::Final, |i| i.handling);
        let code_upper = code.map(|c| c.trim().to_ascii_uppercase());
        let listed = code_upper
            .as_ref()
            .is_some_and(|c| self.codes.iter().any(|k| k == c));
        let final_because = |why: String| Decision::Final {
            handling,
            mandate,
            why,
        };
        if !listed {
            return final_because(match &code_upper {
                Some(c) => format!("{c} is not configured for re-presentation"),
                None => "no reason code: manual handling".to_string(),
            });
        }
        if mandate != MandateEffect::Keep {
            return final_because(format!(
                "{} stops the mandate's use",
                code_upper.unwrap_or_default()
            ));
        }
        let done = attempt.saturating_sub(1);
        if done >= self.max_representations {
            return final_because(format!(
                "already re-presented {done} time(s), at most {} allowed",
                self.max_representations
            ));
        }
        let from = original_due_date.map_or(reported_on, |d| d.max(reported_on));
        let due_date = from
            .checked_add_days(Days::new(u64::from(self.delay_days)))
            .map_or(from, next_target_day);
        Decision::Represent {
            attempt: attempt + 1,
            due_date,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    fn policy() -> RepresentationPolicy {
        RepresentationPolicy::from(&RepresentationConfig::default())
    }

    #[test]
    fn am04_is_represented_once_on_a_later_target_day() {
        // Reported Friday 27 March 2026 + 10 days = Monday 6 April (Easter Monday) → 7 April.
        let first = policy().decide(Some("AM04"), 1, d(3, 27), Some(d(3, 25)));
        assert_eq!(
            first,
            Decision::Represent {
                attempt: 2,
                due_date: d(4, 7)
            }
        );
        let second = policy().decide(Some("am04"), 2, d(4, 9), Some(d(4, 7)));
        assert!(!second.will_represent(), "{second:?}");
    }

    #[test]
    fn later_due_date_wins() {
        let decision = policy().decide(Some("MS03"), 1, d(6, 1), Some(d(6, 10)));
        assert_eq!(
            decision,
            Decision::Represent {
                attempt: 2,
                due_date: d(6, 22)
            }
        );
    }

    #[test]
    fn final_codes_and_mandate_effects() {
        match policy().decide(Some("MD01"), 1, d(6, 1), None) {
            Decision::Final {
                handling, mandate, ..
            } => {
                assert_eq!(handling, Handling::Final);
                assert_eq!(mandate, MandateEffect::Close);
            }
            other => panic!("{other:?}"),
        }
        match policy().decide(Some("AC04"), 1, d(6, 1), None) {
            Decision::Final { mandate, .. } => assert_eq!(mandate, MandateEffect::Suspend),
            other => panic!("{other:?}"),
        }
        match policy().decide(Some("MS02"), 1, d(6, 1), None) {
            Decision::Final {
                handling, mandate, ..
            } => {
                assert_eq!(handling, Handling::ContactDebtor);
                assert_eq!(mandate, MandateEffect::Keep);
            }
            other => panic!("{other:?}"),
        }
        assert!(!policy().decide(None, 1, d(6, 1), None).will_represent());
        assert!(
            !policy()
                .decide(Some("ZZ99"), 1, d(6, 1), None)
                .will_represent()
        );
    }

    #[test]
    fn configuration_changes_the_decision() {
        let none = RepresentationPolicy::from(&RepresentationConfig {
            max_representations: 0,
            ..RepresentationConfig::default()
        });
        assert!(!none.decide(Some("AM04"), 1, d(6, 1), None).will_represent());
        let only_am04 = RepresentationPolicy::from(&RepresentationConfig {
            codes: vec!["AM04".into()],
            ..RepresentationConfig::default()
        });
        assert!(
            !only_am04
                .decide(Some("MS03"), 1, d(6, 1), None)
                .will_represent()
        );
        let twice = RepresentationPolicy::from(&RepresentationConfig {
            max_representations: 2,
            ..RepresentationConfig::default()
        });
        assert!(
            twice
                .decide(Some("AM04"), 2, d(6, 1), None)
                .will_represent()
        );
        assert!(
            !twice
                .decide(Some("AM04"), 3, d(6, 1), None)
                .will_represent()
        );
    }
}
