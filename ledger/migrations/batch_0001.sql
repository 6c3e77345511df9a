-- Billing runs as units (DESIGN §1): a stage collects a run's invoices per group (budget,
-- régie) and closes the group exactly once, when the count announced by billing_run.closed
-- is reached — even after a crash or a redelivery.

CREATE TABLE batch_item (
    stage        TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    item_key     TEXT NOT NULL,      -- invoice key tenant/exercice/number
    run_id       TEXT NOT NULL,
    group_key    TEXT NOT NULL,      -- budget (or régie) key
    content_hash TEXT NOT NULL,
    payload      BLOB NOT NULL,      -- the event body (JSON)
    received_at  TEXT NOT NULL,
    PRIMARY KEY (stage, tenant, item_key)
) WITHOUT ROWID;
CREATE INDEX batch_item_group ON batch_item (stage, tenant, run_id, group_key);

CREATE TABLE batch_group (
    stage      TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    expected   INTEGER,              -- NULL until billing_run.closed arrives
    closed_at  TEXT,                 -- set once, when the batch was handed to the stage
    PRIMARY KEY (stage, tenant, run_id, group_key)
) WITHOUT ROWID;
