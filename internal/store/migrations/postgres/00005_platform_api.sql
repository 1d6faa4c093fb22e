-- +goose Up

-- The verdict feed (the platform API's GET /v1/verdicts): each decision and
-- each revocation takes the next number from feed_counter in the transaction
-- that makes it. The counter's row lock serializes those transactions, so
-- numbers follow commit order and a reader paging by feed_seq never skips a
-- change that commits later with a smaller number. Decided claims from before
-- the feed take their id.
ALTER TABLE claims ADD COLUMN feed_seq BIGINT;
UPDATE claims SET feed_seq = id WHERE status = 'decided';
CREATE TABLE feed_counter (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT  NOT NULL
);
INSERT INTO feed_counter (id, last) SELECT 1, COALESCE(MAX(id), 0) FROM claims;
CREATE INDEX claims_feed ON claims (tenant_id, feed_seq) WHERE feed_seq IS NOT NULL;

-- Platform API keys: only the SHA-256 of a key is kept (hex); a key sees its
-- tenant's claims and nothing else.
CREATE TABLE api_keys (
    key_hash   TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE api_keys;
DROP INDEX claims_feed;
DROP TABLE feed_counter;
ALTER TABLE claims DROP COLUMN feed_seq;
