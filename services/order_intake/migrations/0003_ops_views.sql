-- What operators read of order_intake (onectl), as read-only views in a schema of their
-- own, granted to the role one_ops (docs/operations.md, "onectl's views"). A view reads
-- with its owner's rights, this worker's role: one_ops has no right on order_intake
-- itself. A change of a view adds a _v2 beside it; the _v1 stays while an onectl in use
-- reads it. Only what onectl prints or filters on: no order payload, no invoice
-- document.

-- Provisioning makes the schema, owned by this worker's role, which may not create
-- schemas itself (shared.db.provision, deploy/postgres/init.sql); a role that may (a
-- local superuser) makes it here.
DO $$
BEGIN
    IF to_regnamespace('order_intake_ops') IS NULL THEN
        CREATE SCHEMA order_intake_ops;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'schema % is missing and % may not create it',
        'order_intake_ops', current_user
        USING HINT = 'provision it (ONE_DATABASE_ADMIN_URL) or, as a superuser: '
            || 'CREATE SCHEMA order_intake_ops AUTHORIZATION '
            || quote_ident(current_user);
END
$$;

CREATE VIEW order_intake_ops.schools_v1 AS
    SELECT school_id, uai, name, provisioning, order_id FROM schools;

CREATE VIEW order_intake_ops.orders_v1 AS
    SELECT order_id, school_id, received_at FROM orders;

CREATE VIEW order_intake_ops.invoices_v1 AS
    SELECT invoice_number, school_id FROM invoices;

CREATE VIEW order_intake_ops.rejections_v1 AS
    SELECT order_id, reasons, rejected_at FROM rejections;

-- A conversation's trace (onectl trace): ids, topics and times, never a body.
CREATE VIEW order_intake_ops.outbox_v1 AS
    SELECT message_id, topic, correlationid, causationid, created_at, published_at
    FROM outbox;

CREATE VIEW order_intake_ops.inbox_v1 AS
    SELECT message_id, topic, received_at FROM inbox;

-- one_ops exists where provisioning made it; elsewhere there is nobody to grant to.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'one_ops') THEN
        GRANT USAGE ON SCHEMA order_intake_ops TO one_ops;
        GRANT SELECT ON ALL TABLES IN SCHEMA order_intake_ops TO one_ops;
    END IF;
END
$$;
