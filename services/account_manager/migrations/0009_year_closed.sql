-- When a manual school's administrator last closed its school year: a second close within
-- weeks (a double click, two administrators) would archive the brand-new classes.
ALTER TABLE schools ADD COLUMN year_closed_at timestamptz;
