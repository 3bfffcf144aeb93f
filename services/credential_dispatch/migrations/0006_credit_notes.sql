-- Credit notes are mailed as invoices are. ``invoices`` holds every billing document
-- mailed to a billing address: invoices (ONE-…) and credit notes (AVOIR-…), and
-- ``deliveries.invoice_number`` the number of the one a delivery sends.
ALTER TABLE dispatches DROP CONSTRAINT dispatches_purpose_check;
ALTER TABLE dispatches ADD CONSTRAINT dispatches_purpose_check
    CHECK (purpose IN ('first_access', 'invoice', 'credit_note', 'request', 'notice'));

ALTER TABLE deliveries DROP CONSTRAINT deliveries_kind_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_kind_check
    CHECK (kind IN ('first_access', 'invoice', 'credit_note', 'sheet', 'print', 'year_turned'));
