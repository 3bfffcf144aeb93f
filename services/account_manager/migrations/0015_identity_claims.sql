-- The identity lock (docs/one-person-across-schools.md §4) as rows instead of advisory
-- locks. A chunk about to look for its newcomers in other schools first upserts a row per
-- identity key (an INE, a parent's names and email), in the order of the keys' hashes: a
-- chunk of another school with the same key waits on that row until the first commits,
-- then finds the first's account. A row lock lives in the row; an advisory lock takes a
-- slot of the shared lock table (max_locks_per_transaction × max_connections, 6,400 by
-- default), which many first-import chunks of a few hundred newcomers each could fill.
-- Only the key's 64-bit hash is kept, never a name or an email: two keys with the same hash
-- only make their chunks wait for each other. The purge forgets claims past the grace
-- period.
CREATE TABLE identity_claims (
    key_hash   bigint PRIMARY KEY,
    claimed_at timestamptz NOT NULL
);
CREATE INDEX identity_claims_at ON identity_claims (claimed_at);
