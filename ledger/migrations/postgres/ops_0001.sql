-- Ops tooling (`encaisse dlq`), PostgreSQL (the same schema as ../ops_0001.sql for SQLite):
-- the parked-message store drained from every stage's parking lot, and the actions taken on
-- each message. Times are the ledger's RFC 3339 UTC text; ordered text is COLLATE "C" so
-- that it sorts by bytes as on SQLite.

CREATE TABLE parked_message (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- `encaisse dlq show 42`
    -- SHA-256 (hex) of the drained queue, the AMQP properties and the body: a redelivery of
    -- the same parked message is stored once.
    fingerprint         text NOT NULL UNIQUE,
    queue               text NOT NULL,
    stage               text COLLATE "C" NOT NULL,
    parked_by           text NOT NULL CHECK (parked_by IN ('runtime', 'broker')),
    origin_queue        text NOT NULL,            -- where a replay goes
    origin_exchange     text,
    origin_routing_key  text,
    message_id          text,
    message_type        text,
    tenant              text COLLATE "C",
    invoice_key         text,
    error_class         text COLLATE "C" NOT NULL,
    error_kind          text COLLATE "C" NOT NULL,
    error               text NOT NULL,
    attempts            bigint NOT NULL,
    first_failure_at    text,
    last_failure_at     text,
    parked_at           text COLLATE "C" NOT NULL,
    stored_at           text NOT NULL,
    properties          bytea NOT NULL,           -- the AMQP property list, wire-encoded
    body                bytea NOT NULL,
    state               text NOT NULL DEFAULT 'parked'
                        CHECK (state IN ('parked', 'replayed', 'discarded')),
    resolved_at         text,
    resolved_by         text,
    resolution_reason   text                      -- mandatory for a discard
);
CREATE INDEX parked_message_state ON parked_message (state, parked_at);
CREATE INDEX parked_message_group ON parked_message (stage, error_kind, error_class);
CREATE INDEX parked_message_invoice ON parked_message (invoice_key) WHERE invoice_key IS NOT NULL;
CREATE INDEX parked_message_message ON parked_message (stage, message_id);

CREATE TABLE parked_action (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parked_id   bigint NOT NULL REFERENCES parked_message (id),
    action      text NOT NULL CHECK (action IN ('replay', 'discard')),
    at          text COLLATE "C" NOT NULL,
    by          text NOT NULL,
    reason      text,
    detail      text                              -- JSON: where a replay was published
);
CREATE INDEX parked_action_parked ON parked_action (parked_id, at);
