-- The console on a large ledger (docs/console.md, "Speed on a large ledger").
--
-- 1. The activity of each invoice, so that the reconciliation is per budget and activity.
--    Invoices recorded before this migration have none (shown "—").
ALTER TABLE polyfac_issued ADD COLUMN activity TEXT;

-- 2. Payers' last names as a search key (lower-case ASCII, accents folded: `Hélène` →
--    `helene`), so that the console finds an invoice by name through an index instead of
--    reading event payloads. Personal data: the key is never shown (the console masks names).
CREATE TABLE invoice_payer_name (
    tenant      TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    invoice_key TEXT NOT NULL,
    PRIMARY KEY (tenant, name_key, invoice_key)
) WITHOUT ROWID;
-- The names of the invoices still waiting in batches (the only place they were kept):
-- lower-cased by SQLite (ASCII only), which the search also tries.
INSERT OR IGNORE INTO invoice_payer_name (tenant, name_key, invoice_key)
    SELECT tenant, lower(trim(name)), item_key FROM (
        SELECT tenant, item_key, coalesce(
            json_extract(CAST(payload AS TEXT), '$.payer.last_name'),
            json_extract(CAST(payload AS TEXT), '$.note.payer.last_name')) AS name
        FROM batch_item WHERE json_valid(CAST(payload AS TEXT)))
    WHERE name IS NOT NULL AND trim(name) <> '';

