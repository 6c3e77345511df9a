//! Where the ledger lives: `[ledger] url` (or `ENCAISSE_LEDGER_URL`).
//!
//! `sqlite://<path>` is the embedded default (`sqlite://<data_dir>/ledger.sqlite`);
//! `postgres://…` (or `postgresql://…`) a shared PostgreSQL database, for several daemons
//! (docs/scaling.md). Parsed once, so a typo is a configuration error naming the URL, not a
//! connection failure at the first message.

use std::path::{Path, PathBuf};

/// File name of the SQLite ledger inside the data directory (the default URL).
pub const SQLITE_FILE: &str = "ledger.sqlite";

/// The areas whose store runs on PostgreSQL. The daemon needs every area, so it refuses a
/// PostgreSQL URL until this lists all of [`crate::migrations::ALL`]'s areas.
pub const POSTGRES_AREAS: &[&str] = &[
    "core", "batch", "ops", "payfip", "sepa", "polyfac", "helios",
];

/// A parsed ledger URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerUrl {
    /// An SQLite file (relative paths are relative to the daemon's working directory).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, kept as given (it may carry a password).
    Postgres(String),
}

/// Why a ledger URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is empty")]
    Empty,
    #[error("`{0}` is not a ledger URL: use sqlite://<path> or postgres://user@host/database")]
    Scheme(String),
    #[error("sqlite:// needs a file path (sqlite:///var/lib/encaisse/ledger.sqlite)")]
    NoPath,
    #[error("{url} is not a usable PostgreSQL URL: {message}")]
    Postgres { url: String, message: String },
}

impl LedgerUrl {
    /// Parses `sqlite://<path>` or `postgres://…` / `postgresql://…`.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UrlError::Empty);
        }
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(UrlError::NoPath);
            }
            return Ok(LedgerUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            text.parse::<postgres::Config>()
                .map_err(|e| UrlError::Postgres {
                    url: redact(text),
                    message: e.to_string(),
                })?;
            return Ok(LedgerUrl::Postgres(text.to_string()));
        }
        Err(UrlError::Scheme(redact(text)))
    }

    /// The default: `sqlite://<data_dir>/ledger.sqlite`.
    pub fn default_for(data_dir: &Path) -> Self {
        LedgerUrl::Sqlite(data_dir.join(SQLITE_FILE))
    }

    /// For logs and messages: a PostgreSQL password is replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            LedgerUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            LedgerUrl::Postgres(url) => redact(url),
        }
    }

    /// The areas of the ledger that have no PostgreSQL store yet (empty for SQLite).
    pub fn missing_areas(&self) -> Vec<&'static str> {
        match self {
            LedgerUrl::Sqlite(_) => Vec::new(),
            LedgerUrl::Postgres(_) => {
                let mut missing: Vec<&'static str> = Vec::new();
                for migration in crate::migrations::ALL {
                    if !POSTGRES_AREAS.contains(&migration.area)
                        && !missing.contains(&migration.area)
                    {
                        missing.push(migration.area);
                    }
                }
                missing
            }
        }
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_schemes_parse_and_others_are_named() {
        assert_eq!(
            LedgerUrl::parse("sqlite:///var/lib/encaisse/ledger.sqlite").unwrap(),
            LedgerUrl::Sqlite(PathBuf::from("/var/lib/encaisse/ledger.sqlite"))
        );
        assert_eq!(
            LedgerUrl::parse("sqlite://var/ledger.sqlite").unwrap(),
            LedgerUrl::Sqlite(PathBuf::from("var/ledger.sqlite"))
        );
        let pg = LedgerUrl::parse("postgres://encaisse:s3cret@db.example:5432/ledger").unwrap();
        assert_eq!(
            pg.redacted(),
            "postgres://encaisse:***@db.example:5432/ledger"
        );
        assert!(matches!(
            LedgerUrl::parse("postgresql://postgres@127.0.0.1/encaisse"),
            Ok(LedgerUrl::Postgres(_))
        ));
        assert_eq!(LedgerUrl::parse("sqlite://"), Err(UrlError::NoPath));
        assert_eq!(LedgerUrl::parse("  "), Err(UrlError::Empty));
        let err = LedgerUrl::parse("mysql://root:pw@host/db").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`mysql://root:***@host/db` is not a ledger URL: use sqlite://<path> or \
             postgres://user@host/database"
        );
        assert!(matches!(
            LedgerUrl::parse("postgres://host:notaport/db"),
            Err(UrlError::Postgres { .. })
        ));
    }

    #[test]
    fn the_default_is_the_data_directorys_file_and_postgres_names_what_is_missing() {
        let default = LedgerUrl::default_for(Path::new("var/encaisse"));
        assert_eq!(default.redacted(), "sqlite://var/encaisse/ledger.sqlite");
        assert!(default.missing_areas().is_empty());
        let postgres = LedgerUrl::parse("postgres://postgres@127.0.0.1/x").unwrap();
        assert!(
            postgres.missing_areas().is_empty(),
            "every area runs on PostgreSQL"
        );
    }
}
