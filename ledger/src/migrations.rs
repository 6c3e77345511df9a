//! Schema migrations, by area. A migration is identified by `(area, version)` and applied
//! once, in order within its area, inside a transaction. Never edit an applied migration:
//! add the next version.

/// One migration step.
pub struct Migration {
    pub area: &'static str,
    pub version: u32,
    pub sql: &'static str,
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
    Migration {
        area: "ops",
        version: 3,
        sql: include_str!("../migrations/ops_0003.sql"),
    },
];
