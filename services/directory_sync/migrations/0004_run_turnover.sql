-- Whether a run was its school's turnover (la rentrée), for the night's report; and the
-- runs of an académie's night found by their correlationid (nightly:<night>:<académie>).
ALTER TABLE sync_runs ADD COLUMN turnover boolean NOT NULL DEFAULT false;
CREATE INDEX sync_runs_night ON sync_runs (correlationid) WHERE trigger = 'nightly';
