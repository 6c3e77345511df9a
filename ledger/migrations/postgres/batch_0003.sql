-- The schema of ../batch_0003.sql for SQLite (a rowid table there, for page use): an
-- identity key, the item key still unique, and the group index holding item_key so a
-- group is read in key order from the index.
ALTER TABLE batch_item ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE batch_item DROP CONSTRAINT batch_item_pkey;
ALTER TABLE batch_item ADD PRIMARY KEY (id);
ALTER TABLE batch_item ADD CONSTRAINT batch_item_key UNIQUE (stage, tenant, item_key);
DROP INDEX batch_item_group;
CREATE INDEX batch_item_group ON batch_item (stage, tenant, run_id, group_key, item_key);
