//! Mandate sequence logic (pure): from a mandate's history, the sequence type of its next
//! collection, or why it cannot be used (spec §5).
//!
//! * One-off mandate: `OOFF`, once. A collection rejected *before settlement* (pain.002)
//!   did not use it; any other (pending, settled, returned after settlement) did.
//! * Recurrent mandate: `FRST` for the first collection when configured (else `RCUR`, allowed
//!   since Nov 2016), `RCUR` afterwards. A `FRST` rejected before settlement does not count,
//!   so the next one is `FRST` again (legacy practice, spec §5 [reported]). A `FNAL`
//!   collection ends the series.
//! * A reject whose code closes the mandate (MD01, MD07) ends its use for ever; one that
//!   suspends it (AC01, AC04, AC06, AC13, AG01, DNOR) until the mandate is amended after
//!   the reject ([`crate::reasons`]).
//! * Lapse: 36 months (configurable) without a presented collection, counted from the due
//!   date of the last one even when it was rejected (Banque de France FAQ); for a mandate
//!   never used, from its signature date (our reading: a mandate cannot be kept alive longer
//!   by never using it).

use chrono::{Months, NaiveDate};
use encaisse_schemas::SequenceType;

use crate::config::{FirstSequence, SepaTenantConfig};
use crate::reasons::{self, MandateEffect};

/// Recurrent or one-off mandate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MandateKind {
    Recurrent,
    OneOff,
}

impl MandateKind {
    /// From the sequence the source application gave: `OOFF` means a one-off mandate.
    pub fn from_source(sequence: Option<SequenceType>) -> Self {
        match sequence {
            Some(SequenceType::Ooff) => MandateKind::OneOff,
            _ => MandateKind::Recurrent,
        }
    }
}

/// What became of a presented collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent, no news yet.
    Pending,
    /// Debited (no reject reported).
    Settled,
    /// Refused before settlement (pain.002): the debtor was not debited.
    RejectedBeforeSettlement { code: Option<String>, on: NaiveDate },
    /// Returned or refunded after settlement (camt.054).
    ReturnedAfterSettlement { code: Option<String>, on: NaiveDate },
}

impl Outcome {
    fn reject(&self) -> Option<(Option<&str>, NaiveDate)> {
        match self {
            Outcome::RejectedBeforeSettlement { code, on }
            | Outcome::ReturnedAfterSettlement { code, on } => Some((code.as_deref(), *on)),
            _ => None,
        }
    }
}

/// One collection already presented under the mandate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastCollection {
    pub due_date: NaiveDate,
    pub sequence: SequenceType,
    pub outcome: Outcome,
}

/// What the ledger knows of a mandate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MandateHistory {
    pub kind: MandateKind,
    pub signed_on: NaiveDate,
    /// The last day the mandate's data was amended (new IBAN…), if ever.
    pub amended_on: Option<NaiveDate>,
    pub collections: Vec<PastCollection>,
}

/// The settings of the sequence logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencePolicy {
    pub first: FirstSequence,
    pub lapse_months: u32,
}

impl From<&SepaTenantConfig> for SequencePolicy {
    fn from(config: &SepaTenantConfig) -> Self {
        SequencePolicy {
            first: config.first_sequence,
            lapse_months: config.mandate_lapse_months,
        }
    }
}

/// Why a mandate cannot carry a new collection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MandateUnusable {
    #[error("mandate closed by reject {code} on {on}: a new signed mandate is needed")]
    Closed { code: String, on: NaiveDate },
    #[error("mandate suspended by reject {code} on {on}: amend the mandate (new account) first")]
    Suspended { code: String, on: NaiveDate },
    #[error("one-off mandate already used (collection due {due_date})")]
    OneOffUsed { due_date: NaiveDate },
    #[error("recurrent mandate ended by its final (FNAL) collection due {due_date}")]
    Finalised { due_date: NaiveDate },
    #[error("mandate lapsed: no collection presented since {since} ({months} months)")]
    Lapsed { since: NaiveDate, months: u32 },
    #[error("collection due {due_date} is before the mandate's signature on {signed_on}")]
    NotYetSigned {
        due_date: NaiveDate,
        signed_on: NaiveDate,
    },
}

impl MandateUnusable {
    /// Stable short kind for logs and parked messages.
    pub fn kind(&self) -> &'static str {
        match self {
            MandateUnusable::Closed { .. } => "mandate_closed",
            MandateUnusable::Suspended { .. } => "mandate_suspended",
            MandateUnusable::OneOffUsed { .. } => "mandate_one_off_used",
            MandateUnusable::Finalised { .. } => "mandate_finalised",
            MandateUnusable::Lapsed { .. } => "mandate_lapsed",
            MandateUnusable::NotYetSigned { .. } => "mandate_not_yet_signed",
        }
    }
}

