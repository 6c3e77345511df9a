//! The batch area's operations on PostgreSQL (`crate::stores::BatchStore`).
//!
//! SQLite runs one writer at a time; here several transactions add to one group at once, so
//! the group's row is the lock: every add updates its count (`ON CONFLICT DO UPDATE` locks
//! the row until commit) and a close reads it `FOR UPDATE`. Adds and the close of one group
//! therefore follow one another, and an item arriving after the close is refused as on
//! SQLite instead of joining a group already handed over.

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::count;
use crate::batch::{AddOutcome, BatchItem, BatchKey, already_known, arrived_after_close, too_many};
use crate::error::LedgerError;

fn known(
    c: &mut Client,
    key: &BatchKey,
    item_key: &str,
) -> Result<Option<(String, String, String)>, LedgerError> {
    let row = c.query_opt(
        "SELECT run_id, group_key, content_hash FROM batch_item
         WHERE stage = $1 AND tenant = $2 AND item_key = $3",
        &[&key.stage, &key.tenant, &item_key],
    )?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
}

pub(crate) fn add_item(
    c: &mut Client,
    key: &BatchKey,
    item_key: &str,
    content_hash: &str,
    payload: &[u8],
) -> Result<AddOutcome, LedgerError> {
    if let Some(existing) = known(c, key, item_key)? {
        return Ok(already_known(key, item_key, content_hash, existing));
    }
    // Undone alone when the group turns out closed, leaving the caller's transaction usable.
    c.batch_execute("SAVEPOINT batch_add")?;
    let inserted = c.execute(
        "INSERT INTO batch_item
             (stage, tenant, item_key, run_id, group_key, content_hash, payload, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (stage, tenant, item_key) DO NOTHING",
        &[
            &key.stage,
            &key.tenant,
            &item_key,
            &key.run_id,
            &key.group,
            &content_hash,
            &payload,
            &crate::clock::now(),
        ],
    )?;
    if inserted == 0 {
        // Another transaction collected the same key and committed meanwhile.
        c.batch_execute("RELEASE SAVEPOINT batch_add")?;
        return match known(c, key, item_key)? {
            Some(existing) => Ok(already_known(key, item_key, content_hash, existing)),
            None => Err(LedgerError::Corrupt(format!(
                "{item_key} is neither inserted nor found"
            ))),
        };
    }
    let closed_at: Option<String> = c
        .query_one(
            "INSERT INTO batch_group (stage, tenant, run_id, group_key, received)
             VALUES ($1, $2, $3, $4, 1)
             ON CONFLICT (stage, tenant, run_id, group_key)
             DO UPDATE SET received = batch_group.received + 1
             RETURNING closed_at",
            &[&key.stage, &key.tenant, &key.run_id, &key.group],
        )?
        .try_get(0)?;
    if closed_at.is_some() {
        c.batch_execute("ROLLBACK TO SAVEPOINT batch_add; RELEASE SAVEPOINT batch_add")?;
        return Ok(arrived_after_close(key, item_key));
    }
    c.batch_execute("RELEASE SAVEPOINT batch_add")?;
    Ok(AddOutcome::Added)
}

pub(crate) fn set_expected(
    c: &mut Client,
    key: &BatchKey,
    expected: u32,
) -> Result<(), LedgerError> {
    let announced = i32::try_from(expected)
        .map_err(|_| LedgerError::Unsupported(format!("{expected} items in one group")))?;
    c.execute(
        "INSERT INTO batch_group (stage, tenant, run_id, group_key, expected)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (stage, tenant, run_id, group_key) DO UPDATE SET expected = excluded.expected
         WHERE batch_group.expected IS NULL",
        &[&key.stage, &key.tenant, &key.run_id, &key.group, &announced],
    )?;
    let stored: Option<i32> = c
        .query_one(
            "SELECT expected FROM batch_group
             WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4",
            &[&key.stage, &key.tenant, &key.run_id, &key.group],
        )?
        .try_get(0)?;
    let stored = stored.map(count).transpose()?;
    crate::batch::same_announcement(key, expected, stored)
}

pub(crate) fn progress(c: &mut Client, key: &BatchKey) -> Result<(u32, Option<u32>), LedgerError> {
    let row = c.query_opt(
        "SELECT received, expected FROM batch_group
         WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4",
        &[&key.stage, &key.tenant, &key.run_id, &key.group],
    )?;
    let Some(r) = row else {
        return Ok((0, None));
    };
    let expected: Option<i32> = r.try_get(1)?;
    Ok((count(r.try_get(0)?)?, expected.map(count).transpose()?))
}

pub(crate) fn close_if_complete(c: &mut Client, key: &BatchKey) -> Result<bool, LedgerError> {
    let row = c.query_opt(
        "SELECT received, expected, closed_at FROM batch_group
         WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4
         FOR UPDATE",
        &[&key.stage, &key.tenant, &key.run_id, &key.group],
    )?;
    let Some(r) = row else {
        return Ok(false);
    };
    let closed_at: Option<String> = r.try_get(2)?;
    if closed_at.is_some() {
        return Ok(false);
    }
    let received = count(r.try_get(0)?)?;
    let expected: Option<i32> = r.try_get(1)?;
    match expected.map(count).transpose()? {
        Some(expected) if received == expected => {}
        Some(expected) if received > expected => return Err(too_many(key, received, expected)),
        _ => return Ok(false),
    }
    c.execute(
        "UPDATE batch_group SET closed_at = $5
         WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4",
        &[
            &key.stage,
            &key.tenant,
            &key.run_id,
            &key.group,
            &crate::clock::now(),
        ],
    )?;
    Ok(true)
}

/// Streams the rows (`query_raw`), so a large run is never held in memory at once.
pub(crate) fn visit_items<E, F>(c: &mut Client, key: &BatchKey, mut visit: F) -> Result<(), E>
where
    E: From<LedgerError>,
    F: FnMut(BatchItem) -> Result<(), E>,
{
    let ledger = |e: postgres::Error| E::from(LedgerError::from(e));
    let params: [&(dyn postgres::types::ToSql + Sync); 4] =
        [&key.stage, &key.tenant, &key.run_id, &key.group];
    let mut rows = c
        .query_raw(
            "SELECT item_key, content_hash, payload FROM batch_item
             WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4
             ORDER BY item_key COLLATE \"C\"",
            params,
        )
        .map_err(ledger)?;
    while let Some(row) = rows.next().map_err(ledger)? {
        visit(BatchItem {
            item_key: row.try_get(0).map_err(ledger)?,
            content_hash: row.try_get(1).map_err(ledger)?,
            payload: row.try_get(2).map_err(ledger)?,
        })?;
    }
    Ok(())
}

#[allow(clippy::type_complexity)]
pub(crate) fn open_groups(
    c: &mut Client,
    stage: &str,
) -> Result<Vec<(BatchKey, u32, Option<u32>)>, LedgerError> {
    let rows = c.query(
        "SELECT tenant, run_id, group_key, expected, received FROM batch_group
         WHERE stage = $1 AND closed_at IS NULL
         ORDER BY tenant COLLATE \"C\", run_id COLLATE \"C\", group_key COLLATE \"C\"",
        &[&stage],
    )?;
    rows.iter()
        .map(|r| {
            let expected: Option<i32> = r.try_get(3)?;
            Ok((
                BatchKey {
                    stage: stage.to_string(),
                    tenant: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    group: r.try_get(2)?,
                },
                count(r.try_get(4)?)?,
                expected.map(count).transpose()?,
            ))
        })
        .collect()
}
