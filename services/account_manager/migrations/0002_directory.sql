-- Folded names, for matching a person against the school's existing accounts.
ALTER TABLE accounts ADD COLUMN first_folded text NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN last_folded text NOT NULL DEFAULT '';
CREATE INDEX accounts_match ON accounts (school_id, profile, last_folded, first_folded);

-- A pupil's (or a teacher's own) classes; a parent's follow from his children.
CREATE TABLE account_classes (
    account_id uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    class_id   uuid NOT NULL REFERENCES classes ON DELETE CASCADE,
    PRIMARY KEY (account_id, class_id)
);
CREATE INDEX account_classes_class ON account_classes (class_id);

CREATE TABLE class_teachers (
    class_id   uuid NOT NULL REFERENCES classes ON DELETE CASCADE,
    account_id uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (class_id, account_id)
);
CREATE INDEX class_teachers_account ON class_teachers (account_id);

CREATE TABLE parent_children (
    parent_id uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    child_id  uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX parent_children_child ON parent_children (child_id);