/// The sequence type of a new collection due on `due_date`, or why the mandate cannot be
/// used. Pure: the same history always gives the same answer.
pub fn next_sequence(
    history: &MandateHistory,
    policy: SequencePolicy,
    due_date: NaiveDate,
) -> Result<SequenceType, MandateUnusable> {
    if due_date < history.signed_on {
        return Err(MandateUnusable::NotYetSigned {
            due_date,
            signed_on: history.signed_on,
        });
    }
    check_rejects(history)?;
    check_lapse(history, policy, due_date)?;
    // Collections that reached the debtor's bank (not refused before settlement).
    let mut used = history
        .collections
        .iter()
        .filter(|c| !matches!(c.outcome, Outcome::RejectedBeforeSettlement { .. }));
    match history.kind {
        MandateKind::OneOff => match used.next() {
            Some(c) => Err(MandateUnusable::OneOffUsed {
                due_date: c.due_date,
            }),
            None => Ok(SequenceType::Ooff),
        },
        MandateKind::Recurrent => {
            let used: Vec<&PastCollection> = used.collect();
            if let Some(last) = used.iter().find(|c| c.sequence == SequenceType::Fnal) {
                return Err(MandateUnusable::Finalised {
                    due_date: last.due_date,
                });
            }
            Ok(match (policy.first, used.is_empty()) {
                (FirstSequence::Frst, true) => SequenceType::Frst,
                _ => SequenceType::Rcur,
            })
        }
    }
}

