//! Coordination of several daemons sharing one ledger (the core area, `core_0002`): leases
//! for once-only work and claims of inbox files (docs/scaling.md).
//!
//! Both are rows with an expiry rather than advisory locks: an advisory lock lives as long as
//! a database session, which a pool or a proxy does not keep, and a daemon that hangs while
//! connected would keep it forever; a row expires on its own. Expiry is decided on the
//! database's clock on PostgreSQL (`clock_timestamp()`), so a daemon whose clock drifts
//! cannot take a lease early. On SQLite one daemon runs per ledger (its `flock` guard), and
//! the clock is the daemon's.
//!
//! The SQL is one portable text per operation ([`crate::sql`]): upserts whose `DO UPDATE`
//! has a `WHERE` and a `RETURNING`, which return no row when the condition refused the
//! change, on both backends. On PostgreSQL the conflicting row is locked by the upsert, so of
//! two daemons acquiring one expired lease the second waits for the first to commit, then
//! sees a live lease of another holder and gets nothing.

use crate::error::LedgerError;
use crate::stores::Tx;

/// A lease held: its fencing token (one more at every change of holder) and when it ends on
/// the database's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    pub fencing: i64,
    pub expires_at_ms: i64,
}

/// A lease row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    pub fencing: i64,
    pub acquired_at_ms: i64,
    pub expires_at_ms: i64,
}

/// One version of an inbox file: where it is (tenant, area, name) and what it is (size and
/// modification time), so a file dropped again under the same name is another claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxFileKey {
    pub tenant: String,
    pub area: String,
    pub name: String,
    pub size_bytes: i64,
    pub mtime_ns: i64,
}

/// A claim row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxClaim {
    pub key: InboxFileKey,
    pub claimed_by: String,
    pub claimed_at: String,
    pub expires_at_ms: i64,
    pub done_at: Option<String>,
}