-- 3. The month's reconciliation from summaries kept by triggers in the transaction that
--    writes the facts, so that a month reads a few hundred rows instead of every invoice and
--    payment in it, and can never disagree with the rows it sums. Rows are per UTC hour
--    (`YYYY-MM-DDTHH`, the first 13 characters of the ledger's RFC 3339 UTC times): every
--    Europe/Paris month and day starts on a whole UTC hour, so the page cuts months and days
--    in Paris time exactly, without time-zone rules in SQL. Budget and activity are '' when
--    unknown (a payment whose invoice the ledger has no issue row for; an invoice recorded
--    before activities were).

-- Invoices per publication hour, and what is paid on them today (primary sightings not
-- reversed): outstanding = invoiced_cents − paid_cents.
CREATE TABLE recon_issued (
    tenant         TEXT NOT NULL,
    hour           TEXT NOT NULL,
    budget         TEXT NOT NULL,
    activity       TEXT NOT NULL,
    invoices       INTEGER NOT NULL,
    invoiced_cents INTEGER NOT NULL,
    paid_cents     INTEGER NOT NULL,
    PRIMARY KEY (tenant, hour, budget, activity)
) WITHOUT ROWID;

-- Payments (primary sightings) per hour first seen and channel, under their invoice's budget
-- and activity.
CREATE TABLE recon_collected (
    tenant   TEXT NOT NULL,
    hour     TEXT NOT NULL,
    budget   TEXT NOT NULL,
    activity TEXT NOT NULL,
    channel  TEXT NOT NULL,
    payments INTEGER NOT NULL,
    cents    INTEGER NOT NULL,
    PRIMARY KEY (tenant, hour, budget, activity, channel)
) WITHOUT ROWID;

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

-- Each trigger adds a row's contribution (sign +1) or takes it back (sign −1); an update
-- takes the old row's back and adds the new one's. A payment contributes when it is a primary
-- sighting: its amount collected (under its invoice's budget and activity, or '' while the
-- invoice is unknown) and, unless reversed, paid on its invoice. An invoice contributes its
-- count, total and what is paid on it, and moves its payments' collected amounts from ''
-- to its budget and activity.
CREATE VIEW recon_payment_delta (sign, tenant, payment_id) AS SELECT 0, '', '';
CREATE TRIGGER recon_payment_delta INSTEAD OF INSERT ON recon_payment_delta
BEGIN
    INSERT INTO recon_collected (tenant, hour, budget, activity, channel, payments, cents)
        SELECT p.tenant, substr(p.seen_at, 1, 13), coalesce(i.budget, ''),
               coalesce(i.activity, ''), p.channel, NEW.sign, NEW.sign * p.amount_cents
        FROM polyfac_payment p
        LEFT JOIN polyfac_issued i ON i.tenant = p.tenant AND i.invoice_key = p.invoice_key
        WHERE p.tenant = NEW.tenant AND p.payment_id = NEW.payment_id AND p.confirms IS NULL
        ON CONFLICT DO UPDATE SET payments = payments + excluded.payments,
                                  cents = cents + excluded.cents;
    INSERT INTO recon_issued (tenant, hour, budget, activity, invoices, invoiced_cents, paid_cents)
        SELECT i.tenant, substr(i.published_at, 1, 13), i.budget, coalesce(i.activity, ''),
               0, 0, NEW.sign * p.amount_cents
        FROM polyfac_payment p
        JOIN polyfac_issued i ON i.tenant = p.tenant AND i.invoice_key = p.invoice_key
        WHERE p.tenant = NEW.tenant AND p.payment_id = NEW.payment_id AND p.confirms IS NULL
          AND p.reversed_at IS NULL
        ON CONFLICT DO UPDATE SET paid_cents = paid_cents + excluded.paid_cents;
END;

CREATE VIEW recon_invoice_delta (sign, tenant, invoice_key) AS SELECT 0, '', '';
CREATE TRIGGER recon_invoice_delta INSTEAD OF INSERT ON recon_invoice_delta
BEGIN
    INSERT INTO recon_issued (tenant, hour, budget, activity, invoices, invoiced_cents, paid_cents)
        SELECT i.tenant, substr(i.published_at, 1, 13), i.budget, coalesce(i.activity, ''),
               NEW.sign, NEW.sign * i.total_cents,
               NEW.sign * coalesce((SELECT sum(p.amount_cents) FROM polyfac_payment p
                    WHERE p.tenant = i.tenant AND p.invoice_key = i.invoice_key
                      AND p.confirms IS NULL AND p.reversed_at IS NULL), 0)
        FROM polyfac_issued i WHERE i.tenant = NEW.tenant AND i.invoice_key = NEW.invoice_key
        ON CONFLICT DO UPDATE SET invoices = invoices + excluded.invoices,
                                  invoiced_cents = invoiced_cents + excluded.invoiced_cents,
                                  paid_cents = paid_cents + excluded.paid_cents;
    -- Its payments: out of '' and into the invoice's budget and activity (or back). Without
    -- statistics SQLite would read every payment of the tenant (primary key on the tenant
    -- alone) for each invoice written: the index is named.
    INSERT INTO recon_collected (tenant, hour, budget, activity, channel, payments, cents)
        SELECT p.tenant, substr(p.seen_at, 1, 13), m.budget, m.activity, p.channel, m.sign,
               m.sign * p.amount_cents
        FROM polyfac_payment p INDEXED BY polyfac_payment_invoice
        JOIN (SELECT '' AS budget, '' AS activity, -NEW.sign AS sign
              UNION ALL SELECT i.budget, coalesce(i.activity, ''), NEW.sign
              FROM polyfac_issued i
              WHERE i.tenant = NEW.tenant AND i.invoice_key = NEW.invoice_key) m
        WHERE p.tenant = NEW.tenant AND p.invoice_key = NEW.invoice_key AND p.confirms IS NULL
        ON CONFLICT DO UPDATE SET payments = payments + excluded.payments,
                                  cents = cents + excluded.cents;
END;

CREATE TRIGGER recon_payment_insert AFTER INSERT ON polyfac_payment
BEGIN
    INSERT INTO recon_payment_delta VALUES (1, NEW.tenant, NEW.payment_id);
END;
CREATE TRIGGER recon_payment_delete BEFORE DELETE ON polyfac_payment
BEGIN
    INSERT INTO recon_payment_delta VALUES (-1, OLD.tenant, OLD.payment_id);
END;
-- An update is taken back before it is made, and added once made.
CREATE TRIGGER recon_payment_update_before
    BEFORE UPDATE OF tenant, payment_id, invoice_key, amount_cents, channel, seen_at, confirms,
        reversed_at ON polyfac_payment
BEGIN
    INSERT INTO recon_payment_delta VALUES (-1, OLD.tenant, OLD.payment_id);
END;
CREATE TRIGGER recon_payment_update_after
    AFTER UPDATE OF tenant, payment_id, invoice_key, amount_cents, channel, seen_at, confirms,
        reversed_at ON polyfac_payment
BEGIN
    INSERT INTO recon_payment_delta VALUES (1, NEW.tenant, NEW.payment_id);
END;

CREATE TRIGGER recon_invoice_insert AFTER INSERT ON polyfac_issued
BEGIN
    INSERT INTO recon_invoice_delta VALUES (1, NEW.tenant, NEW.invoice_key);
END;
CREATE TRIGGER recon_invoice_delete BEFORE DELETE ON polyfac_issued
BEGIN
    INSERT INTO recon_invoice_delta VALUES (-1, OLD.tenant, OLD.invoice_key);
END;
CREATE TRIGGER recon_invoice_update_before
    BEFORE UPDATE OF tenant, invoice_key, budget, activity, total_cents, published_at
    ON polyfac_issued
BEGIN
    INSERT INTO recon_invoice_delta VALUES (-1, OLD.tenant, OLD.invoice_key);
END;
CREATE TRIGGER recon_invoice_update_after
    AFTER UPDATE OF tenant, invoice_key, budget, activity, total_cents, published_at
    ON polyfac_issued
BEGIN
    INSERT INTO recon_invoice_delta VALUES (1, NEW.tenant, NEW.invoice_key);
END;

-- The reconciliation no longer reads the month's payments one by one.
DROP INDEX polyfac_payment_seen;
