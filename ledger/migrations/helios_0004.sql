-- helios.titres: the last IdBord and IdPce used, per budget and exercice (kind `id_pce`, or
-- `id_bord:<TypBord>`). The transaction that plans a file (or a réduction titre) locks the
-- row first and sets it to the last number it used, in the same transaction as the
-- bordereaux and titres: two daemons planning for one budget take turns, a rollback gives
-- the numbers back, so IdBord stays gapless and IdPce unique. A row is created at its first
-- use from the largest number already recorded (ledgers planned before this table).
CREATE TABLE helios_counter (
    tenant    TEXT NOT NULL,
    cod_col   TEXT NOT NULL,
    cod_bud   TEXT NOT NULL,
    exercice  INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    last      INTEGER NOT NULL,
    PRIMARY KEY (tenant, cod_col, cod_bud, exercice, kind)
) WITHOUT ROWID;
