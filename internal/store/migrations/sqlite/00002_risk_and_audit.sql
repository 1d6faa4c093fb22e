-- +goose Up

-- A flagged user's claims are verified one by one until `until` (unix
-- microseconds, UTC); no sample or honor approval covers them meanwhile.
-- Flags are never deleted: an expired flag is simply ignored.
CREATE TABLE user_risk (
    tenant_id TEXT    NOT NULL,
    user_ref  TEXT    NOT NULL,
    until     INTEGER NOT NULL,
    reason    TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, user_ref)
);

-- When an audit confirmed or revoked a provisional verdict; NULL: not audited.
ALTER TABLE claims ADD COLUMN audited_at INTEGER;

-- The audit queue walks provisional, unaudited claims oldest decision first;
-- audited and definitive claims stay out of this index. The queue query
-- repeats this condition word for word so SQLite can prove the index applies.
CREATE INDEX claims_audit_queue ON claims (decided_at, id)
    WHERE verdict IN ('approved_by_sample', 'approved_on_honor') AND audited_at IS NULL;

-- Stats also counts audited claims; with audited_at in the index the query
-- stays covered by it.
DROP INDEX claims_tenant_status;
CREATE INDEX claims_tenant_status ON claims (tenant_id, status, verdict, audited_at);

-- +goose Down
-- SQLite refuses to drop a column an index uses, hence the indexes first.
DROP INDEX claims_tenant_status;
CREATE INDEX claims_tenant_status ON claims (tenant_id, status, verdict);
DROP INDEX claims_audit_queue;
ALTER TABLE claims DROP COLUMN audited_at;
DROP TABLE user_risk;
