-- PayFiP area, PostgreSQL (the same schema as ../payfip_0001.sql for SQLite; docs/payfip.md):
-- what the payment API needs per invoice (payfip.register), the payment attempts it starts
-- (the payments API, payfip.confirm, the reconciliation job). Amounts are integer cents;
-- times are RFC 3339 UTC text, dates Europe/Paris YYYY-MM-DD; text that is ordered or
-- compared by range is COLLATE "C" so that it sorts by bytes as on SQLite. Flags are 0/1.
--
-- Two requests for one invoice, on two daemons, are decided one after the other: the
-- reservation locks the invoice's row (SELECT … FOR UPDATE), and the partial unique index
-- payfip_operation_active stays the last guard.

-- One row per invoice seen in invoice.issued (the latest content wins).
CREATE TABLE payfip_invoice (
    tenant         text NOT NULL,
    exercice       bigint NOT NULL,
    number         text NOT NULL,
    content_hash   text NOT NULL,
    amount_cents   bigint NOT NULL,
    email          text,              -- payer's address from the invoice: personal data, never logged
    collection     text NOT NULL,     -- titres | regie
    budget         text NOT NULL,
    regie          text,
    numcli         text,              -- PayFiP client number of its budget (titres) or régie
    online_payable bigint NOT NULL,   -- 0/1 as the source issued it
    issued_on      text COLLATE "C" NOT NULL,
    updated_at     text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, exercice, number)
);
CREATE INDEX payfip_invoice_number ON payfip_invoice (tenant, number);

-- The titre of an invoice once the comptable took it in charge (titre.accepted, PES Retour).
-- Kept apart from payfip_invoice so that the order of arrival does not matter.
CREATE TABLE payfip_titre (
    tenant             text NOT NULL,
    exercice           bigint NOT NULL,
    number             text NOT NULL,
    budget             text NOT NULL,
    titre_exercice     bigint NOT NULL,
    bordereau_type     text NOT NULL,
    id_bord            bigint NOT NULL,
    id_pce             bigint NOT NULL,
    taken_in_charge_on text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, exercice, number)
);

-- Payments seen for invoices (payment.received) and their reversals (payment.reversed), by
-- payment id. A reversal seen first leaves a row with received = 0.
CREATE TABLE payfip_payment (
    tenant       text NOT NULL,
    payment_id   text NOT NULL,
    exercice     bigint NOT NULL,
    number       text NOT NULL,
    amount_cents bigint NOT NULL,
    received     bigint NOT NULL,
    reversed     bigint NOT NULL,
    updated_at   text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, payment_id)
);
CREATE INDEX payfip_payment_invoice ON payfip_payment (tenant, exercice, number);

-- Payment attempts. `state`: creating (reserved while creerPaiementSecurise runs), open,
-- resolved. `active` = 1 for the invoice's current attempt (at most one, by the unique index).
CREATE TABLE payfip_operation (
    op_id            text COLLATE "C" PRIMARY KEY,  -- our id of the attempt
    tenant           text NOT NULL,
    exercice         bigint NOT NULL,
    number           text NOT NULL,
    channel          text NOT NULL,      -- ws (régie web service) | classic (titres URL)
    state            text NOT NULL,
    active           bigint NOT NULL,
    idop             text UNIQUE,        -- the gateway's idOp (web service)
    payment_id       text,               -- payfip:<idop> | tipi:<refdet>
    numcli           text NOT NULL,
    exer             bigint NOT NULL,
    refdet           text NOT NULL,
    amount_cents     bigint NOT NULL,
    mode             text NOT NULL,      -- test | activation | production
    return_url       text,
    created_at       text COLLATE "C" NOT NULL,
    notified_at      text COLLATE "C",   -- first notification (or browser return) that asked
    requested_at     text COLLATE "C",   -- last payfip.confirm published
    outcome          text,               -- P V R Z A expired closed; NULL while unresolved
    numauto          text,
    commission_cents bigint,
    resolved_at      text COLLATE "C"
);
CREATE UNIQUE INDEX payfip_operation_active ON payfip_operation (tenant, exercice, number) WHERE active = 1;
CREATE INDEX payfip_operation_invoice ON payfip_operation (tenant, exercice, number);
CREATE INDEX payfip_operation_unresolved ON payfip_operation (created_at) WHERE outcome IS NULL;
CREATE INDEX payfip_operation_refdet ON payfip_operation (tenant, refdet);
