package store

// Decisions: verdicts (and the verdict feed and counters), deferrals,
// revocations, and the decided claims in stats and exports.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Verdicts. approved_by_sample and approved_on_honor are provisional until audited.
const (
	VerdictVerified         = "verified"
	VerdictRejected         = "rejected"
	VerdictApprovedBySample = "approved_by_sample"
	VerdictApprovedOnHonor  = "approved_on_honor"
	VerdictRevoked          = "revoked"
	VerdictUnverifiable     = "unverifiable"
)

// MethodAudit is the method a revocation is counted under in VerdictCounts
// (the activities name the other methods).
const MethodAudit = "audit"

// Decision is a verdict for one claim.
type Decision struct {
	ClaimID  int64
	Verdict  string
	Method   string
	Evidence string
}

// Revocation turns one decided claim's verdict into revoked (see
// Store.Revoke).
type Revocation struct {
	ClaimID  int64  // the claim revoked; one not decided, or revoked already, is left alone
	Evidence string // why: the proof found missing, kept in RevokedEvidence
}

// Deferral hands a leased claim back to pending, not to be claimed before NotBefore.
type Deferral struct {
	ClaimID   int64
	NotBefore time.Time
	Reason    string
}

// Stats counts claims per tenant and status/verdict.
type Stats struct {
	Tenant  string
	Pending int
	Leased  int
	Decided map[string]int // by verdict
	Audited int            // claims with AuditedAt set: confirmed or revoked by an audit
	// Quarantined: poison claims out of the queue, waiting for an operator
	// (neither open nor decided).
	Quarantined int
}

// VerdictCount is how many verdicts of one kind a tenant's claims got by one
// method. Counts only grow: a revocation adds one under VerdictRevoked and
// MethodAudit and leaves the decision it replaced counted.
type VerdictCount struct {
	Tenant  string
	Kind    string
	Method  string
	Verdict string
	N       int64
}

// ExportFilter selects decided claims for export (Decided), or quarantined
// claims (Quarantined).
type ExportFilter struct {
	Tenant  string // empty: all tenants
	AfterID int64  // only claims with a larger id
	Limit   int    // 0: no limit
}

func (s *sqlStore) Decide(ctx context.Context, decisions []Decision, now time.Time) ([]int64, error) {
	if err := checkDecisions(decisions); err != nil {
		return nil, fmt.Errorf("decide: %w", err)
	}
	if len(decisions) == 0 {
		return nil, nil
	}
	var decided []changedClaim
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		counts := map[VerdictCount]int64{}
		var err error
		if decided, err = s.decideTx(ctx, tx, decisions, now, counts); err != nil {
			return err
		}
		return s.addVerdictCounts(ctx, tx, counts)
	})
	if err != nil {
		return nil, fmt.Errorf("decide: %w", err)
	}
	return changedIDs(decided), nil
}

// checkDecisions refuses the decisions Decide refuses: those without a
// verdict.
func checkDecisions(decisions []Decision) error {
	for i, dec := range decisions {
		if dec.Verdict == "" {
			return fmt.Errorf("decision %d (claim %d): empty verdict", i, dec.ClaimID)
		}
	}
	return nil
}

// changedClaim is a claim a transaction decided or revoked: what the
// verdict counters and the risk flags need of it.
type changedClaim struct {
	id           int64
	tenant, kind string
	user, key    string
	verdict      string // the verdict it got
}

func changedIDs(claims []changedClaim) []int64 {
	var ids []int64
	for _, c := range claims {
		ids = append(ids, c.id)
	}
	return ids
}

// decideTx is Decide in tx, for decisions checkDecisions accepts: it decides
// the open ones and adds what it decided to counts, for the caller to add to
// the verdict counters (addVerdictCounts) before tx ends. It returns the
// claims decided, in the order of decisions.
func (s *sqlStore) decideTx(ctx context.Context, tx *sql.Tx, decisions []Decision, now time.Time,
	counts map[VerdictCount]int64) ([]changedClaim, error) {
	if len(decisions) == 0 {
		return nil, nil
	}
	// A number in the verdict feed for each decision; those of claims
	// already decided stay unused (the feed has gaps, never repeats).
	base, err := s.reserveFeed(ctx, tx, len(decisions))
	if err != nil {
		return nil, err
	}
	stmt, err := tx.PrepareContext(ctx, s.d.rebind(`UPDATE claims
		SET status = 'decided', verdict = ?, method = ?, evidence = ?, decided_at = ?,
			lease_owner = '', lease_expires_at = NULL, feed_seq = ?
		WHERE id = ? AND status IN ('pending', 'leased')
		RETURNING tenant_id, kind, user_ref, idem_key`))
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	decidedAt := s.d.timeArg(now)
	var decided []changedClaim
	for i, dec := range decisions {
		c := changedClaim{id: dec.ClaimID, verdict: dec.Verdict}
		err := stmt.QueryRowContext(ctx, dec.Verdict, dec.Method, dec.Evidence, decidedAt, base+int64(i)+1, dec.ClaimID).
			Scan(&c.tenant, &c.kind, &c.user, &c.key)
		if errors.Is(err, sql.ErrNoRows) {
			continue // already decided, quarantined (or unknown): not decided now
		}
		if err != nil {
			return nil, fmt.Errorf("claim %d: %w", dec.ClaimID, err)
		}
		decided = append(decided, c)
		counts[VerdictCount{Tenant: c.tenant, Kind: c.kind, Method: dec.Method, Verdict: dec.Verdict}]++
	}
	return decided, nil
}

