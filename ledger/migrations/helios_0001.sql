-- The Hélios stages (docs/helios.md, "The stages"): PES Aller files planned then written by
-- helios.titres with their bordereaux and titres (the PES numbering), the invoices refused
-- before numbering, the reports waiting to be written, and what helios.returns learnt from
-- the Trésorerie's files. Times are RFC 3339 UTC text, dates ISO `YYYY-MM-DD` (Europe/Paris),
-- amounts integer cents. No personal data: invoices are named by their key.
--
-- A budget is named as Hélios names it: (cod_col, cod_bud) of the tenant. Numbering follows
-- it, so renaming a budget's key in the configuration does not restart the numbers.
--   IdBord: gapless per (tenant, cod_col, cod_bud, exercice, typ_bord), never reused;
--   IdPce:  unique per (tenant, cod_col, cod_bud, exercice), never reused.
-- Rows of helios_bordereau and helios_titre are never deleted: the next number is the
-- largest so far + 1, allocated in the write transaction that plans the file.

-- One PES Aller file per billing run, budget and exercice, planned (everything needed to
-- render it again byte for byte: numbers, date, name, and where its invoices are), then
-- written (written_at).
CREATE TABLE helios_file (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT NOT NULL,
    budget         TEXT NOT NULL,     -- budget key in the configuration
    cod_col        TEXT NOT NULL,
    cod_bud        TEXT NOT NULL,
    exercice       INTEGER NOT NULL,
    typ_bord       TEXT NOT NULL,     -- 01 titres ordinaires, 06 ORMC
    file_name      TEXT NOT NULL,     -- also Enveloppe/Parametres/NomFic
    bordereau_date TEXT NOT NULL,     -- DteBordEm and DteStr, fixed when planned
    run_id         TEXT NOT NULL,     -- the billing run (batch_item: stage helios.titres,
    batch_group    TEXT NOT NULL,     --   this run and group hold the invoices)
    bordereaux     INTEGER NOT NULL,
    pieces         INTEGER NOT NULL,
    total_cents    INTEGER NOT NULL,
    planned_at     TEXT NOT NULL,
    written_at     TEXT,              -- NULL until emitted (emit_file) and recorded
    sha256         TEXT,
    UNIQUE (tenant, file_name)
);
CREATE INDEX helios_file_unwritten ON helios_file (tenant) WHERE written_at IS NULL;

-- Each bordereau of a file, and the guichet's verdict on it (PES_ACQUIT).
CREATE TABLE helios_bordereau (
    tenant       TEXT NOT NULL,
    cod_col      TEXT NOT NULL,
    cod_bud      TEXT NOT NULL,
    exercice     INTEGER NOT NULL,
    typ_bord     TEXT NOT NULL,
    id_bord      INTEGER NOT NULL,
    file_id      INTEGER NOT NULL REFERENCES helios_file (id),
    pieces       INTEGER NOT NULL,
    total_cents  INTEGER NOT NULL,
    ack_state    TEXT,                -- NULL (no acquit yet), accepted, rejected
    ack_file     TEXT,                -- the acquit's file name
    ack_on       TEXT,                -- the acquit's date
    ack_errors   TEXT,                -- the bordereau's errors, for ops
    PRIMARY KEY (tenant, cod_col, cod_bud, exercice, typ_bord, id_bord)
) WITHOUT ROWID;
CREATE INDEX helios_bordereau_file ON helios_bordereau (file_id);
CREATE INDEX helios_bordereau_rejected ON helios_bordereau (tenant) WHERE ack_state = 'rejected';

