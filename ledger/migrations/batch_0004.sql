-- The table PostgreSQL counts a group's items in, one row per connection adding to it
-- (postgres/batch_0004.sql: concurrent adds must not all update the group's row). SQLite's
-- one writer keeps the count in batch_group.received and leaves this table empty; it exists
-- so that both backends hold the same tables (`encaisse ledger migrate` copies them table by
-- table, and an emptied table copies as empty).
CREATE TABLE batch_group_received (
    stage      TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    connection INTEGER NOT NULL,
    received   INTEGER NOT NULL,
    PRIMARY KEY (stage, tenant, run_id, group_key, connection)
);
