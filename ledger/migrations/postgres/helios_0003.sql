-- PostgreSQL: the same schema as ../helios_0003.sql for SQLite.
-- helios.titres: credit notes (avoirs) against invoices sent as titres. Each credit note
-- received once (by its key); its fate: waiting for its original's titre, refused
-- (reported to Polyfac, never sent), or planned as a réduction titre (a helios_titre row of
-- TypBord 02 under the credit note's own key, in a helios_file of its own). A réduction
-- titre the Trésorerie rejected no longer counts against what remains of its original.
CREATE TABLE helios_reduction (
    tenant           text NOT NULL,
    note_key         text COLLATE "C" NOT NULL, -- tenant/exercice/number of the credit note
    origin_key       text NOT NULL,     -- tenant/exercice/number of the original invoice
    content_hash     text NOT NULL,     -- the credit note's, to spot a changed re-send
    body             bytea NOT NULL,     -- the credit_note.issued JSON (rendering, waiting)
    state            text NOT NULL,     -- waiting, refused, planned, rejected
    reason           text,              -- why it was refused, or rejected by the Trésorerie
    exercice         bigint,           -- the réduction titre (planned), with the original's
    id_pce           bigint,           --   exercice and IdPce (IdPceOrig)
    origin_id_pce    bigint,
    total_cents      bigint NOT NULL,  -- what it takes off (> 0)
    received_at      text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, note_key)
);
CREATE INDEX helios_reduction_origin ON helios_reduction (tenant, origin_key);
CREATE INDEX helios_reduction_waiting ON helios_reduction (tenant) WHERE state = 'waiting';

-- Each line of a réduction titre: which original line it reduces, by how much, and the
-- imputation written (the original line's).
CREATE TABLE helios_reduction_line (
    tenant         text NOT NULL,
    note_key       text NOT NULL,
    id_ligne       bigint NOT NULL,
    id_ligne_orig  bigint NOT NULL,
    amount_cents   bigint NOT NULL,
    cod_prod_loc   text NOT NULL,
    nature         text NOT NULL,
    fonction       text,
    label          text NOT NULL,
    PRIMARY KEY (tenant, note_key, id_ligne)
);
