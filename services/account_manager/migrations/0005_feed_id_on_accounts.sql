-- The feed id a person keeps from night to night, on his account instead of in a table of
-- its own: a first import writes one row and one foreign-key check fewer per person (half
-- a million of each for an académie), and every lookup by feed id reads the accounts'
-- own index. A restored leaver takes the feed id he comes back with; a deleted account
-- takes his with him.
ALTER TABLE accounts ADD COLUMN feed_id uuid;
UPDATE accounts a SET feed_id = m.feed_id FROM feed_accounts m WHERE m.account_id = a.account_id;
CREATE UNIQUE INDEX accounts_feed ON accounts (school_id, feed_id) WHERE feed_id IS NOT NULL;
DROP TABLE feed_accounts;