// reserveFeed takes n numbers of the verdict feed and returns the one
// before them. The counter row stays locked until tx ends, so numbers are
// handed out in commit order.
func (s *sqlStore) reserveFeed(ctx context.Context, tx *sql.Tx, n int) (int64, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, s.d.rebind(`UPDATE feed_counter SET last = last + ? WHERE id = 1 RETURNING last`), n).Scan(&last); err != nil {
		return 0, fmt.Errorf("verdict feed number: %w", err)
	}
	return last - int64(n), nil
}

// Feed returns a tenant's claims whose feed number is after after (decided,
// or revoked, since), in feed order, at most limit.
func (s *sqlStore) Feed(ctx context.Context, tenant string, after int64, limit int) ([]Claim, error) {
	if limit <= 0 {
		return nil, nil
	}
	claims, err := s.queryClaims(ctx, s.db, `SELECT `+claimColumns+` FROM claims
		WHERE tenant_id = ? AND feed_seq > ? ORDER BY feed_seq LIMIT ?`, tenant, after, limit)
	if err != nil {
		return nil, fmt.Errorf("verdict feed: %w", err)
	}
	return claims, nil
}

func (s *sqlStore) Defer(ctx context.Context, owner string, deferrals []Deferral) (int, error) {
	deferred := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.d.rebind(`UPDATE claims
			SET status = 'pending', not_before = ?, last_error = ?, lease_owner = '', lease_expires_at = NULL
			WHERE id = ? AND status = 'leased' AND lease_owner = ?`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, d := range deferrals {
			res, err := stmt.ExecContext(ctx, s.d.timeArg(d.NotBefore), d.Reason, d.ClaimID, owner)
			if err != nil {
				return fmt.Errorf("claim %d: %w", d.ClaimID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("claim %d: %w", d.ClaimID, err)
			}
			deferred += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("defer: %w", err)
	}
	return deferred, nil
}

func (s *sqlStore) Revoke(ctx context.Context, id int64, evidence string, now time.Time) (bool, error) {
	var revoked bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		counts := map[VerdictCount]int64{}
		var err error
		if _, revoked, err = s.revokeTx(ctx, tx, Revocation{ClaimID: id, Evidence: evidence}, now, counts); err != nil {
			return err
		}
		return s.addVerdictCounts(ctx, tx, counts)
	})
	if err != nil {
		return false, fmt.Errorf("revoke claim %d: %w", id, err)
	}
	return revoked, nil
}

// revokeTx is Revoke in tx: it revokes r's claim if it is decided and not
// revoked already, and adds the revocation to counts, for the caller to add
// to the verdict counters (addVerdictCounts) before tx ends. It reports
// whether it revoked the claim, and the claim if it did.
func (s *sqlStore) revokeTx(ctx context.Context, tx *sql.Tx, r Revocation, now time.Time,
	counts map[VerdictCount]int64) (changedClaim, bool, error) {
	// SET expressions read the row as it was, so revoked_from gets the
	// verdict being replaced. A revocation is an audit outcome, so it
	// sets audited_at too, even over an earlier audit that confirmed the
	// verdict: audited_at dates the audit the current verdict comes from.
	revokedAt := s.d.timeArg(now)
	base, err := s.reserveFeed(ctx, tx, 1) // the revocation appears in the feed again
	if err != nil {
		return changedClaim{}, false, err
	}
	c := changedClaim{id: r.ClaimID, verdict: VerdictRevoked}
	err = tx.QueryRowContext(ctx, s.d.rebind(`UPDATE claims
		SET verdict = ?, revoked_from = verdict, revoked_evidence = ?, revoked_at = ?, audited_at = ?, feed_seq = ?
		WHERE id = ? AND status = 'decided' AND verdict <> ?
		RETURNING tenant_id, kind, user_ref, idem_key`),
		VerdictRevoked, r.Evidence, revokedAt, revokedAt, base+1, r.ClaimID, VerdictRevoked).Scan(&c.tenant, &c.kind, &c.user, &c.key)
	if errors.Is(err, sql.ErrNoRows) {
		return changedClaim{}, false, nil // not decided, or revoked already
	}
	if err != nil {
		return changedClaim{}, false, err
	}
	counts[VerdictCount{Tenant: c.tenant, Kind: c.kind, Method: MethodAudit, Verdict: VerdictRevoked}]++
	return c, true, nil
}

