package store

// Claims: submitting them, and reading them back by id.

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/socialproof/verifier/internal/claim"
)

// Claim statuses.
const (
	StatusPending = "pending"
	StatusLeased  = "leased"
	StatusDecided = "decided"
	// StatusQuarantined: a poison claim, taken out of the queue with its
	// reason (Claim.LastError) by Quarantine; never claimed, decided or in
	// the verdict feed until Release puts it back to pending.
	StatusQuarantined = "quarantined"
)

// Claim is a stored claim.
type Claim struct {
	ID          int64
	claim.Claim // what was submitted
	SubmittedAt time.Time
	Status      string
	Attempts    int       // how many times it was leased
	NotBefore   time.Time // zero, or: not to be claimed before this time (backoff after a deferral)
	LastError   string    // why the last attempt deferred it, if it did
	LeaseOwner  string
	LeaseExpiry time.Time

	Verdict   string
	Method    string // how the verdict was reached: graph, rule, sample, honor, webhook, ...
	Evidence  string // JSON or text describing the proof, or the absence of proof
	DecidedAt time.Time

	RevokedFrom     string // the verdict before revocation
	RevokedEvidence string
	RevokedAt       time.Time

	// AuditedAt is when an audit confirmed the provisional verdict, or revoked
	// the claim; zero when not audited.
	AuditedAt time.Time

	// FeedSeq is the claim's place in the verdict feed: set when it is
	// decided and again when it is revoked, in commit order; 0 while open.
	FeedSeq int64

	// QuarantinedAt is when the claim was quarantined (its reason is in
	// LastError); zero unless Status is StatusQuarantined.
	QuarantinedAt time.Time
}

// SubmitResult reports one submitted claim.
type SubmitResult struct {
	ID        int64
	Duplicate bool // the tenant already submitted this key; nothing was written
}

type tenantKey struct{ tenant, key string }

func (s *sqlStore) Submit(ctx context.Context, claims []claim.Claim, now time.Time) ([]SubmitResult, error) {
	for i, c := range claims {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("submit: claim %d: %w", i, err)
		}
	}
	// A key repeated within the call is a duplicate of its first occurrence;
	// only first occurrences go to the database.
	firstIndex := make(map[tenantKey]int, len(claims))
	var unique []int
	for i, c := range claims {
		k := tenantKey{c.Tenant, c.Key}
		if _, seen := firstIndex[k]; !seen {
			firstIndex[k] = i
			unique = append(unique, i)
		}
	}

	results := make([]SubmitResult, len(claims))
	submittedAt := s.d.timeArg(now)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, chunk := range chunks(unique, submitChunk) {
			if err := s.submitChunk(ctx, tx, claims, chunk, submittedAt, firstIndex, results); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	for i, c := range claims {
		if first := firstIndex[tenantKey{c.Tenant, c.Key}]; first != i {
			results[i] = SubmitResult{ID: results[first].ID, Duplicate: true}
		}
	}
	return results, nil
}

// submitChunk inserts claims[indexes] and fills results for them: the new id,
// or the id of the claim already stored under the same tenant and key.
func (s *sqlStore) submitChunk(ctx context.Context, tx *sql.Tx, claims []claim.Claim, indexes []int,
	submittedAt any, firstIndex map[tenantKey]int, results []SubmitResult) error {
	args := make([]any, 0, len(indexes)*9)
	for _, i := range indexes {
		c := claims[i]
		args = append(args, c.Tenant, c.Key, c.User, c.Handle, string(c.Kind), c.Target, c.Code, s.d.timePtrArg(c.Since), submittedAt)
	}
	// RETURNING order is unspecified for a multi-row insert, hence the key columns.
	query := `INSERT INTO claims (tenant_id, idem_key, user_ref, handle, kind, target, code, since, submitted_at)
		VALUES ` + placeholders(len(indexes), 9) + `
		ON CONFLICT (tenant_id, idem_key) DO NOTHING
		RETURNING id, tenant_id, idem_key`
	inserted := make(map[tenantKey]bool, len(indexes))
	if err := s.collectIDs(ctx, tx, query, args, func(k tenantKey, id int64) {
		inserted[k] = true
		results[firstIndex[k]] = SubmitResult{ID: id}
	}); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if len(inserted) == len(indexes) {
		return nil
	}

	var dupArgs []any
	for _, i := range indexes {
		if k := (tenantKey{claims[i].Tenant, claims[i].Key}); !inserted[k] {
			dupArgs = append(dupArgs, k.tenant, k.key)
		}
	}
	// A join rather than (tenant_id, idem_key) IN (VALUES ...), which SQLite
	// answers by scanning the whole unique index. VALUES names its columns
	// column1, column2 on both databases.
	query = `SELECT c.id, c.tenant_id, c.idem_key
		FROM (VALUES ` + placeholders(len(dupArgs)/2, 2) + `) AS k
		JOIN claims c ON c.tenant_id = k.column1 AND c.idem_key = k.column2`
	found := 0
	if err := s.collectIDs(ctx, tx, query, dupArgs, func(k tenantKey, id int64) {
		found++
		results[firstIndex[k]] = SubmitResult{ID: id, Duplicate: true}
	}); err != nil {
		return fmt.Errorf("find duplicates: %w", err)
	}
	if found != len(dupArgs)/2 {
		// Only a concurrent delete could get here; the store never deletes.
		return fmt.Errorf("find duplicates: %d of %d conflicting claims not found", len(dupArgs)/2-found, len(dupArgs)/2)
	}
	return nil
}

// collectIDs runs a query returning (id, tenant_id, idem_key) rows.
func (s *sqlStore) collectIDs(ctx context.Context, tx *sql.Tx, query string, args []any, found func(k tenantKey, id int64)) error {
	rows, err := tx.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id int64
			k  tenantKey
		)
		if err := rows.Scan(&id, &k.tenant, &k.key); err != nil {
			return err
		}
		found(k, id)
	}
	return rows.Err()
}

// Claims returns the claims with these ids in the order of the ids, each once;
// missing ids are skipped.
func (s *sqlStore) Claims(ctx context.Context, ids []int64) ([]Claim, error) {
	byID := make(map[int64]Claim, len(ids))
	for _, chunk := range chunks(ids, idChunk) {
		found, err := s.queryClaims(ctx, s.db, `SELECT `+claimColumns+` FROM claims WHERE id IN `+inList(len(chunk)), idArgs(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("claims: %w", err)
		}
		for _, c := range found {
			byID[c.ID] = c
		}
	}
	claims := make([]Claim, 0, len(byID))
	for _, id := range ids {
		if c, ok := byID[id]; ok {
			claims = append(claims, c)
			delete(byID, id)
		}
	}
	return claims, nil
}