/// The operations of the core area that let several daemons share one ledger.
pub trait ClusterStore {
    /// Now, in milliseconds since the Unix epoch, on the clock expiry is decided by: the
    /// database's on PostgreSQL, the daemon's on SQLite.
    fn ledger_now_ms(&mut self) -> Result<i64, LedgerError>;
    /// Acquires the lease `name` for `holder` for `ttl_ms` from now, or renews it when
    /// `holder` has it: `Some` when `holder` holds it after this call, `None` when another
    /// holder's lease has not expired. A change of holder increments the fencing token.
    fn acquire_or_renew_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<LeaseGrant>, LedgerError>;
    /// Ends `holder`'s lease now (the row and its token stay), so that another daemon takes
    /// it at its next attempt instead of after the expiry; `false` when `holder` did not hold it.
    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, LedgerError>;
    /// Whether `fencing` is still the token of a live lease `name` (work fenced by it may
    /// commit). Locks the row until the transaction ends on PostgreSQL (`FOR SHARE`), so a
    /// takeover waits for the effect checked under the old token.
    fn lease_is_current(&mut self, name: &str, fencing: i64) -> Result<bool, LedgerError>;
    /// Every lease, by name (`encaisse check`, the tests, ops).
    fn leases(&mut self) -> Result<Vec<LeaseRow>, LedgerError>;
    /// Claims an inbox file for `holder` until `ttl_ms` from now, before it is read: `true`
    /// when `holder` has it after this call (a new claim, its own claim renewed, a claim whose
    /// holder let it expire taken over, or a finished claim of a file dropped again), `false`
    /// when another holder's claim is live. `take_over`: any other claim is taken, live or
    /// not — for the only daemon of a ledger, whose guard proves the earlier holder dead.
    fn claim_inbox_file(
        &mut self,
        key: &InboxFileKey,
        holder: &str,
        claimed_at: &str,
        ttl_ms: i64,
        take_over: bool,
    ) -> Result<bool, LedgerError>;
    /// Extends `holder`'s unfinished claim by `ttl_ms` from now; `false` when it is not
    /// `holder`'s any more (it expired and another daemon took it over).
    fn renew_inbox_claim(
        &mut self,
        key: &InboxFileKey,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, LedgerError>;
    /// Marks `holder`'s claim done (the file was moved out of the inbox) at `done_at`.
    fn finish_inbox_claim(
        &mut self,
        key: &InboxFileKey,
        holder: &str,
        done_at: &str,
    ) -> Result<bool, LedgerError>;
    /// Gives an unfinished claim up now (the file stays in the inbox for another try, by
    /// whichever daemon scans it first).
    fn release_inbox_claim(
        &mut self,
        key: &InboxFileKey,
        holder: &str,
    ) -> Result<bool, LedgerError>;
    /// The claim of one file version.
    fn inbox_claim(&mut self, key: &InboxFileKey) -> Result<Option<InboxClaim>, LedgerError>;
    /// Deletes the finished claims done before `before` (the ledger's time format).
    fn prune_inbox_claims(&mut self, before: &str) -> Result<usize, LedgerError>;
}

const CLAIM_COLUMNS: &str = "tenant, area, name, size_bytes, mtime_ns, claimed_by, claimed_at, \
                             expires_at_ms, done_at";

fn read_claim(row: &crate::sql::Row<'_>) -> Result<InboxClaim, LedgerError> {
    Ok(InboxClaim {
        key: InboxFileKey {
            tenant: row.get(0)?,
            area: row.get(1)?,
            name: row.get(2)?,
            size_bytes: row.get(3)?,
            mtime_ns: row.get(4)?,
        },
        claimed_by: row.get(5)?,
        claimed_at: row.get(6)?,
        expires_at_ms: row.get(7)?,
        done_at: row.get(8)?,
    })
}

/// Sets `column` to `value` in `holder`'s unfinished claim of `key`; whether it was
/// `holder`'s.
fn update_own_claim(
    tx: &mut Tx<'_>,
    column: &str,
    key: &InboxFileKey,
    holder: &str,
    value: &dyn crate::sql::Param,
) -> Result<bool, LedgerError> {
    let changed = tx.execute(
        &format!(
            "UPDATE inbox_claim SET {column} = ?7
             WHERE tenant = ?1 AND area = ?2 AND name = ?3 AND size_bytes = ?4 AND mtime_ns = ?5
               AND claimed_by = ?6 AND done_at IS NULL"
        ),
        &[
            &key.tenant,
            &key.area,
            &key.name,
            &key.size_bytes,
            &key.mtime_ns,
            &holder,
            value,
        ],
    )?;
    Ok(changed == 1)
}

impl ClusterStore for Tx<'_> {
    fn ledger_now_ms(&mut self) -> Result<i64, LedgerError> {
        if self.is_postgres() {
            // clock_timestamp(), not now(): a transaction that waited for a row lock decides
            // with the time it acts at.
            self.query_one(
                "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)",
                &[],
                |row| row.get(0),
            )
        } else {
            Ok(chrono::Utc::now().timestamp_millis())
        }
    }

