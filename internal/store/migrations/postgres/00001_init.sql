-- +goose Up

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

CREATE TABLE claims (
    id               BIGSERIAL PRIMARY KEY,
    tenant_id        TEXT        NOT NULL,
    idem_key         TEXT        NOT NULL,
    user_ref         TEXT        NOT NULL,
    handle           TEXT        NOT NULL DEFAULT '',
    kind             TEXT        NOT NULL,
    target           TEXT        NOT NULL,
    code             TEXT        NOT NULL DEFAULT '',
    since            TIMESTAMPTZ,
    submitted_at     TIMESTAMPTZ NOT NULL,
    status           TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'leased', 'decided')),
    attempts         INTEGER     NOT NULL DEFAULT 0,
    not_before       TIMESTAMPTZ,
    last_error       TEXT        NOT NULL DEFAULT '',
    lease_owner      TEXT        NOT NULL DEFAULT '',
    lease_expires_at TIMESTAMPTZ,
    verdict          TEXT        NOT NULL DEFAULT '',
    method           TEXT        NOT NULL DEFAULT '',
    evidence         TEXT        NOT NULL DEFAULT '',
    decided_at       TIMESTAMPTZ,
    revoked_from     TEXT        NOT NULL DEFAULT '',
    revoked_evidence TEXT        NOT NULL DEFAULT '',
    revoked_at       TIMESTAMPTZ,
    CONSTRAINT claims_tenant_key UNIQUE (tenant_id, idem_key)
);

-- Claiming walks the open claims oldest first; decided claims, the vast
-- majority at steady state, stay out of this index.
CREATE INDEX claims_open_by_age ON claims (submitted_at, id) WHERE status IN ('pending', 'leased');

-- Export pages through one tenant's decided claims by id.
CREATE INDEX claims_decided_by_tenant ON claims (tenant_id, id) WHERE status = 'decided';

-- Stats groups by these columns; the index lets it run as an index-only scan.
CREATE INDEX claims_tenant_status ON claims (tenant_id, status, verdict);

-- +goose Down
DROP TABLE claims;
DROP TABLE tenants;
DROP TABLE tokens;
