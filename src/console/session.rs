//! Console sessions and login throttling, in memory (a restart logs everyone out, which is
//! acceptable for a console).
//!
//! A session id is 244 random bits (two UUID v4), sent only in an `HttpOnly`,
//! `SameSite=Strict` cookie; each session has its own CSRF token that every form carries.
//! A session unused for the idle timeout is gone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::console::Role;

/// Who is logged in.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// Empty: every tenant.
    pub tenants: Vec<String>,
    pub csrf: String,
    last_seen: Instant,
}

impl Session {
    /// Whether this user may see `tenant`'s data.
    pub fn sees(&self, tenant: &str) -> bool {
        self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant)
    }

    pub fn is_ops(&self) -> bool {
        self.role == Role::Ops
    }
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Open sessions.
pub struct Sessions {
    idle: Duration,
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(idle: Duration) -> Self {
        Sessions {
            idle,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session; returns its id (the cookie's value).
    pub fn open(&self, user: &str, role: Role, tenants: Vec<String>) -> String {
        let id = random_token();
        let session = Session {
            user: user.to_string(),
            role,
            tenants,
            csrf: random_token(),
            last_seen: Instant::now(),
        };
        if let Ok(mut open) = self.open.lock() {
            let idle = self.idle;
            open.retain(|_, s| s.last_seen.elapsed() < idle);
            open.insert(id.clone(), session);
        }
        id
    }

    /// The session `id`, if open and not idle too long; touching it restarts its idle time.
    pub fn touch(&self, id: &str) -> Option<Session> {
        let mut open = self.open.lock().ok()?;
        let expired = open.get(id)?.last_seen.elapsed() >= self.idle;
        if expired {
            open.remove(id);
            return None;
        }
        let session = open.get_mut(id)?;
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    pub fn close(&self, id: &str) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(id);
        }
    }
}

/// Failed logins per key (user name, client address) in a sliding window.
pub struct Throttle {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Throttle {
    pub fn new(max: u32, window: Duration) -> Self {
        Throttle {
            max,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any of `keys` used up its failed attempts.
    pub fn blocked(&self, keys: &[&str]) -> bool {
        let Ok(mut failures) = self.failures.lock() else {
            return true;
        };
        let window = self.window;
        keys.iter().any(|key| {
            failures.get_mut(*key).is_some_and(|times| {
                times.retain(|t| t.elapsed() < window);
                times.len() >= self.max as usize
            })
        })
    }

    pub fn failed(&self, keys: &[&str]) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() > 10_000 {
                let window = self.window;
                failures.retain(|_, times| times.iter().any(|t| t.elapsed() < window));
            }
            for key in keys {
                failures
                    .entry((*key).to_string())
                    .or_default()
                    .push(Instant::now());
            }
        }
    }

    pub fn succeeded(&self, keys: &[&str]) {
        if let Ok(mut failures) = self.failures.lock() {
            for key in keys {
                failures.remove(*key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sessions_expire_and_tokens_differ() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let id = sessions.open("anne", Role::Ops, vec![]);
        let s = sessions.touch(&id).unwrap();
        assert_eq!(s.user, "anne");
        assert_ne!(s.csrf, id);
        assert_eq!(id.len(), 64);
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.touch(&id).is_none());
    }

    #[test]
    fn throttle_blocks_after_max_failures_and_success_resets() {
        let t = Throttle::new(2, Duration::from_secs(60));
        assert!(!t.blocked(&["u:anne"]));
        t.failed(&["u:anne", "ip:1"]);
        t.failed(&["u:anne", "ip:1"]);
        assert!(t.blocked(&["u:anne"]));
        assert!(t.blocked(&["u:bob", "ip:1"]));
        t.succeeded(&["u:anne"]);
        assert!(!t.blocked(&["u:anne"]));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }
}
