-- Coordination of several daemons sharing one ledger, PostgreSQL (the same schema as
-- ../core_0002.sql for SQLite). Expiry instants are milliseconds since the Unix epoch on the
-- database's clock.

-- One row per once-only job: which daemon runs it and until when; `fencing` goes up by one
-- at every change of holder.
CREATE TABLE lease (
    name           text COLLATE "C" PRIMARY KEY,
    holder         text NOT NULL,
    fencing        bigint NOT NULL,
    acquired_at_ms bigint NOT NULL,
    expires_at_ms  bigint NOT NULL
);

-- An inbox file claimed by the daemon that reads it, before it reads it.
CREATE TABLE inbox_claim (
    tenant        text COLLATE "C" NOT NULL,
    area          text COLLATE "C" NOT NULL,
    name          text COLLATE "C" NOT NULL,
    size_bytes    bigint NOT NULL,
    mtime_ns      bigint NOT NULL,
    claimed_by    text NOT NULL,
    claimed_at    text COLLATE "C" NOT NULL,
    expires_at_ms bigint NOT NULL,
    done_at       text COLLATE "C",
    PRIMARY KEY (tenant, area, name, size_bytes, mtime_ns)
);
CREATE INDEX inbox_claim_done ON inbox_claim (done_at) WHERE done_at IS NOT NULL;
