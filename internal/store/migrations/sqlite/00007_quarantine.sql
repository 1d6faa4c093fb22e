-- +goose Up

-- Quarantine: a claim whose handling made the engine panic (a poison claim)
-- leaves the queue with its reason (last_error) and time, so that it never
-- fails its batch again; an operator releases it back to pending once the
-- cause is fixed (`starter quarantine -release`). It is not decided: no
-- verdict, not in the verdict feed, not in the export.
--
-- SQLite cannot alter the CHECK on claims.status, so the table is rebuilt
-- (https://www.sqlite.org/lang_altertable.html#otheralter): created anew with
-- the same columns in the same order, the rows copied with their ids, the old
-- table dropped and the new one renamed, then every index of migrations
-- 00001-00006 created again word for word (partial indexes are used only by
-- queries that repeat their conditions). No other table, view or trigger
-- refers to claims. AUTOINCREMENT keeps its high-water mark in
-- sqlite_sequence: it is carried over, so ids are never reused even when it
-- is above the largest id left.
CREATE TABLE claims_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id        TEXT    NOT NULL,
    idem_key         TEXT    NOT NULL,
    user_ref         TEXT    NOT NULL,
    handle           TEXT    NOT NULL DEFAULT '',
    kind             TEXT    NOT NULL,
    target           TEXT    NOT NULL,
    code             TEXT    NOT NULL DEFAULT '',
    since            INTEGER,
    submitted_at     INTEGER NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'leased', 'decided', 'quarantined')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before       INTEGER,
    last_error       TEXT    NOT NULL DEFAULT '',
    lease_owner      TEXT    NOT NULL DEFAULT '',
    lease_expires_at INTEGER,
    verdict          TEXT    NOT NULL DEFAULT '',
    method           TEXT    NOT NULL DEFAULT '',
    evidence         TEXT    NOT NULL DEFAULT '',
    decided_at       INTEGER,
    revoked_from     TEXT    NOT NULL DEFAULT '',
    revoked_evidence TEXT    NOT NULL DEFAULT '',
    revoked_at       INTEGER,
    audited_at       INTEGER,
    feed_seq         INTEGER,
    quarantined_at   INTEGER, -- set while status = 'quarantined'
    UNIQUE (tenant_id, idem_key)
);
INSERT INTO claims_new (id, tenant_id, idem_key, user_ref, handle, kind, target, code, since, submitted_at,
    status, attempts, not_before, last_error, lease_owner, lease_expires_at, verdict, method, evidence,
    decided_at, revoked_from, revoked_evidence, revoked_at, audited_at, feed_seq)
SELECT id, tenant_id, idem_key, user_ref, handle, kind, target, code, since, submitted_at,
    status, attempts, not_before, last_error, lease_owner, lease_expires_at, verdict, method, evidence,
    decided_at, revoked_from, revoked_evidence, revoked_at, audited_at, feed_seq
FROM claims;
DELETE FROM sqlite_sequence WHERE name = 'claims_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'claims_new', seq FROM sqlite_sequence WHERE name = 'claims';
DROP TABLE claims;
ALTER TABLE claims_new RENAME TO claims;

-- 00001
CREATE INDEX claims_open_by_age ON claims (submitted_at, id) WHERE status IN ('pending', 'leased');
CREATE INDEX claims_decided_by_tenant ON claims (tenant_id, id) WHERE status = 'decided';
-- 00002
CREATE INDEX claims_audit_queue ON claims (decided_at, id)
    WHERE verdict IN ('approved_by_sample', 'approved_on_honor') AND audited_at IS NULL;
CREATE INDEX claims_tenant_status ON claims (tenant_id, status, verdict, audited_at);
-- 00004
CREATE INDEX claims_open_by_tenant ON claims (tenant_id, target, submitted_at, id) WHERE status IN ('pending', 'leased');
-- 00005
CREATE INDEX claims_feed ON claims (tenant_id, feed_seq) WHERE feed_seq IS NOT NULL;

-- The quarantine listing pages by id, per tenant or over all; a handful of
-- rows, kept out of every other index's way.
CREATE INDEX claims_quarantined ON claims (tenant_id, id) WHERE status = 'quarantined';

-- +goose Down
-- The same rebuild back to the CHECK of 00001. Code before this migration
-- knows no quarantine: quarantined claims go back to pending (their reason
-- stays in last_error), as a release would put them.
CREATE TABLE claims_old (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id        TEXT    NOT NULL,
    idem_key         TEXT    NOT NULL,
    user_ref         TEXT    NOT NULL,
    handle           TEXT    NOT NULL DEFAULT '',
    kind             TEXT    NOT NULL,
    target           TEXT    NOT NULL,
    code             TEXT    NOT NULL DEFAULT '',
    since            INTEGER,
    submitted_at     INTEGER NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'leased', 'decided')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before       INTEGER,
    last_error       TEXT    NOT NULL DEFAULT '',
    lease_owner      TEXT    NOT NULL DEFAULT '',
    lease_expires_at INTEGER,
    verdict          TEXT    NOT NULL DEFAULT '',
    method           TEXT    NOT NULL DEFAULT '',
    evidence         TEXT    NOT NULL DEFAULT '',
    decided_at       INTEGER,
    revoked_from     TEXT    NOT NULL DEFAULT '',
    revoked_evidence TEXT    NOT NULL DEFAULT '',
    revoked_at       INTEGER,
    audited_at       INTEGER,
    feed_seq         INTEGER,
    UNIQUE (tenant_id, idem_key)
);
INSERT INTO claims_old (id, tenant_id, idem_key, user_ref, handle, kind, target, code, since, submitted_at,
    status, attempts, not_before, last_error, lease_owner, lease_expires_at, verdict, method, evidence,
    decided_at, revoked_from, revoked_evidence, revoked_at, audited_at, feed_seq)
SELECT id, tenant_id, idem_key, user_ref, handle, kind, target, code, since, submitted_at,
    CASE WHEN status = 'quarantined' THEN 'pending' ELSE status END, attempts, not_before, last_error, lease_owner, lease_expires_at, verdict, method, evidence,
    decided_at, revoked_from, revoked_evidence, revoked_at, audited_at, feed_seq
FROM claims;
DELETE FROM sqlite_sequence WHERE name = 'claims_old';
INSERT INTO sqlite_sequence (name, seq) SELECT 'claims_old', seq FROM sqlite_sequence WHERE name = 'claims';
DROP TABLE claims;
ALTER TABLE claims_old RENAME TO claims;
CREATE INDEX claims_open_by_age ON claims (submitted_at, id) WHERE status IN ('pending', 'leased');
CREATE INDEX claims_decided_by_tenant ON claims (tenant_id, id) WHERE status = 'decided';
CREATE INDEX claims_audit_queue ON claims (decided_at, id)
    WHERE verdict IN ('approved_by_sample', 'approved_on_honor') AND audited_at IS NULL;
CREATE INDEX claims_tenant_status ON claims (tenant_id, status, verdict, audited_at);
CREATE INDEX claims_open_by_tenant ON claims (tenant_id, target, submitted_at, id) WHERE status IN ('pending', 'leased');
CREATE INDEX claims_feed ON claims (tenant_id, feed_seq) WHERE feed_seq IS NOT NULL;
