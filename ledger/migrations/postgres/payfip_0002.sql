-- PayFiP area, PostgreSQL (the same schema as ../payfip_0002.sql for SQLite): classic-URL
-- results (titres) carry no signature, so a "paid" result is only a claim. It is kept on its
-- attempt until the Trésorerie's PES Retour émargement confirms it (or the confirmation
-- window ends and it is reported to ops); it never makes the invoice paid.
ALTER TABLE payfip_operation ADD COLUMN claim text;                        -- P | V: the letter the classic result announced
ALTER TABLE payfip_operation ADD COLUMN claimed_at text COLLATE "C";       -- when it was first announced
ALTER TABLE payfip_operation ADD COLUMN claim_settled text;                -- confirmed | unconfirmed; NULL while awaited
ALTER TABLE payfip_operation ADD COLUMN claim_settled_at text COLLATE "C";
CREATE INDEX payfip_operation_open_claims ON payfip_operation (claimed_at)
    WHERE claimed_at IS NOT NULL AND claim_settled IS NULL;
