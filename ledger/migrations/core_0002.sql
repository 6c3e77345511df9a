-- Coordination of several daemons sharing one ledger (docs/scaling.md).

-- One row per once-only job (an inbox watcher, a flush timer, the reconciliation, …): which
-- daemon runs it and until when. Expiry instants are milliseconds since the Unix epoch on
-- the database's clock (PostgreSQL), so a daemon whose clock drifts cannot steal a lease.
-- `fencing` goes up by one at every change of holder and never goes down, so work started
-- under an older token can tell it was superseded.
CREATE TABLE lease (
    name           TEXT PRIMARY KEY,
    holder         TEXT NOT NULL,
    fencing        INTEGER NOT NULL,
    acquired_at_ms INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL
);

-- An inbox file claimed by the daemon that reads it, before it reads it: two daemons never
-- read one file. A file is known by its tenant, area, name, size and modification time (in
-- nanoseconds), so a file dropped again under the same name is a new claim. A claim whose
-- expiry passed (its daemon died) is taken over; `done_at` is set once the file was moved.
CREATE TABLE inbox_claim (
    tenant        TEXT NOT NULL,
    area          TEXT NOT NULL,
    name          TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    claimed_by    TEXT NOT NULL,
    claimed_at    TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    done_at       TEXT,
    PRIMARY KEY (tenant, area, name, size_bytes, mtime_ns)
);
CREATE INDEX inbox_claim_done ON inbox_claim (done_at) WHERE done_at IS NOT NULL;
