-- Every hand-out of credentials, and every refused request for one: who asked (account,
-- profile; none when the system sent it), for whom, how, and what was delivered. Never a
-- code. Kept ONE_AUDIT_RETENTION_DAYS (400), beyond the documents themselves.
CREATE TABLE audit (
    audit_id          uuid PRIMARY KEY,
    school_id         uuid NOT NULL,
    at                timestamptz NOT NULL DEFAULT now(),
    purpose           text NOT NULL CHECK (purpose IN ('first_access', 'request', 'resend')),
    request_id        text,
    requested_by      uuid,
    requester_profile text,
    accounts          uuid[] NOT NULL DEFAULT '{}',
    channel           text,
    layout            text,
    document_id       uuid,
    refused           jsonb,
    dispatch_id       uuid UNIQUE,
    completed_at      timestamptz,
    delivered         jsonb,
    undeliverable     jsonb
);
CREATE INDEX audit_school_at ON audit (school_id, at);
CREATE INDEX audit_accounts ON audit USING gin (accounts);
CREATE INDEX audit_at ON audit (at);
CREATE INDEX documents_created_at ON documents (created_at);
