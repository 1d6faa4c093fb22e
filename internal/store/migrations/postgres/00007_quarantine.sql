-- +goose Up

-- Quarantine: a claim whose handling made the engine panic (a poison claim)
-- leaves the queue with its reason (last_error) and time, so that it never
-- fails its batch again; an operator releases it back to pending once the
-- cause is fixed (`starter quarantine -release`). It is not decided: no
-- verdict, not in the verdict feed, not in the export.
--
-- A nullable column without default: no table rewrite. The status CHECK
-- (named claims_status_check by PostgreSQL in 00001) is replaced; the new
-- one only widens the old, so validating it holds no surprise.
ALTER TABLE claims ADD COLUMN quarantined_at TIMESTAMPTZ; -- set while status = 'quarantined'
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('pending', 'leased', 'decided', 'quarantined'));

-- The quarantine listing pages by id, per tenant or over all; a handful of
-- rows, kept out of every other index's way.
CREATE INDEX claims_quarantined ON claims (tenant_id, id) WHERE status = 'quarantined';

-- +goose Down
-- Code before this migration knows no quarantine: quarantined claims go back
-- to pending (their reason stays in last_error), as a release would put them.
DROP INDEX claims_quarantined;
UPDATE claims SET status = 'pending' WHERE status = 'quarantined';
ALTER TABLE claims DROP CONSTRAINT claims_status_check;
ALTER TABLE claims ADD CONSTRAINT claims_status_check CHECK (status IN ('pending', 'leased', 'decided'));
ALTER TABLE claims DROP COLUMN quarantined_at;
