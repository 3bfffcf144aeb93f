-- Schools fed from ONDE, as heard from school.initialised.
CREATE TABLE feed_registrations (
    school_id     uuid PRIMARY KEY,
    uai           text NOT NULL UNIQUE,
    name          text NOT NULL,
    academie      text,
    order_id      text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);
