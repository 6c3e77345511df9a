//! Schema migrations, by area. A migration is identified by `(area, version)` and applied
//! once, in order within its area, inside a transaction. Never edit an applied migration:
//! add the next version.

/// One migration step.
pub struct Migration {
    pub area: &'static str,
    pub version: u32,
    pub sql: &'static str,
}

impl Migration {
    /// This migration's SQL failed (the message names it, for the operator).
    pub(crate) fn failed(&self, error: impl std::fmt::Display) -> crate::LedgerError {
        crate::LedgerError::Migration {
            area: self.area,
            version: self.version,
            message: error.to_string(),
        }
    }

    /// Logs that it was applied, on `backend`.
    pub(crate) fn announce(&self, backend: &str) {
        tracing::info!(
            area = self.area,
            version = self.version,
            backend,
            "Ledger migration applied."
        );
    }
}

/// Every migration of every area. Areas append their own entries.
pub const ALL: &[Migration] = &[
    Migration {
        area: "core",
        version: 1,
        sql: include_str!("../migrations/core_0001.sql"),
    },
    Migration {
        area: "batch",
        version: 1,
        sql: include_str!("../migrations/batch_0001.sql"),
    },
    Migration {
        area: "batch",
        version: 2,
        sql: include_str!("../migrations/batch_0002.sql"),
    },
    Migration {
        area: "batch",
        version: 3,
        sql: include_str!("../migrations/batch_0003.sql"),
    },
    Migration {
        area: "payfip",
        version: 1,
        sql: include_str!("../migrations/payfip_0001.sql"),
    },
    Migration {
        area: "payfip",
        version: 2,
        sql: include_str!("../migrations/payfip_0002.sql"),
    },
    Migration {
        area: "payfip",
        version: 3,
        sql: include_str!("../migrations/payfip_0003.sql"),
    },
    Migration {
        area: "sepa",
        version: 1,
        sql: include_str!("../migrations/sepa_0001.sql"),
    },
    Migration {
        area: "sepa",
        version: 2,
        sql: include_str!("../migrations/sepa_0002.sql"),
    },
    Migration {
        area: "polyfac",
        version: 1,
        sql: include_str!("../migrations/polyfac_0001.sql"),
    },
    Migration {
        area: "polyfac",
        version: 2,
        sql: include_str!("../migrations/polyfac_0002.sql"),
    },
    Migration {
        area: "helios",
        version: 1,
        sql: include_str!("../migrations/helios_0001.sql"),
    },
    Migration {
        area: "helios",
        version: 2,
        sql: include_str!("../migrations/helios_0002.sql"),
    },
    Migration {
        area: "helios",
        version: 3,
        sql: include_str!("../migrations/helios_0003.sql"),
    },
    Migration {
        area: "ops",
        version: 1,
        sql: include_str!("../migrations/ops_0001.sql"),
    },
    Migration {
        area: "ops",
        version: 2,
        sql: include_str!("../migrations/ops_0002.sql"),
    },
];

/// [`crate::stores::CoreStore::applied_migrations`] on SQLite.
pub(crate) fn applied_in(
    c: &rusqlite::Connection,
) -> Result<Vec<(String, u32)>, crate::LedgerError> {
    let mut stmt =
        c.prepare_cached("SELECT area, version FROM schema_migration ORDER BY area, version")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The PostgreSQL migrations of the areas ported to PostgreSQL
/// (`migrations/postgres/<area>_<NNNN>.sql`): the same `(area, version)` means the same
/// schema as [`ALL`]'s file for SQLite. The SQLite files stay where they were, so that
/// work adding SQLite migrations elsewhere needs no move.
pub const POSTGRES: &[Migration] = &[
    Migration {
        area: "core",
        version: 1,
        sql: include_str!("../migrations/postgres/core_0001.sql"),
    },
    Migration {
        area: "batch",
        version: 1,
        sql: include_str!("../migrations/postgres/batch_0001.sql"),
    },
    Migration {
        area: "batch",
        version: 2,
        sql: include_str!("../migrations/postgres/batch_0002.sql"),
    },
    Migration {
        area: "batch",
        version: 3,
        sql: include_str!("../migrations/postgres/batch_0003.sql"),
    },
];
