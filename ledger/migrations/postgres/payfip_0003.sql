-- payfip.register, PostgreSQL (the same schema as ../payfip_0003.sql for SQLite): credit
-- notes (credit_note.issued) and the invoice each one reduces. Once the credit note's
-- réduction titre is taken in charge (its row in payfip_titre, from the PES Retour), what can
-- be paid online of the original is lowered by its amount; an invoice cancelled in full is
-- no longer payable. Kept apart from payfip_invoice so that the order of arrival does not
-- matter.
CREATE TABLE payfip_credit_note (
    tenant          text NOT NULL,
    exercice        bigint NOT NULL,   -- the credit note's own key
    number          text NOT NULL,
    origin_exercice bigint NOT NULL,   -- the invoice it reduces
    origin_number   text NOT NULL,
    amount_cents    bigint NOT NULL,   -- what it takes off, > 0
    PRIMARY KEY (tenant, exercice, number)
);
CREATE INDEX payfip_credit_note_origin ON payfip_credit_note (tenant, origin_exercice, origin_number);

-- The web console's index on this area's table (on SQLite it comes with ../ops_0002.sql,
-- which ran before this area had a PostgreSQL schema): online payments resolved in a
-- month, with their commission (reconciliation).
CREATE INDEX payfip_operation_resolved ON payfip_operation (tenant, resolved_at)
    WHERE resolved_at IS NOT NULL;
