//! `encaisse ledger migrate --to postgres://…`: an SQLite ledger with rows in every table that
//! exists on both backends is copied into a fresh PostgreSQL database (from
//! `ENCAISSE_TEST_POSTGRES_URL`; skipped visibly when unset, required in CI with
//! `ENCAISSE_REQUIRE_POSTGRES=1`); the counts and a few values compare, the identity
//! sequences continue after the copied ids, and a second migration into the now filled
//! database is refused with exit 65, changing nothing.
//!
//! The rows are generated from the schema (two per table, foreign keys pointing at the
//! parent's rows), so a table an area adds on both backends is covered without editing this
//! test.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{BROKER_URL, command, text, unique_prefix, write_config};
use encaisse_ledger::rusqlite::{self, Connection};
use encaisse_ledger::{ClusterStore, CoreStore, Ledger, LedgerUrl};

/// Rows generated per table.
const ROWS: i64 = 2;

/// Values the tables' CHECK constraints accept.
const CHECKED: &[(&str, &str, &str)] = &[
    ("parked_message", "parked_by", "runtime"),
    ("parked_message", "state", "parked"),
    ("parked_action", "action", "replay"),
];

struct Column {
    name: String,
    declared: String,
}

fn columns(conn: &Connection, table: &str) -> Vec<Column> {
    let mut stmt = conn
        .prepare("SELECT name, type FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap();
    stmt.query_map([table], |r| {
        Ok(Column {
            name: r.get(0)?,
            declared: r.get::<_, String>(1)?.to_uppercase(),
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// `(column, parent table, parent column)` of a table's foreign keys.
fn foreign_keys(conn: &Connection, table: &str) -> Vec<(String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)")
        .unwrap();
    stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The value of `column` in generated row `n` of `table`: what the parent row `n` has for a
/// foreign key, an accepted value for a checked column, else `n`, bytes or text.
fn value(conn: &Connection, table: &str, column: &str, n: i64) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    if let Some((_, parent, to)) = foreign_keys(conn, table)
        .into_iter()
        .find(|(from, _, _)| from == column)
    {
        let to = to.unwrap_or_else(|| "id".to_string());
        return value(conn, &parent, &to, n);
    }
    if let Some((_, _, v)) = CHECKED.iter().find(|(t, c, _)| *t == table && *c == column) {
        return Value::Text((*v).to_string());
    }
    let declared = columns(conn, table)
        .into_iter()
        .find(|c| c.name == column)
        .map(|c| c.declared)
        .unwrap_or_default();
    if declared.contains("INT") {
        Value::Integer(n)
    } else if declared.contains("BLOB") {
        Value::Blob(format!("{column}-{n}").into_bytes())
    } else {
        Value::Text(format!("{table}.{column}-{n}"))
    }
}

/// Fills every table of `tables` (parents first) with [`ROWS`] rows.
fn fill(path: &Path, tables: &[String]) {
    let conn = Connection::open(path).unwrap();
    let mut pending: Vec<&String> = tables.iter().collect();
    let mut done: Vec<String> = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|table| {
            let ready = foreign_keys(&conn, table)
                .iter()
                .all(|(_, parent, _)| parent == *table || done.contains(parent));
            if !ready {
                return true;
            }
            let cols = columns(&conn, table);
            let names: Vec<String> = cols.iter().map(|c| format!("\"{}\"", c.name)).collect();
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT INTO \"{table}\" ({}) VALUES ({})",
                names.join(", "),
                marks.join(", ")
            );
            for n in 1..=ROWS {
                let values: Vec<rusqlite::types::Value> = cols
                    .iter()
                    .map(|c| value(&conn, table, &c.name, n))
                    .collect();
                conn.execute(&sql, rusqlite::params_from_iter(values))
                    .unwrap_or_else(|e| panic!("cannot fill {table}: {e}"));
            }
            done.push((*table).clone());
            false
        });
        assert!(
            pending.len() < before,
            "foreign keys in a cycle: {pending:?}"
        );
    }
}

fn sqlite_tables(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             AND name <> 'schema_migration' ORDER BY name",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn postgres_tables(ledger: &Ledger) -> Vec<String> {
    ledger
        .inspect(|tx| {
            tx.query_all(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
                   AND table_name <> 'schema_migration' ORDER BY 1",
                &[],
                |r| r.get(0),
            )
        })
        .await
        .unwrap()
}

async fn postgres_counts(ledger: &Ledger, tables: &[String]) -> BTreeMap<String, i64> {
    let tables = tables.to_vec();
    ledger
        .inspect(move |tx| {
            let mut counts = BTreeMap::new();
            for table in tables {
                let n: i64 =
                    tx.query_one(&format!("SELECT COUNT(*) FROM \"{table}\""), &[], |r| {
                        r.get(0)
                    })?;
                counts.insert(table, n);
            }
            Ok::<_, encaisse_ledger::LedgerError>(counts)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_ledger_is_copied_and_a_filled_target_refused() {
    let Some(database) = encaisse_ledger::testing::postgres_or_skip("ledger migrate") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), &unique_prefix("migrate"), BROKER_URL);
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let sqlite_path = data.join("ledger.sqlite");
    drop(Ledger::open(&sqlite_path).unwrap());

    // What both backends have: the target's tables once its migrations ran.
    let url = LedgerUrl::parse(&database.url).unwrap();
    let probe = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Ledger::open_url(&url).unwrap())
            .await
            .unwrap()
    };
    let on_postgres = postgres_tables(&probe).await;
    drop(probe);
    let shared: Vec<String> = sqlite_tables(&sqlite_path)
        .into_iter()
        .filter(|t| on_postgres.contains(t))
        .collect();
    for table in [
        "processed_message",
        "emitted_file",
        "lease",
        "inbox_claim",
        "batch_item",
        "parked_action",
    ] {
        assert!(shared.contains(&table.to_string()), "{table} in {shared:?}");
    }
    fill(&sqlite_path, &shared);

    let output = command(&[
        "--config",
        config.to_str().unwrap(),
        "ledger",
        "migrate",
        "--to",
        &database.url,
        "--batch-rows",
        "1",
    ])
    .output()
    .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // Two generated rows per table; a summary kept by triggers (`recon_issued`) also holds
    // the rows its triggers derived from the generated facts, on both sides alike.
    for table in &shared {
        let counted = stdout.lines().find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [name, sqlite, postgres] if *name == table.as_str() => {
                    Some((sqlite.parse::<u64>().ok()?, postgres.parse::<u64>().ok()?))
                }
                _ => None,
            }
        });
        assert!(
            matches!(counted, Some((sqlite, postgres)) if sqlite == postgres && sqlite >= 2),
            "{table} counted alike, at least 2: {counted:?}\n{stdout}"
        );
    }
    assert!(stdout.contains("[ledger]\nurl = \"postgres://"), "{stdout}");

    let target = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || Ledger::open_url(&url).unwrap())
            .await
            .unwrap()
    };
    let counts = postgres_counts(&target, &shared).await;
    // The summaries kept by triggers also hold what their triggers derived on SQLite
    // (copied as they were: the triggers are off while the copy fills the tables).
    const DERIVED: [&str; 2] = ["recon_issued", "recon_collected"];
    assert!(
        counts
            .iter()
            .all(|(table, n)| *n == ROWS || (DERIVED.contains(&table.as_str()) && *n >= ROWS)),
        "{counts:?}"
    );

    // A few values, read back through the stores.
    let processed = target
        .inspect(|tx| {
            tx.processed(
                "processed_message.stage-1",
                "processed_message.message_id-1",
            )
        })
        .await
        .unwrap()
        .expect("the processed message was copied");
    assert_eq!(processed.outputs, b"outputs-1");
    let leases = target.inspect(|tx| tx.leases()).await.unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[1].name, "lease.name-2");
    assert_eq!(leases[1].fencing, 2);
    let file = target
        .inspect(|tx| tx.file_by_path("emitted_file.path-2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((file.id, file.bytes), (2, 2));
    // The identity continues after the copied ids.
    let next = target
        .transact(|tx| {
            tx.record_file(&encaisse_ledger::files::NewFile {
                tenant: "vitry".into(),
                kind: "reglements".into(),
                path: "/new/file.csv".into(),
                sha256: "00".into(),
                bytes: 1,
                written_at: "2026-12-07T02:00:00.000000Z".into(),
                caused_by: "test".into(),
            })
        })
        .await
        .unwrap();
    assert_eq!(next.id, 3);

    // Into a filled target: refused, nothing changed.
    let again = command(&[
        "--config",
        config.to_str().unwrap(),
        "ledger",
        "migrate",
        "--to",
        &database.url,
    ])
    .output()
    .unwrap();
    let stderr = text(&again.stderr);
    assert_eq!(again.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("the target ledger is not empty")
            && stderr.contains("emitted_file: 3 rows"),
        "{stderr}"
    );
    let after = postgres_counts(&target, &shared).await;
    assert_eq!(after["emitted_file"], 3);
    assert_eq!(after["processed_message"], 2);
    drop(target);

    // Not a PostgreSQL URL: a configuration error.
    let wrong = command(&[
        "--config",
        config.to_str().unwrap(),
        "ledger",
        "migrate",
        "--to",
        "sqlite:///tmp/x.sqlite",
    ])
    .output()
    .unwrap();
    assert_eq!(wrong.status.code(), Some(78), "{}", text(&wrong.stderr));
}
