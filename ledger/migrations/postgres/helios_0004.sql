-- PostgreSQL: the same schema as ../helios_0004.sql for SQLite (the numbering counters the
-- planning transaction locks).
CREATE TABLE helios_counter (
    tenant    text NOT NULL,
    cod_col   text NOT NULL,
    cod_bud   text NOT NULL,
    exercice  bigint NOT NULL,
    kind      text NOT NULL,
    last      bigint NOT NULL,
    PRIMARY KEY (tenant, cod_col, cod_bud, exercice, kind)
);
