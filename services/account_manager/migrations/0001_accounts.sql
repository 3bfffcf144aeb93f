CREATE TABLE schools (
    school_id    uuid PRIMARY KEY,
    uai          text NOT NULL UNIQUE,
    name         text NOT NULL,
    provisioning text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE classes (
    class_id   uuid PRIMARY KEY,
    school_id  uuid NOT NULL REFERENCES schools,
    name       text NOT NULL,
    level      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (school_id, name)
);

CREATE TABLE accounts (
    account_id            uuid PRIMARY KEY,
    school_id             uuid NOT NULL REFERENCES schools,
    profile               text NOT NULL
        CHECK (profile IN ('administrator', 'teacher', 'personnel', 'student', 'relative')),
    first_name            text NOT NULL,
    last_name             text NOT NULL,
    login                 text NOT NULL UNIQUE,
    email                 text,
    birth_date            date,
    activation_code       text,
    activation_expires_at timestamptz,
    activated_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_school ON accounts (school_id, profile);

-- The last rank handed out per login base ("jean.dupont" -> 3 means jean.dupont3 is
-- taken). Incremented under its row lock, so replicas never pick the same login.
CREATE TABLE login_counters (
    base      text PRIMARY KEY,
    last_rank integer NOT NULL
);
