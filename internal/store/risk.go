package store

// User risk: users flagged after a false claim, verified one by one.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// UserFlag marks a tenant's user as risky until Until: their claims are
// verified one by one, never approved by a sample or on honor.
type UserFlag struct {
	Tenant string
	User   string
	Until  time.Time
	Reason string
}

// tenantUser identifies a flagged user.
type tenantUser struct{ tenant, user string }

func (s *sqlStore) FlagUsers(ctx context.Context, flags []UserFlag) error {
	if err := checkFlags(flags); err != nil {
		return fmt.Errorf("flag users: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := s.flagUsersTx(ctx, tx, flags)
		return err
	})
	if err != nil {
		return fmt.Errorf("flag users: %w", err)
	}
	return nil
}

// checkFlags refuses the flags FlagUsers refuses: without a tenant, a user
// or an Until.
func checkFlags(flags []UserFlag) error {
	for i, f := range flags {
		switch {
		case f.Tenant == "":
			return fmt.Errorf("flag %d: empty tenant", i)
		case f.User == "":
			return fmt.Errorf("flag %d (tenant %s): empty user", i, f.Tenant)
		case f.Until.IsZero():
			return fmt.Errorf("flag %d (%s/%s): zero until", i, f.Tenant, f.User)
		}
	}
	return nil
}

// flagUsersTx is FlagUsers in tx, for flags checkFlags accepts. It returns
// how many users it flagged: the distinct tenants and users of flags (a
// stored flag lasting longer is kept all the same).
func (s *sqlStore) flagUsersTx(ctx context.Context, tx *sql.Tx, flags []UserFlag) (int, error) {
	// PostgreSQL refuses an upsert that touches a row twice, so a user
	// flagged more than once in the call is reduced here to the flag the
	// database would keep: the latest Until, at the precision stored, the
	// first such flag on a tie, as if the flags were applied in order.
	latest := make(map[tenantUser]UserFlag, len(flags))
	for _, f := range flags {
		k := tenantUser{f.Tenant, f.User}
		prev, seen := latest[k]
		if !seen || f.Until.Truncate(time.Microsecond).After(prev.Until.Truncate(time.Microsecond)) {
			latest[k] = f
		}
	}
	// Rows in key order, so concurrent callers lock shared rows in the same
	// order and cannot deadlock on PostgreSQL.
	keys := make([]tenantUser, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b tenantUser) int {
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		return strings.Compare(a.user, b.user)
	})
	for _, chunk := range chunks(keys, flagChunk) {
		args := make([]any, 0, len(chunk)*4)
		for _, k := range chunk {
			f := latest[k]
			args = append(args, f.Tenant, f.User, s.d.timeArg(f.Until), f.Reason)
		}
		// The WHERE keeps a stored flag that lasts at least as long,
		// reason included.
		_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO user_risk (tenant_id, user_ref, until, reason)
			VALUES `+placeholders(len(chunk), 4)+`
			ON CONFLICT (tenant_id, user_ref) DO UPDATE SET until = excluded.until, reason = excluded.reason
			WHERE excluded.until > user_risk.until`), args...)
		if err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

func (s *sqlStore) RiskyUsers(ctx context.Context, tenant string, users []string, now time.Time) ([]string, error) {
	// A zero now would compare with NULL and find nobody risky: refuse it
	// rather than let risky users through.
	if now.IsZero() {
		return nil, errors.New("risky users: zero now")
	}
	unique := slices.Clone(users)
	slices.Sort(unique)
	unique = slices.Compact(unique)
	nowArg := s.d.timeArg(now)
	var risky []string
	for _, chunk := range chunks(unique, idChunk) {
		args := make([]any, 0, len(chunk)+2)
		args = append(args, tenant, nowArg)
		for _, u := range chunk {
			args = append(args, u)
		}
		found, err := s.queryStrings(ctx, `SELECT user_ref FROM user_risk
			WHERE tenant_id = ? AND until > ? AND user_ref IN `+inList(len(chunk)), args...)
		if err != nil {
			return nil, fmt.Errorf("risky users of %s: %w", tenant, err)
		}
		risky = append(risky, found...)
	}
	// Chunks are disjoint, so there is nothing to deduplicate; sorting is
	// byte order, the same on both databases whatever PostgreSQL's collation.
	slices.Sort(risky)
	return risky, nil
}

// queryStrings runs a query selecting one text column.
func (s *sqlStore) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
