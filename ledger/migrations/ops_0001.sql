-- Ops tooling (`encaisse dlq`): the parked-message store. `ops.parking` drains every stage's
-- parking lot (`<prefix>.<stage>.parked`) into `parked_message`, so that ops can list, group,
-- inspect, replay and discard parked messages without consuming or reordering the broker's
-- queues. Times are RFC 3339 UTC text with microseconds (they sort as text).

CREATE TABLE parked_message (
    id                  INTEGER PRIMARY KEY,      -- the ID ops type: `encaisse dlq show 42`
    -- SHA-256 (hex) of the drained queue, the AMQP properties and the body: a redelivery of the
    -- same parked message (lost ack) is stored once; the same message parked again after a
    -- replay carries new failure headers, hence a new row.
    fingerprint         TEXT NOT NULL UNIQUE,
    queue               TEXT NOT NULL,            -- the parking lot it was drained from
    stage               TEXT NOT NULL,            -- the stage that failed (`helios.titres`)
    parked_by           TEXT NOT NULL CHECK (parked_by IN ('runtime', 'broker')),
    origin_queue        TEXT NOT NULL,            -- where a replay goes (the stage's work queue)
    origin_exchange     TEXT,                     -- how it was first routed (information)
    origin_routing_key  TEXT,
    message_id          TEXT,                     -- AMQP message_id (deterministic for events)
    message_type        TEXT,                     -- AMQP type (`invoice.issued`)
    tenant              TEXT,
    invoice_key         TEXT,                     -- tenant/exercice/number when about an invoice
    error_class         TEXT NOT NULL,            -- transient, permanent, poison
    error_kind          TEXT NOT NULL,            -- short machine kind: the group key with stage
    error               TEXT NOT NULL,            -- the last failure, for people
    attempts            INTEGER NOT NULL,
    first_failure_at    TEXT,
    last_failure_at     TEXT,
    parked_at           TEXT NOT NULL,
    stored_at           TEXT NOT NULL,
    -- The message exactly as drained: the AMQP 0-9-1 basic property list in its wire encoding
    -- (every header with its type, the broker's `x-death` included) and the body bytes.
    properties          BLOB NOT NULL,
    body                BLOB NOT NULL,
    state               TEXT NOT NULL DEFAULT 'parked'
                        CHECK (state IN ('parked', 'replayed', 'discarded')),
    resolved_at         TEXT,                     -- when it was replayed or discarded
    resolved_by         TEXT,                     -- who ($USER or --by)
    resolution_reason   TEXT                      -- mandatory for a discard
);
CREATE INDEX parked_message_state ON parked_message (state, parked_at);
CREATE INDEX parked_message_group ON parked_message (stage, error_kind, error_class);
CREATE INDEX parked_message_invoice ON parked_message (invoice_key) WHERE invoice_key IS NOT NULL;
CREATE INDEX parked_message_message ON parked_message (stage, message_id);

-- Every action taken on a parked message, kept for audit (a discarded message's row and body
-- stay too: discarding only changes its state).
CREATE TABLE parked_action (
    id          INTEGER PRIMARY KEY,
    parked_id   INTEGER NOT NULL REFERENCES parked_message (id),
    action      TEXT NOT NULL CHECK (action IN ('replay', 'discard')),
    at          TEXT NOT NULL,
    by          TEXT NOT NULL,
    reason      TEXT,
    detail      TEXT                              -- JSON: where a replay was published
);
CREATE INDEX parked_action_parked ON parked_action (parked_id, at);