-- Each titre: the invoice ↔ titre mapping (exactly one titre per invoice).
CREATE TABLE helios_titre (
    tenant           TEXT NOT NULL,
    cod_col          TEXT NOT NULL,
    cod_bud          TEXT NOT NULL,
    exercice         INTEGER NOT NULL,
    id_pce           INTEGER NOT NULL,
    typ_bord         TEXT NOT NULL,
    id_bord          INTEGER NOT NULL,
    position         INTEGER NOT NULL,  -- order of the pièce in its bordereau (0, 1, …)
    invoice_key      TEXT NOT NULL,     -- tenant/exercice/number
    invoice_exercice INTEGER NOT NULL,
    invoice_number   TEXT NOT NULL,
    budget           TEXT NOT NULL,
    payment_mode     TEXT NOT NULL,     -- PRELEVEMENT, TIP, TIPI, AUTRE
    sequence         TEXT,              -- SEPA sequence written (FRST, RCUR…), direct debit only
    num_dette        TEXT,              -- ORMC: NumDette and Per, as written and returned
    per              TEXT,              --   in InfoORMC
    total_cents      INTEGER NOT NULL,
    PRIMARY KEY (tenant, cod_col, cod_bud, exercice, id_pce)
) WITHOUT ROWID;
CREATE UNIQUE INDEX helios_titre_invoice ON helios_titre (tenant, invoice_key);
CREATE INDEX helios_titre_bordereau
    ON helios_titre (tenant, cod_col, cod_bud, exercice, typ_bord, id_bord, position);
CREATE UNIQUE INDEX helios_titre_dette
    ON helios_titre (tenant, cod_col, cod_bud, exercice, num_dette, per) WHERE num_dette IS NOT NULL;

-- Each line of a titre as written: IdLigne and the invoice line it carries.
CREATE TABLE helios_titre_line (
    tenant       TEXT NOT NULL,
    cod_col      TEXT NOT NULL,
    cod_bud      TEXT NOT NULL,
    exercice     INTEGER NOT NULL,
    id_pce       INTEGER NOT NULL,
    id_ligne     INTEGER NOT NULL,
    invoice_line INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    PRIMARY KEY (tenant, cod_col, cod_bud, exercice, id_pce, id_ligne)
) WITHOUT ROWID;

-- Invoices of a closed run that could not become a titre (checked before numbering, so
-- they consume no number): the run still closes; they are reported.
CREATE TABLE helios_refused (
    tenant      TEXT NOT NULL,
    invoice_key TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    budget      TEXT NOT NULL,
    field       TEXT NOT NULL,
    rule        TEXT NOT NULL,
    refused_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, invoice_key)
) WITHOUT ROWID;

-- Reports for people (refused invoices of a run), planned with their bytes, then written.
CREATE TABLE helios_report (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    path        TEXT NOT NULL UNIQUE,   -- relative to the data directory
    bytes       BLOB NOT NULL,
    planned_at  TEXT NOT NULL,
    written_at  TEXT
);
CREATE INDEX helios_report_unwritten ON helios_report (tenant) WHERE written_at IS NULL;

-- helios.returns: the émargements each titre line carried in the last PES Retour that
-- listed it (reconciliation by state): JSON array of {origin, date, amount, occurrence}.
-- A PES Retour dated before file_date never changes a line (an older file read late must
-- not undo a newer one).
CREATE TABLE helios_emargement (
    tenant     TEXT NOT NULL,
    line_key   TEXT NOT NULL,         -- CodCol/CodBud/exer/TypBord/IdBord/IdPce/IdLigne
    sightings  TEXT NOT NULL,
    file       TEXT NOT NULL,         -- the PES Retour that said so
    file_date  TEXT NOT NULL,         -- its date (EnTetePES/DteStr)
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant, line_key)
) WITHOUT ROWID;

-- helios.returns: each return file handled, by content (its events were published, its
-- state recorded in the same transaction as this row): the same content again, under any
-- name, publishes nothing. The date of our PES_ACQUIT_RETOUR is kept so that answering the
-- same file again writes the same bytes.
CREATE TABLE helios_return_file (
    tenant        TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    name          TEXT NOT NULL,      -- the name it first came under
    kind          TEXT NOT NULL,      -- acquit, retour
    nom_fic       TEXT,
    events        INTEGER NOT NULL,   -- events published
    unmatched     INTEGER NOT NULL,   -- pièces or bordereaux matching nothing sent
    acquit_date   TEXT,               -- DateAcquit of our PES_ACQUIT_RETOUR (retour only)
    handled_at    TEXT NOT NULL,
    PRIMARY KEY (tenant, sha256)
) WITHOUT ROWID;
