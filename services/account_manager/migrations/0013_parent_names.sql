-- One person across schools (issue 22, docs/one-person-across-schools.md §1): a newcomer
-- parent is looked for in the other schools by his folded names (then his email). The
-- names index of 0002 leads with the school; this one holds the parents only.
CREATE INDEX accounts_parent_names ON accounts (last_folded, first_folded)
    WHERE profile = 'relative';
