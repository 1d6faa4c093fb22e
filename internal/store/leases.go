package store

// Leases: claiming open claims under a lease (all, or by tenant quotas),
// the open load per tenant, extending leases, and claims behind other readers.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TenantLoad is one tenant's open claims, counted by target: what the
// Dispatcher needs to claim no more than a tenant's token can decide soon.
type TenantLoad struct {
	Tenant       string
	Ready        int       // claimable now: pending and not deferred past now, or leased with an expired lease
	ReadyTargets int       // distinct targets among Ready
	ReadyFed     int       // of ReadyTargets, those fed by webhooks (see Quota)
	OldestReady  time.Time // submitted_at of the oldest Ready claim (zero when Ready is 0)
	InFlight     int       // leased, lease still holding (expires at or after now)
	// InFlightTargets counts the targets among InFlight once per lease
	// owner: each batch reads its own targets, so two batches holding
	// claims on one target will make two reads.
	InFlightTargets int
}

// Quota bounds what ClaimQuotas leases for one tenant.
//
// A target is fed when a webhook delivered an action on it (any edge) seen at
// or after fedSince (OpenLoad's argument, ClaimQuotasParams.FedSince); a zero
// fedSince counts no target as fed. Claims on a fed target are decided from
// pushed evidence rather than a Graph read, so they cost the token nothing.
type Quota struct {
	Tenant string
	// Targets: lease claims on at most this many targets that are not fed by
	// webhooks, the targets with the oldest ready claim first (ties by target
	// id); claims on fed targets are not bounded by it. Negative: no bound.
	Targets int
}

// ClaimParams says what Store.Claim leases, to whom and for how long.
type ClaimParams struct {
	// Owner is the lease owner (a batch): only it may extend, defer or
	// quarantine the claims leased. Required.
	Owner string
	// Limit is the most claims leased; zero or less leases none.
	Limit int
	// TTL is how long the lease holds: until Now+TTL.
	TTL time.Duration
	// Now is when the claims are judged claimable (see Store.Claim) and the
	// lease starts.
	Now time.Time
}

// ClaimQuotasParams says what Store.ClaimQuotas leases, to whom and for how
// long.
type ClaimQuotasParams struct {
	// Owner is the lease owner, as in ClaimParams. Required.
	Owner string
	// Quotas are the tenants claimed from, in this order, each within its
	// Quota; tenants not in it are not claimed, and a tenant twice in it is
	// an error.
	Quotas []Quota
	// Limit is the most claims leased in all; zero or less leases none.
	Limit int
	// FedSince: a target is fed when a webhook delivered an action on it
	// seen at or after FedSince (see Quota); zero counts no target as fed.
	FedSince time.Time
	// TTL is how long the lease holds: until Now+TTL.
	TTL time.Duration
	// Now is when the claims are judged claimable and the lease starts.
	Now time.Time
}

// LeaseExtension says whose leases Store.ExtendLease extends, and to when.
type LeaseExtension struct {
	// Owner is the lease owner: claims leased by another, or no longer
	// leased, are left alone. Required.
	Owner string
	// ClaimIDs are the claims whose lease to extend.
	ClaimIDs []int64
	// TTL is how long the extended lease holds: until Now+TTL.
	TTL time.Duration
	// Now is when the extension is made.
	Now time.Time
}

