//! The batch area's operations on PostgreSQL (`crate::stores::BatchStore`).
//!
//! SQLite runs one writer at a time; here several transactions add to one group at once. The
//! group's row is how an add and the close exclude each other: an add holds it
//! `FOR KEY SHARE` until its commit, the close reads it `FOR UPDATE`, so the close waits for
//! the adds in flight (and counts them), and an add after the close finds it closed and is
//! refused as on SQLite instead of joining a group already handed over. Adds do not block
//! one another: each counts itself in its connection's own row of `batch_group_received`
//! (an add that updated the group's row held it until its WAL flush, and a stage's adds to
//! one billing run then ran one at a time).

use crate::pg::Prepared;
use postgres::fallible_iterator::FallibleIterator;

use super::count;
use crate::batch::{AddOutcome, BatchItem, BatchKey, already_known, arrived_after_close, too_many};
use crate::error::LedgerError;

fn known(
    c: &mut Prepared<'_>,
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
    c: &mut Prepared<'_>,
    key: &BatchKey,
    item_key: &str,
    content_hash: &str,
    payload: &[u8],
) -> Result<AddOutcome, LedgerError> {
    // The group is held first: once it is known open, it stays open until this transaction
    // ends, so the item goes in without a savepoint to undo it.
    if hold_group(c, key)?.is_some() {
        return Ok(match known(c, key, item_key)? {
            Some(existing) => already_known(key, item_key, content_hash, existing),
            None => arrived_after_close(key, item_key),
        });
    }
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
        // Known already: collected before, or by a transaction that committed meanwhile.
        return match known(c, key, item_key)? {
            Some(existing) => Ok(already_known(key, item_key, content_hash, existing)),
            None => Err(LedgerError::Corrupt(format!(
                "{item_key} is neither inserted nor found"
            ))),
        };
    }
    c.execute(
        "INSERT INTO batch_group_received AS r
             (stage, tenant, run_id, group_key, connection, received)
         VALUES ($1, $2, $3, $4, pg_backend_pid(), 1)
         ON CONFLICT (stage, tenant, run_id, group_key, connection)
         DO UPDATE SET received = r.received + 1",
        &[&key.stage, &key.tenant, &key.run_id, &key.group],
    )?;
    Ok(AddOutcome::Added)
}

/// Creates the group's row if needed and holds it until the transaction ends; returns when
/// the group was closed (`None`: open).
///
/// While the group's size is unannounced (most of a billing run) the hold is `FOR KEY
/// SHARE`: adds run side by side and none of them can close the group. Once it is
/// announced, an add may be the one that completes it and must close it in the same
/// transaction, which takes `FOR UPDATE`; taking that lock at once (adds of a run's last
/// moments follow one another) avoids two adds each holding the shared lock and each
/// waiting for the other to let go before it can close.
fn hold_group(c: &mut Prepared<'_>, key: &BatchKey) -> Result<Option<String>, LedgerError> {
    let params: [&(dyn postgres::types::ToSql + Sync); 4] =
        [&key.stage, &key.tenant, &key.run_id, &key.group];
    let state = c.query_opt(
        "SELECT closed_at, expected FROM batch_group
         WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4",
        &params,
    )?;
    let announced = match state {
        Some(row) => {
            let closed_at: Option<String> = row.try_get(0)?;
            if closed_at.is_some() {
                // A close is final: no lock needed to refuse.
                return Ok(closed_at);
            }
            row.try_get::<_, Option<i32>>(1)?.is_some()
        }
        None => {
            c.execute(
                "INSERT INTO batch_group (stage, tenant, run_id, group_key)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &params,
            )?;
            false
        }
    };
    let lock = if announced {
        "FOR UPDATE"
    } else {
        "FOR KEY SHARE"
    };
    let row = c.query_one(
        &format!(
            "SELECT closed_at FROM batch_group
             WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4 {lock}"
        ),
        &params,
    )?;
    Ok(row.try_get(0)?)
}

/// The group's item count: its base (`batch_group.received`) plus every connection's part.
const RECEIVED: &str = "g.received + coalesce((SELECT sum(r.received) FROM batch_group_received r
     WHERE r.stage = g.stage AND r.tenant = g.tenant AND r.run_id = g.run_id
       AND r.group_key = g.group_key), 0)::integer";

pub(crate) fn set_expected(
    c: &mut Prepared<'_>,
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

pub(crate) fn progress(
    c: &mut Prepared<'_>,
    key: &BatchKey,
) -> Result<(u32, Option<u32>), LedgerError> {
    let row = c.query_opt(
        &format!(
            "SELECT {RECEIVED}, g.expected FROM batch_group g
             WHERE g.stage = $1 AND g.tenant = $2 AND g.run_id = $3 AND g.group_key = $4"
        ),
        &[&key.stage, &key.tenant, &key.run_id, &key.group],
    )?;
    let Some(r) = row else {
        return Ok((0, None));
    };
    let expected: Option<i32> = r.try_get(1)?;
    Ok((count(r.try_get(0)?)?, expected.map(count).transpose()?))
}

pub(crate) fn close_if_complete(c: &mut Prepared<'_>, key: &BatchKey) -> Result<bool, LedgerError> {
    let params: [&(dyn postgres::types::ToSql + Sync); 4] =
        [&key.stage, &key.tenant, &key.run_id, &key.group];
    // Unannounced or closed: nothing to do, and no lock taken (an add holding the group
    // shared must not ask for it exclusively while others hold it too).
    let state = c.query_opt(
        "SELECT expected IS NOT NULL AND closed_at IS NULL FROM batch_group
         WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4",
        &params,
    )?;
    if !matches!(
        state.map(|r| r.try_get::<_, bool>(0)).transpose()?,
        Some(true)
    ) {
        return Ok(false);
    }
    // Locked first (waiting for the adds in flight to commit), counted after: in READ
    // COMMITTED the count's own snapshot then sees every add that was waited for.
    c.query_opt(
        "SELECT 1 FROM batch_group
         WHERE stage = $1 AND tenant = $2 AND run_id = $3 AND group_key = $4
         FOR UPDATE",
        &params,
    )?;
    let row = c.query_opt(
        &format!(
            "SELECT {RECEIVED}, g.expected, g.closed_at FROM batch_group g
             WHERE g.stage = $1 AND g.tenant = $2 AND g.run_id = $3 AND g.group_key = $4"
        ),
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
pub(crate) fn visit_items<E, F>(c: &mut Prepared<'_>, key: &BatchKey, mut visit: F) -> Result<(), E>
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
        .map_err(E::from)?;
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
    c: &mut Prepared<'_>,
    stage: &str,
) -> Result<Vec<(BatchKey, u32, Option<u32>)>, LedgerError> {
    let rows = c.query(
        &format!(
            "SELECT g.tenant, g.run_id, g.group_key, g.expected, {RECEIVED} FROM batch_group g
             WHERE g.stage = $1 AND g.closed_at IS NULL
             ORDER BY g.tenant COLLATE \"C\", g.run_id COLLATE \"C\", g.group_key COLLATE \"C\""
        ),
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
