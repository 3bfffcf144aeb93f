-- The snapshot each school had before its last applied run, so that an operator can undo
-- that run (directory.sync.revert.requested). previous_version 0: the run was the school's
-- first (nothing before it); NULL: applied before this was kept, cannot be undone.
ALTER TABLE feed_snapshots
    ADD COLUMN previous_version bigint,
    ADD COLUMN previous_run_id uuid,
    ADD COLUMN previous_persons text,
    ADD COLUMN previous_classes text;
DO $$
BEGIN
    ALTER TABLE feed_snapshots ALTER COLUMN previous_persons SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not supported by this server: previous snapshots stay pglz';
END
$$;

ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_trigger_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_trigger_check
    CHECK (trigger IN ('first_sync', 'nightly', 'request', 'revert'));
-- A revert names the run it undid.
ALTER TABLE sync_runs ADD COLUMN reverts uuid;
