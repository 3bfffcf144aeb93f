-- The nightly ONDE feed (directory.synced): which account each feed person is, which class
-- each feed class name is, the parent-child links as the feed gives them, and leavers.

-- directory_sync's stable feed id of a person -> his account. A restored leaver is mapped
-- again under the feed id he comes back with; the row goes with the account. (No foreign
-- key to schools on these tables: the account or class already has one, and a first
-- import inserts hundreds of thousands of rows, each checked once per key.)
CREATE TABLE feed_accounts (
    school_id  uuid NOT NULL,
    feed_id    uuid NOT NULL,
    account_id uuid NOT NULL UNIQUE REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (school_id, feed_id)
);

-- A feed class name -> the class made of it, so that a class the administrator renamed
-- is still the feed's class the next night instead of being created again.
CREATE TABLE feed_classes (
    school_id uuid NOT NULL,
    feed_name text NOT NULL,
    class_id  uuid NOT NULL REFERENCES classes ON DELETE CASCADE,
    PRIMARY KEY (school_id, feed_name)
);

-- A parent's children by feed id, as the latest feed gives them. Chunks come in any
-- order: a link whose child (or parent) has no account yet waits here and becomes a
-- parent_children row in the chunk where both sides exist.
CREATE TABLE feed_links (
    school_id      uuid NOT NULL,
    parent_feed_id uuid NOT NULL,
    child_feed_id  uuid NOT NULL,
    PRIMARY KEY (school_id, parent_feed_id, child_feed_id)
);
CREATE INDEX feed_links_child ON feed_links (school_id, child_feed_id);

-- Attachments made by the feed (the teachers file's class) are the feed's to change;
-- those the administrator made by hand (from_feed false) the feed never removes.
ALTER TABLE class_teachers ADD COLUMN from_feed boolean NOT NULL DEFAULT false;

-- A leaver who had activated his account is kept, deactivated, for a grace period.
ALTER TABLE accounts ADD COLUMN deactivated_at timestamptz;
CREATE INDEX accounts_deactivated ON accounts (deactivated_at) WHERE deactivated_at IS NOT NULL;
