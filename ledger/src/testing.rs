//! For contract tests: a fresh PostgreSQL database per test, or a visible skip.
//!
//! `ENCAISSE_TEST_POSTGRES_URL` (`postgres://postgres@127.0.0.1:5432/postgres`) names a
//! server where the tests may create databases. Unset, a PostgreSQL test prints
//! `SKIPPED (no PostgreSQL): …`, appends a line to the skip log that `scripts/test.sh` counts
//! and names at the end (`ENCAISSE_POSTGRES_SKIP_LOG`), and passes without running; with
//! `ENCAISSE_REQUIRE_POSTGRES=1` (CI) it fails instead, so CI cannot pass on SQLite alone.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use postgres::{Client, NoTls};

/// The server the tests create their databases on.
pub const URL_ENV: &str = "ENCAISSE_TEST_POSTGRES_URL";
/// `1`: a PostgreSQL test without [`URL_ENV`] fails instead of skipping.
pub const REQUIRE_ENV: &str = "ENCAISSE_REQUIRE_POSTGRES";
/// A file each skipped test appends one line to (`scripts/test.sh` counts them).
pub const SKIP_LOG_ENV: &str = "ENCAISSE_POSTGRES_SKIP_LOG";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database created for one test, dropped with it.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

/// A fresh database for the test `what`, or `None` (skipped, said on stderr and in the
/// skip log) when no server is configured. Panics when one is required, or when the
/// server refuses to create it.
pub fn postgres_or_skip(what: &str) -> Option<TestDatabase> {
    let Some(admin_url) = std::env::var(URL_ENV).ok().filter(|u| !u.trim().is_empty()) else {
        skip(what);
        return None;
    };
    let name = format!(
        "encaisse_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let url = with_database(&admin_url, &name);
    if let Err(e) = admin(&admin_url, &format!("CREATE DATABASE {name}")) {
        panic!("{URL_ENV}: cannot create the test database {name}: {e}");
    }
    Some(TestDatabase {
        admin_url,
        name,
        url,
    })
}

impl TestDatabase {
    /// Creates the database `name` on the server `admin_url` names (the chaos run's fresh
    /// ledger); dropped with the value unless [`TestDatabase::keep`] is called.
    pub fn create(admin_url: &str, name: &str) -> Result<TestDatabase, String> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "{name:?}: a database name of letters, digits and _"
            ));
        }
        admin(admin_url, &format!("CREATE DATABASE {name}"))?;
        Ok(TestDatabase {
            admin_url: admin_url.to_string(),
            name: name.to_string(),
            url: with_database(admin_url, name),
        })
    }

    /// Keeps the database after the value goes (for a look after a failed run).
    pub fn keep(self) -> String {
        let url = self.url.clone();
        std::mem::forget(self);
        url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin(&self.admin_url, &statement) {
            eprintln!("cannot drop the test database {}: {e}", self.name);
        }
    }
}

/// A ledger for one test on one backend, and what it lives in (removed after the test).
pub struct Fixture {
    pub ledger: crate::Ledger,
    /// A temporary directory (the SQLite file's, or an empty one on PostgreSQL) for the
    /// test's own files.
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database (dropped with the fixture), `None` on SQLite.
    pub database: Option<TestDatabase>,
}

impl Fixture {
    /// A ledger in a temporary SQLite file.
    pub fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = crate::LedgerUrl::Sqlite(dir.path().join("ledger.sqlite"));
        let ledger = crate::Ledger::open_url(&url).expect("a new SQLite ledger");
        assert_eq!(ledger.backend(), "sqlite");
        Fixture {
            ledger,
            dir,
            database: None,
        }
    }

    /// A ledger in a fresh PostgreSQL database, or `None` when the test `what` is skipped
    /// ([`postgres_or_skip`]).
    pub fn postgres(what: &str) -> Option<Fixture> {
        let database = postgres_or_skip(what)?;
        let url = crate::LedgerUrl::parse(&database.url).expect("the test database's URL");
        let ledger = crate::Ledger::open_url(&url).expect("a new PostgreSQL ledger");
        assert_eq!(ledger.backend(), "postgres");
        Some(Fixture {
            ledger,
            dir: tempfile::tempdir().expect("a temporary directory"),
            database: Some(database),
        })
    }
}

/// Declares one test per body and backend: `mod sqlite { async fn name() }` and
/// `mod postgres { … }`, each calling `super::name(&Fixture)` on a multi-threaded runtime
/// (concurrency tests need several threads). The PostgreSQL ones skip visibly without a
/// server ([`postgres_or_skip`]).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let fixture = $crate::testing::Fixture::sqlite();
                    super::$name(&fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(fixture) = $crate::testing::Fixture::postgres(stringify!($name)) {
                        super::$name(&fixture).await;
                    }
                }
            )*
        }
    };
}

/// Runs one statement on the server, on a thread of its own (the caller may be async, where
/// the synchronous client must not run).
fn admin(url: &str, statement: &str) -> Result<(), String> {
    let (url, statement) = (url.to_string(), statement.to_string());
    std::thread::spawn(move || {
        let detail = |e: postgres::Error| crate::error::postgres_detail(&e);
        let mut client = Client::connect(&url, NoTls).map_err(detail)?;
        client.batch_execute(&statement).map_err(detail)
    })
    .join()
    .unwrap_or_else(|_| Err("the admin thread panicked".into()))
}

/// `scheme://authority/db?query` with another database.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

fn skip(what: &str) {
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1");
    if required {
        panic!("{REQUIRE_ENV}=1 and {URL_ENV} is not set: {what} must run on PostgreSQL");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    eprintln!("SKIPPED (no PostgreSQL: {URL_ENV} unset): {what} [{test}]");
    if let Some(log) = std::env::var_os(SKIP_LOG_ENV) {
        let line = format!("{test}\t{what}\t{URL_ENV} unset\n");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot record the skipped test: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_is_replaced_and_the_rest_kept() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            super::with_database("postgresql://u:p@h?sslmode=disable", "t2"),
            "postgresql://u:p@h/t2?sslmode=disable"
        );
    }
}
