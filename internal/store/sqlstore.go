package store

// sqlStore, the Store over database/sql for both dialects: its transactions
// and the helpers every concern shares. Each concern's methods are in a file
// of their own (tenants.go, tokens.go, claims.go, leases.go, decisions.go,
// quarantine.go, apikeys.go, risk.go, audit.go, evidence.go, coverage.go);
// outcome.go writes a chunk's outcome through several of them at once.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/socialproof/verifier/internal/claim"
)

// Batch sizes. A submitted claim takes 9 query parameters, an evidence action
// 10, a user flag 4, a webhook target 2, an id, user or target in an IN list 1;
// the chunks stay far below the parameter limits of both databases
// (PostgreSQL 65535, SQLite 32766) while keeping round trips few.
const (
	submitChunk   = 500
	evidenceChunk = 500
	flagChunk     = 1000
	webhookChunk  = 1000
	idChunk       = 1000
)

// sqlStore implements Store over database/sql for both dialects.
type sqlStore struct {
	db *sql.DB
	d  dialect
	// afterActionsRead, when set (tests only), runs inside Evidence between
	// its two reads: the moment a concurrent writer could slip in.
	afterActionsRead func()
	// afterOutcomeStep, when set (tests only), runs inside RecordOutcome's
	// transaction after each of its steps; an error from it fails the call.
	afterOutcomeStep func(step string) error
}

var _ Store = (*sqlStore)(nil)

// claimColumns is the column list scanClaim reads, in order.
const claimColumns = `id, tenant_id, idem_key, user_ref, handle, kind, target, code, since,
	submitted_at, status, attempts, not_before, last_error, lease_owner, lease_expires_at,
	verdict, method, evidence, decided_at, revoked_from, revoked_evidence, revoked_at, audited_at, feed_seq, quarantined_at`

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// one reads a single row with scan (which reports the row's decode error
// apart from the scan's): ErrNotFound, named, when there is none; the
// decode error when the row is unusable.
func one[T any](row *sql.Row, name string, scan func(scanner) (T, error, error)) (T, error) {
	var zero T
	v, bad, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return zero, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	if bad != nil {
		return zero, bad
	}
	return v, nil
}

// collectUsable scans every row with scan (which reports a row's decode
// error apart from the scan's) and closes rows, for listings where a poison
// row must never fail the list: a row that cannot be scanned is skipped,
// one that cannot be decoded is listed as scan left it.
func collectUsable[T any](rows *sql.Rows, scan func(scanner) (T, error, error)) ([]T, error) {
	return collect(rows, func(r scanner) (T, error) {
		v, _, err := scan(r)
		if err != nil {
			err = errSkip
		}
		return v, err
	})
}

// errSkip, returned by a scan function, leaves the row out of collect's result.
var errSkip = errors.New("skip row")

// collect scans every row with scan and closes rows. A row that cannot be
// scanned fails the whole query: skipping it could make evidence look
// absent, or a claim look decided.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return out, rows.Err()
}

func scanClaim(row scanner) (Claim, error) {
	var (
		c     Claim
		kind  string
		since time.Time
		feed  sql.NullInt64
	)
	err := row.Scan(&c.ID, &c.Tenant, &c.Key, &c.User, &c.Handle, &kind, &c.Target, &c.Code, timeColumn{&since},
		timeColumn{&c.SubmittedAt}, &c.Status, &c.Attempts, timeColumn{&c.NotBefore}, &c.LastError, &c.LeaseOwner, timeColumn{&c.LeaseExpiry},
		&c.Verdict, &c.Method, &c.Evidence, timeColumn{&c.DecidedAt}, &c.RevokedFrom, &c.RevokedEvidence, timeColumn{&c.RevokedAt},
		timeColumn{&c.AuditedAt}, &feed, timeColumn{&c.QuarantinedAt})
	if err != nil {
		return Claim{}, err
	}
	c.FeedSeq = feed.Int64
	c.Kind = claim.Kind(kind)
	if !since.IsZero() {
		c.Since = &since
	}
	return c, nil
}

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryClaims runs a query selecting claimColumns. A row that cannot be
// scanned is skipped: a poison row never fails its batch.
func (s *sqlStore) queryClaims(ctx context.Context, q queryer, query string, args ...any) ([]Claim, error) {
	rows, err := q.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var claims []Claim
	for rows.Next() {
		c, err := scanClaim(rows)
		if err != nil {
			continue
		}
		claims = append(claims, c)
	}
	return claims, rows.Err()
}

// inTx runs fn in a transaction, committed if fn returns nil. On SQLite the
// transaction takes the write lock up front (_txlock=immediate).
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// inSnapshot runs fn in a read-only transaction whose reads all see one
// snapshot of the database: REPEATABLE READ on PostgreSQL (READ COMMITTED,
// its default, takes a snapshot per statement); on SQLite in WAL mode a
// deferred read transaction already reads one snapshot.
func (s *sqlStore) inSnapshot(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: s.d.snapshot, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // read-only: nothing to commit
	return fn(tx)
}

// chunks splits ids into slices of at most size.
func chunks[T any](items []T, size int) [][]T {
	var out [][]T
	for len(items) > size {
		out = append(out, items[:size])
		items = items[size:]
	}
	if len(items) > 0 {
		out = append(out, items)
	}
	return out
}

func idArgs(ids []int64) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return args
}

// uniqueStrings returns values sorted, without duplicates, so IN-list chunks
// are disjoint and return each row once.
func uniqueStrings(values []string) []string {
	unique := slices.Clone(values)
	slices.Sort(unique)
	return slices.Compact(unique)
}

func stringArgs(values []string) []any {
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	return args
}

func inList(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// storedTime is t as the store keeps it: UTC, to the microsecond.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func (s *sqlStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}