func (s *sqlStore) Claim(ctx context.Context, p ClaimParams) ([]Claim, error) {
	owner, limit, ttl, now := p.Owner, p.Limit, p.TTL, p.Now
	if owner == "" {
		return nil, errors.New("claim: empty lease owner")
	}
	if limit <= 0 {
		return nil, nil
	}
	nowArg := s.d.timeArg(now)
	query := leaseClaims + `
			ORDER BY submitted_at, id
			LIMIT ?` + s.d.claimLock + `)
		RETURNING ` + claimColumns
	var claimed []Claim
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		claimed, err = s.queryClaims(ctx, tx, query, owner, s.d.timeArg(now.Add(ttl)), nowArg, nowArg, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	sortByAge(claimed)
	return claimed, nil
}

// claimable selects the claims Claim may lease at a time given twice as
// arguments: pending and not deferred past it, or leased with a lease expired
// before it. The leading status IN (...) repeats what the OR implies; it lets
// both databases use the partial indexes on open claims.
const claimable = `status IN ('pending', 'leased')
	AND ((status = 'pending' AND (not_before IS NULL OR not_before <= ?))
	  OR (status = 'leased' AND lease_expires_at < ?))`

// leaseClaims is the head of a claiming UPDATE: it leases to an owner until a
// time (the first two arguments) the claims a subquery picks among the
// claimable ones (the next two). The caller adds to the subquery its
// conditions, ORDER BY, LIMIT and the dialect's claimLock, closes it and asks
// RETURNING claimColumns.
const leaseClaims = `UPDATE claims SET status = 'leased', lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1
		WHERE id IN (
			SELECT id FROM claims
			WHERE ` + claimable

// sortByAge sorts claims oldest first, by submitted_at then id: the order
// claiming picks them in, which RETURNING does not keep.
func sortByAge(claims []Claim) {
	slices.SortFunc(claims, func(a, b Claim) int {
		if c := a.SubmittedAt.Compare(b.SubmittedAt); c != 0 {
			return c
		}
		return cmpInt64(a.ID, b.ID)
	})
}

// fedTargets selects the targets webhooks fed since a time (the argument); a
// NULL time, from a zero fedSince, selects none.
const fedTargets = `SELECT target FROM webhook_targets WHERE last_at >= ?`

func (s *sqlStore) OpenLoad(ctx context.Context, now, fedSince time.Time) ([]TenantLoad, error) {
	nowArg := s.d.timeArg(now)
	// One pass over the open claims: the inner query marks each claim ready,
	// in flight (or neither: deferred) and on a fed target; the outer one
	// counts by tenant. webhook_targets has one row per target, so the join
	// never repeats a claim.
	rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT tenant_id,
			SUM(ready), COUNT(DISTINCT CASE WHEN ready = 1 THEN target END),
			COUNT(DISTINCT CASE WHEN ready = 1 AND fed = 1 THEN target END),
			MIN(CASE WHEN ready = 1 THEN submitted_at END),
			SUM(in_flight), COUNT(DISTINCT CASE WHEN in_flight = 1 THEN lease_owner || ' ' || target END)
		FROM (
			SELECT c.tenant_id, c.target, c.submitted_at, c.lease_owner,
				CASE WHEN `+claimable+` THEN 1 ELSE 0 END AS ready,
				CASE WHEN status = 'leased' AND lease_expires_at >= ? THEN 1 ELSE 0 END AS in_flight,
				CASE WHEN w.target IS NULL THEN 0 ELSE 1 END AS fed
			FROM claims c LEFT JOIN webhook_targets w ON w.target = c.target AND w.last_at >= ?
			WHERE c.status IN ('pending', 'leased')
		) AS o
		GROUP BY tenant_id`), nowArg, nowArg, nowArg, s.d.timeArg(fedSince))
	if err != nil {
		return nil, fmt.Errorf("open load: %w", err)
	}
	defer rows.Close()
	var loads []TenantLoad
	for rows.Next() {
		var l TenantLoad
		if err := rows.Scan(&l.Tenant, &l.Ready, &l.ReadyTargets, &l.ReadyFed, timeColumn{&l.OldestReady},
			&l.InFlight, &l.InFlightTargets); err != nil {
			return nil, fmt.Errorf("open load: %w", err)
		}
		loads = append(loads, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("open load: %w", err)
	}
	// Byte order, the same on both databases whatever PostgreSQL's collation.
	slices.SortFunc(loads, func(a, b TenantLoad) int { return strings.Compare(a.Tenant, b.Tenant) })
	return loads, nil
}

func (s *sqlStore) ClaimQuotas(ctx context.Context, p ClaimQuotasParams) ([]Claim, error) {
	owner, quotas, limit, fedSince, ttl, now := p.Owner, p.Quotas, p.Limit, p.FedSince, p.TTL, p.Now
	if owner == "" {
		return nil, errors.New("claim quotas: empty lease owner")
	}
	// A second quota of a tenant would pick its targets anew among the claims
	// the first left, leasing past the first's bound.
	seen := make(map[string]bool, len(quotas))
	for _, q := range quotas {
		if seen[q.Tenant] {
			return nil, fmt.Errorf("claim quotas: tenant %s has two quotas", q.Tenant)
		}
		seen[q.Tenant] = true
	}
	if limit <= 0 || len(quotas) == 0 {
		return nil, nil
	}
	nowArg, fedArg := s.d.timeArg(now), s.d.timeArg(fedSince)
	var claimed []Claim
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range quotas {
			if len(claimed) >= limit {
				break
			}
			// The targets are picked in a subquery of their own: PostgreSQL
			// refuses FOR UPDATE beside GROUP BY, and only the claims leased
			// need the lock. Concurrent callers may pick the same targets;
			// SKIP LOCKED then leaves one of them fewer claims, never the
			// same ones.
			query := leaseClaims + ` AND tenant_id = ?`
			args := []any{owner, s.d.timeArg(now.Add(ttl)), nowArg, nowArg, q.Tenant}
			switch {
			case q.Targets == 0:
				query += ` AND target IN (` + fedTargets + `)`
				args = append(args, fedArg)
			case q.Targets > 0:
				query += ` AND (target IN (` + fedTargets + `) OR target IN (
				SELECT target FROM claims
				WHERE ` + claimable + ` AND tenant_id = ? AND target NOT IN (` + fedTargets + `)
				GROUP BY target
				ORDER BY MIN(submitted_at), target
				LIMIT ?))`
				args = append(args, fedArg, nowArg, nowArg, q.Tenant, fedArg, q.Targets)
			}
			query += `
			ORDER BY submitted_at, id
			LIMIT ?` + s.d.claimLock + `)
		RETURNING ` + claimColumns
			args = append(args, limit-len(claimed))
			got, err := s.queryClaims(ctx, tx, query, args...)
			if err != nil {
				return fmt.Errorf("tenant %s: %w", q.Tenant, err)
			}
			claimed = append(claimed, got...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim quotas: %w", err)
	}
	sortByAge(claimed)
	return claimed, nil
}

func (s *sqlStore) ExtendLease(ctx context.Context, e LeaseExtension) (int, error) {
	owner, ids, ttl, now := e.Owner, e.ClaimIDs, e.TTL, e.Now
	if owner == "" {
		return 0, errors.New("extend lease: empty lease owner")
	}
	expires := s.d.timeArg(now.Add(ttl))
	extended := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, chunk := range chunks(ids, idChunk) {
			args := append([]any{expires, owner}, idArgs(chunk)...)
			res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE claims SET lease_expires_at = ?
				WHERE status = 'leased' AND lease_owner = ? AND id IN `+inList(len(chunk))), args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			extended += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("extend lease: %w", err)
	}
	return extended, nil
}

func (s *sqlStore) BehindReaders(ctx context.Context, owner string, ids []int64, now time.Time) ([]int64, error) {
	var behind []int64
	nowArg := s.d.timeArg(now)
	for _, chunk := range chunks(ids, idChunk) {
		// claims_open_by_tenant (tenant_id, target, submitted_at, id) serves
		// the inner lookup.
		args := append([]any{owner, nowArg}, idArgs(chunk)...)
		rows, err := s.db.QueryContext(ctx, s.d.rebind(`SELECT c.id FROM claims c WHERE EXISTS (
				SELECT 1 FROM claims o WHERE o.tenant_id = c.tenant_id AND o.target = c.target AND o.kind = c.kind
					AND o.status = 'leased' AND o.lease_owner <> ? AND o.lease_expires_at >= ?
					AND (o.submitted_at < c.submitted_at OR (o.submitted_at = c.submitted_at AND o.id < c.id)))
				AND c.id IN `+inList(len(chunk))), args...)
		if err != nil {
			return nil, fmt.Errorf("behind readers: %w", err)
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("behind readers: %w", err)
			}
			behind = append(behind, id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("behind readers: %w", err)
		}
	}
	slices.Sort(behind)
	return behind, nil
}
