-- A group's item count in parts, one row per database connection that added items (its
-- backend pid): concurrent adds to one group then update different rows. Counting on the
-- group's own row made that row a lock every add held until its commit's WAL flush, so a
-- stage's adds to one billing run ran one at a time. The group's `received` stays as the
-- base (what was counted before this table, or copied by `encaisse ledger migrate`); the
-- count is that base plus these parts. The group's row is still how an add and the close
-- exclude each other: an add holds it `FOR KEY SHARE` (adds do not block one another), the
-- close `FOR UPDATE`.
CREATE TABLE batch_group_received (
    stage      text NOT NULL,
    tenant     text COLLATE "C" NOT NULL,
    run_id     text COLLATE "C" NOT NULL,
    group_key  text COLLATE "C" NOT NULL,
    connection integer NOT NULL,
    received   integer NOT NULL,
    PRIMARY KEY (stage, tenant, run_id, group_key, connection)
);
