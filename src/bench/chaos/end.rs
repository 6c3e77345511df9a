//! When a chaos run may give its verdict. Two conditions, each polled with a bounded wait:
//!
//! 1. **The daemon is back on the broker** ([`Reconnection`]): after the broker restart its
//!    `/metrics` count one more connection loss than before the stop
//!    (`encaisse_broker_reconnects_total`, counted when the loss is noticed) and say it is
//!    connected again (`encaisse_broker_connected` 1: topology declared, consumers started).
//!    The delay from the broker's return to that moment is reported.
//! 2. **The queues have drained** ([`DrainWatch`]): every work queue of the prefix that
//!    existed before the fault is listed again and empty (ready and unacknowledged) on
//!    several polls in a row over a settle window. A queue missing from the listing (a
//!    quorum queue still recovering after the restart) or listed with messages restarts the
//!    window: right after a restart the broker can report a recovering queue as empty.
//!
//! A run once gave its verdict while the daemon was still waiting out its reconnection
//! backoff and failed on 61 messages still ready in `helios.titres`; these conditions make the
//! verdict wait for both, and a timeout fails the run naming what did not happen.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::bench::broker::QueueDepth;

/// The daemon's link to the broker as its `/metrics` page shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerLink {
    /// `encaisse_broker_reconnects_total`: connection losses noticed (absent before the first).
    pub losses: u64,
    /// `encaisse_broker_connected` is 1.
    pub connected: bool,
}

impl BrokerLink {
    /// Reads the two series from the Prometheus text of `/metrics`.
    pub fn parse(text: &str) -> BrokerLink {
        let mut link = BrokerLink::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            match series {
                "encaisse_broker_reconnects_total" => link.losses = value as u64,
                "encaisse_broker_connected" => link.connected = value >= 1.0,
                _ => {}
            }
        }
        link
    }
}

/// Whether the daemon has come back after a broker stop.
#[derive(Debug, Clone, Copy)]
pub struct Reconnection {
    /// Losses counted before the broker was stopped.
    losses_before: u64,
}

impl Reconnection {
    /// Starts watching, from the link read just before the stop.
    pub fn after(before: BrokerLink) -> Self {
        Reconnection {
            losses_before: before.losses,
        }
    }

    /// The daemon noticed the loss and is connected again. A link still connected without a
    /// new loss is the old connection, not yet seen to be gone.
    pub fn done(&self, now: BrokerLink) -> bool {
        now.losses > self.losses_before && now.connected
    }
}

/// What one look at the queues said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drain {
    /// Empty on enough polls over the settle window.
    Drained,
    /// Empty now; the window is not over yet.
    Settling,
    /// A queue holds messages.
    Busy { queue: String, messages: u64 },
    /// A queue seen before the fault is not listed (recovering).
    Missing { queue: String },
}

/// Decides from successive queue listings when the prefix has drained.
#[derive(Debug, Clone)]
pub struct DrainWatch {
    expected: BTreeSet<String>,
    polls: u32,
    settle: Duration,
    empty_since: Option<Duration>,
    empty_polls: u32,
}

impl DrainWatch {
    /// `expected`: the work queues listed before the fault. Drained once `polls` listings in a
    /// row, spanning at least `settle`, show every one of them empty.
    pub fn new(expected: impl IntoIterator<Item = String>, polls: u32, settle: Duration) -> Self {
        DrainWatch {
            expected: expected.into_iter().collect(),
            polls: polls.max(1),
            settle,
            empty_since: None,
            empty_polls: 0,
        }
    }

