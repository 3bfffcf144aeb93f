-- The parents' lookup across schools (feed_store.parent_candidates) reads, for each newcomer
-- parent, at most two parents of other schools with his names and email and the first
-- with his names alone. Through 0013's index of names only, each of the two walked every
-- namesake of the académie (filtering the email, then ordering by account id): a quarter
-- of Postgres's time in a 2,000-school first import, where nearly every name is common.
-- These two indexes give each branch its rows in the order it reads them, so it stops at
-- its limit: the names and email (as compared: trimmed, lower-cased) of the feed's
-- parents, and the names of every parent, each followed by the account id.
DROP INDEX IF EXISTS accounts_parent_names;
CREATE INDEX accounts_parent_names ON accounts (last_folded, first_folded, account_id)
    WHERE profile = 'relative';
CREATE INDEX accounts_parent_emails
    ON accounts (last_folded, first_folded, lower(btrim(email)), account_id)
    WHERE profile = 'relative' AND feed_id IS NOT NULL;
