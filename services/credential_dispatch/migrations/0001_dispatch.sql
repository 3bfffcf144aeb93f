-- credential_dispatch's own copy of what it needs from account_manager's events.
CREATE TABLE schools (
    school_id uuid PRIMARY KEY,
    uai       text,
    name         text NOT NULL,
    provisioning text
);

CREATE TABLE accounts (
    account_id            uuid PRIMARY KEY,
    school_id             uuid NOT NULL,
    profile               text NOT NULL,
    first_name            text NOT NULL,
    last_name             text NOT NULL,
    login                 text NOT NULL,
    email                 text,
    birth_date            date,
    classes               text[] NOT NULL DEFAULT '{}',
    children              uuid[] NOT NULL DEFAULT '{}',
    activation_code       text,
    activation_expires_at timestamptz,
    activated_at          timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_school ON accounts (school_id);

CREATE TABLE invoices (
    invoice_number text PRIMARY KEY,
    order_id       text NOT NULL,
    school_id      uuid NOT NULL,
    document       jsonb NOT NULL
);

-- One dispatch per reason to send (an administrator's first access, an invoice, later a
-- request from the ENT); it ends with one outcome event once all its deliveries are done.
CREATE TABLE dispatches (
    dispatch_id   uuid PRIMARY KEY,
    purpose       text NOT NULL CHECK (purpose IN ('first_access', 'invoice')),
    school_id     uuid NOT NULL,
    request_id    text,
    channel       text NOT NULL,
    correlationid text NOT NULL,
    causationid   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);

-- One email to send. Its id is the Message-ID, so a resend is recognisable.
CREATE TABLE deliveries (
    delivery_id     uuid PRIMARY KEY,
    dispatch_id     uuid NOT NULL REFERENCES dispatches,
    kind            text NOT NULL CHECK (kind IN ('first_access', 'invoice')),
    account_id      uuid,
    invoice_number  text,
    recipient       text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    sent_at         timestamptz
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_dispatch ON deliveries (dispatch_id);
