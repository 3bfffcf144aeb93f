-- What operators read of account_manager (onectl), as read-only views in a schema of
-- their own, granted to the role one_ops (docs/operations.md, "onectl's views"). A view
-- reads with its owner's rights, this worker's role: one_ops has no right on
-- account_manager itself. A change of a view adds a _v2 beside it; the _v1 stays while
-- an onectl in use reads it. Only what onectl prints or filters on: no name, login,
-- email, birth date or activation code.
-- shared.db.migrate makes the schema where provisioning did not and grants the views.

CREATE VIEW account_manager_ops.schools_v1 AS
    SELECT school_id, uai, name, provisioning, created_at FROM schools;

CREATE VIEW account_manager_ops.classes_v1 AS
    SELECT class_id, school_id FROM classes;

CREATE VIEW account_manager_ops.accounts_v1 AS
    SELECT account_id, school_id, profile, activated_at, deactivated_at FROM accounts;

CREATE VIEW account_manager_ops.class_teachers_v1 AS
    SELECT class_id, account_id FROM class_teachers;

-- A conversation's trace (onectl trace): ids, topics and times, never a body.
CREATE VIEW account_manager_ops.outbox_v1 AS
    SELECT message_id, topic, correlationid, causationid, created_at, published_at
    FROM outbox;

CREATE VIEW account_manager_ops.inbox_v1 AS
    SELECT message_id, topic, received_at FROM inbox;
