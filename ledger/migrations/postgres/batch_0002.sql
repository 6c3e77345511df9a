-- A group's item count, maintained by add_item (as ../batch_0002.sql for SQLite). On
-- PostgreSQL it is also the lock that orders concurrent adds and the close of one group.
ALTER TABLE batch_group ADD COLUMN received integer NOT NULL DEFAULT 0;
UPDATE batch_group SET received = (
    SELECT count(*) FROM batch_item i
    WHERE i.stage = batch_group.stage AND i.tenant = batch_group.tenant
      AND i.run_id = batch_group.run_id AND i.group_key = batch_group.group_key
);
