-- A group's item count, maintained by add_item, so that checking whether a run is complete
-- costs one row read instead of counting its items (quadratic over a large run when the
-- announcement arrives first).
ALTER TABLE batch_group ADD COLUMN received INTEGER NOT NULL DEFAULT 0;
UPDATE batch_group SET received = (
    SELECT count(*) FROM batch_item i
    WHERE i.stage = batch_group.stage AND i.tenant = batch_group.tenant
      AND i.run_id = batch_group.run_id AND i.group_key = batch_group.group_key
);
