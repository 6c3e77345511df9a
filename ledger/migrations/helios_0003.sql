-- helios.titres: credit notes (avoirs) against invoices sent as titres. Each credit note
-- received once (by its key); its fate: waiting for its original's titre, refused
-- (reported to Polyfac, never sent), or planned as a réduction titre (a helios_titre row of
-- TypBord 02 under the credit note's own key, in a helios_file of its own). A réduction
-- titre the Trésorerie rejected no longer counts against what remains of its original.
CREATE TABLE helios_reduction (
    tenant           TEXT NOT NULL,
    note_key         TEXT NOT NULL,     -- tenant/exercice/number of the credit note
    origin_key       TEXT NOT NULL,     -- tenant/exercice/number of the original invoice
    content_hash     TEXT NOT NULL,     -- the credit note's, to spot a changed re-send
    body             BLOB NOT NULL,     -- the credit_note.issued JSON (rendering, waiting)
    state            TEXT NOT NULL,     -- waiting, refused, planned, rejected
    reason           TEXT,              -- why it was refused, or rejected by the Trésorerie
    exercice         INTEGER,           -- the réduction titre (planned), with the original's
    id_pce           INTEGER,           --   exercice and IdPce (IdPceOrig)
    origin_id_pce    INTEGER,
    total_cents      INTEGER NOT NULL,  -- what it takes off (> 0)
    received_at      TEXT NOT NULL,
    PRIMARY KEY (tenant, note_key)
) WITHOUT ROWID;
CREATE INDEX helios_reduction_origin ON helios_reduction (tenant, origin_key);
CREATE INDEX helios_reduction_waiting ON helios_reduction (tenant) WHERE state = 'waiting';

-- Each line of a réduction titre: which original line it reduces, by how much, and the
-- imputation written (the original line's).
CREATE TABLE helios_reduction_line (
    tenant         TEXT NOT NULL,
    note_key       TEXT NOT NULL,
    id_ligne       INTEGER NOT NULL,
    id_ligne_orig  INTEGER NOT NULL,
    amount_cents   INTEGER NOT NULL,
    cod_prod_loc   TEXT NOT NULL,
    nature         TEXT NOT NULL,
    fonction       TEXT,
    label          TEXT NOT NULL,
    PRIMARY KEY (tenant, note_key, id_ligne)
) WITHOUT ROWID;
