-- sepa.batch's credit notes (avoirs), PostgreSQL (the same schema as ../sepa_0002.sql).
CREATE TABLE sepa_credit_note (
    tenant       text NOT NULL,
    note_key     text NOT NULL,
    origin_key   text NOT NULL,
    amount_cents bigint NOT NULL,
    state        text NOT NULL,
    received_at  text NOT NULL,
    PRIMARY KEY (tenant, note_key)
);
CREATE INDEX sepa_credit_note_origin ON sepa_credit_note (tenant, origin_key);
