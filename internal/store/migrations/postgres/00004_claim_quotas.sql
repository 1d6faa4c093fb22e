-- +goose Up

-- Targets webhooks feed, and when a webhook last delivered an action on each
-- (any edge): claims on a fed target are decided from pushed evidence, with
-- no Graph read, so claiming does not bound them by the token's budget. One
-- row per target, so the check stays cheap whatever the evidence volume.
--
-- It starts empty: evidence keeps the first source of an action and its last
-- sighting by any source, which cannot tell when webhooks last fed a target.
-- Until its next webhook a target counts as not fed, which only bounds it.
CREATE TABLE webhook_targets (
    target  TEXT        PRIMARY KEY,
    last_at TIMESTAMPTZ NOT NULL -- the latest seen_at of a webhook action on it
);

-- The evidence purge deletes by last webhook.
CREATE INDEX webhook_targets_last_at ON webhook_targets (last_at);

-- Claiming by tenant walks one tenant's open claims grouped by target; decided
-- claims stay out of this index as they do of claims_open_by_age.
CREATE INDEX claims_open_by_tenant ON claims (tenant_id, target, submitted_at, id) WHERE status IN ('pending', 'leased');

-- +goose Down
DROP INDEX claims_open_by_tenant;
DROP TABLE webhook_targets;
