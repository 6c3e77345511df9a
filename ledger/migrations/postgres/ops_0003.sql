-- The console on a large ledger, PostgreSQL (the same schema as ../ops_0003.sql for SQLite,
-- and the console's indexes on polyfac tables that SQLite creates in ../ops_0002.sql, which
-- runs here before the polyfac tables exist; `polyfac_payment_seen`, created there and dropped
-- by ../ops_0003.sql, is never created here). Runs after polyfac_0004 (`POSTGRES` order).

-- Invoices issued in a month, per tenant (covering); payments paid on an invoice (covering)
-- and reversals made in a month; invoice search by family code.
CREATE INDEX polyfac_issued_published ON polyfac_issued (tenant, published_at, budget, total_cents);
CREATE INDEX polyfac_payment_paid
    ON polyfac_payment (tenant, invoice_key, confirms, reversed_at, amount_cents);
CREATE INDEX polyfac_payment_reversed ON polyfac_payment (tenant, reversed_at)
    WHERE reversed_at IS NOT NULL;
CREATE INDEX polyfac_export_invoice_family ON polyfac_export_invoice (family_code);

-- 1. The activity of each invoice (the reconciliation is per budget and activity).
ALTER TABLE polyfac_issued ADD COLUMN activity text COLLATE "C";

-- 2. Payers' last names as a search key (personal data: never shown). A PostgreSQL ledger
--    holds no batch item older than this migration (the daemon refused PostgreSQL until the
--    polyfac area was ported, and `encaisse ledger migrate` copies this table itself), so
--    SQLite's backfill from waiting batch items has nothing to read here.
CREATE TABLE invoice_payer_name (
    tenant      text COLLATE "C" NOT NULL,
    name_key    text COLLATE "C" NOT NULL,
    invoice_key text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, name_key, invoice_key)
);

-- 3. The month's reconciliation from summaries kept per UTC hour (`YYYY-MM-DDTHH`, the first
--    13 characters of the ledger's times) by triggers in the transaction that writes the
--    facts. Budget and activity are '' when unknown.
CREATE TABLE recon_issued (
    tenant         text COLLATE "C" NOT NULL,
    hour           text COLLATE "C" NOT NULL,
    budget         text COLLATE "C" NOT NULL,
    activity       text COLLATE "C" NOT NULL,
    invoices       bigint NOT NULL,
    invoiced_cents bigint NOT NULL,
    paid_cents     bigint NOT NULL,
    PRIMARY KEY (tenant, hour, budget, activity)
);

CREATE TABLE recon_collected (
    tenant   text COLLATE "C" NOT NULL,
    hour     text COLLATE "C" NOT NULL,
    budget   text COLLATE "C" NOT NULL,
    activity text COLLATE "C" NOT NULL,
    channel  text COLLATE "C" NOT NULL,
    payments bigint NOT NULL,
    cents    bigint NOT NULL,
    PRIMARY KEY (tenant, hour, budget, activity, channel)
);

INSERT INTO recon_issued (tenant, hour, budget, activity, invoices, invoiced_cents, paid_cents)
    SELECT i.tenant, substr(i.published_at, 1, 13), i.budget, '', count(*), sum(i.total_cents),
        coalesce(sum((SELECT sum(p.amount_cents) FROM polyfac_payment p
             WHERE p.tenant = i.tenant AND p.invoice_key = i.invoice_key
               AND p.confirms IS NULL AND p.reversed_at IS NULL)), 0)
    FROM polyfac_issued i GROUP BY 1, 2, 3;
INSERT INTO recon_collected (tenant, hour, budget, activity, channel, payments, cents)
    SELECT p.tenant, substr(p.seen_at, 1, 13), coalesce(i.budget, ''), '', p.channel, count(*),
        sum(p.amount_cents)
    FROM polyfac_payment p
    LEFT JOIN polyfac_issued i ON i.tenant = p.tenant AND i.invoice_key = p.invoice_key
    WHERE p.confirms IS NULL GROUP BY 1, 2, 3, 5;

