-- Notices: mails that hand out no credentials, such as the administrator's notice of a new
-- school year (the classes still without a teacher). What they say is kept with them.
ALTER TABLE dispatches DROP CONSTRAINT dispatches_purpose_check;
ALTER TABLE dispatches ADD CONSTRAINT dispatches_purpose_check
    CHECK (purpose IN ('first_access', 'invoice', 'request', 'notice'));
ALTER TABLE dispatches ADD COLUMN notice jsonb;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check
    CHECK (kind IN ('first_access', 'invoice', 'sheet', 'print', 'year_turned'));
