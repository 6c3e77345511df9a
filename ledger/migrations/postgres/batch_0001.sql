-- Billing runs as units, PostgreSQL (the same schema as ../batch_0001.sql for SQLite): a
-- stage collects a run's invoices per group and closes the group exactly once.

CREATE TABLE batch_item (
    stage        text NOT NULL,
    tenant       text NOT NULL,
    item_key     text COLLATE "C" NOT NULL,  -- invoice key tenant/exercice/number
    run_id       text NOT NULL,
    group_key    text NOT NULL,              -- budget (or régie) key
    content_hash text NOT NULL,
    payload      bytea NOT NULL,             -- the event body (JSON)
    received_at  text NOT NULL,
    PRIMARY KEY (stage, tenant, item_key)
);
CREATE INDEX batch_item_group ON batch_item (stage, tenant, run_id, group_key);

CREATE TABLE batch_group (
    stage      text NOT NULL,
    tenant     text COLLATE "C" NOT NULL,
    run_id     text COLLATE "C" NOT NULL,
    group_key  text COLLATE "C" NOT NULL,
    expected   integer,                      -- NULL until billing_run.closed arrives
    closed_at  text,                         -- set once, when the batch was handed to the stage
    PRIMARY KEY (stage, tenant, run_id, group_key)
);
