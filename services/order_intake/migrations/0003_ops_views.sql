-- What operators read of order_intake (onectl), as read-only views in a schema of their
-- own, granted to the role one_ops (docs/operations.md, "onectl's views"). A view reads
-- with its owner's rights, this worker's role: one_ops has no right on order_intake
-- itself. A change of a view adds a _v2 beside it; the _v1 stays while an onectl in use
-- reads it. Only what onectl prints or filters on: no order payload, no invoice
-- document.
-- shared.db.migrate makes the schema where provisioning did not and grants the views.

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
