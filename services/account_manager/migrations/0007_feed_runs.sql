-- The school's last numbered feed run that account_manager began to apply, and how many of
-- its chunks are applied: runs of a school are applied in order (feed_rules.chunk_turn).
CREATE TABLE feed_runs (
    school_id uuid PRIMARY KEY REFERENCES schools,
    version   integer NOT NULL,
    chunks    integer NOT NULL,
    applied   integer NOT NULL
);