-- The same arithmetic as SQLite's triggers: a row's contribution is added (sign +1) or taken
-- back (sign −1), an update takes the old row's back and adds the new one's. SQLite reads the
-- row back by key (hence its BEFORE triggers); here the row's own values come from OLD/NEW,
-- so every trigger runs AFTER the change, and only the other table is read.
--
-- A payment contributes when it is a primary sighting: its amount collected (under its
-- invoice's budget and activity, or '' while the invoice is unknown) and, unless reversed,
-- paid on its invoice.
CREATE FUNCTION recon_payment_delta(sign bigint, p polyfac_payment) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p.confirms IS NOT NULL THEN
        RETURN;
    END IF;
    INSERT INTO recon_collected AS r (tenant, hour, budget, activity, channel, payments, cents)
        SELECT p.tenant, substr(p.seen_at, 1, 13), coalesce(i.budget, ''),
               coalesce(i.activity, ''), p.channel, sign, sign * p.amount_cents
        FROM (SELECT 1) one
        LEFT JOIN polyfac_issued i ON i.tenant = p.tenant AND i.invoice_key = p.invoice_key
        ON CONFLICT (tenant, hour, budget, activity, channel) DO UPDATE
            SET payments = r.payments + excluded.payments, cents = r.cents + excluded.cents;
    IF p.reversed_at IS NULL THEN
        INSERT INTO recon_issued AS r (tenant, hour, budget, activity, invoices, invoiced_cents,
                                       paid_cents)
            SELECT i.tenant, substr(i.published_at, 1, 13), i.budget, coalesce(i.activity, ''),
                   0, 0, sign * p.amount_cents
            FROM polyfac_issued i
            WHERE i.tenant = p.tenant AND i.invoice_key = p.invoice_key
            ON CONFLICT (tenant, hour, budget, activity) DO UPDATE
                SET paid_cents = r.paid_cents + excluded.paid_cents;
    END IF;
END;
$$;

-- An invoice contributes its count, total and what is paid on it, and moves its payments'
-- collected amounts from '' to its budget and activity (or back).
CREATE FUNCTION recon_invoice_delta(sign bigint, i polyfac_issued) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- recon_collected before recon_issued, as for a payment: writers of both take the
    -- summary rows in one order (fewer deadlocks; one is retried as any transient failure).
    INSERT INTO recon_collected AS r (tenant, hour, budget, activity, channel, payments, cents)
        SELECT p.tenant, substr(p.seen_at, 1, 13), m.budget, m.activity, p.channel,
               sum(m.sign), sum(m.sign * p.amount_cents)
        FROM polyfac_payment p
        CROSS JOIN (VALUES ('', '', -sign), (i.budget, coalesce(i.activity, ''), sign))
            AS m (budget, activity, sign)
        WHERE p.tenant = i.tenant AND p.invoice_key = i.invoice_key AND p.confirms IS NULL
        GROUP BY 1, 2, 3, 4, 5
        ON CONFLICT (tenant, hour, budget, activity, channel) DO UPDATE
            SET payments = r.payments + excluded.payments, cents = r.cents + excluded.cents;
    INSERT INTO recon_issued AS r (tenant, hour, budget, activity, invoices, invoiced_cents,
                                   paid_cents)
        VALUES (i.tenant, substr(i.published_at, 1, 13), i.budget, coalesce(i.activity, ''),
                sign, sign * i.total_cents,
                sign * coalesce((SELECT sum(p.amount_cents) FROM polyfac_payment p
                     WHERE p.tenant = i.tenant AND p.invoice_key = i.invoice_key
                       AND p.confirms IS NULL AND p.reversed_at IS NULL), 0))
        ON CONFLICT (tenant, hour, budget, activity) DO UPDATE
            SET invoices = r.invoices + excluded.invoices,
                invoiced_cents = r.invoiced_cents + excluded.invoiced_cents,
                paid_cents = r.paid_cents + excluded.paid_cents;
END;
$$;

CREATE FUNCTION recon_payment_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM recon_payment_delta(-1, OLD);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM recon_payment_delta(1, NEW);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION recon_invoice_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM recon_invoice_delta(-1, OLD);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM recon_invoice_delta(1, NEW);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER recon_payment_insert_delete AFTER INSERT OR DELETE ON polyfac_payment
    FOR EACH ROW EXECUTE FUNCTION recon_payment_changed();
CREATE TRIGGER recon_payment_update
    AFTER UPDATE OF tenant, payment_id, invoice_key, amount_cents, channel, seen_at, confirms,
        reversed_at ON polyfac_payment
    FOR EACH ROW EXECUTE FUNCTION recon_payment_changed();
CREATE TRIGGER recon_invoice_insert_delete AFTER INSERT OR DELETE ON polyfac_issued
    FOR EACH ROW EXECUTE FUNCTION recon_invoice_changed();
CREATE TRIGGER recon_invoice_update
    AFTER UPDATE OF tenant, invoice_key, budget, activity, total_cents, published_at
    ON polyfac_issued
    FOR EACH ROW EXECUTE FUNCTION recon_invoice_changed();
