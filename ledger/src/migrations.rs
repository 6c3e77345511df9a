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
        area: "core",
        version: 2,
        sql: include_str!("../migrations/core_0002.sql"),
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
        area: "batch",
        version: 4,
        sql: include_str!("../migrations/batch_0004.sql"),
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
        area: "polyfac",
        version: 3,
        sql: include_str!("../migrations/polyfac_0003.sql"),
    },
    Migration {
        area: "polyfac",
        version: 4,
        sql: include_str!("../migrations/polyfac_0004.sql"),
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
        area: "helios",
        version: 4,
        sql: include_str!("../migrations/helios_0004.sql"),
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
    Migration {
        area: "ops",
        version: 3,
        sql: include_str!("../migrations/ops_0003.sql"),
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
        area: "core",
        version: 2,
        sql: include_str!("../migrations/postgres/core_0002.sql"),
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
    Migration {
        area: "batch",
        version: 4,
        sql: include_str!("../migrations/postgres/batch_0004.sql"),
    },
    Migration {
        area: "payfip",
        version: 1,
        sql: include_str!("../migrations/postgres/payfip_0001.sql"),
    },
    Migration {
        area: "payfip",
        version: 2,
        sql: include_str!("../migrations/postgres/payfip_0002.sql"),
    },
    Migration {
        area: "payfip",
        version: 3,
        sql: include_str!("../migrations/postgres/payfip_0003.sql"),
    },
    Migration {
        area: "ops",
        version: 1,
        sql: include_str!("../migrations/postgres/ops_0001.sql"),
    },
    Migration {
        area: "ops",
        version: 2,
        sql: include_str!("../migrations/postgres/ops_0002.sql"),
    },
    Migration {
        area: "sepa",
        version: 1,
        sql: include_str!("../migrations/postgres/sepa_0001.sql"),
    },
    Migration {
        area: "sepa",
        version: 2,
        sql: include_str!("../migrations/postgres/sepa_0002.sql"),
    },
    Migration {
        area: "polyfac",
        version: 1,
        sql: include_str!("../migrations/postgres/polyfac_0001.sql"),
    },
    Migration {
        area: "polyfac",
        version: 2,
        sql: include_str!("../migrations/postgres/polyfac_0002.sql"),
    },
    Migration {
        area: "polyfac",
        version: 3,
        sql: include_str!("../migrations/postgres/polyfac_0003.sql"),
    },
    Migration {
        area: "polyfac",
        version: 4,
        sql: include_str!("../migrations/postgres/polyfac_0004.sql"),
    },
    // After the polyfac tables, whose triggers and indexes it creates.
    Migration {
        area: "ops",
        version: 3,
        sql: include_str!("../migrations/postgres/ops_0003.sql"),
    },
    Migration {
        area: "helios",
        version: 1,
        sql: include_str!("../migrations/postgres/helios_0001.sql"),
    },
    Migration {
        area: "helios",
        version: 2,
        sql: include_str!("../migrations/postgres/helios_0002.sql"),
    },
    Migration {
        area: "helios",
        version: 3,
        sql: include_str!("../migrations/postgres/helios_0003.sql"),
    },
    Migration {
        area: "helios",
        version: 4,
        sql: include_str!("../migrations/postgres/helios_0004.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The REGLEMENTS tables are rebuilt with an outbox column: what an earlier version
    /// recorded stays, belongs to the default source's outbox, and keeps its file links.
    #[test]
    fn reglements_rows_of_an_earlier_version_belong_to_the_default_outbox() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        let before: Vec<Migration> = ALL
            .iter()
            .filter(|m| !(m.area == "polyfac" && m.version >= 3))
            .map(|m| Migration {
                area: m.area,
                version: m.version,
                sql: m.sql,
            })
            .collect();
        crate::store::migrate(&mut conn, &before, false).unwrap();
        conn.execute_batch(
            "INSERT INTO polyfac_reglements_file (id, tenant, day, seq, name, lines, planned_at, written_at)
                 VALUES (7, 'vitry', '2026-02-03', 1, 'REGLEMENTS_vitry_20260203_001.csv', 1, 't', 't');
             INSERT INTO polyfac_reglement_line (tenant, event_key, invoice_key, statut, day, bytes, recorded_at, file_id)
                 VALUES ('vitry', 'e1', 'vitry/2026/F1', 'PAYE', '2026-02-03', x'41', 't', 7),
                        ('vitry', 'e2', 'vitry/2026/F2', 'PAYE', '2026-02-03', x'42', 't', NULL);",
        )
        .unwrap();
        crate::store::migrate(&mut conn, ALL, false).unwrap();
        let rows: Vec<(String, String, Option<i64>)> = conn
            .prepare("SELECT event_key, source, file_id FROM polyfac_reglement_line ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("e1".to_string(), String::new(), Some(7)),
                ("e2".to_string(), String::new(), None)
            ]
        );
        let file: (String, u32) = conn
            .query_row(
                "SELECT source, seq FROM polyfac_reglements_file WHERE id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(file, (String::new(), 1));
        // The lines still point at the file table (foreign key enforced after the rename).
        let dangling = conn.execute(
            "INSERT INTO polyfac_reglement_line (tenant, event_key, invoice_key, statut, day, bytes, recorded_at, file_id)
             VALUES ('vitry', 'e3', 'vitry/2026/F3', 'PAYE', '2026-02-03', x'43', 't', 99)",
            [],
        );
        assert!(dangling.is_err(), "a line of a missing file is refused");
        // Another outbox counts its own sequence on the same day.
        conn.execute(
            "INSERT INTO polyfac_reglements_file (tenant, source, day, seq, name, lines, planned_at)
             VALUES ('vitry', 'creche', '2026-02-03', 1, 'REGLEMENTS_vitry_20260203_001.csv', 0, 't')",
            [],
        )
        .unwrap();
    }
}
