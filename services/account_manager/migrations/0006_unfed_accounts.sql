-- The accounts a newcomer of the feed may turn out to be (made by hand, or a leaver in his
-- grace period): few in any school, none among the hundreds of thousands of a first
-- import, so the index only holds them. The feed reads them whole and matches in memory,
-- where it probed the accounts once per newcomer (every person of a first import).
CREATE INDEX accounts_unfed ON accounts (school_id)
    WHERE feed_id IS NULL OR deactivated_at IS NOT NULL;
