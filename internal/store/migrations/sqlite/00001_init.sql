-- +goose Up

-- Times are INTEGER unix microseconds (UTC), so comparisons are numeric and exact.

-- Tokens are known by reference only: secret_ref names where the value lives,
-- so a raw access token can never be written here.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    accounts      TEXT    NOT NULL DEFAULT '[]', -- JSON array of account ids
    budget_calls  INTEGER NOT NULL DEFAULT 0,
    budget_window TEXT    NOT NULL CHECK (budget_window IN ('1h', '24h')),
    secret_ref    TEXT    NOT NULL CHECK (secret_ref LIKE 'env:%' OR secret_ref LIKE 'file:%')
);

CREATE TABLE tenants (
    id       TEXT PRIMARY KEY,
    tier     TEXT NOT NULL CHECK (tier IN ('premium', 'standard')),
    token_id TEXT,                        -- NULL: the platform token
    accounts TEXT NOT NULL DEFAULT '[]'   -- JSON array of {id, type}
);

-- AUTOINCREMENT so ids are never reused: export pages by id.
CREATE TABLE claims (
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
    UNIQUE (tenant_id, idem_key)
);

-- Claiming walks the open claims oldest first; decided claims, the vast
-- majority at steady state, stay out of this index. The claim query repeats
-- the status condition so SQLite can prove the partial index applies.
CREATE INDEX claims_open_by_age ON claims (submitted_at, id) WHERE status IN ('pending', 'leased');

-- Export pages through one tenant's decided claims by id.
CREATE INDEX claims_decided_by_tenant ON claims (tenant_id, id) WHERE status = 'decided';

-- Stats groups by these columns; the index covers the query.
CREATE INDEX claims_tenant_status ON claims (tenant_id, status, verdict);

-- +goose Down
DROP TABLE claims;
DROP TABLE tenants;
DROP TABLE tokens;
