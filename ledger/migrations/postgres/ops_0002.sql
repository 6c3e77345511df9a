-- The web console's audit trail, PostgreSQL (the same `console_action` as ../ops_0002.sql
-- for SQLite). `user` is a reserved word here, hence quoted.
--
-- The SQLite file also adds the console's indexes on tables of other areas (polyfac_issued,
-- polyfac_payment, payfip_operation, sepa_collection, polyfac_export_invoice): those tables
-- have no PostgreSQL schema yet, so their indexes come with those areas' PostgreSQL
-- migrations. The one on emitted_file (core) is here.

CREATE TABLE console_action (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          text COLLATE "C" NOT NULL,  -- RFC 3339 UTC with microseconds
    "user"      text NOT NULL,              -- the console user name (as configured)
    role        text NOT NULL,              -- ops, finance, or '' for a failed login
    action      text NOT NULL,              -- login, login_refused, logout, replay, discard, download
    target      text,                       -- parked id, group, file path
    reason      text,                       -- mandatory for a discard
    outcome     text NOT NULL               -- what happened (done, refused, already resolved, …)
);
CREATE INDEX console_action_at ON console_action (at);

-- The files pages, newest first.
CREATE INDEX emitted_file_written ON emitted_file (written_at);