// addVerdictCounts adds to the verdict counters in the transaction that
// made the verdicts. The keys of counts carry no N; their values are added.
func (s *sqlStore) addVerdictCounts(ctx context.Context, tx *sql.Tx, counts map[VerdictCount]int64) error {
	if len(counts) == 0 {
		return nil
	}
	keys := make([]VerdictCount, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	// The same order in every transaction, so two of them never wait on
	// each other's counter rows in opposite orders.
	slices.SortFunc(keys, compareVerdictCounts)
	stmt, err := tx.PrepareContext(ctx, s.d.rebind(`INSERT INTO verdict_counts (tenant_id, kind, method, verdict, n) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, kind, method, verdict) DO UPDATE SET n = verdict_counts.n + excluded.n`))
	if err != nil {
		return fmt.Errorf("verdict counts: %w", err)
	}
	defer stmt.Close()
	for _, k := range keys {
		if _, err := stmt.ExecContext(ctx, k.Tenant, k.Kind, k.Method, k.Verdict, counts[k]); err != nil {
			return fmt.Errorf("verdict counts: %w", err)
		}
	}
	return nil
}

func compareVerdictCounts(a, b VerdictCount) int {
	return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Kind, b.Kind),
		strings.Compare(a.Method, b.Method), strings.Compare(a.Verdict, b.Verdict))
}

func (s *sqlStore) VerdictCounts(ctx context.Context) ([]VerdictCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT tenant_id, kind, method, verdict, n FROM verdict_counts`)
	if err != nil {
		return nil, fmt.Errorf("verdict counts: %w", err)
	}
	defer rows.Close()
	var counts []VerdictCount
	for rows.Next() {
		var c VerdictCount
		if err := rows.Scan(&c.Tenant, &c.Kind, &c.Method, &c.Verdict, &c.N); err != nil {
			return nil, fmt.Errorf("verdict counts: %w", err)
		}
		counts = append(counts, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verdict counts: %w", err)
	}
	slices.SortFunc(counts, compareVerdictCounts)
	return counts, nil
}

func (s *sqlStore) Stats(ctx context.Context) ([]Stats, error) {
	// No ORDER BY: the grouping runs straight off the covering index
	// claims_tenant_status (which holds audited_at for the second count), and
	// sorting happens below in byte order anyway.
	rows, err := s.db.QueryContext(ctx, `SELECT tenant_id, status, verdict, COUNT(*), COUNT(audited_at) FROM claims
		GROUP BY tenant_id, status, verdict`)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	byTenant := map[string]*Stats{}
	for rows.Next() {
		var (
			tenant, status, verdict string
			count, audited          int
		)
		if err := rows.Scan(&tenant, &status, &verdict, &count, &audited); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		st := byTenant[tenant]
		if st == nil {
			st = &Stats{Tenant: tenant, Decided: map[string]int{}}
			byTenant[tenant] = st
		}
		st.Audited += audited
		switch status {
		case StatusPending:
			st.Pending += count
		case StatusLeased:
			st.Leased += count
		case StatusDecided:
			st.Decided[verdict] += count
		case StatusQuarantined:
			st.Quarantined += count
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	stats := make([]Stats, 0, len(byTenant))
	for _, st := range byTenant {
		stats = append(stats, *st)
	}
	slices.SortFunc(stats, func(a, b Stats) int { return strings.Compare(a.Tenant, b.Tenant) })
	return stats, nil
}

func (s *sqlStore) Decided(ctx context.Context, f ExportFilter) ([]Claim, error) {
	return s.claimsByStatus(ctx, StatusDecided, f)
}

// claimsByStatus lists the claims in a status, in id order, as f selects.
// The status is one of the Status constants, written into the query as a
// literal so both databases can match it to their partial indexes.
func (s *sqlStore) claimsByStatus(ctx context.Context, status string, f ExportFilter) ([]Claim, error) {
	query := `SELECT ` + claimColumns + ` FROM claims WHERE status = '` + status + `' AND id > ?`
	args := []any{f.AfterID}
	if f.Tenant != "" {
		query += ` AND tenant_id = ?`
		args = append(args, f.Tenant)
	}
	query += ` ORDER BY id`
	if f.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	claims, err := s.queryClaims(ctx, s.db, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s claims: %w", status, err)
	}
	return claims, nil
}
