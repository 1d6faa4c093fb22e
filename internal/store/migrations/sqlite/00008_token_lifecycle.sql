-- +goose Up

-- Token lifecycle: tenants connect their own Meta tokens through the API.
-- A connected token has no secret_ref: its value is held sealed by
-- internal/vault (envelope encryption: sealed_value under a data key of its
-- own, wrapped_key the data key under the master key master_key_id), never in
-- clear. The app token's row (id 'app') holds a budget and no secret: the
-- worker builds the app token from the app id and secret. Every token also
-- keeps what its last check (Meta's debug_token) found. Times are INTEGER
-- unix microseconds (UTC), as everywhere in this schema; expires_at and
-- data_access_expires_at are Meta's times, checked_at and connected_at ours.
--
-- SQLite cannot relax the NOT NULL and CHECK of tokens.secret_ref, so the
-- table is rebuilt (https://www.sqlite.org/lang_altertable.html#otheralter):
-- created anew with the columns of 00001 in the same order and the new ones
-- after them, in the order PostgreSQL's ALTERs give, the rows copied, the old
-- table dropped and the new one renamed. tokens had no index, and no other
-- table, view or trigger refers to it (tenants.token_id is a plain column).
-- Existing rows are reference tokens, never checked: state 'unknown'.
CREATE TABLE tokens_new (
    id            TEXT PRIMARY KEY,
    accounts      TEXT    NOT NULL DEFAULT '[]', -- JSON array of account ids
    budget_calls  INTEGER NOT NULL DEFAULT 0,
    budget_window TEXT    NOT NULL CHECK (budget_window IN ('1h', '24h')),
    secret_ref    TEXT    CHECK (secret_ref IS NULL OR secret_ref LIKE 'env:%' OR secret_ref LIKE 'file:%'),
    tenant_id     TEXT,                 -- the tenant that connected it; NULL: from the tenants file
    connected_at  INTEGER,
    sealed_value  BLOB,                 -- nonce || AES-256-GCM(data key, value)
    wrapped_key   BLOB,                 -- nonce || AES-256-GCM(master key, data key)
    master_key_id TEXT,
    state         TEXT    NOT NULL DEFAULT 'unknown'
        CHECK (state IN ('unknown', 'healthy', 'expiring', 'missing_scopes', 'invalid', 'revoked')),
    state_reason  TEXT    NOT NULL DEFAULT '',
    checked_at    INTEGER,
    expires_at    INTEGER,              -- NULL: never
    data_access_expires_at INTEGER,
    scopes        TEXT    NOT NULL DEFAULT '[]', -- JSON array of granted permissions
    token_type    TEXT    NOT NULL DEFAULT '',   -- USER, PAGE, SYSTEM_USER
    meta_user_id  TEXT    NOT NULL DEFAULT '',   -- named by the deauthorization callback
    -- The three parts of a sealed value go together.
    CONSTRAINT tokens_sealed_check CHECK ((sealed_value IS NULL) = (wrapped_key IS NULL) AND (wrapped_key IS NULL) = (master_key_id IS NULL)),
    -- Every token has a way to its value, except the app token's row.
    CONSTRAINT tokens_secret_check CHECK (secret_ref IS NOT NULL OR (sealed_value IS NOT NULL AND wrapped_key IS NOT NULL AND master_key_id IS NOT NULL) OR id = 'app')
);
INSERT INTO tokens_new (id, accounts, budget_calls, budget_window, secret_ref)
SELECT id, accounts, budget_calls, budget_window, secret_ref FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;

-- The deauthorization callback names a Meta user, not a token.
CREATE INDEX tokens_meta_user ON tokens (meta_user_id);

-- +goose Down
-- The same rebuild back to the tokens of 00001. The code before this
-- migration knows tokens by reference only: rows without a secret_ref (the
-- tokens tenants connected, and the app token's row) cannot be expressed and
-- are dropped, their sealed values with them. Tenants that pointed at a
-- dropped token keep pointing at it, so their claims wait on a missing token
-- instead of being read with the platform token, until the tenant is
-- configured again.
CREATE TABLE tokens_old (
    id            TEXT PRIMARY KEY,
    accounts      TEXT    NOT NULL DEFAULT '[]', -- JSON array of account ids
    budget_calls  INTEGER NOT NULL DEFAULT 0,
    budget_window TEXT    NOT NULL CHECK (budget_window IN ('1h', '24h')),
    secret_ref    TEXT    NOT NULL CHECK (secret_ref LIKE 'env:%' OR secret_ref LIKE 'file:%')
);
INSERT INTO tokens_old (id, accounts, budget_calls, budget_window, secret_ref)
SELECT id, accounts, budget_calls, budget_window, secret_ref FROM tokens WHERE secret_ref IS NOT NULL;
DROP TABLE tokens;
ALTER TABLE tokens_old RENAME TO tokens;
