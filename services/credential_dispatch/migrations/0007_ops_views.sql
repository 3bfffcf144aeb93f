-- What operators read of credential_dispatch (onectl), as read-only views in a schema of
-- their own, granted to the role one_ops (docs/operations.md, "onectl's views"). A view
-- reads with its owner's rights, this worker's role: one_ops has no right on
-- credential_dispatch itself. A change of a view adds a _v2 beside it; the _v1 stays
-- while an onectl in use reads it. Only what onectl prints or filters on: no account,
-- activation code, document or notice.
-- shared.db.migrate makes the schema where provisioning did not and grants the views.

CREATE VIEW credential_dispatch_ops.dispatches_v1 AS
    SELECT dispatch_id, school_id, purpose FROM dispatches;

-- Each delivery with its school, taken from its dispatch.
CREATE VIEW credential_dispatch_ops.deliveries_v1 AS
    SELECT v.delivery_id, d.school_id, v.kind, v.status
    FROM deliveries v JOIN dispatches d USING (dispatch_id);

-- The audit of hand-outs, as kept: it holds no code (0004_audit.sql).
CREATE VIEW credential_dispatch_ops.audit_v1 AS
    SELECT school_id, at, purpose, request_id, requested_by, requester_profile, accounts,
           channel, layout, document_id, refused, completed_at, delivered, undeliverable
    FROM audit;

-- A conversation's trace (onectl trace): ids, topics and times, never a body.
CREATE VIEW credential_dispatch_ops.outbox_v1 AS
    SELECT message_id, topic, correlationid, causationid, created_at, published_at
    FROM outbox;

CREATE VIEW credential_dispatch_ops.inbox_v1 AS
    SELECT message_id, topic, received_at FROM inbox;
