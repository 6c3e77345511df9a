-- PayFiP area: what the payment API needs per invoice (payfip.register), the payment
-- attempts it starts (the payments API, payfip.confirm, the reconciliation job).
-- Amounts are integer cents; times are RFC 3339 UTC text; dates are Europe/Paris YYYY-MM-DD.

-- One row per invoice seen in invoice.issued (the latest content wins).
CREATE TABLE payfip_invoice (
    tenant         TEXT NOT NULL,
    exercice       INTEGER NOT NULL,
    number         TEXT NOT NULL,
    content_hash   TEXT NOT NULL,
    amount_cents   INTEGER NOT NULL,
    email          TEXT,              -- payer's address from the invoice: personal data, never logged
    collection     TEXT NOT NULL,     -- titres | regie
    budget         TEXT NOT NULL,
    regie          TEXT,
    numcli         TEXT,              -- PayFiP client number of its budget (titres) or régie
    online_payable INTEGER NOT NULL,  -- 0/1 as the source issued it
    issued_on      TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (tenant, exercice, number)
) WITHOUT ROWID;
CREATE INDEX payfip_invoice_number ON payfip_invoice (tenant, number);

-- The titre of an invoice once the comptable took it in charge (titre.accepted, PES Retour).
-- Kept apart from payfip_invoice so that the order of arrival does not matter.
CREATE TABLE payfip_titre (
    tenant             TEXT NOT NULL,
    exercice           INTEGER NOT NULL,
    number             TEXT NOT NULL,
    budget             TEXT NOT NULL,
    titre_exercice     INTEGER NOT NULL,
    bordereau_type     TEXT NOT NULL,
    id_bord            INTEGER NOT NULL,
    id_pce             INTEGER NOT NULL,
    taken_in_charge_on TEXT NOT NULL,
    PRIMARY KEY (tenant, exercice, number)
) WITHOUT ROWID;

-- Payments seen for invoices (payment.received) and their reversals (payment.reversed), by
-- payment id. A reversal seen first leaves a row with received = 0.
CREATE TABLE payfip_payment (
    tenant       TEXT NOT NULL,
    payment_id   TEXT NOT NULL,
    exercice     INTEGER NOT NULL,
    number       TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    received     INTEGER NOT NULL,
    reversed     INTEGER NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (tenant, payment_id)
) WITHOUT ROWID;
CREATE INDEX payfip_payment_invoice ON payfip_payment (tenant, exercice, number);

-- Payment attempts. `state`: creating (reserved while creerPaiementSecurise runs), open,
-- resolved. `active` = 1 for the invoice's current attempt (at most one, by the unique index).
CREATE TABLE payfip_operation (
    op_id            TEXT PRIMARY KEY,   -- our id of the attempt
    tenant           TEXT NOT NULL,
    exercice         INTEGER NOT NULL,
    number           TEXT NOT NULL,
    channel          TEXT NOT NULL,      -- ws (régie web service) | classic (titres URL)
    state            TEXT NOT NULL,
    active           INTEGER NOT NULL,
    idop             TEXT UNIQUE,        -- the gateway's idOp (web service)
    payment_id       TEXT,               -- payfip:<idop> | tipi:<refdet>
    numcli           TEXT NOT NULL,
    exer             INTEGER NOT NULL,
    refdet           TEXT NOT NULL,
    amount_cents     INTEGER NOT NULL,
    mode             TEXT NOT NULL,      -- test | activation | production
    return_url       TEXT,
    created_at       TEXT NOT NULL,
    notified_at      TEXT,               -- first notification (or browser return) that asked
    requested_at     TEXT,               -- last payfip.confirm published
    outcome          TEXT,               -- P V R Z A expired closed; NULL while unresolved
    numauto          TEXT,
    commission_cents INTEGER,
    resolved_at      TEXT
);
CREATE UNIQUE INDEX payfip_operation_active ON payfip_operation (tenant, exercice, number) WHERE active = 1;
CREATE INDEX payfip_operation_invoice ON payfip_operation (tenant, exercice, number);
CREATE INDEX payfip_operation_unresolved ON payfip_operation (created_at) WHERE outcome IS NULL;
CREATE INDEX payfip_operation_refdet ON payfip_operation (tenant, refdet);
