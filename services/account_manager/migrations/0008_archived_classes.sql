-- A class the school no longer has (its feed stopped naming it, its year closed) is
-- archived rather than deleted: kept with its history for the grace period, out of scopes
-- and prints. Its name may be given to a new class of the next year.
ALTER TABLE classes ADD COLUMN archived_at timestamptz;
ALTER TABLE classes DROP CONSTRAINT IF EXISTS classes_school_id_name_key;
CREATE UNIQUE INDEX classes_active_name ON classes (school_id, name) WHERE archived_at IS NULL;
CREATE INDEX classes_archived_at ON classes (archived_at) WHERE archived_at IS NOT NULL;
