-- A published event's body is dropped once the broker confirmed it (accounts.created
-- carries activation codes): only what tracing needs stays, for the retention period.
ALTER TABLE outbox ALTER COLUMN body DROP NOT NULL;
UPDATE outbox SET body = NULL WHERE published_at IS NOT NULL AND body IS NOT NULL;
