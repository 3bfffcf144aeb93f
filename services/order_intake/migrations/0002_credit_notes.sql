-- Credit notes, numbered apart from invoices (AVOIR-<year>-<seq>): one counter row per
-- calendar year, incremented inside the cancellation's transaction, so a rolled back
-- cancellation leaves no gap.
CREATE TABLE credit_note_counters (
    year     integer PRIMARY KEY,
    last_seq integer NOT NULL
);

-- One credit note per order at most: it cancels the order's whole invoice.
CREATE TABLE credit_notes (
    credit_note_number text PRIMARY KEY,
    year               integer NOT NULL,
    seq                integer NOT NULL,
    invoice_number     text NOT NULL UNIQUE REFERENCES invoices,
    order_id           text NOT NULL UNIQUE REFERENCES orders,
    school_id          uuid NOT NULL REFERENCES schools,
    reason             text NOT NULL,
    cancelled_at       timestamptz NOT NULL,
    issued_at          timestamptz NOT NULL,
    total_excl_tax     numeric(14, 2) NOT NULL,
    total_vat          numeric(14, 2) NOT NULL,
    total_incl_tax     numeric(14, 2) NOT NULL,
    document           jsonb NOT NULL,
    UNIQUE (year, seq)
);
