-- One person across schools (issue 22, docs/one-person-across-schools.md §2).
-- A pupil's INE when the feed gave it: the key of the same pupil in another school. Not
-- unique: two schools' exports could disagree until they are reconciled (two candidates
-- make a new account). Most accounts have none: the index only holds those that do.
ALTER TABLE accounts ADD COLUMN ine text;
CREATE INDEX accounts_ine ON accounts (ine) WHERE ine IS NOT NULL;

-- The schools an account is in besides its home (accounts.school_id / feed_id stay the
-- home, so a single-school person costs no row here), with his feed id in each.
CREATE TABLE account_schools (
    account_id  uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    school_id   uuid NOT NULL,
    feed_id     uuid,
    attached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, school_id),
    UNIQUE (school_id, feed_id)
);
