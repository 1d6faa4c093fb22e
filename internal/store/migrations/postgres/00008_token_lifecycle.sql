-- +goose Up

-- Token lifecycle: tenants connect their own Meta tokens through the API.
-- A connected token has no secret_ref: its value is held sealed by
-- internal/vault (envelope encryption: sealed_value under a data key of its
-- own, wrapped_key the data key under the master key master_key_id), never in
-- clear. The app token's row (id 'app') holds a budget and no secret: the
-- worker builds the app token from the app id and secret. Every token also
-- keeps what its last check (Meta's debug_token) found; expires_at and
-- data_access_expires_at are Meta's times, checked_at and connected_at ours.
--
-- Nullable columns, and NOT NULL ones with constant defaults: no table
-- rewrite. Existing rows are reference tokens, never checked: state
-- 'unknown'. The secret_ref CHECK (named tokens_secret_ref_check by
-- PostgreSQL in 00001) is replaced by one that admits NULL.
ALTER TABLE tokens ALTER COLUMN secret_ref DROP NOT NULL;
ALTER TABLE tokens DROP CONSTRAINT tokens_secret_ref_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_secret_ref_check
    CHECK (secret_ref IS NULL OR secret_ref LIKE 'env:%' OR secret_ref LIKE 'file:%');
ALTER TABLE tokens ADD COLUMN tenant_id     TEXT;  -- the tenant that connected it; NULL: from the tenants file
ALTER TABLE tokens ADD COLUMN connected_at  TIMESTAMPTZ;
ALTER TABLE tokens ADD COLUMN sealed_value  BYTEA; -- nonce || AES-256-GCM(data key, value)
ALTER TABLE tokens ADD COLUMN wrapped_key   BYTEA; -- nonce || AES-256-GCM(master key, data key)
ALTER TABLE tokens ADD COLUMN master_key_id TEXT;
ALTER TABLE tokens ADD COLUMN state         TEXT NOT NULL DEFAULT 'unknown'
    CONSTRAINT tokens_state_check CHECK (state IN ('unknown', 'healthy', 'expiring', 'missing_scopes', 'invalid', 'revoked'));
ALTER TABLE tokens ADD COLUMN state_reason  TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN checked_at    TIMESTAMPTZ;
ALTER TABLE tokens ADD COLUMN expires_at    TIMESTAMPTZ; -- NULL: never
ALTER TABLE tokens ADD COLUMN data_access_expires_at TIMESTAMPTZ;
ALTER TABLE tokens ADD COLUMN scopes        TEXT NOT NULL DEFAULT '[]'; -- JSON array of granted permissions
ALTER TABLE tokens ADD COLUMN token_type    TEXT NOT NULL DEFAULT '';   -- USER, PAGE, SYSTEM_USER
ALTER TABLE tokens ADD COLUMN meta_user_id  TEXT NOT NULL DEFAULT '';   -- named by the deauthorization callback
-- The three parts of a sealed value go together.
ALTER TABLE tokens ADD CONSTRAINT tokens_sealed_check
    CHECK ((sealed_value IS NULL) = (wrapped_key IS NULL) AND (wrapped_key IS NULL) = (master_key_id IS NULL));
-- Every token has a way to its value, except the app token's row.
ALTER TABLE tokens ADD CONSTRAINT tokens_secret_check
    CHECK (secret_ref IS NOT NULL OR (sealed_value IS NOT NULL AND wrapped_key IS NOT NULL AND master_key_id IS NOT NULL) OR id = 'app');

-- The deauthorization callback names a Meta user, not a token.
CREATE INDEX tokens_meta_user ON tokens (meta_user_id);

-- +goose Down
-- Back to the tokens of 00001. The code before this migration knows tokens
-- by reference only: rows without a secret_ref (the tokens tenants
-- connected, and the app token's row) cannot be expressed and are dropped,
-- their sealed values with them. Tenants that pointed at a dropped token
-- keep pointing at it, so their claims wait on a missing token instead of
-- being read with the platform token, until the tenant is configured again.
DROP INDEX tokens_meta_user;
DELETE FROM tokens WHERE secret_ref IS NULL;
ALTER TABLE tokens DROP CONSTRAINT tokens_secret_check;
ALTER TABLE tokens DROP CONSTRAINT tokens_sealed_check;
ALTER TABLE tokens DROP COLUMN meta_user_id;
ALTER TABLE tokens DROP COLUMN token_type;
ALTER TABLE tokens DROP COLUMN scopes;
ALTER TABLE tokens DROP COLUMN data_access_expires_at;
ALTER TABLE tokens DROP COLUMN expires_at;
ALTER TABLE tokens DROP COLUMN checked_at;
ALTER TABLE tokens DROP COLUMN state_reason;
ALTER TABLE tokens DROP COLUMN state;
ALTER TABLE tokens DROP COLUMN master_key_id;
ALTER TABLE tokens DROP COLUMN wrapped_key;
ALTER TABLE tokens DROP COLUMN sealed_value;
ALTER TABLE tokens DROP COLUMN connected_at;
ALTER TABLE tokens DROP COLUMN tenant_id;
ALTER TABLE tokens DROP CONSTRAINT tokens_secret_ref_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_secret_ref_check CHECK (secret_ref LIKE 'env:%' OR secret_ref LIKE 'file:%');
ALTER TABLE tokens ALTER COLUMN secret_ref SET NOT NULL;
