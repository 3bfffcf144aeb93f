-- The last applied feed of each school: its persons with their feed ids (stable from run
-- to run), its classes, and the digest of the drop's files (an equal digest skips parsing).
-- ``version`` grows at each applied run: a held run applies only onto the version it saw.
CREATE TABLE feed_snapshots (
    school_id  uuid PRIMARY KEY REFERENCES feed_registrations (school_id),
    version    bigint NOT NULL,
    digest     text NOT NULL,
    run_id     uuid NOT NULL,
    persons    jsonb NOT NULL,
    classes    jsonb NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Every run (nightly, first sync, on demand) and its report. A run is queued, claimed by a
-- replica under a lease, then done with its status; a held run keeps the chunks and the
-- snapshot it would apply, so that approval applies exactly what was reported.
CREATE TABLE sync_runs (
    run_id             uuid PRIMARY KEY,
    school_id          uuid NOT NULL REFERENCES feed_registrations (school_id),
    uai                text NOT NULL,
    trigger            text NOT NULL CHECK (trigger IN ('first_sync', 'nightly', 'request')),
    request_id         text,
    requested_by       text,
    dry_run            boolean NOT NULL DEFAULT false,
    correlationid      text NOT NULL,
    causationid        text,
    state              text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done')),
    attempts           integer NOT NULL DEFAULT 0,
    lease_until        timestamptz,
    not_before         timestamptz NOT NULL DEFAULT now(),
    last_error         text,
    status             text CHECK (
        status IN ('applied', 'unchanged', 'dry_run', 'held', 'rejected', 'no_drop')
    ),
    base_version       bigint,
    digest             text,
    counts             jsonb,
    errors             jsonb NOT NULL DEFAULT '[]',
    warnings           jsonb NOT NULL DEFAULT '[]',
    hold_reasons       jsonb NOT NULL DEFAULT '[]',
    held_changes       jsonb,
    approved_by        text,
    approve_request_id text,
    approved_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    CHECK ((state = 'done') = (status IS NOT NULL))
);
CREATE INDEX sync_runs_queued ON sync_runs (not_before) WHERE state = 'queued';
CREATE INDEX sync_runs_school ON sync_runs (school_id, created_at);

-- One row per académie and night: the replica that inserts it queues that night's runs.
CREATE TABLE nightly_runs (
    academie   text NOT NULL,
    night      date NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (academie, night)
);
