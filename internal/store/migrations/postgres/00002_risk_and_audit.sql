-- +goose Up

-- A flagged user's claims are verified one by one until `until`; no sample or
-- honor approval covers them meanwhile. Flags are never deleted: an expired
-- flag is simply ignored.
CREATE TABLE user_risk (
    tenant_id TEXT        NOT NULL,
    user_ref  TEXT        NOT NULL,
    until     TIMESTAMPTZ NOT NULL,
    reason    TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, user_ref)
);

-- When an audit confirmed or revoked a provisional verdict; NULL: not audited.
-- A nullable column without default: no table rewrite.
ALTER TABLE claims ADD COLUMN audited_at TIMESTAMPTZ;

-- The audit queue walks provisional, unaudited claims oldest decision first;
-- audited and definitive claims stay out of this index.
CREATE INDEX claims_audit_queue ON claims (decided_at, id)
    WHERE verdict IN ('approved_by_sample', 'approved_on_honor') AND audited_at IS NULL;

-- Stats also counts audited claims; with audited_at in the index the query
-- can still run as an index-only scan.
DROP INDEX claims_tenant_status;
CREATE INDEX claims_tenant_status ON claims (tenant_id, status, verdict, audited_at);

-- +goose Down
DROP INDEX claims_tenant_status;
CREATE INDEX claims_tenant_status ON claims (tenant_id, status, verdict);
DROP INDEX claims_audit_queue;
ALTER TABLE claims DROP COLUMN audited_at;
DROP TABLE user_risk;
