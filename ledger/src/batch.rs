//! Billing runs as units: collect a run's items per group and close each group exactly once.
//!
//! Every function takes the connection of a write transaction (`Ledger::write`), so a stage
//! can add an item, close the group and plan its output (numbers, file) atomically. These
//! functions are the SQLite implementation of [`crate::stores::BatchStore`]; code that runs
//! on either backend calls the store on a [`crate::stores::Tx`] instead.

use rusqlite::{Connection, OptionalExtension};

use crate::error::LedgerError;

/// Which batch: a stage's view of one group (budget, régie) of one billing run of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchKey {
    pub stage: String,
    pub tenant: String,
    pub run_id: String,
    pub group: String,
}

/// One collected item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    pub item_key: String,
    pub content_hash: String,
    pub payload: Vec<u8>,
}

/// What adding an item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// New item.
    Added,
    /// The same item (same content) was already collected: nothing to do.
    AlreadyPresent,
    /// The item key is known with other content, or in another run or group: it must not be
    /// collected twice (an invoice is in exactly one titre).
    Conflict { reason: String },
}

use crate::clock::now;

/// Adds an item to its batch (idempotent). Refuses items for a group already closed.
pub fn add_item(
    c: &Connection,
    key: &BatchKey,
    item_key: &str,
    content_hash: &str,
    payload: &[u8],
) -> Result<AddOutcome, LedgerError> {
    let existing: Option<(String, String, String)> = c
        .query_row(
            "SELECT run_id, group_key, content_hash FROM batch_item
             WHERE stage = ?1 AND tenant = ?2 AND item_key = ?3",
            (&key.stage, &key.tenant, item_key),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some(existing) = existing {
        return Ok(already_known(key, item_key, content_hash, existing));
    }
    if closed_at(c, key)?.is_some() {
        return Ok(arrived_after_close(key, item_key));
    }
    c.prepare_cached("INSERT INTO batch_item (stage, tenant, item_key, run_id, group_key, content_hash, payload, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?.execute(
        (
            &key.stage,
            &key.tenant,
            item_key,
            &key.run_id,
            &key.group,
            content_hash,
            payload,
            now(),
        ),
    )?;
    c.prepare_cached("INSERT INTO batch_group (stage, tenant, run_id, group_key, received) VALUES (?1, ?2, ?3, ?4, 1)
         ON CONFLICT (stage, tenant, run_id, group_key) DO UPDATE SET received = received + 1")?.execute(
        (&key.stage, &key.tenant, &key.run_id, &key.group),
    )?;
    Ok(AddOutcome::Added)
}

/// Records how many items the run announced for this group. Idempotent; announcing a
/// different count later is a conflict.
pub fn set_expected(c: &Connection, key: &BatchKey, expected: u32) -> Result<(), LedgerError> {
    c.prepare_cached("INSERT INTO batch_group (stage, tenant, run_id, group_key, expected) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (stage, tenant, run_id, group_key) DO UPDATE SET expected = excluded.expected
         WHERE batch_group.expected IS NULL")?.execute(
        (&key.stage, &key.tenant, &key.run_id, &key.group, expected),
    )?;
    let stored: Option<u32> = c.prepare_cached("SELECT expected FROM batch_group WHERE stage = ?1 AND tenant = ?2 AND run_id = ?3 AND group_key = ?4")?.query_row(
        (&key.stage, &key.tenant, &key.run_id, &key.group),
        |r| r.get(0),
    )?;
    same_announcement(key, expected, stored)
}

/// What [`add_item`] answers for an item key already collected (`run`, `group`, `hash`
/// as recorded), on either backend.
pub(crate) fn already_known(
    key: &BatchKey,
    item_key: &str,
    content_hash: &str,
    (run, group, hash): (String, String, String),
) -> AddOutcome {
    if run == key.run_id && group == key.group && hash == content_hash {
        return AddOutcome::AlreadyPresent;
    }
    AddOutcome::Conflict {
        reason: if hash != content_hash {
            format!("{item_key} was already received with other content (run {run})")
        } else {
            format!("{item_key} already belongs to run {run}, group {group}")
        },
    }
}

/// What [`add_item`] answers for an item of a group already closed.
pub(crate) fn arrived_after_close(key: &BatchKey, item_key: &str) -> AddOutcome {
    AddOutcome::Conflict {
        reason: format!(
            "run {} group {} is already closed; {item_key} arrived after it",
            key.run_id, key.group
        ),
    }
}

/// [`set_expected`]'s check: the stored count is the one announced now.
pub(crate) fn same_announcement(
    key: &BatchKey,
    expected: u32,
    stored: Option<u32>,
) -> Result<(), LedgerError> {
    if stored != Some(expected) {
        return Err(LedgerError::Conflict(format!(
            "run {} group {} announced {expected} items, but {stored:?} was recorded before",
            key.run_id, key.group
        )));
    }
    Ok(())
}

/// A group holding more items than announced.
pub(crate) fn too_many(key: &BatchKey, count: u32, expected: u32) -> LedgerError {
    LedgerError::Conflict(format!(
        "run {} group {} has {count} items, more than the {expected} announced",
        key.run_id, key.group
    ))
}

fn closed_at(c: &Connection, key: &BatchKey) -> Result<Option<String>, LedgerError> {
    Ok(c.prepare_cached("SELECT closed_at FROM batch_group WHERE stage = ?1 AND tenant = ?2 AND run_id = ?3 AND group_key = ?4")?.query_row(
        (&key.stage, &key.tenant, &key.run_id, &key.group),
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()?
    .flatten())
}

/// Items collected so far and the announced count.
pub fn progress(c: &Connection, key: &BatchKey) -> Result<(u32, Option<u32>), LedgerError> {
    Ok(c.prepare_cached(
        "SELECT received, expected FROM batch_group
             WHERE stage = ?1 AND tenant = ?2 AND run_id = ?3 AND group_key = ?4",
    )?
    .query_row((&key.stage, &key.tenant, &key.run_id, &key.group), |r| {
        Ok((r.get::<_, u32>(0)?, r.get::<_, Option<u32>>(1)?))
    })
    .optional()?
    .unwrap_or((0, None)))
}

/// Closes the group if it is complete (announced and every item received) and not closed
/// yet, returning its items in key order (deterministic). Returns `None` otherwise, so two
/// concurrent handlers can both call it: exactly one gets the items. Holds every payload in
/// memory: for large runs prefer [`close_if_complete`] then [`visit_items`].
pub fn try_close(c: &Connection, key: &BatchKey) -> Result<Option<Vec<BatchItem>>, LedgerError> {
    if !close_if_complete(c, key)? {
        return Ok(None);
    }
    items(c, key).map(Some)
}

/// Closes the group if it is complete (announced and every item received) and not closed
/// yet: `true` for exactly one caller, which then reads the items with [`visit_items`] in the
/// same transaction.
pub fn close_if_complete(c: &Connection, key: &BatchKey) -> Result<bool, LedgerError> {
    if closed_at(c, key)?.is_some() {
        return Ok(false);
    }
    let (count, expected) = progress(c, key)?;
    match expected {
        Some(expected) if count == expected => {}
        Some(expected) if count > expected => return Err(too_many(key, count, expected)),
        _ => return Ok(false),
    }
    c.prepare_cached("UPDATE batch_group SET closed_at = ?5 WHERE stage = ?1 AND tenant = ?2 AND run_id = ?3 AND group_key = ?4")?.execute(
        (&key.stage, &key.tenant, &key.run_id, &key.group, now()),
    )?;
    Ok(true)
}

/// Every item of a group, in key order (what [`try_close`] hands over), whether the group is
/// closed or not: for a stage that renders a closed group's output again after a crash.
/// Holds every payload in memory: for large runs prefer [`visit_items`].
pub fn items(c: &Connection, key: &BatchKey) -> Result<Vec<BatchItem>, LedgerError> {
    let mut items = Vec::new();
    visit_items(c, key, |item| {
        items.push(item);
        Ok::<_, LedgerError>(())
    })?;
    Ok(items)
}

/// Streams a group's items in key order to `visit`, one at a time, so a stage can render a
/// run of any size in bounded memory. Stops at the first error `visit` returns (its own
/// error type, so a stage's errors pass through unchanged).
pub fn visit_items<E, F>(c: &Connection, key: &BatchKey, mut visit: F) -> Result<(), E>
where
    E: From<LedgerError>,
    F: FnMut(BatchItem) -> Result<(), E>,
{
    let ledger = |e: rusqlite::Error| E::from(LedgerError::from(e));
    let mut stmt = c
        .prepare_cached(
            "SELECT item_key, content_hash, payload FROM batch_item
             WHERE stage = ?1 AND tenant = ?2 AND run_id = ?3 AND group_key = ?4 ORDER BY item_key",
        )
        .map_err(ledger)?;
    let mut rows = stmt
        .query((&key.stage, &key.tenant, &key.run_id, &key.group))
        .map_err(ledger)?;
    while let Some(row) = rows.next().map_err(ledger)? {
        visit(BatchItem {
            item_key: row.get(0).map_err(ledger)?,
            content_hash: row.get(1).map_err(ledger)?,
            payload: row.get(2).map_err(ledger)?,
        })?;
    }
    Ok(())
}

/// Groups of a stage still open (for metrics and `encaisse trace`): key, items, expected.
pub fn open_groups(
    c: &Connection,
    stage: &str,
) -> Result<Vec<(BatchKey, u32, Option<u32>)>, LedgerError> {
    let mut stmt = c.prepare(
        "SELECT g.tenant, g.run_id, g.group_key, g.expected, g.received
         FROM batch_group g WHERE g.stage = ?1 AND g.closed_at IS NULL ORDER BY g.tenant, g.run_id, g.group_key",
    )?;
    let rows = stmt
        .query_map([stage], |r| {
            Ok((
                BatchKey {
                    stage: stage.to_string(),
                    tenant: r.get(0)?,
                    run_id: r.get(1)?,
                    group: r.get(2)?,
                },
                r.get::<_, u32>(4)?,
                r.get::<_, Option<u32>>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ledger;

    fn key(group: &str) -> BatchKey {
        BatchKey {
            stage: "helios.titres".into(),
            tenant: "vitry".into(),
            run_id: "run-1".into(),
            group: group.into(),
        }
    }

    #[tokio::test]
    async fn closes_exactly_once_whatever_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        // The announcement first, then the items (or the other way round): same result.
        ledger
            .write(|c| set_expected(c, &key("principal"), 2))
            .await
            .unwrap();
        let first = ledger
            .write(|c| {
                assert_eq!(
                    add_item(c, &key("principal"), "vitry/2026/F2", "h2", b"2")?,
                    AddOutcome::Added
                );
                try_close(c, &key("principal"))
            })
            .await
            .unwrap();
        assert!(first.is_none(), "not complete yet");
        let closed = ledger
            .write(|c| {
                add_item(c, &key("principal"), "vitry/2026/F1", "h1", b"1")?;
                try_close(c, &key("principal"))
            })
            .await
            .unwrap()
            .unwrap();
        let reread = ledger.read(|c| items(c, &key("principal"))).await.unwrap();
        assert_eq!(reread, closed, "the items can be read again after closing");
        let keys: Vec<_> = closed.iter().map(|i| i.item_key.as_str()).collect();
        assert_eq!(
            keys,
            ["vitry/2026/F1", "vitry/2026/F2"],
            "items in key order"
        );
        // Redelivered item and redelivered announcement: no second close.
        let again = ledger
            .write(|c| {
                assert_eq!(
                    add_item(c, &key("principal"), "vitry/2026/F1", "h1", b"1")?,
                    AddOutcome::AlreadyPresent
                );
                set_expected(c, &key("principal"), 2)?;
                try_close(c, &key("principal"))
            })
            .await
            .unwrap();
        assert!(again.is_none());
    }

    #[tokio::test]
    async fn items_survive_the_move_to_a_rowid_table() {
        use crate::migrations::{ALL, Migration};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        let before: Vec<Migration> = ALL
            .iter()
            .filter(|m| !(m.area == "batch" && m.version >= 3))
            .map(|m| Migration {
                area: m.area,
                version: m.version,
                sql: m.sql,
            })
            .collect();
        let payload = vec![b'x'; 1500];
        {
            let ledger = Ledger::open_with(&path, &before).unwrap();
            let p = payload.clone();
            ledger
                .write(move |c| {
                    for n in [2, 3, 1] {
                        add_item(c, &key("principal"), &format!("vitry/2026/F{n}"), "h", &p)?;
                    }
                    set_expected(c, &key("principal"), 4)
                })
                .await
                .unwrap();
        }
        let ledger = Ledger::open(&path).unwrap();
        let (kept, again, closed) = ledger
            .write(move |c| {
                let kept = items(c, &key("principal"))?;
                let again = add_item(c, &key("principal"), "vitry/2026/F1", "h", &payload)?;
                add_item(c, &key("principal"), "vitry/2026/F4", "h", b"4")?;
                Ok((kept, again, try_close(c, &key("principal"))?))
            })
            .await
            .unwrap();
        let keys: Vec<_> = kept.iter().map(|i| i.item_key.as_str()).collect();
        assert_eq!(keys, ["vitry/2026/F1", "vitry/2026/F2", "vitry/2026/F3"]);
        assert!(kept.iter().all(|i| i.payload.len() == 1500));
        assert_eq!(again, AddOutcome::AlreadyPresent, "the key is still unique");
        assert_eq!(closed.unwrap().len(), 4, "the count carried over");
    }

    #[tokio::test]
    async fn counts_are_maintained_and_items_stream_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let (progress_before, progress_after) = ledger
            .write(|c| {
                set_expected(c, &key("principal"), 3)?;
                let before = progress(c, &key("principal"))?;
                for n in [3, 1, 2] {
                    add_item(c, &key("principal"), &format!("vitry/2026/F{n}"), "h", b"x")?;
                }
                // A redelivered item does not count twice.
                add_item(c, &key("principal"), "vitry/2026/F1", "h", b"x")?;
                Ok((before, progress(c, &key("principal"))?))
            })
            .await
            .unwrap();
        assert_eq!(progress_before, (0, Some(3)));
        assert_eq!(progress_after, (3, Some(3)));
        let seen = ledger
            .read(|c| {
                let mut seen = Vec::new();
                visit_items(c, &key("principal"), |item| {
                    seen.push(item.item_key);
                    Ok::<_, LedgerError>(())
                })?;
                Ok(seen)
            })
            .await
            .unwrap();
        assert_eq!(seen, ["vitry/2026/F1", "vitry/2026/F2", "vitry/2026/F3"]);
        let open = ledger
            .read(|c| open_groups(c, "helios.titres"))
            .await
            .unwrap();
        assert_eq!(open[0].1, 3);
    }

    #[tokio::test]
    async fn conflicts_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let outcome = ledger
            .write(|c| {
                add_item(c, &key("principal"), "vitry/2026/F1", "h1", b"1")?;
                add_item(c, &key("principal"), "vitry/2026/F1", "other", b"1")
            })
            .await
            .unwrap();
        assert!(matches!(outcome, AddOutcome::Conflict { .. }));
        let err = ledger
            .write(|c| {
                set_expected(c, &key("principal"), 1)?;
                set_expected(c, &key("principal"), 3)
            })
            .await
            .unwrap_err();
        assert!(matches!(err, LedgerError::Conflict(_)));
        // Items beyond the announced count.
        let err = ledger
            .write(|c| {
                set_expected(c, &key("caisse"), 1)?;
                add_item(c, &key("caisse"), "vitry/2026/F8", "h", b"8")?;
                add_item(c, &key("caisse"), "vitry/2026/F9", "h", b"9")?;
                try_close(c, &key("caisse"))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, LedgerError::Conflict(_)));
        let open = ledger
            .read(|c| open_groups(c, "helios.titres"))
            .await
            .unwrap();
        assert_eq!(open.len(), 1);
    }
}
