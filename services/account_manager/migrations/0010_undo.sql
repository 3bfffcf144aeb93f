-- What an undone run (directory.sync.revert.requested) needs to put a school back:
-- the teachers of a class when it was archived (they come back with it), and the login of
-- a feed account deleted as a never-activated leaver (he is recreated under it).
CREATE TABLE archived_class_teachers (
    class_id   uuid NOT NULL REFERENCES classes ON DELETE CASCADE,
    account_id uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    from_feed  boolean NOT NULL,
    PRIMARY KEY (class_id, account_id)
);
CREATE INDEX archived_class_teachers_account ON archived_class_teachers (account_id);

CREATE TABLE deleted_feed_logins (
    school_id  uuid NOT NULL,
    feed_id    uuid NOT NULL,
    login      text NOT NULL,
    deleted_at timestamptz NOT NULL,
    PRIMARY KEY (school_id, feed_id)
);
CREATE INDEX deleted_feed_logins_at ON deleted_feed_logins (deleted_at);
