CREATE TABLE schools (
    school_id    uuid PRIMARY KEY,
    uai          text NOT NULL UNIQUE,
    name         text NOT NULL,
    department   text NOT NULL,
    academie     text,
    provisioning text NOT NULL CHECK (provisioning IN ('automatic', 'manual')),
    order_id     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    order_id      text PRIMARY KEY,
    fingerprint   text NOT NULL,
    school_id     uuid NOT NULL REFERENCES schools,
    payload       jsonb NOT NULL,
    correlationid text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per calendar year; incremented inside the order's transaction, so a rolled
-- back order leaves no gap in the numbering.
CREATE TABLE invoice_counters (
    year     integer PRIMARY KEY,
    last_seq integer NOT NULL
);

CREATE TABLE invoices (
    invoice_number text PRIMARY KEY,
    year           integer NOT NULL,
    seq            integer NOT NULL,
    order_id       text NOT NULL UNIQUE REFERENCES orders,
    school_id      uuid NOT NULL REFERENCES schools,
    issued_at      timestamptz NOT NULL,
    total_excl_tax numeric(14, 2) NOT NULL,
    total_vat      numeric(14, 2) NOT NULL,
    total_incl_tax numeric(14, 2) NOT NULL,
    document       jsonb NOT NULL,
    UNIQUE (year, seq)
);

CREATE TABLE rejections (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    text,
    event_id    text NOT NULL,
    reasons     jsonb NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejections_order ON rejections (order_id);
