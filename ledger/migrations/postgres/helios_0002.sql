-- PostgreSQL: the same schema as ../helios_0002.sql for SQLite.
-- helios.titres: the events it must publish, queued in the transaction that decided them
-- (today the titre.rejected of each invoice refused before numbering, source `local`), and
-- handed to the runtime at the end of a later call of the stage, which marks them handed in
-- the same transaction as its message's dedupe record. A crash in between leaves them
-- queued: the next message of the tenant (the redelivery at the latest) publishes them.
-- The message id is the event's deterministic one: queueing the same fact again is a no-op.
CREATE TABLE helios_event (
    message_id  text COLLATE "C" PRIMARY KEY,
    tenant      text NOT NULL,
    kind        text NOT NULL,       -- the event type (titre.rejected)
    body        bytea NOT NULL,       -- the event's JSON
    created_at  text COLLATE "C" NOT NULL,
    handed_at   text                 -- handed to the runtime (published with its message)
);
CREATE INDEX helios_event_pending ON helios_event (tenant) WHERE handed_at IS NULL;
