-- payfip.register: credit notes (credit_note.issued) and the invoice each one reduces.
-- Once the credit note's réduction titre is taken in charge (its row in payfip_titre, from
-- the PES Retour), what can be paid online of the original is lowered by its amount; an
-- invoice cancelled in full is no longer payable. Kept apart from payfip_invoice so that
-- the order of arrival does not matter.
CREATE TABLE payfip_credit_note (
    tenant          TEXT NOT NULL,
    exercice        INTEGER NOT NULL,   -- the credit note's own key
    number          TEXT NOT NULL,
    origin_exercice INTEGER NOT NULL,   -- the invoice it reduces
    origin_number   TEXT NOT NULL,
    amount_cents    INTEGER NOT NULL,   -- what it takes off, > 0
    PRIMARY KEY (tenant, exercice, number)
) WITHOUT ROWID;
CREATE INDEX payfip_credit_note_origin ON payfip_credit_note (tenant, origin_exercice, origin_number);
