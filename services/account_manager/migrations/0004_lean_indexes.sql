-- accounts_match (school_id, profile, last_folded, first_folded) begins with every column of
-- accounts_school: the narrower index only cost a write per account (a first import writes
-- half a million).
DROP INDEX IF EXISTS accounts_school;
