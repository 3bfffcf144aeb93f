-- What applying a run decided that its report (directory.sync.reported, sent by
-- directory_sync before account_manager applied it) could not know, account by account:
-- the persons of another school now in this one ('attached', a pupil by his INE, a parent
-- by his names and email), and the new accounts whose names alone are those of an account
-- of another school ('possible_duplicate', with that account). Written by the chunk that
-- decided it, summed up in directory.sync.applied once the run is applied whole, read by
-- onectl. A run with neither writes no row.
CREATE TABLE feed_run_findings (
    school_id        uuid NOT NULL REFERENCES schools,
    run_id           uuid NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('attached', 'possible_duplicate')),
    account_id       uuid NOT NULL,
    other_account_id uuid,
    PRIMARY KEY (school_id, run_id, kind, account_id)
);
CREATE INDEX feed_run_findings_run ON feed_run_findings (run_id);

-- Ids only: no name or email (0011's rule).
CREATE VIEW account_manager_ops.feed_run_findings_v1 AS
    SELECT run_id, school_id, kind, account_id, other_account_id FROM feed_run_findings;

-- Every account a school holds, its home's and those attached to it (issue 22), with
-- whether another school holds it too. accounts_v1 stays the accounts by their home.
CREATE VIEW account_manager_ops.school_accounts_v1 AS
    SELECT a.account_id, a.school_id, a.profile, a.activated_at, a.deactivated_at,
           true AS home,
           EXISTS (SELECT 1 FROM account_schools s WHERE s.account_id = a.account_id)
               AS shared
    FROM accounts a
    UNION ALL
    SELECT a.account_id, s.school_id, a.profile, a.activated_at, a.deactivated_at,
           false AS home, true AS shared
    FROM account_schools s JOIN accounts a USING (account_id);
