-- Credit notes, PostgreSQL (the same schema as ../polyfac_0002.sql for SQLite): the original
-- a credit note reduces, in polyfac.ingest's and polyfac.export's records.
ALTER TABLE polyfac_issued ADD COLUMN origin_key text COLLATE "C";           -- NULL for an invoice
ALTER TABLE polyfac_export_invoice ADD COLUMN origin_number text COLLATE "C"; -- NULL for an invoice
