-- Accounts the nightly feed deactivated (activated leavers, kept for a grace period):
-- nobody hands out their sheets, and they ask for nothing, until they are restored.
ALTER TABLE accounts ADD COLUMN deactivated_at timestamptz;
