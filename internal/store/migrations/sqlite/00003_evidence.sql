-- +goose Up

-- Actions on Meta objects kept as evidence, read from the Graph API or pushed
-- by webhooks, so that one read proves many claims. Rows hold comment text
-- and usernames: personal data, purged by seen_at. Times are unix
-- microseconds (UTC).
CREATE TABLE evidence (
    target    TEXT    NOT NULL, -- IG media id, Page post id, or the brand's IG user id (tags)
    edge      TEXT    NOT NULL, -- comments, tags, reactions, mentions
    action_id TEXT    NOT NULL,
    username  TEXT    NOT NULL DEFAULT '',
    user_id   TEXT    NOT NULL DEFAULT '',
    content   TEXT    NOT NULL DEFAULT '', -- comment text or caption
    acted_at  INTEGER,                      -- NULL: unknown (reactions)
    source    TEXT    NOT NULL CHECK (source IN ('graph', 'webhook')),
    deleted   INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    seen_at   INTEGER NOT NULL,
    -- The key's index also serves the lookup by target.
    PRIMARY KEY (target, edge, action_id)
);

-- The purge deletes by last sighting.
CREATE INDEX evidence_seen_at ON evidence (seen_at);

-- Which time span of a target's edge a Graph read saw completely: one row per
-- (target, edge), overlapping reads merged. The key's index serves the lookup
-- by target.
CREATE TABLE evidence_coverage (
    target  TEXT    NOT NULL,
    edge    TEXT    NOT NULL,
    from_at INTEGER,          -- NULL: from the beginning
    to_at   INTEGER NOT NULL,
    read_at INTEGER NOT NULL, -- when we read it (our clock; from_at and to_at are Meta's action times)
    PRIMARY KEY (target, edge),
    CHECK (from_at IS NULL OR from_at <= to_at)
);

-- The purge deletes coverage by when it was read.
CREATE INDEX evidence_coverage_read_at ON evidence_coverage (read_at);

-- +goose Down
DROP TABLE evidence_coverage;
DROP TABLE evidence;
