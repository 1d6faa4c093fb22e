-- +goose Up

-- Verdicts by tenant, kind and method, for the verifier_verdicts_total
-- metric: Decide and Revoke add to these counters in the transaction that
-- changes the claims, so a scrape reads a few rows instead of grouping every
-- decided claim. Every decision counts once under its verdict and method;
-- every revocation counts once more under verdict 'revoked', method 'audit'
-- (the claim's earlier decision stays counted). Claims decided before this
-- table are counted the same way here.
CREATE TABLE verdict_counts (
    tenant_id TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    method    TEXT    NOT NULL,
    verdict   TEXT    NOT NULL,
    n         BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, kind, method, verdict)
);
INSERT INTO verdict_counts (tenant_id, kind, method, verdict, n)
SELECT tenant_id, kind, method, verdict, COUNT(*) FROM (
    SELECT tenant_id, kind, method, CASE WHEN verdict = 'revoked' THEN revoked_from ELSE verdict END AS verdict
    FROM claims WHERE status = 'decided'
    UNION ALL
    SELECT tenant_id, kind, 'audit', 'revoked' FROM claims WHERE status = 'decided' AND verdict = 'revoked'
) decisions
GROUP BY tenant_id, kind, method, verdict;

-- +goose Down
DROP TABLE verdict_counts;
