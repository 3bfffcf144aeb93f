-- What credential_dispatch needs, from account_manager's events, to check a requester's
-- scope and to choose whom a sheet goes to.
CREATE TABLE classes (
    class_id  uuid PRIMARY KEY,
    school_id uuid NOT NULL,
    name      text NOT NULL
);
CREATE INDEX classes_school ON classes (school_id);

-- A pupil's or parent's classes, and a teacher's (those he is attached to).
CREATE TABLE account_classes (
    account_id uuid NOT NULL,
    class_id   uuid NOT NULL,
    PRIMARY KEY (account_id, class_id)
);
CREATE INDEX account_classes_class ON account_classes (class_id);

CREATE TABLE parent_children (
    parent_id uuid NOT NULL,
    child_id  uuid NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX parent_children_child ON parent_children (child_id);

-- Printed documents, kept so that they can be fetched again by their id.
CREATE TABLE documents (
    document_id  uuid PRIMARY KEY,
    dispatch_id  uuid NOT NULL REFERENCES dispatches,
    school_id    uuid NOT NULL,
    filename     text NOT NULL,
    content_type text NOT NULL,
    content      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE dispatches DROP CONSTRAINT dispatches_purpose_check;
ALTER TABLE dispatches ADD CONSTRAINT dispatches_purpose_check
    CHECK (purpose IN ('first_access', 'invoice', 'request'));
ALTER TABLE dispatches ADD COLUMN requested_by uuid;
ALTER TABLE dispatches ADD COLUMN layout text;
ALTER TABLE dispatches ADD COLUMN selection uuid[];
ALTER TABLE dispatches ADD COLUMN document_id uuid;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check
    CHECK (kind IN ('first_access', 'invoice', 'sheet', 'print'));