fn check_rejects(history: &MandateHistory) -> Result<(), MandateUnusable> {
    for collection in &history.collections {
        let Some((Some(code), on)) = collection.outcome.reject() else {
            continue;
        };
        let effect = reasons::lookup(code).map_or(MandateEffect::Keep, |r| r.mandate);
        match effect {
            MandateEffect::Close => {
                return Err(MandateUnusable::Closed {
                    code: code.to_string(),
                    on,
                });
            }
            MandateEffect::Suspend if history.amended_on.is_none_or(|a| a <= on) => {
                return Err(MandateUnusable::Suspended {
                    code: code.to_string(),
                    on,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_lapse(
    history: &MandateHistory,
    policy: SequencePolicy,
    due_date: NaiveDate,
) -> Result<(), MandateUnusable> {
    let since = history
        .collections
        .iter()
        .map(|c| c.due_date)
        .max()
        .unwrap_or(history.signed_on);
    let lapses_on = since.checked_add_months(Months::new(policy.lapse_months));
    if lapses_on.is_some_and(|l| due_date > l) {
        return Err(MandateUnusable::Lapsed {
            since,
            months: policy.lapse_months,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const FRST: SequencePolicy = SequencePolicy {
        first: FirstSequence::Frst,
        lapse_months: 36,
    };
    const RCUR: SequencePolicy = SequencePolicy {
        first: FirstSequence::Rcur,
        lapse_months: 36,
    };

    fn history(kind: MandateKind, collections: Vec<PastCollection>) -> MandateHistory {
        MandateHistory {
            kind,
            signed_on: d(2025, 9, 1),
            amended_on: None,
            collections,
        }
    }

    fn past(due: NaiveDate, sequence: SequenceType, outcome: Outcome) -> PastCollection {
        PastCollection {
            due_date: due,
            sequence,
            outcome,
        }
    }

    fn rejected(code: &str, on: NaiveDate) -> Outcome {
        Outcome::RejectedBeforeSettlement {
            code: Some(code.into()),
            on,
        }
    }

    #[test]
    fn recurrent_first_then_subsequent() {
        let fresh = history(MandateKind::Recurrent, vec![]);
        assert_eq!(
            next_sequence(&fresh, FRST, d(2025, 10, 5)),
            Ok(SequenceType::Frst)
        );
        assert_eq!(
            next_sequence(&fresh, RCUR, d(2025, 10, 5)),
            Ok(SequenceType::Rcur)
        );
        let used = history(
            MandateKind::Recurrent,
            vec![past(d(2025, 10, 5), SequenceType::Frst, Outcome::Pending)],
        );
        assert_eq!(
            next_sequence(&used, FRST, d(2025, 11, 5)),
            Ok(SequenceType::Rcur)
        );
    }

    #[test]
    fn frst_rejected_before_settlement_is_sent_as_frst_again() {
        let h = history(
            MandateKind::Recurrent,
            vec![past(
                d(2025, 10, 5),
                SequenceType::Frst,
                rejected("AM04", d(2025, 10, 4)),
            )],
        );
        assert_eq!(
            next_sequence(&h, FRST, d(2025, 10, 20)),
            Ok(SequenceType::Frst)
        );
        let returned = history(
            MandateKind::Recurrent,
            vec![past(
                d(2025, 10, 5),
                SequenceType::Frst,
                Outcome::ReturnedAfterSettlement {
                    code: Some("AM04".into()),
                    on: d(2025, 10, 8),
                },
            )],
        );
        assert_eq!(
            next_sequence(&returned, FRST, d(2025, 10, 20)),
            Ok(SequenceType::Rcur)
        );
    }

    #[test]
    fn one_off_is_used_once() {
        let fresh = history(MandateKind::OneOff, vec![]);
        assert_eq!(
            next_sequence(&fresh, FRST, d(2025, 10, 5)),
            Ok(SequenceType::Ooff)
        );
        let refused = history(
            MandateKind::OneOff,
            vec![past(
                d(2025, 10, 5),
                SequenceType::Ooff,
                rejected("AM04", d(2025, 10, 4)),
            )],
        );
        assert_eq!(
            next_sequence(&refused, FRST, d(2025, 10, 20)),
            Ok(SequenceType::Ooff)
        );
        let used = history(
            MandateKind::OneOff,
            vec![past(d(2025, 10, 5), SequenceType::Ooff, Outcome::Settled)],
        );
        assert_eq!(
            next_sequence(&used, FRST, d(2025, 11, 5)),
            Err(MandateUnusable::OneOffUsed {
                due_date: d(2025, 10, 5)
            })
        );
        assert_eq!(
            MandateKind::from_source(Some(SequenceType::Ooff)),
            MandateKind::OneOff
        );
        assert_eq!(MandateKind::from_source(None), MandateKind::Recurrent);
    }

    #[test]
    fn closing_and_suspending_codes() {
        for code in ["MD01", "MD07"] {
            let h = history(
                MandateKind::Recurrent,
                vec![past(
                    d(2025, 10, 5),
                    SequenceType::Frst,
                    rejected(code, d(2025, 10, 4)),
                )],
            );
            let err = next_sequence(&h, FRST, d(2025, 11, 5)).unwrap_err();
            assert_eq!(err.kind(), "mandate_closed", "{code}");
        }
        let mut h = history(
            MandateKind::Recurrent,
            vec![past(
                d(2025, 10, 5),
                SequenceType::Rcur,
                Outcome::ReturnedAfterSettlement {
                    code: Some("AC04".into()),
                    on: d(2025, 10, 9),
                },
            )],
        );
        assert_eq!(
            next_sequence(&h, FRST, d(2025, 11, 5)).unwrap_err().kind(),
            "mandate_suspended"
        );
        h.amended_on = Some(d(2025, 10, 20));
        assert_eq!(
            next_sequence(&h, FRST, d(2025, 11, 5)),
            Ok(SequenceType::Rcur)
        );
        // A reject that keeps the mandate (AM04) blocks nothing.
        let am04 = history(
            MandateKind::Recurrent,
            vec![past(
                d(2025, 10, 5),
                SequenceType::Rcur,
                rejected("AM04", d(2025, 10, 4)),
            )],
        );
        assert!(next_sequence(&am04, FRST, d(2025, 11, 5)).is_ok());
    }

    #[test]
    fn fnal_lapse_and_signature() {
        let h = history(
            MandateKind::Recurrent,
            vec![past(d(2025, 10, 5), SequenceType::Fnal, Outcome::Settled)],
        );
        assert!(matches!(
            next_sequence(&h, FRST, d(2025, 11, 5)),
            Err(MandateUnusable::Finalised { .. })
        ));
        let old = history(
            MandateKind::Recurrent,
            vec![past(
                d(2025, 10, 5),
                SequenceType::Rcur,
                rejected("AM04", d(2025, 10, 4)),
            )],
        );
        assert!(next_sequence(&old, FRST, d(2028, 10, 5)).is_ok());
        assert!(matches!(
            next_sequence(&old, FRST, d(2028, 10, 6)),
            Err(MandateUnusable::Lapsed { .. })
        ));
        let never_used = history(MandateKind::Recurrent, vec![]);
        assert!(next_sequence(&never_used, FRST, d(2028, 9, 2)).is_err());
        assert!(matches!(
            next_sequence(&never_used, FRST, d(2025, 8, 31)),
            Err(MandateUnusable::NotYetSigned { .. })
        ));
    }
}
