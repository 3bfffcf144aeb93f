-- What operators read of directory_sync (onectl), as read-only views in a schema of
-- their own, granted to the role one_ops (docs/operations.md, "onectl's views"). A view
-- reads with its owner's rights, this worker's role: one_ops has no right on
-- directory_sync itself. A change of a view adds a _v2 beside it; the _v1 stays while an
-- onectl in use reads it. Only what onectl prints or filters on: no snapshot, no held
-- changes.
-- shared.db.migrate makes the schema where provisioning did not and grants the views.

CREATE VIEW directory_sync_ops.feed_registrations_v1 AS
    SELECT school_id, uai, name, academie, order_id FROM feed_registrations;

-- A run's report, without the changes a held run keeps for its approval.
CREATE VIEW directory_sync_ops.sync_runs_v1 AS
    SELECT run_id, school_id, uai, correlationid, trigger, request_id, requested_by,
           dry_run, state, status, counts, errors, warnings, hold_reasons, approved_by,
           approved_at, attempts, last_error, created_at, finished_at, turnover
    FROM sync_runs;

-- Which run made each school's snapshot (the one that can be undone); not its persons.
CREATE VIEW directory_sync_ops.feed_snapshots_v1 AS
    SELECT school_id, run_id FROM feed_snapshots;

-- A conversation's trace (onectl trace): ids, topics and times, never a body.
CREATE VIEW directory_sync_ops.outbox_v1 AS
    SELECT message_id, topic, correlationid, causationid, created_at, published_at
    FROM outbox;

CREATE VIEW directory_sync_ops.inbox_v1 AS
    SELECT message_id, topic, received_at FROM inbox;
