//! A private, in-memory ledger for dry runs (`encaisse preview`): the same schema as the
//! real one, optionally seeded with one tenant's rows of a few tables copied from an
//! existing ledger opened **read-only**. Whatever the checks write (a mandate's planned use)
//! stays in memory and vanishes with the connection: no file is created or changed.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::LedgerError;
use crate::migrations;
use crate::store::migrate;

/// An in-memory ledger with every migration applied. When `existing` names a ledger file,
/// the rows of `tenant` in each of `tables` are copied from it (columns matched by name, so
/// an older ledger missing a later column still seeds what it has; a table it lacks is
/// skipped). Only tables with a `tenant` column can be seeded.
pub fn sandbox(
    existing: Option<&Path>,
    tenant: &str,
    tables: &[&str],
) -> Result<Connection, LedgerError> {
    let mut conn = Connection::open_with_flags(
        ":memory:",
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    migrate(&mut conn, migrations::ALL, false)?;
    if let Some(path) = existing {
        conn.execute("ATTACH DATABASE ?1 AS existing", [read_only_uri(path)])?;
        for table in tables {
            copy_tenant_rows(&conn, table, tenant)?;
        }
        conn.execute_batch("DETACH DATABASE existing")?;
    }
    Ok(conn)
}

/// `file:<path>?mode=ro`, with the characters a URI gives a meaning to escaped. A ledger in
/// WAL mode opened read-only gets `-wal` and `-shm` files created beside it; when no `-wal`
/// file exists (the daemon is stopped and every commit is in the main file), the file is
/// opened `immutable` instead, which creates nothing. While the daemon runs, both files
/// exist already and its latest commits are read through them.
fn read_only_uri(path: &Path) -> String {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let immutable = !Path::new(&wal).exists();
    let mut uri = String::from("file:");
    for c in path.display().to_string().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3F"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str(if immutable {
        "?mode=ro&immutable=1"
    } else {
        "?mode=ro"
    });
    uri
}

fn columns(c: &Connection, schema: &str, table: &str) -> Result<Vec<String>, LedgerError> {
    let mut stmt = c.prepare(&format!("PRAGMA {schema}.table_info({table})"))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

fn copy_tenant_rows(c: &Connection, table: &str, tenant: &str) -> Result<(), LedgerError> {
    if !table
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
    {
        return Err(LedgerError::Unsupported(format!(
            "sandbox: {table:?} is not a table name"
        )));
    }
    let theirs = columns(c, "existing", table)?;
    let shared: Vec<String> = columns(c, "main", table)?
        .into_iter()
        .filter(|name| theirs.contains(name))
        .collect();
    if !shared.iter().any(|name| name == "tenant") {
        return Ok(());
    }
    let list = shared.join(", ");
    c.execute(
        &format!(
            "INSERT OR IGNORE INTO main.{table} ({list}) SELECT {list} FROM existing.{table} WHERE tenant = ?1"
        ),
        [tenant],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ledger;

    #[tokio::test]
    async fn copies_one_tenant_and_leaves_the_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let ledger = Ledger::open(&path).unwrap();
        ledger
            .write(|c| {
                for tenant in ["vitry", "ivry"] {
                    c.execute(
                        "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id, file,
                             first_line, last_line, budget, collection, total_cents, message_id, published_at)
                         VALUES (?1, ?1 || '/2026/F1', 'h', 'run', 'f.csv', 2, 2, 'principal', 'titres', 100, 'm', 't')",
                        [tenant],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        drop(ledger);
        // The writer thread checkpoints and removes the WAL when it closes.
        let wal = dir.path().join("ledger.sqlite-wal");
        for _ in 0..100 {
            if !wal.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let listing = |dir: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let files = listing(dir.path());
        let before = std::fs::read(&path).unwrap();
        let conn = sandbox(Some(&path), "vitry", &["polyfac_issued", "sepa_mandate"]).unwrap();
        let keys: Vec<String> = conn
            .prepare("SELECT invoice_key FROM polyfac_issued")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(keys, ["vitry/2026/F1"]);
        conn.execute("DELETE FROM polyfac_issued", []).unwrap();
        drop(conn);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(listing(dir.path()), files);
    }

    #[test]
    fn without_a_ledger_it_is_empty_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let conn = sandbox(None, "vitry", &["polyfac_issued"]).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM polyfac_issued", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