    fn acquire_or_renew_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<LeaseGrant>, LedgerError> {
        let now = self.ledger_now_ms()?;
        let expires = now.saturating_add(ttl_ms.max(0));
        self.query_opt(
            "INSERT INTO lease (name, holder, fencing, acquired_at_ms, expires_at_ms)
             VALUES (?1, ?2, 1, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET
                 fencing = CASE WHEN lease.holder = excluded.holder
                                THEN lease.fencing ELSE lease.fencing + 1 END,
                 acquired_at_ms = CASE WHEN lease.holder = excluded.holder
                                       THEN lease.acquired_at_ms ELSE excluded.acquired_at_ms END,
                 holder = excluded.holder,
                 expires_at_ms = excluded.expires_at_ms
             WHERE lease.holder = excluded.holder OR lease.expires_at_ms <= ?3
             RETURNING fencing, expires_at_ms",
            &[&name, &holder, &now, &expires],
            |row| {
                Ok(LeaseGrant {
                    fencing: row.get(0)?,
                    expires_at_ms: row.get(1)?,
                })
            },
        )
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<bool, LedgerError> {
        let now = self.ledger_now_ms()?;
        let changed = self.execute(
            "UPDATE lease SET expires_at_ms = ?3
             WHERE name = ?1 AND holder = ?2 AND expires_at_ms > ?3",
            &[&name, &holder, &now],
        )?;
        Ok(changed == 1)
    }

    fn lease_is_current(&mut self, name: &str, fencing: i64) -> Result<bool, LedgerError> {
        let now = self.ledger_now_ms()?;
        let sql = if self.is_postgres() {
            "SELECT fencing FROM lease WHERE name = ?1 AND fencing = ?2 AND expires_at_ms > ?3
             FOR SHARE"
        } else {
            "SELECT fencing FROM lease WHERE name = ?1 AND fencing = ?2 AND expires_at_ms > ?3"
        };
        Ok(self
            .query_opt(sql, &[&name, &fencing, &now], |row| row.get::<i64>(0))?
            .is_some())
    }

    fn leases(&mut self) -> Result<Vec<LeaseRow>, LedgerError> {
        self.query_all(
            "SELECT name, holder, fencing, acquired_at_ms, expires_at_ms FROM lease ORDER BY name",
            &[],
            |row| {
                Ok(LeaseRow {
                    name: row.get(0)?,
                    holder: row.get(1)?,
                    fencing: row.get(2)?,
                    acquired_at_ms: row.get(3)?,
                    expires_at_ms: row.get(4)?,
                })
            },
        )
    }

    fn claim_inbox_file(
        &mut self,
        key: &InboxFileKey,
        holder: &str,
        claimed_at: &str,
        ttl_ms: i64,
        take_over: bool,
    ) -> Result<bool, LedgerError> {
        let now = self.ledger_now_ms()?;
        let expires = now.saturating_add(ttl_ms.max(0));
        let claimed = self.query_opt(
            "INSERT INTO inbox_claim
                 (tenant, area, name, size_bytes, mtime_ns, claimed_by, claimed_at, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tenant, area, name, size_bytes, mtime_ns) DO UPDATE SET
                 claimed_by = excluded.claimed_by,
                 claimed_at = excluded.claimed_at,
                 expires_at_ms = excluded.expires_at_ms,
                 done_at = NULL
             WHERE inbox_claim.claimed_by = excluded.claimed_by
                OR inbox_claim.expires_at_ms <= ?9
                OR inbox_claim.done_at IS NOT NULL
                OR ?10 = 1
             RETURNING expires_at_ms",
            &[
                &key.tenant,
                &key.area,
                &key.name,
                &key.size_bytes,
                &key.mtime_ns,
                &holder,
                &claimed_at,
                &expires,
                &now,
                &take_over,
            ],
            |row| row.get::<i64>(0),
        )?;
        Ok(claimed.is_some())
    }

    fn renew_inbox_claim(
        &mut self,
        key: &InboxFileKey,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, LedgerError> {
        let expires = self.ledger_now_ms()?.saturating_add(ttl_ms.max(0));
        update_own_claim(self, "expires_at_ms", key, holder, &expires)
    }

    fn finish_inbox_claim(
        &mut self,
        key: &InboxFileKey,
        holder: &str,
        done_at: &str,
    ) -> Result<bool, LedgerError> {
        update_own_claim(self, "done_at", key, holder, &done_at)
    }

    fn release_inbox_claim(
        &mut self,
        key: &InboxFileKey,
        holder: &str,
    ) -> Result<bool, LedgerError> {
        let now = self.ledger_now_ms()?;
        update_own_claim(self, "expires_at_ms", key, holder, &now)
    }

    fn inbox_claim(&mut self, key: &InboxFileKey) -> Result<Option<InboxClaim>, LedgerError> {
        let sql = format!(
            "SELECT {CLAIM_COLUMNS} FROM inbox_claim
             WHERE tenant = ?1 AND area = ?2 AND name = ?3 AND size_bytes = ?4 AND mtime_ns = ?5"
        );
        self.query_opt(
            &sql,
            &[
                &key.tenant,
                &key.area,
                &key.name,
                &key.size_bytes,
                &key.mtime_ns,
            ],
            read_claim,
        )
    }

    fn prune_inbox_claims(&mut self, before: &str) -> Result<usize, LedgerError> {
        self.execute(
            "DELETE FROM inbox_claim WHERE done_at IS NOT NULL AND done_at < ?1",
            &[&before],
        )
    }
}
