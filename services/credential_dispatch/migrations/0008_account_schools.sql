-- One person across schools (docs/one-person-across-schools.md, §6): the schools an
-- account is in besides its home (accounts.school_id), from accounts.attached and
-- accounts.detached. A single-school account has no row here.
CREATE TABLE account_schools (
    account_id  uuid NOT NULL REFERENCES accounts ON DELETE CASCADE,
    school_id   uuid NOT NULL,
    attached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, school_id)
);
CREATE INDEX account_schools_school ON account_schools (school_id);
