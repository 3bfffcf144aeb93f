-- A snapshot is only ever read and written whole, by directory_sync: stored as JSON text
-- (lz4) instead of jsonb, which Postgres parsed on every write and printed on every read
-- (60 KB a school: 1.9 ms to store as jsonb, 0.5 ms as text). Its size is kept apart, so
-- that an unchanged night reads neither.
ALTER TABLE feed_snapshots ADD COLUMN persons_count integer;
UPDATE feed_snapshots SET persons_count = jsonb_array_length(persons);
ALTER TABLE feed_snapshots ALTER COLUMN persons_count SET NOT NULL;
ALTER TABLE feed_snapshots ALTER COLUMN persons TYPE text USING persons::text;
ALTER TABLE feed_snapshots ALTER COLUMN classes TYPE text USING classes::text;
DO $$
BEGIN
    ALTER TABLE feed_snapshots ALTER COLUMN persons SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 not supported by this server: snapshots stay pglz';
END
$$;
