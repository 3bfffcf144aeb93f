-- What operators read of credential_dispatch (onectl), as read-only views in a schema of
-- their own, granted to the role one_ops (docs/operations.md, "onectl's views"). A view
-- reads with its owner's rights, this worker's role: one_ops has no right on
-- credential_dispatch itself. A change of a view adds a _v2 beside it; the _v1 stays
-- while an onectl in use reads it. Only what onectl prints or filters on: no account,
-- activation code, document or notice.

-- Provisioning makes the schema, owned by this worker's role, which may not create
-- schemas itself (shared.db.provision, deploy/postgres/init.sql); a role that may (a
-- local superuser) makes it here.
DO $$
BEGIN
    IF to_regnamespace('credential_dispatch_ops') IS NULL THEN
        CREATE SCHEMA credential_dispatch_ops;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'schema % is missing and % may not create it',
        'credential_dispatch_ops', current_user
        USING HINT = 'provision it (ONE_DATABASE_ADMIN_URL) or, as a superuser: '
            || 'CREATE SCHEMA credential_dispatch_ops AUTHORIZATION '
            || quote_ident(current_user);
END
$$;

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

-- one_ops exists where provisioning made it; elsewhere there is nobody to grant to.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'one_ops') THEN
        GRANT USAGE ON SCHEMA credential_dispatch_ops TO one_ops;
        GRANT SELECT ON ALL TABLES IN SCHEMA credential_dispatch_ops TO one_ops;
    END IF;
END
$$;