    /// One listing, taken at `at` (time since any fixed origin).
    pub fn observe(&mut self, at: Duration, queues: &[QueueDepth]) -> Drain {
        let listed: BTreeSet<&str> = queues.iter().map(|q| q.name.as_str()).collect();
        let state = if let Some(queue) = self.expected.iter().find(|q| !listed.contains(q.as_str()))
        {
            Some(Drain::Missing {
                queue: queue.clone(),
            })
        } else {
            queues.iter().find(|q| q.total() > 0).map(|q| Drain::Busy {
                queue: q.name.clone(),
                messages: q.total(),
            })
        };
        if let Some(state) = state {
            self.empty_since = None;
            self.empty_polls = 0;
            return state;
        }
        let since = *self.empty_since.get_or_insert(at);
        self.empty_polls += 1;
        if self.empty_polls >= self.polls && at.saturating_sub(since) >= self.settle {
            Drain::Drained
        } else {
            Drain::Settling
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str, ready: u64, unacked: u64) -> QueueDepth {
        QueueDepth {
            name: name.into(),
            messages_ready: ready,
            messages_unacknowledged: unacked,
        }
    }

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn the_link_is_read_from_the_metrics_page() {
        let text = "# TYPE encaisse_broker_connected gauge\n\
                    encaisse_broker_connected 1\n\
                    encaisse_broker_reconnects_total 2\n\
                    encaisse_stage_processed_total{stage=\"helios.titres\"} 10\n";
        assert_eq!(
            BrokerLink::parse(text),
            BrokerLink {
                losses: 2,
                connected: true
            }
        );
        assert_eq!(
            BrokerLink::parse("encaisse_broker_connected 0\n"),
            BrokerLink::default(),
            "no loss counted yet: the counter is absent"
        );
    }

    #[test]
    fn reconnected_only_after_a_new_loss_and_a_new_connection() {
        let before = BrokerLink {
            losses: 0,
            connected: true,
        };
        let watch = Reconnection::after(before);
        assert!(
            !watch.done(before),
            "the old connection, loss not noticed yet"
        );
        assert!(!watch.done(BrokerLink {
            losses: 1,
            connected: false
        }));
        assert!(watch.done(BrokerLink {
            losses: 1,
            connected: true
        }));
        assert!(watch.done(BrokerLink {
            losses: 3,
            connected: true
        }));
    }

    #[test]
    fn drained_needs_every_queue_listed_and_empty_over_the_window() {
        let names = ["p.helios.titres", "p.helios.titres.retry.1s"];
        let mut watch = DrainWatch::new(names.map(String::from), 3, s(2.0));
        let empty = [q(names[0], 0, 0), q(names[1], 0, 0)];
        // Right after the restart: one queue not listed yet, then the other reported empty.
        assert_eq!(
            watch.observe(s(0.0), &empty[..1]),
            Drain::Missing {
                queue: names[1].into()
            }
        );
        assert_eq!(watch.observe(s(0.5), &empty), Drain::Settling);
        // The recovered queue shows the messages the daemon has not taken yet.
        assert_eq!(
            watch.observe(s(1.0), &[q(names[0], 61, 0), q(names[1], 0, 0)]),
            Drain::Busy {
                queue: names[0].into(),
                messages: 61
            }
        );
        assert_eq!(
            watch.observe(s(1.5), &[q(names[0], 0, 3), q(names[1], 0, 0)]),
            Drain::Busy {
                queue: names[0].into(),
                messages: 3
            },
            "unacknowledged messages are not drained"
        );
        assert_eq!(watch.observe(s(2.0), &empty), Drain::Settling);
        assert_eq!(watch.observe(s(2.5), &empty), Drain::Settling);
        assert_eq!(
            watch.observe(s(3.0), &empty),
            Drain::Settling,
            "three polls, but only 1 s of the 2 s window"
        );
        assert_eq!(watch.observe(s(4.0), &empty), Drain::Drained);
    }

    #[test]
    fn a_long_window_still_needs_the_polls() {
        let mut watch = DrainWatch::new(["p.a".to_string()], 3, s(1.0));
        let empty = [q("p.a", 0, 0)];
        assert_eq!(watch.observe(s(0.0), &empty), Drain::Settling);
        assert_eq!(watch.observe(s(5.0), &empty), Drain::Settling);
        assert_eq!(watch.observe(s(5.1), &empty), Drain::Drained);
    }
}
