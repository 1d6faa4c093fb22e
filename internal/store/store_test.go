package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for creating test schemas

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

// backend creates fresh, isolated databases of one kind.
type backend struct {
	name string // testenv.SQLite or testenv.Postgres
	// rawDriver and rawDSN open the same database with database/sql, to
	// plant rows the Store API would refuse.
	rawDriver string
	rawDSN    func(dsn string) string
}

var backends = []backend{
	{
		name:      testenv.SQLite,
		rawDriver: "sqlite",
		rawDSN:    func(dsn string) string { return strings.TrimPrefix(dsn, "sqlite:") },
	},
	{
		name:      testenv.Postgres,
		rawDriver: "pgx",
		rawDSN:    func(dsn string) string { return dsn },
	},
}

// forEachBackend runs test once per backend, each with a fresh database.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			test(t, b, testenv.FreshDSN(t, b.name))
		})
	}
}

func openStore(t *testing.T, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// t0 is a fixed clock start; tests pass explicit times instead of sleeping.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newClaim(tenant, key string) claim.Claim {
	return claim.Claim{Tenant: tenant, Key: key, User: "user-" + key, Handle: "handle_" + key, Kind: claim.IGComment, Target: "17890000000000001"}
}

func submit(t *testing.T, s store.Store, now time.Time, claims ...claim.Claim) []int64 {
	t.Helper()
	results, err := s.Submit(context.Background(), claims, now)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	ids := make([]int64, len(results))
	for i, r := range results {
		if r.Duplicate {
			t.Fatalf("Submit: claim %d (%s/%s) unexpectedly a duplicate", i, claims[i].Tenant, claims[i].Key)
		}
		ids[i] = r.ID
	}
	return ids
}

func claimIDs(claims []store.Claim) []int64 {
	ids := make([]int64, len(claims))
	for i, c := range claims {
		ids[i] = c.ID
	}
	return ids
}

func getClaim(t *testing.T, s store.Store, id int64) store.Claim {
	t.Helper()
	claims, err := s.Claims(context.Background(), []int64{id})
	if err != nil {
		t.Fatalf("Claims: %v", err)
	}
	if len(claims) != 1 {
		t.Fatalf("Claims(%d): got %d claims, want 1", id, len(claims))
	}
	return claims[0]
}

func TestMigrationsApplyOnReopen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		first, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("first Open: %v", err)
		}
		ids := submit(t, first, t0, newClaim("acme", "k1"))
		if err := first.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		second := openStore(t, dsn)
		third := openStore(t, dsn) // open while another store holds the database
		for _, s := range []store.Store{second, third} {
			if got := getClaim(t, s, ids[0]); got.Key != "k1" {
				t.Errorf("after reopen: claim key %q, want k1", got.Key)
			}
		}
	})
}

func TestConcurrentOpenOfNewDatabase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const openers = 4
		var wg sync.WaitGroup
		errs := make([]error, openers)
		for i := range openers {
			wg.Go(func() {
				s, err := store.Open(context.Background(), dsn)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
		}
	})
}

func TestOpenErrorHidesPassword(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
	}{
		// Nothing listens on port 1.
		{"unreachable", "postgres://alice:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"},
		{"password parameter", "postgresql://alice@127.0.0.1:1/db?sslmode=disable&connect_timeout=2&password=s3cr3t-pw"},
		{"malformed port", "postgres://alice:s3cr3t-pw@127.0.0.1:port/db"},
		{"unknown sslmode", "postgres://alice:s3cr3t-pw@127.0.0.1:1/db?sslmode=sometimes"},
	}
	for _, tt := range tests {
		_, err := store.Open(context.Background(), tt.dsn)
		if err == nil {
			t.Errorf("%s: Open succeeded", tt.name)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("%s: error contains the password: %v", tt.name, err)
		}
		if !strings.HasPrefix(err.Error(), "open store: ") {
			t.Errorf("%s: error %q lacks the open store: prefix", tt.name, err)
		}
	}
}

// Every SQLite DSN form names the same file.
func TestOpenSQLiteDSNForms(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "claims.db")
	ids := submit(t, openStore(t, path), t0, newClaim("acme", "k1"))
	for _, dsn := range []string{
		path,
		"sqlite:" + path,
		"sqlite://" + path, // sqlite:///abs/path
		"file:" + path,
		"file://" + path,
		"file:" + path + "?cache=private",
	} {
		s := openStore(t, dsn)
		claims, err := s.Claims(context.Background(), ids)
		if err != nil || len(claims) != 1 {
			t.Errorf("Open(%q): Claims = %d claims, %v; want the claim stored through the bare path", dsn, len(claims), err)
		}
	}
}

func TestSubmitDuplicates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "k1"), newClaim("acme", "k2"))
		if ids[0] == ids[1] || ids[0] == 0 || ids[1] == 0 {
			t.Fatalf("ids %v: want two distinct non-zero ids", ids)
		}

		results, err := s.Submit(ctx, []claim.Claim{
			newClaim("acme", "k3"),  // new
			newClaim("acme", "k1"),  // stored earlier
			newClaim("other", "k1"), // same key, other tenant: new
			newClaim("acme", "k3"),  // repeated within the call
			newClaim("acme", "k2"),  // stored earlier
		}, t0.Add(time.Minute))
		if err != nil {
			t.Fatalf("Submit: %v", err)
		}
		if len(results) != 5 {
			t.Fatalf("got %d results, want 5", len(results))
		}
		tests := []struct {
			index     int
			duplicate bool
			id        int64 // 0: any new id
		}{
			{0, false, 0},
			{1, true, ids[0]},
			{2, false, 0},
			{3, true, results[0].ID},
			{4, true, ids[1]},
		}
		for _, tt := range tests {
			got := results[tt.index]
			if got.Duplicate != tt.duplicate {
				t.Errorf("result %d: Duplicate %v, want %v", tt.index, got.Duplicate, tt.duplicate)
			}
			if tt.id != 0 && got.ID != tt.id {
				t.Errorf("result %d: ID %d, want %d", tt.index, got.ID, tt.id)
			}
			if got.ID == 0 {
				t.Errorf("result %d: zero ID", tt.index)
			}
		}
		if results[0].ID == results[2].ID || slices.Contains(ids, results[0].ID) || slices.Contains(ids, results[2].ID) {
			t.Errorf("new claims got ids %d and %d, colliding with each other or %v", results[0].ID, results[2].ID, ids)
		}
		// The duplicate left the stored claim as it was.
		if got := getClaim(t, s, ids[0]); !got.SubmittedAt.Equal(t0) {
			t.Errorf("duplicate submit changed submitted_at to %v", got.SubmittedAt)
		}
	})
}

func TestSubmitRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		// A non-UTC zone and sub-microsecond digits: stored as the same
		// instant, to the microsecond, and returned in UTC.
		zone := time.FixedZone("UTC+2", 2*3600)
		since := time.Date(2025, 2, 1, 10, 30, 0, 123456789, zone)
		now := time.Date(2025, 3, 1, 14, 0, 0, 999, zone)
		in := claim.Claim{Tenant: "acme", Key: "order-1", User: "u@1", Handle: "Some.Body", Kind: claim.FBComment,
			Target: "123_456", Code: "ABC-1", Since: &since}
		plain := newClaim("acme", "order-2")
		ids := submit(t, s, now, in, plain)

		got := getClaim(t, s, ids[0])
		if got.Claim.Since == nil {
			t.Fatal("Since: nil, want set")
		}
		wantSince := since.UTC().Truncate(time.Microsecond)
		if !got.Since.Equal(wantSince) || got.Since.Location() != time.UTC {
			t.Errorf("Since %v, want %v in UTC", got.Since, wantSince)
		}
		gotClaim := got.Claim
		gotClaim.Since, in.Since = nil, nil
		if gotClaim != in {
			t.Errorf("claim %+v, want %+v", gotClaim, in)
		}
		if want := now.UTC().Truncate(time.Microsecond); !got.SubmittedAt.Equal(want) || got.SubmittedAt.Location() != time.UTC {
			t.Errorf("SubmittedAt %v, want %v in UTC", got.SubmittedAt, want)
		}
		if got.Status != store.StatusPending || got.Attempts != 0 || got.Verdict != "" {
			t.Errorf("new claim: status %q attempts %d verdict %q", got.Status, got.Attempts, got.Verdict)
		}
		for name, tm := range map[string]time.Time{"NotBefore": got.NotBefore, "LeaseExpiry": got.LeaseExpiry, "DecidedAt": got.DecidedAt, "RevokedAt": got.RevokedAt} {
			if !tm.IsZero() {
				t.Errorf("%s %v, want zero (NULL)", name, tm)
			}
		}
		if p := getClaim(t, s, ids[1]); p.Since != nil {
			t.Errorf("claim without since: Since %v, want nil", p.Since)
		}
	})
}

func TestSubmitRefusesInvalidClaim(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		bad := newClaim("acme", "k2")
		bad.Target = "not-an-id"
		_, err := s.Submit(context.Background(), []claim.Claim{newClaim("acme", "k1"), bad}, t0)
		if err == nil || !strings.Contains(err.Error(), "claim 1") {
			t.Fatalf("Submit with an invalid claim at index 1: err %v, want one naming claim 1", err)
		}
		// Nothing was written, not even the valid claim.
		stats, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 0 {
			t.Errorf("stats after refused submit: %+v, want none", stats)
		}
	})
}

func TestClaimLimitAndOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		// Submitted newest first, so id order and age order disagree.
		late := submit(t, s, t0.Add(2*time.Minute), newClaim("acme", "late"))
		mid := submit(t, s, t0.Add(time.Minute), newClaim("acme", "mid-a"), newClaim("acme", "mid-b"))
		early := submit(t, s, t0, newClaim("acme", "early"))
		wantOrder := []int64{early[0], mid[0], mid[1], late[0]}

		now := t0.Add(time.Hour)
		got, err := s.Claim(ctx, "w1", 3, time.Minute, now)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if ids := claimIDs(got); !slices.Equal(ids, wantOrder[:3]) {
			t.Fatalf("Claim(limit 3): ids %v, want %v", ids, wantOrder[:3])
		}
		for _, c := range got {
			if c.Status != store.StatusLeased || c.LeaseOwner != "w1" || c.Attempts != 1 || !c.LeaseExpiry.Equal(now.Add(time.Minute)) {
				t.Errorf("claim %d: status %q owner %q attempts %d expiry %v", c.ID, c.Status, c.LeaseOwner, c.Attempts, c.LeaseExpiry)
			}
		}
		rest, err := s.Claim(ctx, "w1", 10, time.Minute, now)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if ids := claimIDs(rest); !slices.Equal(ids, wantOrder[3:]) {
			t.Errorf("second Claim: ids %v, want %v", ids, wantOrder[3:])
		}
		none, err := s.Claim(ctx, "w2", 10, time.Minute, now)
		if err != nil || len(none) != 0 {
			t.Errorf("Claim with all leased: %d claims, err %v; want none", len(none), err)
		}
		if zero, err := s.Claim(ctx, "w2", 0, time.Minute, now.Add(time.Hour)); err != nil || len(zero) != 0 {
			t.Errorf("Claim(limit 0): %d claims, err %v; want none", len(zero), err)
		}
	})
}

func TestConcurrentClaimersNeverShare(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const (
			total    = 300
			claimers = 4
			batch    = 7
		)
		seed := openStore(t, dsn)
		claims := make([]claim.Claim, total)
		for i := range claims {
			claims[i] = newClaim("acme", fmt.Sprintf("k%d", i))
		}
		submit(t, seed, t0, claims...)

		// Each claimer has its own store, as separate processes would.
		var (
			mu     sync.Mutex
			holder = map[int64]string{}
			wg     sync.WaitGroup
			errs   = make(chan error, claimers)
		)
		for w := range claimers {
			s := openStore(t, dsn)
			owner := fmt.Sprintf("worker-%d", w)
			wg.Go(func() {
				for {
					got, err := s.Claim(context.Background(), owner, batch, time.Hour, t0.Add(time.Minute))
					if err != nil {
						errs <- fmt.Errorf("%s: %w", owner, err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, c := range got {
						if prev, taken := holder[c.ID]; taken {
							errs <- fmt.Errorf("claim %d handed to %s and %s", c.ID, prev, owner)
						}
						holder[c.ID] = owner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if len(holder) != total {
			t.Errorf("%d distinct claims leased, want %d", len(holder), total)
		}
	})
}

func TestExpiredLeaseIsClaimedAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "k1"))
		if _, err := s.Claim(ctx, "w1", 1, time.Minute, t0); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			now  time.Time
			want []int64
		}{
			{"lease holds", t0.Add(30 * time.Second), nil},
			{"lease ends exactly now", t0.Add(time.Minute), nil},
			{"lease expired", t0.Add(time.Minute + time.Microsecond), ids},
		}
		for _, tt := range tests {
			got, err := s.Claim(ctx, "w2", 5, time.Minute, tt.now)
			if err != nil {
				t.Fatalf("%s: Claim: %v", tt.name, err)
			}
			if ids := claimIDs(got); !slices.Equal(ids, tt.want) {
				t.Errorf("%s: claimed %v, want %v", tt.name, ids, tt.want)
			}
		}
		got := getClaim(t, s, ids[0])
		if got.LeaseOwner != "w2" || got.Attempts != 2 {
			t.Errorf("after re-lease: owner %q attempts %d, want w2 and 2", got.LeaseOwner, got.Attempts)
		}
		// The first owner lost the lease: it can neither extend nor defer it.
		if n, err := s.ExtendLease(ctx, "w1", ids, time.Minute, t0.Add(2*time.Minute)); err != nil || n != 0 {
			t.Errorf("ExtendLease by the former owner: %d, %v; want 0", n, err)
		}
		if n, err := s.Defer(ctx, "w1", []store.Deferral{{ClaimID: ids[0], NotBefore: t0.Add(time.Hour)}}); err != nil || n != 0 {
			t.Errorf("Defer by the former owner: %d, %v; want 0", n, err)
		}
	})
}

func TestDeferRespectsNotBefore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "k1"), newClaim("acme", "k2"))
		if _, err := s.Claim(ctx, "w1", 2, time.Minute, t0); err != nil {
			t.Fatal(err)
		}
		// Settle the second claim so its lapsing lease does not mix in below.
		if _, err := s.Decide(ctx, []store.Decision{{ClaimID: ids[1], Verdict: store.VerdictVerified}}, t0); err != nil {
			t.Fatal(err)
		}
		notBefore := t0.Add(10 * time.Minute)
		deferrals := []store.Deferral{{ClaimID: ids[0], NotBefore: notBefore, Reason: "rate limited"}}
		if n, err := s.Defer(ctx, "someone-else", deferrals); err != nil || n != 0 {
			t.Errorf("Defer by a non-owner: %d, %v; want 0", n, err)
		}
		if n, err := s.Defer(ctx, "w1", deferrals); err != nil || n != 1 {
			t.Fatalf("Defer by the owner: %d, %v; want 1", n, err)
		}
		got := getClaim(t, s, ids[0])
		if got.Status != store.StatusPending || got.LastError != "rate limited" || !got.NotBefore.Equal(notBefore) || got.LeaseOwner != "" || !got.LeaseExpiry.IsZero() {
			t.Errorf("deferred claim: status %q error %q not_before %v owner %q expiry %v",
				got.Status, got.LastError, got.NotBefore, got.LeaseOwner, got.LeaseExpiry)
		}
		// Deferring a claim no longer leased does nothing.
		if n, err := s.Defer(ctx, "w1", deferrals); err != nil || n != 0 {
			t.Errorf("second Defer: %d, %v; want 0", n, err)
		}

		tests := []struct {
			name string
			now  time.Time
			want []int64
		}{
			{"before not_before", notBefore.Add(-time.Second), nil},
			{"at not_before", notBefore, ids[:1]},
		}
		for _, tt := range tests {
			got, err := s.Claim(ctx, "w2", 5, time.Minute, tt.now)
			if err != nil {
				t.Fatalf("%s: Claim: %v", tt.name, err)
			}
			if ids := claimIDs(got); !slices.Equal(ids, tt.want) {
				t.Errorf("%s: claimed %v, want %v", tt.name, ids, tt.want)
			}
		}
	})
}

func TestDecide(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "k1"), newClaim("acme", "k2"), newClaim("acme", "k3"))
		if _, err := s.Claim(ctx, "w1", 2, time.Minute, t0); err != nil {
			t.Fatal(err)
		}
		decidedAt := t0.Add(time.Second)
		decisions := []store.Decision{
			{ClaimID: ids[0], Verdict: store.VerdictVerified, Method: "graph", Evidence: `{"comment":"1"}`},
			{ClaimID: ids[2], Verdict: store.VerdictRejected, Method: "rule", Evidence: "none"}, // pending, unleased: decided too
			{ClaimID: 999999, Verdict: store.VerdictVerified},                                   // missing
		}
		got, err := s.Decide(ctx, decisions, decidedAt)
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		if want := []int64{ids[0], ids[2]}; !slices.Equal(got, want) {
			t.Errorf("Decide: decided %v, want %v", got, want)
		}
		again, err := s.Decide(ctx, []store.Decision{{ClaimID: ids[0], Verdict: store.VerdictRejected, Method: "other"}}, decidedAt.Add(time.Hour))
		if err != nil {
			t.Fatalf("second Decide: %v", err)
		}
		if len(again) != 0 {
			t.Errorf("second Decide: decided %v, want none", again)
		}

		c := getClaim(t, s, ids[0])
		if c.Status != store.StatusDecided || c.Verdict != store.VerdictVerified || c.Method != "graph" ||
			c.Evidence != `{"comment":"1"}` || !c.DecidedAt.Equal(decidedAt) || c.LeaseOwner != "" || !c.LeaseExpiry.IsZero() {
			t.Errorf("decided claim: %+v", c)
		}
		// Decided claims are never claimed again, even long after their lease.
		claimed, err := s.Claim(ctx, "w2", 10, time.Minute, t0.Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(claimed) != 1 || claimed[0].ID != ids[1] {
			t.Errorf("Claim after Decide: %v, want [%d]", claimIDs(claimed), ids[1])
		}
		if _, err := s.Decide(ctx, []store.Decision{{ClaimID: ids[1]}}, decidedAt); err == nil {
			t.Error("Decide with an empty verdict succeeded")
		}
	})
}

func TestRevoke(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "k1"), newClaim("acme", "k2"))
		if _, err := s.Decide(ctx, []store.Decision{{ClaimID: ids[0], Verdict: store.VerdictApprovedBySample, Method: "sample"}}, t0); err != nil {
			t.Fatal(err)
		}
		revokedAt := t0.Add(time.Hour)
		if queued, err := s.AuditQueue(ctx, 10, revokedAt); err != nil || !slices.Equal(claimIDs(queued), ids[:1]) {
			t.Fatalf("AuditQueue before Revoke: %v, %v; want [%d]", claimIDs(queued), err, ids[0])
		}
		tests := []struct {
			name string
			id   int64
			want bool
		}{
			{"pending claim", ids[1], false},
			{"decided claim", ids[0], true},
			{"already revoked", ids[0], false},
			{"missing claim", 999999, false},
		}
		for _, tt := range tests {
			got, err := s.Revoke(ctx, tt.id, "comment deleted", revokedAt)
			if err != nil {
				t.Fatalf("%s: Revoke: %v", tt.name, err)
			}
			if got != tt.want {
				t.Errorf("%s: Revoke = %v, want %v", tt.name, got, tt.want)
			}
		}
		c := getClaim(t, s, ids[0])
		if c.Status != store.StatusDecided || c.Verdict != store.VerdictRevoked || c.RevokedFrom != store.VerdictApprovedBySample ||
			c.RevokedEvidence != "comment deleted" || !c.RevokedAt.Equal(revokedAt) || c.Method != "sample" {
			t.Errorf("revoked claim: %+v", c)
		}
		// A revocation is an audit outcome: the claim leaves the audit queue.
		if !c.AuditedAt.Equal(revokedAt) {
			t.Errorf("revoked claim: AuditedAt %v, want %v", c.AuditedAt, revokedAt)
		}
		if queued, err := s.AuditQueue(ctx, 10, revokedAt); err != nil || len(queued) != 0 {
			t.Errorf("AuditQueue after Revoke: %v, %v; want none", claimIDs(queued), err)
		}
		if p := getClaim(t, s, ids[1]); p.Status != store.StatusPending || p.Verdict != "" {
			t.Errorf("pending claim after refused revoke: status %q verdict %q", p.Status, p.Verdict)
		}
	})
}

func TestExtendLease(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "k1"), newClaim("acme", "k2"), newClaim("acme", "k3"))
		if _, err := s.Claim(ctx, "w1", 2, time.Minute, t0); err != nil {
			t.Fatal(err)
		}
		later := t0.Add(50 * time.Second)
		tests := []struct {
			owner string
			ids   []int64
			want  int
		}{
			{"w2", ids, 0},           // not the owner
			{"w1", ids, 2},           // the third is pending
			{"w1", []int64{}, 0},     // nothing asked
			{"w1", ids[2:], 0},       // pending only
			{"w1", ids[:1], 1},       // again
			{"w1", []int64{-1}, 0},   // missing
			{"w1", ids[1:2], 1},      // again
			{"w2", ids[0:1], 0},      // still not the owner
			{"w1", []int64{0, 0}, 0}, // missing
		}
		for i, tt := range tests {
			n, err := s.ExtendLease(ctx, tt.owner, tt.ids, 5*time.Minute, later)
			if err != nil {
				t.Fatalf("case %d: ExtendLease: %v", i, err)
			}
			if n != tt.want {
				t.Errorf("case %d: ExtendLease(%s, %v) = %d, want %d", i, tt.owner, tt.ids, n, tt.want)
			}
		}
		if c := getClaim(t, s, ids[0]); !c.LeaseExpiry.Equal(later.Add(5 * time.Minute)) {
			t.Errorf("lease expiry %v, want %v", c.LeaseExpiry, later.Add(5*time.Minute))
		}
		// The extended lease holds past the original expiry.
		if got, err := s.Claim(ctx, "w2", 10, time.Minute, t0.Add(2*time.Minute)); err != nil || len(got) != 1 || got[0].ID != ids[2] {
			t.Errorf("Claim after extension: %v, %v; want only [%d]", claimIDs(got), err, ids[2])
		}
	})
}

func TestStatsAndDecided(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		var claims []claim.Claim
		for i := range 5 {
			claims = append(claims, newClaim("beta", fmt.Sprintf("b%d", i)), newClaim("alpha", fmt.Sprintf("a%d", i)))
		}
		ids := submit(t, s, t0, claims...)
		var alpha, beta []int64
		for i, c := range claims {
			if c.Tenant == "alpha" {
				alpha = append(alpha, ids[i])
			} else {
				beta = append(beta, ids[i])
			}
		}
		// alpha: 3 decided (2 verified, 1 rejected), 2 pending; beta: 4 decided (verified, revoked), 1 leased
		decisions := []store.Decision{
			{ClaimID: alpha[0], Verdict: store.VerdictVerified},
			{ClaimID: alpha[1], Verdict: store.VerdictVerified},
			{ClaimID: alpha[2], Verdict: store.VerdictRejected},
			{ClaimID: beta[0], Verdict: store.VerdictVerified},
			{ClaimID: beta[1], Verdict: store.VerdictVerified},
			{ClaimID: beta[2], Verdict: store.VerdictVerified},
			{ClaimID: beta[3], Verdict: store.VerdictApprovedOnHonor},
		}
		if _, err := s.Decide(ctx, decisions, t0); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Revoke(ctx, beta[3], "", t0); err != nil || !ok {
			t.Fatalf("Revoke: %v, %v", ok, err)
		}
		leased, err := s.Claim(ctx, "w1", 10, time.Minute, t0)
		if err != nil {
			t.Fatal(err)
		}
		// All three undecided claims are leased now; hand alpha's back so
		// alpha has pending claims and beta a leased one.
		var deferrals []store.Deferral
		for _, c := range leased {
			if c.Tenant == "alpha" {
				deferrals = append(deferrals, store.Deferral{ClaimID: c.ID})
			}
		}
		if n, err := s.Defer(ctx, "w1", deferrals); err != nil || n != 2 {
			t.Fatalf("Defer: %d, %v", n, err)
		}

		stats, err := s.Stats(ctx)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		want := []store.Stats{
			{Tenant: "alpha", Pending: 2, Decided: map[string]int{store.VerdictVerified: 2, store.VerdictRejected: 1}},
			{Tenant: "beta", Leased: 1, Decided: map[string]int{store.VerdictVerified: 3, store.VerdictRevoked: 1}, Audited: 1}, // the revocation
		}
		if fmt.Sprint(stats) != fmt.Sprint(want) {
			t.Errorf("Stats:\n got %+v\nwant %+v", stats, want)
		}

		allDecided := append(append([]int64{}, alpha[:3]...), beta[:4]...)
		slices.Sort(allDecided)
		tests := []struct {
			name   string
			filter store.ExportFilter
			want   []int64
		}{
			{"all", store.ExportFilter{}, allDecided},
			{"first page", store.ExportFilter{Limit: 3}, allDecided[:3]},
			{"next page", store.ExportFilter{AfterID: allDecided[2], Limit: 3}, allDecided[3:6]},
			{"last page", store.ExportFilter{AfterID: allDecided[5], Limit: 3}, allDecided[6:]},
			{"past the end", store.ExportFilter{AfterID: allDecided[6]}, nil},
			{"tenant", store.ExportFilter{Tenant: "alpha"}, alpha[:3]},
			{"tenant page", store.ExportFilter{Tenant: "beta", AfterID: beta[1], Limit: 1}, beta[2:3]},
			{"unknown tenant", store.ExportFilter{Tenant: "nobody"}, nil},
		}
		for _, tt := range tests {
			got, err := s.Decided(ctx, tt.filter)
			if err != nil {
				t.Fatalf("%s: Decided: %v", tt.name, err)
			}
			if ids := claimIDs(got); !slices.Equal(ids, tt.want) {
				t.Errorf("%s: Decided(%+v) = %v, want %v", tt.name, tt.filter, ids, tt.want)
			}
			for _, c := range got {
				if c.Status != store.StatusDecided {
					t.Errorf("%s: claim %d has status %q", tt.name, c.ID, c.Status)
				}
			}
		}
	})
}

func TestTokenSecretRef(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		tests := []struct {
			ref string
			ok  bool
		}{
			{"env:META_TOKEN", true},
			{"file:/run/secrets/meta", true},
			{"EAABsbCS1iHgBAKZA1234567890", false}, // a raw token
			{"", false},
			{"env:", false},
			{"ENV:META_TOKEN", false},
			{"vault:secret/meta", false},
		}
		for _, tt := range tests {
			err := s.UpsertToken(context.Background(), store.Token{ID: "t1", BudgetWindow: "1h", SecretRef: tt.ref})
			if (err == nil) != tt.ok {
				t.Errorf("UpsertToken(secret_ref %q): err %v, want ok=%v", tt.ref, err, tt.ok)
			}
			if err != nil && strings.HasPrefix(tt.ref, "EAA") && strings.Contains(err.Error(), tt.ref) {
				t.Errorf("UpsertToken error echoes the refused secret_ref: %v", err)
			}
		}
		if err := s.UpsertToken(context.Background(), store.Token{ID: "t2", BudgetWindow: "7d", SecretRef: "env:X"}); err == nil {
			t.Error(`UpsertToken with budget_window "7d" succeeded`)
		}
	})
}

func TestTenantAndTokenRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		tok := store.Token{ID: "page-token", Accounts: []string{"1784", "1001"}, BudgetCalls: 4800, BudgetWindow: "24h", SecretRef: "file:/run/secrets/page"}
		if err := s.UpsertToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		// Read back: no tenant, nothing sealed, never checked.
		tok.Health = store.TokenHealth{State: store.TokenUnknown, Scopes: []string{}}
		if err := s.UpsertToken(ctx, store.Token{ID: "app-token", BudgetWindow: "1h", SecretRef: "env:META_APP_TOKEN"}); err != nil {
			t.Fatal(err)
		}
		tenants := []store.Tenant{
			{ID: "zeta", Tier: store.TierStandard}, // platform token, no accounts
			{ID: "acme", Tier: store.TierPremium, TokenID: "page-token", Accounts: []store.Account{
				{ID: "1784", Type: store.AccountInstagram}, {ID: "1001", Type: store.AccountPage},
			}},
		}
		for _, tn := range tenants {
			if err := s.UpsertTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}

		acme, err := s.Tenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(acme) != fmt.Sprint(tenants[1]) || acme.InstagramAccount() != "1784" || acme.PageAccount() != "1001" {
			t.Errorf("Tenant(acme) = %+v, want %+v", acme, tenants[1])
		}
		zeta, err := s.Tenant(ctx, "zeta")
		if err != nil {
			t.Fatal(err)
		}
		if zeta.TokenID != "" || len(zeta.Accounts) != 0 || zeta.Tier != store.TierStandard {
			t.Errorf("Tenant(zeta) = %+v", zeta)
		}

		// Upsert replaces: premium to standard, token to platform.
		acme.Tier, acme.TokenID, acme.Accounts = store.TierStandard, "", acme.Accounts[:1]
		if err := s.UpsertTenant(ctx, acme); err != nil {
			t.Fatal(err)
		}
		list, err := s.Tenants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != "acme" || list[1].ID != "zeta" || fmt.Sprint(list[0]) != fmt.Sprint(acme) {
			t.Errorf("Tenants() = %+v", list)
		}

		gotTok, err := s.Token(ctx, "page-token")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%#v", gotTok) != fmt.Sprintf("%#v", tok) {
			t.Errorf("Token = %#v, want %#v", gotTok, tok)
		}
		tokens, err := s.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(tokens) != 2 || tokens[0].ID != "app-token" || tokens[1].ID != "page-token" || tokens[0].Accounts == nil {
			t.Errorf("Tokens() = %+v", tokens)
		}

		if err := s.UpsertTenant(ctx, store.Tenant{ID: "bad", Tier: "gold"}); err == nil {
			t.Error("UpsertTenant with tier gold succeeded")
		}
		if _, err := s.Tenant(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Tenant(nobody): %v, want ErrNotFound", err)
		}
		if _, err := s.Token(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(nobody): %v, want ErrNotFound", err)
		}
	})
}

// A row with undecodable accounts fails only a read of that row.
func TestPoisonRowDoesNotFailLists(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		for _, id := range []string{"good", "poison"} {
			if err := s.UpsertTenant(ctx, store.Tenant{ID: id, Tier: store.TierStandard, Accounts: []store.Account{{ID: "1", Type: store.AccountPage}}}); err != nil {
				t.Fatal(err)
			}
			if err := s.UpsertToken(ctx, store.Token{ID: id, Accounts: []string{"1"}, BudgetWindow: "1h", SecretRef: "env:T"}); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		for _, table := range []string{"tenants", "tokens"} {
			if _, err := raw.Exec(`UPDATE ` + table + ` SET accounts = '{not json' WHERE id = 'poison'`); err != nil {
				t.Fatalf("plant poison row in %s: %v", table, err)
			}
		}

		tenants, err := s.Tenants(ctx)
		if err != nil {
			t.Fatalf("Tenants: %v", err)
		}
		if len(tenants) != 2 || len(tenants[0].Accounts) != 1 || tenants[1].ID != "poison" || len(tenants[1].Accounts) != 0 {
			t.Errorf("Tenants() = %+v, want good with its account and poison with none", tenants)
		}
		tokens, err := s.Tokens(ctx)
		if err != nil {
			t.Fatalf("Tokens: %v", err)
		}
		if len(tokens) != 2 || len(tokens[0].Accounts) != 1 || len(tokens[1].Accounts) != 0 {
			t.Errorf("Tokens() = %+v, want good with its account and poison with none", tokens)
		}
		if _, err := s.Tenant(ctx, "poison"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Tenant(poison): %v, want a decode error", err)
		}
		if _, err := s.Token(ctx, "poison"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(poison): %v, want a decode error", err)
		}
		if _, err := s.Tenant(ctx, "good"); err != nil {
			t.Errorf("Tenant(good): %v", err)
		}
	})
}

// Submitting 10,000 claims at once works and re-submitting reports them all
// as duplicates with the same ids; no timing assertions.
func TestSubmitTenThousand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		const n = 10000
		claims := make([]claim.Claim, n)
		for i := range claims {
			claims[i] = newClaim(fmt.Sprintf("tenant-%d", i%3), fmt.Sprintf("key-%05d", i))
		}
		ids := submit(t, s, t0, claims...)
		seen := make(map[int64]bool, n)
		for _, id := range ids {
			seen[id] = true
		}
		if len(seen) != n {
			t.Fatalf("%d distinct ids for %d claims", len(seen), n)
		}

		again, err := s.Submit(ctx, claims, t0.Add(time.Hour))
		if err != nil {
			t.Fatalf("re-Submit: %v", err)
		}
		for i, r := range again {
			if !r.Duplicate || r.ID != ids[i] {
				t.Fatalf("re-submitted claim %d: %+v, want duplicate of %d", i, r, ids[i])
			}
		}

		stored, err := s.Claims(ctx, ids)
		if err != nil {
			t.Fatalf("Claims: %v", err)
		}
		if len(stored) != n || stored[0].ID != ids[0] || stored[n-1].ID != ids[n-1] {
			t.Fatalf("Claims(%d ids): %d claims", n, len(stored))
		}
		stats, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, st := range stats {
			total += st.Pending
		}
		if total != n {
			t.Errorf("pending %d, want %d", total, n)
		}
	})
}

// flagReason reads a stored flag's reason, which the Store API does not return.
func flagReason(t *testing.T, b backend, dsn, tenant, user string) string {
	t.Helper()
	raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var reason string
	// Literals rather than parameters: the two drivers spell placeholders differently.
	err = raw.QueryRow(`SELECT reason FROM user_risk WHERE tenant_id = '` + tenant + `' AND user_ref = '` + user + `'`).Scan(&reason)
	if err != nil {
		t.Fatalf("read reason of %s/%s: %v", tenant, user, err)
	}
	return reason
}

func riskyUsers(t *testing.T, s store.Store, tenant string, users []string, now time.Time) []string {
	t.Helper()
	got, err := s.RiskyUsers(context.Background(), tenant, users, now)
	if err != nil {
		t.Fatalf("RiskyUsers: %v", err)
	}
	return got
}

func TestFlagUsersKeepsLaterUntil(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		// Each step flags, then checks the flag's Until (risky just before
		// it, not at it) and reason.
		steps := []struct {
			name       string
			flags      []store.UserFlag
			user       string
			until      time.Time
			wantReason string
		}{
			{"first flag", []store.UserFlag{{Tenant: "acme", User: "u1", Until: h(2), Reason: "a"}}, "u1", h(2), "a"},
			{"shorter flag ignored", []store.UserFlag{{Tenant: "acme", User: "u1", Until: h(1), Reason: "b"}}, "u1", h(2), "a"},
			{"equal flag ignored", []store.UserFlag{{Tenant: "acme", User: "u1", Until: h(2), Reason: "c"}}, "u1", h(2), "a"},
			{"longer flag wins", []store.UserFlag{{Tenant: "acme", User: "u1", Until: h(3), Reason: "d"}}, "u1", h(3), "d"},
			{"repeated within a call", []store.UserFlag{
				{Tenant: "acme", User: "u2", Until: h(1), Reason: "x"},
				{Tenant: "acme", User: "u2", Until: h(5), Reason: "y"},
				{Tenant: "acme", User: "u2", Until: h(2), Reason: "z"},
			}, "u2", h(5), "y"},
			{"repeated within a call, stored one longer", []store.UserFlag{
				{Tenant: "acme", User: "u1", Until: h(1), Reason: "p"},
				{Tenant: "acme", User: "u1", Until: h(2), Reason: "q"},
			}, "u1", h(3), "d"},
		}
		for _, st := range steps {
			if err := s.FlagUsers(ctx, st.flags); err != nil {
				t.Fatalf("%s: FlagUsers: %v", st.name, err)
			}
			if got := riskyUsers(t, s, "acme", []string{st.user}, st.until.Add(-time.Microsecond)); !slices.Equal(got, []string{st.user}) {
				t.Errorf("%s: just before %v: risky %v, want [%s]", st.name, st.until, got, st.user)
			}
			if got := riskyUsers(t, s, "acme", []string{st.user}, st.until); len(got) != 0 {
				t.Errorf("%s: at %v: risky %v, want none", st.name, st.until, got)
			}
			if got := flagReason(t, b, dsn, "acme", st.user); got != st.wantReason {
				t.Errorf("%s: reason %q, want %q", st.name, got, st.wantReason)
			}
		}

		for _, bad := range []store.UserFlag{
			{User: "u", Until: h(1)},
			{Tenant: "acme", Until: h(1)},
			{Tenant: "acme", User: "u"},
		} {
			if err := s.FlagUsers(ctx, []store.UserFlag{bad}); err == nil {
				t.Errorf("FlagUsers(%+v) succeeded", bad)
			}
		}
		if err := s.FlagUsers(ctx, nil); err != nil {
			t.Errorf("FlagUsers(nil): %v", err)
		}
	})
}

func TestRiskyUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		flags := []store.UserFlag{
			{Tenant: "acme", User: "u1", Until: t0.Add(time.Hour)},
			{Tenant: "acme", User: "u2", Until: t0.Add(-time.Minute)}, // expired
			{Tenant: "acme", User: "u3", Until: t0},                   // expires now: not after now
			{Tenant: "acme", User: "u9", Until: t0.Add(time.Hour)},
			{Tenant: "acme", User: "u5", Until: t0.Add(time.Hour)},
			{Tenant: "other", User: "u4", Until: t0.Add(time.Hour)},
		}
		if err := s.FlagUsers(ctx, flags); err != nil {
			t.Fatalf("FlagUsers: %v", err)
		}
		tests := []struct {
			name   string
			tenant string
			users  []string
			want   []string
		}{
			{"expired, other tenant's, unknown excluded", "acme", []string{"u4", "u1", "u2", "u3", "unknown", "u1"}, []string{"u1"}},
			{"sorted, without duplicates", "acme", []string{"u9", "u5", "u9", "u1", "u5"}, []string{"u1", "u5", "u9"}},
			{"other tenant", "other", []string{"u4", "u1"}, []string{"u4"}},
			{"unknown tenant", "nobody", []string{"u1", "u4"}, nil},
			{"no users", "acme", nil, nil},
		}
		for _, tt := range tests {
			if got := riskyUsers(t, s, tt.tenant, tt.users, t0); !slices.Equal(got, tt.want) {
				t.Errorf("%s: RiskyUsers(%s, %v) = %v, want %v", tt.name, tt.tenant, tt.users, got, tt.want)
			}
		}
		if _, err := s.RiskyUsers(ctx, "acme", []string{"u1"}, time.Time{}); err == nil {
			t.Error("RiskyUsers with a zero now succeeded")
		}

		// Thousands of users in one call, past any one IN list: 3,000 flagged
		// (every other one expired), asked for in reverse with 500 unknown
		// users and every user twice.
		const n = 3000
		var bulk []store.UserFlag
		var asked, want []string
		for i := range n {
			user := fmt.Sprintf("bulk-%05d", i)
			until := t0.Add(time.Hour)
			if i%2 == 1 {
				until = t0.Add(-time.Hour)
			} else {
				want = append(want, user)
			}
			bulk = append(bulk, store.UserFlag{Tenant: "bulk", User: user, Until: until})
			asked = append(asked, user, user)
		}
		for i := range 500 {
			asked = append(asked, fmt.Sprintf("bulk-unknown-%03d", i))
		}
		slices.Reverse(asked)
		if err := s.FlagUsers(ctx, bulk); err != nil {
			t.Fatalf("FlagUsers(%d flags): %v", n, err)
		}
		if got := riskyUsers(t, s, "bulk", asked, t0); !slices.Equal(got, want) {
			t.Errorf("RiskyUsers(%d users): %d risky, want %d", len(asked), len(got), len(want))
		}
	})
}

// decideAt decides claims with one verdict at a time.
func decideAt(t *testing.T, s store.Store, at time.Time, verdict string, ids ...int64) {
	t.Helper()
	var decisions []store.Decision
	for _, id := range ids {
		decisions = append(decisions, store.Decision{ClaimID: id, Verdict: verdict, Method: "test"})
	}
	decided, err := s.Decide(context.Background(), decisions, at)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if len(decided) != len(ids) {
		t.Fatalf("Decide(%v): decided %v", ids, decided)
	}
}

func TestAuditQueue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		var claims []claim.Claim
		for i := range 10 {
			claims = append(claims, newClaim("acme", fmt.Sprintf("k%d", i)))
		}
		claims = append(claims, newClaim("other", "k10"))
		c := submit(t, s, t0, claims...)
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		// c[0] is decided after c[1] and c[5]: the queue follows decided_at,
		// not ids. c[9] stays pending.
		decideAt(t, s, m(3), store.VerdictApprovedBySample, c[0])
		decideAt(t, s, m(1), store.VerdictApprovedOnHonor, c[1], c[10])
		decideAt(t, s, m(1), store.VerdictApprovedBySample, c[5])
		decideAt(t, s, m(0), store.VerdictVerified, c[2])
		decideAt(t, s, m(0), store.VerdictRejected, c[3])
		decideAt(t, s, m(0), store.VerdictUnverifiable, c[4])
		decideAt(t, s, m(2), store.VerdictApprovedOnHonor, c[6])
		decideAt(t, s, m(2), store.VerdictApprovedBySample, c[7])
		decideAt(t, s, m(10), store.VerdictApprovedOnHonor, c[8])

		queue := func(name string, limit int, before time.Time, want ...int64) {
			t.Helper()
			got, err := s.AuditQueue(ctx, limit, before)
			if err != nil {
				t.Fatalf("%s: AuditQueue: %v", name, err)
			}
			if ids := claimIDs(got); !slices.Equal(ids, want) {
				t.Errorf("%s: AuditQueue(%d, %v) = %v, want %v", name, limit, before, ids, want)
			}
			for _, q := range got {
				if q.Status != store.StatusDecided || !q.AuditedAt.IsZero() ||
					(q.Verdict != store.VerdictApprovedBySample && q.Verdict != store.VerdictApprovedOnHonor) {
					t.Errorf("%s: queued claim %d: status %q verdict %q audited %v", name, q.ID, q.Status, q.Verdict, q.AuditedAt)
				}
			}
		}
		queue("all", 100, m(60), c[1], c[5], c[10], c[6], c[7], c[0], c[8])

		if n, err := s.MarkAudited(ctx, []int64{c[6]}, m(20)); err != nil || n != 1 {
			t.Fatalf("MarkAudited: %d, %v", n, err)
		}
		if ok, err := s.Revoke(ctx, c[7], "gone", m(20)); err != nil || !ok {
			t.Fatalf("Revoke: %v, %v", ok, err)
		}
		queue("audited and revoked left", 100, m(60), c[1], c[5], c[10], c[0], c[8])
		queue("limit", 2, m(60), c[1], c[5])
		queue("decided at decidedBefore", 100, m(3), c[1], c[5], c[10], c[0])
		queue("decided just after decidedBefore", 100, m(3).Add(-time.Microsecond), c[1], c[5], c[10])
		queue("none decided yet", 100, m(0))
		queue("zero limit", 0, m(60))
	})
}

func TestMarkAudited(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		c := submit(t, s, t0, newClaim("acme", "sample"), newClaim("acme", "honor"), newClaim("acme", "verified"),
			newClaim("acme", "rejected"), newClaim("acme", "pending"), newClaim("acme", "revoked"), newClaim("acme", "late"),
			newClaim("other", "honor"))
		sample, honor, verified, rejected, pending, revoked, late, otherHonor := c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
		decideAt(t, s, t0, store.VerdictApprovedBySample, sample, revoked, late)
		decideAt(t, s, t0, store.VerdictApprovedOnHonor, honor, otherHonor)
		decideAt(t, s, t0, store.VerdictVerified, verified)
		decideAt(t, s, t0, store.VerdictRejected, rejected)
		revokedAt := t0.Add(time.Minute)
		if ok, err := s.Revoke(ctx, revoked, "gone", revokedAt); err != nil || !ok {
			t.Fatalf("Revoke: %v, %v", ok, err)
		}

		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		// More ids than one IN list holds, the one to mark last.
		many := make([]int64, 0, 2501)
		for i := range 2500 {
			many = append(many, -int64(i+1))
		}
		many = append(many, late)
		steps := []struct {
			name string
			ids  []int64
			now  time.Time
			want int
		}{
			{"provisional among others, repeated", []int64{sample, verified, rejected, pending, revoked, 999999, sample}, m(1), 1},
			{"again, with a new one", []int64{sample, honor, otherHonor}, m(2), 2},
			{"all audited already", []int64{sample, honor, otherHonor}, m(3), 0},
			{"nothing", nil, m(3), 0},
			{"thousands of ids", many, m(4), 1},
		}
		for _, st := range steps {
			n, err := s.MarkAudited(ctx, st.ids, st.now)
			if err != nil {
				t.Fatalf("%s: MarkAudited: %v", st.name, err)
			}
			if n != st.want {
				t.Errorf("%s: MarkAudited marked %d, want %d", st.name, n, st.want)
			}
		}
		if _, err := s.MarkAudited(ctx, []int64{sample}, time.Time{}); err == nil {
			t.Error("MarkAudited with a zero now succeeded")
		}

		// The first audit's time stays; verdicts stay; non-provisional claims
		// are not audited. Claims and Decided both load AuditedAt.
		want := map[int64]struct {
			verdict string
			audited time.Time
		}{
			sample:     {store.VerdictApprovedBySample, m(1)},
			honor:      {store.VerdictApprovedOnHonor, m(2)},
			otherHonor: {store.VerdictApprovedOnHonor, m(2)},
			late:       {store.VerdictApprovedBySample, m(4)},
			revoked:    {store.VerdictRevoked, revokedAt},
			verified:   {store.VerdictVerified, time.Time{}},
			rejected:   {store.VerdictRejected, time.Time{}},
			pending:    {"", time.Time{}},
		}
		byClaims, err := s.Claims(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		decided, err := s.Decided(ctx, store.ExportFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(byClaims) != len(c) || len(decided) != len(c)-1 {
			t.Fatalf("Claims: %d claims, Decided: %d claims", len(byClaims), len(decided))
		}
		for _, got := range append(byClaims, decided...) {
			w := want[got.ID]
			if got.Verdict != w.verdict || !got.AuditedAt.Equal(w.audited) {
				t.Errorf("claim %d: verdict %q audited %v, want %q audited %v", got.ID, got.Verdict, got.AuditedAt, w.verdict, w.audited)
			}
		}
		if queued, err := s.AuditQueue(ctx, 10, m(10)); err != nil || len(queued) != 0 {
			t.Errorf("AuditQueue after auditing all: %v, %v; want none", claimIDs(queued), err)
		}

		stats, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 2 || stats[0].Tenant != "acme" || stats[0].Audited != 4 || stats[1].Tenant != "other" || stats[1].Audited != 1 {
			t.Errorf("Stats: %+v, want acme with 4 audited (3 confirmed, 1 revoked) and other with 1", stats)
		}
	})
}

// closeAndMigrateDown closes s and takes its database down to a migration
// version, returning a raw connection to inspect it.
func closeAndMigrateDown(t *testing.T, s store.Store, b backend, dsn string, version int64) *sql.DB {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if err := store.MigrateDownTo(context.Background(), raw, b.name, version); err != nil {
		t.Fatalf("down to %d: %v", version, err)
	}
	return raw
}

// Migration 00002 goes down and up again on a database holding data.
func TestMigrationRiskAndAuditDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		ids := submit(t, s, t0, newClaim("acme", "k1"))
		decideAt(t, s, t0, store.VerdictApprovedOnHonor, ids...)
		if _, err := s.MarkAudited(ctx, ids, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.FlagUsers(ctx, []store.UserFlag{{Tenant: "acme", User: "u1", Until: t0.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		raw := closeAndMigrateDown(t, s, b, dsn, 1)
		if _, err := raw.Exec(`SELECT 1 FROM user_risk`); err == nil {
			t.Error("user_risk still exists after down")
		}
		if _, err := raw.Exec(`SELECT audited_at FROM claims`); err == nil {
			t.Error("claims.audited_at still exists after down")
		}

		s = openStore(t, dsn) // migrates up again
		if got := getClaim(t, s, ids[0]); got.Verdict != store.VerdictApprovedOnHonor || !got.AuditedAt.IsZero() {
			t.Errorf("claim after down and up: verdict %q audited %v", got.Verdict, got.AuditedAt)
		}
		if queued, err := s.AuditQueue(ctx, 10, t0); err != nil || !slices.Equal(claimIDs(queued), ids) {
			t.Errorf("AuditQueue after down and up: %v, %v; want %v", claimIDs(queued), err, ids)
		}
	})
}

// ---- evidence ----

// fmtTime shows a time with its zone, so a time not returned in UTC shows.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.Format(time.RFC3339Nano)
}

// evidenceStrings renders actions one per string, every field included, for
// comparisons with readable failures.
func evidenceStrings(actions []store.EvidenceAction) []string {
	out := make([]string, len(actions))
	for i, a := range actions {
		out[i] = fmt.Sprintf("%s/%s/%s user=%q uid=%q text=%q time=%s source=%s deleted=%v seen=%s",
			a.Target, a.Edge, a.ActionID, a.Username, a.UserID, a.Text, fmtTime(a.Time), a.Source, a.Deleted, fmtTime(a.SeenAt))
	}
	return out
}

func evidenceOf(t *testing.T, s store.Store, targets ...string) []store.EvidenceAction {
	t.Helper()
	got, _, err := s.Evidence(context.Background(), targets)
	if err != nil {
		t.Fatalf("Evidence: %v", err)
	}
	return got
}

func saveEvidence(t *testing.T, s store.Store, actions ...store.EvidenceAction) int {
	t.Helper()
	n, err := s.SaveEvidence(context.Background(), actions)
	if err != nil {
		t.Fatalf("SaveEvidence: %v", err)
	}
	return n
}

func TestSaveEvidenceUpsert(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		zone := time.FixedZone("UTC-5", -5*3600)
		comment := func(id, user, text string, at time.Time, source string, seen time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: id, Username: user, UserID: "uid-" + user,
				Text: text, Time: at, Source: source, SeenAt: seen}
		}
		removal := func(id string, seen time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: id, Source: store.SourceWebhook, Deleted: true, SeenAt: seen}
		}
		reaction := store.EvidenceAction{Target: "m1", Edge: "reactions", ActionID: "r1", Username: "Ann Example", UserID: "901",
			Source: store.SourceGraph, SeenAt: m(10)}

		// Each step saves, then checks the count of new actions and
		// everything stored on m1 and m2.
		steps := []struct {
			name    string
			save    []store.EvidenceAction
			wantNew int
			want    []store.EvidenceAction
		}{
			{
				name: "new actions; times in another zone, below the microsecond",
				save: []store.EvidenceAction{
					comment("c1", "ann", "hi CODE1", m(1).In(zone).Add(789), store.SourceGraph, m(10).In(zone).Add(1)),
					comment("c2", "bob", "CODE2", m(2), store.SourceWebhook, m(10)),
					reaction,
				},
				wantNew: 3,
				want: []store.EvidenceAction{
					comment("c2", "bob", "CODE2", m(2), store.SourceWebhook, m(10)),
					comment("c1", "ann", "hi CODE1", m(1), store.SourceGraph, m(10)),
					reaction,
				},
			},
			{
				name:    "an edit replaces user and text; a zero time keeps the stored time; the first source stays",
				save:    []store.EvidenceAction{comment("c1", "ann2", "edited CODE1", time.Time{}, store.SourceWebhook, m(20))},
				wantNew: 0,
				want: []store.EvidenceAction{
					comment("c2", "bob", "CODE2", m(2), store.SourceWebhook, m(10)),
					comment("c1", "ann2", "edited CODE1", m(1), store.SourceGraph, m(20)),
					reaction,
				},
			},
			{
				name:    "a time replaces the stored time",
				save:    []store.EvidenceAction{comment("c1", "ann2", "edited CODE1", m(3), store.SourceGraph, m(21))},
				wantNew: 0,
				want: []store.EvidenceAction{
					comment("c1", "ann2", "edited CODE1", m(3), store.SourceGraph, m(21)),
					comment("c2", "bob", "CODE2", m(2), store.SourceWebhook, m(10)),
					reaction,
				},
			},
			{
				name:    "a removal marks it deleted",
				save:    []store.EvidenceAction{removal("c2", m(30))},
				wantNew: 0,
				want: []store.EvidenceAction{
					comment("c1", "ann2", "edited CODE1", m(3), store.SourceGraph, m(21)),
					{Target: "m1", Edge: "comments", ActionID: "c2", Time: m(2), Source: store.SourceWebhook, Deleted: true, SeenAt: m(30)},
					reaction,
				},
			},
			{
				name:    "a graph sighting un-deletes it, the webhook source stays",
				save:    []store.EvidenceAction{comment("c2", "bob", "CODE2 again", m(2), store.SourceGraph, m(40))},
				wantNew: 0,
				want: []store.EvidenceAction{
					comment("c1", "ann2", "edited CODE1", m(3), store.SourceGraph, m(21)),
					comment("c2", "bob", "CODE2 again", m(2), store.SourceWebhook, m(40)),
					reaction,
				},
			},
			{
				name: "repeats within a call are saved in order: last wins, times only when set, first source",
				save: []store.EvidenceAction{
					comment("c3", "cy", "a", m(5), store.SourceWebhook, m(50)),
					comment("c1", "ann3", "x", time.Time{}, store.SourceGraph, m(50)),
					comment("c3", "cy", "b", time.Time{}, store.SourceGraph, m(51)),
					comment("c2", "bob", "p", m(7), store.SourceGraph, m(50)),
					comment("c2", "bob", "q", time.Time{}, store.SourceGraph, m(51)),
					removal("c3", m(52)),
				},
				wantNew: 1,
				want: []store.EvidenceAction{
					comment("c2", "bob", "q", m(7), store.SourceWebhook, m(51)),
					{Target: "m1", Edge: "comments", ActionID: "c3", Time: m(5), Source: store.SourceWebhook, Deleted: true, SeenAt: m(52)},
					comment("c1", "ann3", "x", m(3), store.SourceGraph, m(50)),
					reaction,
				},
			},
			{
				name: "the same action id on another edge or target is another action",
				save: []store.EvidenceAction{
					{Target: "m1", Edge: "tags", ActionID: "c1", Username: "tagger", Source: store.SourceGraph, SeenAt: m(60)},
					{Target: "m2", Edge: "comments", ActionID: "c1", Username: "other", Time: m(1), Source: store.SourceGraph, SeenAt: m(60)},
				},
				wantNew: 2,
				want: []store.EvidenceAction{
					comment("c2", "bob", "q", m(7), store.SourceWebhook, m(51)),
					{Target: "m1", Edge: "comments", ActionID: "c3", Time: m(5), Source: store.SourceWebhook, Deleted: true, SeenAt: m(52)},
					comment("c1", "ann3", "x", m(3), store.SourceGraph, m(50)),
					reaction,
					{Target: "m1", Edge: "tags", ActionID: "c1", Username: "tagger", Source: store.SourceGraph, SeenAt: m(60)},
					{Target: "m2", Edge: "comments", ActionID: "c1", Username: "other", Time: m(1), Source: store.SourceGraph, SeenAt: m(60)},
				},
			},
			{
				name:    "nothing",
				save:    nil,
				wantNew: 0,
			},
		}
		var want []store.EvidenceAction
		for _, st := range steps {
			n, err := s.SaveEvidence(ctx, st.save)
			if err != nil {
				t.Fatalf("%s: SaveEvidence: %v", st.name, err)
			}
			if n != st.wantNew {
				t.Errorf("%s: SaveEvidence = %d new, want %d", st.name, n, st.wantNew)
			}
			if st.want != nil {
				want = st.want
			}
			got := evidenceStrings(evidenceOf(t, s, "m1", "m2"))
			if w := evidenceStrings(want); !slices.Equal(got, w) {
				t.Errorf("%s: stored\n  %s\nwant\n  %s", st.name, strings.Join(got, "\n  "), strings.Join(w, "\n  "))
			}
		}
	})
}

// Thousands of actions and targets in one call, past any one statement or IN
// list.
func TestEvidenceInBulk(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		action := func(i int) store.EvidenceAction {
			return store.EvidenceAction{Target: fmt.Sprintf("media-%05d", i), Edge: "comments", ActionID: "c", Text: fmt.Sprint(i),
				Time: t0, Source: store.SourceGraph, SeenAt: t0}
		}
		var first, all []store.EvidenceAction
		var asked []string
		for i := range 3000 {
			if i%6 != 5 {
				first = append(first, action(i))
			}
			all = append(all, action(i))
			asked = append(asked, action(i).Target, action(i).Target)
		}
		if n := saveEvidence(t, s, first...); n != len(first) {
			t.Errorf("SaveEvidence(%d new): %d new", len(first), n)
		}
		if n := saveEvidence(t, s, all...); n != len(all)-len(first) {
			t.Errorf("SaveEvidence(%d, %d of them stored): %d new, want %d", len(all), len(first), n, len(all)-len(first))
		}
		for i := range 500 {
			asked = append(asked, fmt.Sprintf("unknown-%03d", i))
		}
		slices.Reverse(asked)
		got := evidenceOf(t, s, asked...)
		if g, w := evidenceStrings(got), evidenceStrings(all); !slices.Equal(g, w) {
			t.Errorf("Evidence(%d targets): %d actions, want %d in target order", len(asked), len(got), len(all))
		}
	})
}

func TestSaveEvidenceRefusesInvalidActions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		valid := store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: t0}
		tests := []struct {
			name   string
			change func(a *store.EvidenceAction)
		}{
			{"empty target", func(a *store.EvidenceAction) { a.Target = "" }},
			{"empty edge", func(a *store.EvidenceAction) { a.Edge = "" }},
			{"empty action id", func(a *store.EvidenceAction) { a.ActionID = "" }},
			{"empty source", func(a *store.EvidenceAction) { a.Source = "" }},
			{"unknown source", func(a *store.EvidenceAction) { a.Source = "scraper" }},
			{"zero seen_at", func(a *store.EvidenceAction) { a.SeenAt = time.Time{} }},
		}
		for _, tt := range tests {
			bad := valid
			bad.ActionID = "c2"
			tt.change(&bad)
			n, err := s.SaveEvidence(ctx, []store.EvidenceAction{valid, bad})
			if err == nil || !strings.Contains(err.Error(), "action 1") {
				t.Errorf("%s: SaveEvidence = %d, %v; want an error naming action 1", tt.name, n, err)
			}
		}
		// Nothing was written, not even the valid action.
		if got := evidenceOf(t, s, "m1", ""); len(got) != 0 {
			t.Errorf("after refused saves: %v, want none", evidenceStrings(got))
		}
		if n, err := s.SaveEvidence(ctx, []store.EvidenceAction{valid}); err != nil || n != 1 {
			t.Errorf("SaveEvidence(valid): %d, %v; want 1 new", n, err)
		}
	})
}

func TestEvidenceOrderAndTargets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		act := func(target, edge, id string, at time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: target, Edge: edge, ActionID: id, Time: at, Source: store.SourceGraph, SeenAt: m(100)}
		}
		// Byte order: upper case before lower case, "c10" before "c9",
		// whatever PostgreSQL's collation says.
		want := []store.EvidenceAction{
			act("M1", "comments", "c1", m(1)),
			act("m1", "comments", "c5", m(3)),
			act("m1", "comments", "c10", m(2)), // same time: by action id
			act("m1", "comments", "c9", m(2)),
			act("m1", "comments", "c2", m(1)),
			act("m1", "comments", "c0", time.Time{}), // zero times last, by action id
			act("m1", "comments", "c3", time.Time{}),
			act("m1", "reactions", "r2", m(5)),
			act("m1", "reactions", "r1", time.Time{}),
			act("m1", "tags", "t1", m(0)),
			act("m2", "Tags", "x", m(9)),
			act("m2", "comments", "c1", m(9)),
		}
		others := []store.EvidenceAction{act("m3", "comments", "c1", m(1)), act("m10", "comments", "c1", m(1))}
		shuffled := append(slices.Clone(others), want...)
		slices.Reverse(shuffled)
		saveEvidence(t, s, shuffled...)

		if got, w := evidenceStrings(evidenceOf(t, s, "m2", "m1", "unknown", "M1", "m1")), evidenceStrings(want); !slices.Equal(got, w) {
			t.Errorf("Evidence:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
		}
		if got := evidenceOf(t, s, "m10"); len(got) != 1 || got[0].Target != "m10" {
			t.Errorf("Evidence(m10) = %v, want m10's action only", evidenceStrings(got))
		}
		if got := evidenceOf(t, s); len(got) != 0 {
			t.Errorf("Evidence() = %v, want none", evidenceStrings(got))
		}
	})
}

// Concurrent callers saving the same actions, in different orders, count
// each new action once and do not deadlock.
func TestConcurrentSaveEvidence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const (
			savers  = 4
			actions = 1200 // more than one statement's worth
		)
		var all []store.EvidenceAction
		for i := range actions {
			all = append(all, store.EvidenceAction{Target: fmt.Sprintf("m%d", i%7), Edge: "comments", ActionID: fmt.Sprintf("c%04d", i),
				Source: store.SourceGraph, SeenAt: t0})
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			total int
			errs  = make(chan error, savers)
		)
		for w := range savers {
			s := openStore(t, dsn)
			mine := slices.Clone(all)
			if w%2 == 1 {
				slices.Reverse(mine)
			}
			// Each saver sends other slices, so their statements differ.
			mine = mine[w*100:]
			wg.Go(func() {
				for _, part := range [][]store.EvidenceAction{mine[:len(mine)/2], mine} {
					n, err := s.SaveEvidence(context.Background(), part)
					if err != nil {
						errs <- fmt.Errorf("saver %d: %w", w, err)
						return
					}
					mu.Lock()
					total += n
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if total != actions {
			t.Errorf("savers counted %d new actions in all, want %d", total, actions)
		}
	})
}

func coveragesOf(t *testing.T, s store.Store, targets ...string) []store.Coverage {
	t.Helper()
	_, got, err := s.Evidence(context.Background(), targets)
	if err != nil {
		t.Fatalf("Evidence: %v", err)
	}
	return got
}

func coverageString(c store.Coverage) string {
	return fmt.Sprintf("%s/%s [%s, %s] read=%s", c.Target, c.Edge, fmtTime(c.From), fmtTime(c.To), fmtTime(c.ReadAt))
}

func coverageStrings(cs []store.Coverage) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = coverageString(c)
	}
	return out
}

// readClock is our clock, when reads are made: ReadAt. It runs apart from
// Meta's action times (From, To), as in accelerated runs, so a test mixing
// the two up shows.
var readClock = time.Date(2031, 7, 1, 0, 0, 0, 0, time.UTC)

// rd is n minutes on our clock.
func rd(n int) time.Time { return readClock.Add(time.Duration(n) * time.Minute) }

func TestAddCoverageMerges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		var zero time.Time
		type span struct{ from, to, read time.Time }
		tests := []struct {
			name   string
			stored []span // added first, in order
			add    span
			want   span
		}{
			{"nothing stored", nil, span{h(1), h(2), rd(1)}, span{h(1), h(2), rd(1)}},
			{"overlap, later", []span{{h(1), h(3), rd(1)}}, span{h(2), h(5), rd(2)}, span{h(1), h(5), rd(2)}},
			{"overlap, earlier", []span{{h(2), h(5), rd(1)}}, span{h(1), h(3), rd(2)}, span{h(1), h(5), rd(2)}},
			{"inside the stored one: only the read time changes", []span{{h(1), h(5), rd(1)}}, span{h(2), h(3), rd(2)}, span{h(1), h(5), rd(2)}},
			{"containing the stored one", []span{{h(2), h(3), rd(1)}}, span{h(1), h(5), rd(2)}, span{h(1), h(5), rd(2)}},
			{"touching, after", []span{{h(1), h(3), rd(1)}}, span{h(3), h(5), rd(2)}, span{h(1), h(5), rd(2)}},
			{"touching, before", []span{{h(3), h(5), rd(1)}}, span{h(1), h(3), rd(2)}, span{h(1), h(5), rd(2)}},
			// Overlapping, the spans merge whichever was read first, and the
			// later read time is kept.
			{"overlap, read earlier: merged, the stored read time stays", []span{{h(1), h(3), rd(5)}}, span{h(2), h(5), rd(2)}, span{h(1), h(5), rd(5)}},
			{"containing, read earlier: merged, the stored read time stays", []span{{h(2), h(3), rd(5)}}, span{h(1), h(5), rd(2)}, span{h(1), h(5), rd(5)}},
			{"inside, read earlier: nothing changes", []span{{h(1), h(5), rd(5)}}, span{h(2), h(3), rd(2)}, span{h(1), h(5), rd(5)}},
			{"touching, read earlier", []span{{h(3), h(5), rd(5)}}, span{h(1), h(3), rd(2)}, span{h(1), h(5), rd(5)}},
			// Disjoint, the later read is kept, whatever its span.
			{"disjoint, older, read earlier: the stored one stays", []span{{h(4), h(5), rd(2)}}, span{h(1), h(2), rd(1)}, span{h(4), h(5), rd(2)}},
			{"disjoint, newer, read later: replaces", []span{{h(1), h(2), rd(1)}}, span{h(4), h(5), rd(2)}, span{h(4), h(5), rd(2)}},
			{"disjoint, older, read later: replaces", []span{{h(4), h(5), rd(1)}}, span{h(1), h(2), rd(2)}, span{h(1), h(2), rd(2)}},
			{"disjoint, newer, read earlier: the stored one stays", []span{{h(1), h(2), rd(2)}}, span{h(4), h(5), rd(1)}, span{h(1), h(2), rd(2)}},
			{"a microsecond apart: disjoint", []span{{h(1), h(2), rd(1)}}, span{h(2).Add(time.Microsecond), h(3), rd(2)}, span{h(2).Add(time.Microsecond), h(3), rd(2)}},
			{"read a microsecond later: replaces", []span{{h(4), h(5), rd(1)}}, span{h(1), h(2), rd(1).Add(time.Microsecond)}, span{h(1), h(2), rd(1).Add(time.Microsecond)}},
			{"zero from, overlapping", []span{{h(2), h(3), rd(1)}}, span{zero, h(4), rd(2)}, span{zero, h(4), rd(2)}},
			{"zero from, ending inside", []span{{h(2), h(5), rd(1)}}, span{zero, h(3), rd(2)}, span{zero, h(5), rd(2)}},
			{"zero from, ending before: disjoint, read earlier", []span{{h(3), h(5), rd(2)}}, span{zero, h(1), rd(1)}, span{h(3), h(5), rd(2)}},
			{"zero from, ending before: disjoint, read later", []span{{h(3), h(5), rd(1)}}, span{zero, h(1), rd(2)}, span{zero, h(1), rd(2)}},
			{"zero from stored, overlap", []span{{zero, h(3), rd(1)}}, span{h(2), h(5), rd(2)}, span{zero, h(5), rd(2)}},
			{"zero from stored, disjoint newer", []span{{zero, h(3), rd(1)}}, span{h(4), h(5), rd(2)}, span{h(4), h(5), rd(2)}},
			{"zero from both", []span{{zero, h(3), rd(2)}}, span{zero, h(2), rd(1)}, span{zero, h(3), rd(2)}},
			{"a point", []span{{h(1), h(3), rd(1)}}, span{h(4), h(4), rd(2)}, span{h(4), h(4), rd(2)}},
			// [1,2] and [2,3] merge; [8,9] read later replaces them; [3,8] merges with it.
			{"merges accumulate", []span{{h(1), h(2), rd(1)}, {h(2), h(3), rd(2)}, {h(8), h(9), rd(3)}}, span{h(3), h(8), rd(4)}, span{h(3), h(9), rd(4)}},
			// [1,2] and [2,3] merge, read at 3; [8,9] read earlier is dropped; [3,8] merges with [1,3].
			{"merges accumulate, a disjoint earlier read dropped", []span{{h(1), h(2), rd(1)}, {h(2), h(3), rd(3)}, {h(8), h(9), rd(2)}}, span{h(3), h(8), rd(2)}, span{h(1), h(8), rd(3)}},
		}
		for i, tt := range tests {
			target := fmt.Sprintf("case-%02d", i)
			for _, sp := range tt.stored {
				if _, err := s.AddCoverage(ctx, store.Coverage{Target: target, Edge: "comments", From: sp.from, To: sp.to, ReadAt: sp.read}); err != nil {
					t.Fatalf("%s: AddCoverage(stored): %v", tt.name, err)
				}
			}
			want := coverageString(store.Coverage{Target: target, Edge: "comments", From: tt.want.from, To: tt.want.to, ReadAt: tt.want.read})
			got, err := s.AddCoverage(ctx, store.Coverage{Target: target, Edge: "comments", From: tt.add.from, To: tt.add.to, ReadAt: tt.add.read})
			if err != nil {
				t.Fatalf("%s: AddCoverage: %v", tt.name, err)
			}
			if g := coverageString(got); g != want {
				t.Errorf("%s: AddCoverage returned %s, want %s", tt.name, g, want)
			}
			if g := coverageStrings(coveragesOf(t, s, target)); !slices.Equal(g, []string{want}) {
				t.Errorf("%s: stored %v, want %s", tt.name, g, want)
			}
		}

		// Times come back in UTC, to the microsecond.
		zone := time.FixedZone("UTC+9", 9*3600)
		got, err := s.AddCoverage(ctx, store.Coverage{Target: "zoned", Edge: "tags", From: h(1).In(zone).Add(999), To: h(2).In(zone).Add(1),
			ReadAt: rd(1).In(zone).Add(1)})
		if err != nil {
			t.Fatal(err)
		}
		want := coverageString(store.Coverage{Target: "zoned", Edge: "tags", From: h(1), To: h(2), ReadAt: rd(1)})
		if g := coverageString(got); g != want {
			t.Errorf("AddCoverage in another zone returned %s, want %s", g, want)
		}
		if g := coverageStrings(coveragesOf(t, s, "zoned")); !slices.Equal(g, []string{want}) {
			t.Errorf("stored %v, want %s", g, want)
		}
		// Merged at the stored precision: a read time later by less than a
		// microsecond is the same read time.
		if got, err := s.AddCoverage(ctx, store.Coverage{Target: "zoned", Edge: "tags", From: h(1), To: h(2), ReadAt: rd(1).Add(999)}); err != nil || coverageString(got) != want {
			t.Errorf("AddCoverage read under a microsecond later: %s, %v; want %s", coverageString(got), err, want)
		}

		// Each is valid but for one thing.
		for _, bad := range []store.Coverage{
			{Edge: "comments", To: h(1), ReadAt: rd(1)},
			{Target: "bad", To: h(1), ReadAt: rd(1)},
			{Target: "bad", Edge: "comments", ReadAt: rd(1)},
			{Target: "bad", Edge: "comments", From: h(2), To: h(1), ReadAt: rd(1)},
			{Target: "bad", Edge: "comments", From: h(1), To: h(2)}, // zero read time: the purge could never delete it
		} {
			if got, err := s.AddCoverage(ctx, bad); err == nil {
				t.Errorf("AddCoverage(%s) = %s, want an error", coverageString(bad), coverageString(got))
			}
		}
		if got := coveragesOf(t, s, "bad", ""); len(got) != 0 {
			t.Errorf("after refused adds: %v, want none", coverageStrings(got))
		}
		// A zero read time is refused when coverage is stored too, and the
		// stored coverage is left as it is.
		unread := store.Coverage{Target: "zoned", Edge: "tags", From: h(1), To: h(5)}
		if got, err := s.AddCoverage(ctx, unread); err == nil {
			t.Errorf("AddCoverage(%s) over stored coverage = %s, want an error", coverageString(unread), coverageString(got))
		}
		if g := coverageStrings(coveragesOf(t, s, "zoned")); !slices.Equal(g, []string{want}) {
			t.Errorf("after a refused add: stored %v, want %s", g, want)
		}
	})
}

func TestCoverages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		want := []store.Coverage{
			{Target: "B", Edge: "comments", From: h(1), To: h(2), ReadAt: rd(5)}, // byte order: upper case first
			{Target: "a", Edge: "comments", To: h(3), ReadAt: rd(4)},
			{Target: "a", Edge: "reactions", From: h(2), To: h(4), ReadAt: rd(3)},
			{Target: "a", Edge: "tags", From: h(1), To: h(1), ReadAt: rd(2)},
			{Target: "b", Edge: "comments", From: h(5), To: h(6), ReadAt: rd(1)},
		}
		for _, c := range slices.Backward(want) { // not in the order wanted
			if _, err := s.AddCoverage(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.AddCoverage(context.Background(), store.Coverage{Target: "c", Edge: "comments", To: h(1), ReadAt: rd(1)}); err != nil {
			t.Fatal(err)
		}
		// The stored targets last, after more unknown ones than one IN list holds.
		var asked []string
		for i := range 2500 {
			asked = append(asked, fmt.Sprintf("0-unknown-%04d", i))
		}
		asked = append(asked, "b", "a", "B", "a")
		if got, w := coverageStrings(coveragesOf(t, s, asked...)), coverageStrings(want); !slices.Equal(got, w) {
			t.Errorf("Coverages:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
		}
		if got := coveragesOf(t, s); len(got) != 0 {
			t.Errorf("Coverages() = %v, want none", coverageStrings(got))
		}
	})
}

// Evidence reads the actions and the coverage at one moment. Another batch
// storing a read of the claimant's tag (the action, then its coverage)
// between Evidence's two reads must not show up in the second alone: a
// coverage without the action it vouches for rejects the genuine claim the
// action proves (the chaos suite's PostgreSQL scenario did, twice).
func TestEvidenceReadsOneSnapshot(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		reader := openStore(t, dsn)
		writer := openStore(t, dsn) // another worker's connection
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		tag := func(id string, at time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: "17841400000000001", Edge: "tags", ActionID: id, Username: "user_" + id,
				Time: at, Source: store.SourceGraph, SeenAt: rd(1)}
		}
		earlier := tag("m-1", h(1))
		saveEvidence(t, writer, earlier)
		before := store.Coverage{Target: earlier.Target, Edge: "tags", From: h(1), To: h(1), ReadAt: rd(1)}
		if _, err := writer.AddCoverage(ctx, before); err != nil {
			t.Fatal(err)
		}

		claimants := tag("m-2", h(2))
		wrote := false
		store.OnEvidenceRead(reader, func() {
			saveEvidence(t, writer, claimants)
			if _, err := writer.AddCoverage(ctx, store.Coverage{Target: claimants.Target, Edge: "tags", From: h(1), To: h(2), ReadAt: rd(2)}); err != nil {
				t.Error(err)
			}
			wrote = true
		})
		actions, coverages, err := reader.Evidence(ctx, []string{claimants.Target})
		store.OnEvidenceRead(reader, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !wrote {
			t.Fatal("the concurrent write never ran: Evidence did not call the hook")
		}
		if got, want := evidenceStrings(actions), evidenceStrings([]store.EvidenceAction{earlier}); !slices.Equal(got, want) {
			t.Errorf("actions read = %v, want %v (the moment before the concurrent write)", got, want)
		}
		if got, want := coverageStrings(coverages), coverageStrings([]store.Coverage{before}); !slices.Equal(got, want) {
			t.Errorf("coverage read = %v, want %v: a coverage read after the actions vouches for %s, which is not among them",
				got, want, claimants.ActionID)
		}
		// Read again, both show the concurrent write.
		actions, coverages, err = reader.Evidence(ctx, []string{claimants.Target})
		if err != nil {
			t.Fatal(err)
		}
		if len(actions) != 2 || len(coverages) != 1 || !coverages[0].To.Equal(h(2)) {
			t.Errorf("after the write: actions %v, coverage %v; want both actions and the coverage to %s",
				evidenceStrings(actions), coverageStrings(coverages), fmtTime(h(2)))
		}
	})
}

// Concurrent adders of one (target, edge) lose no merge: every span holds
// the same instant, so all merge, each widens one end, and the read times
// of the adds are all different, the latest kept.
func TestConcurrentAddCoverage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const adders = 8
		ctx := context.Background()
		m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
		stores := make([]store.Store, adders)
		for w := range stores {
			stores[w] = openStore(t, dsn)
		}
		// run has every adder add its rounds, all starting together when
		// start is closed.
		run := func(target string, rounds int, start <-chan struct{}) {
			var (
				wg   sync.WaitGroup
				errs = make(chan error, adders)
			)
			for w, s := range stores {
				wg.Go(func() {
					<-start
					for r := range rounds {
						i := w*rounds + r + 1
						c := store.Coverage{Target: target, Edge: "comments", From: t0, To: m(i), ReadAt: rd(i)}
						if i%2 == 0 {
							c = store.Coverage{Target: target, Edge: "comments", From: m(-i), To: t0, ReadAt: rd(i)}
						}
						if _, err := s.AddCoverage(ctx, c); err != nil {
							errs <- fmt.Errorf("adder %d: %w", w, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			want := coverageString(store.Coverage{Target: target, Edge: "comments", From: m(-adders * rounds), To: m(adders*rounds - 1),
				ReadAt: rd(adders * rounds)})
			if got := coverageStrings(coveragesOf(t, stores[0], target)); !slices.Equal(got, []string{want}) {
				t.Errorf("%s after concurrent adds: %v, want %s", target, got, want)
			}
		}

		// From nothing stored: the adders race to insert, then to merge.
		now := make(chan struct{})
		close(now)
		run("free", 25, now)

		// Queued behind a transaction holding the stored row, the adders all
		// read it the moment it commits: an unlocked read would let them
		// merge into the same old span and overwrite each other.
		if _, err := stores[0].AddCoverage(ctx, store.Coverage{Target: "queued", Edge: "comments", From: t0, To: t0, ReadAt: rd(0)}); err != nil {
			t.Fatal(err)
		}
		raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		tx, err := raw.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.Exec(`UPDATE evidence_coverage SET to_at = to_at WHERE target = 'queued'`); err != nil {
			t.Fatalf("lock the stored row: %v", err)
		}
		queue := make(chan struct{})
		released := make(chan error, 1)
		go func() {
			close(queue)
			// Long enough for the adders to reach the lock; were it too
			// short, the test would pass without testing the lock.
			time.Sleep(300 * time.Millisecond)
			released <- tx.Commit()
		}()
		run("queued", 1, queue)
		if err := <-released; err != nil {
			t.Errorf("release the stored row: %v", err)
		}
	})
}

// The purge deletes coverage read before the cutoff, and coverage of any
// (target, edge) that loses an action: coverage vouches for the actions
// stored under it. The cutoff, seen_at and ReadAt are all our clock; From
// and To (Meta's) play no part.
func TestPurgeEvidence(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		act := func(target, edge, id string, seen time.Time) store.EvidenceAction {
			return store.EvidenceAction{Target: target, Edge: edge, ActionID: id, Text: "personal", Source: store.SourceWebhook, SeenAt: seen}
		}
		saveEvidence(t, s,
			act("m1", "comments", "old", h(1)), act("m1", "comments", "at-cutoff", h(2)),
			act("m2", "comments", "new", h(3)), act("m2", "comments", "old", h(1)),
			act("m3", "comments", "new", h(3)),
			act("m3", "reactions", "old", h(1)), // another edge of m3
			act("m4", "comments", "old", h(1)),  // m3's edge on another target
			act("m5", "comments", "resighted", h(1)),
		)
		saveEvidence(t, s, act("m5", "comments", "resighted", h(5))) // seen again: kept
		// Meta's times far from the cutoff either way, so that judging by
		// them instead of ReadAt shows.
		late, early := h(100), h(-100)
		for _, c := range []store.Coverage{
			{Target: "m1", Edge: "comments", From: early, To: late, ReadAt: h(3)},   // read after, an action purged: deleted
			{Target: "m1", Edge: "tags", From: early, To: late, ReadAt: h(1)},       // read before, no actions: deleted
			{Target: "m1", Edge: "reactions", From: early, To: early, ReadAt: h(2)}, // read at the cutoff, no actions: kept
			{Target: "m2", Edge: "comments", From: early, To: late, ReadAt: h(3)},   // read after, one action of two purged: deleted
			{Target: "m3", Edge: "comments", From: early, To: early, ReadAt: h(3)},  // untouched edge, read after: kept
			{Target: "m5", Edge: "comments", From: early, To: early, ReadAt: h(3)},  // its action was seen before but seen again: kept
		} {
			if _, err := s.AddCoverage(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		targets := []string{"m1", "m2", "m3", "m4", "m5"}
		kept := []string{
			coverageString(store.Coverage{Target: "m1", Edge: "reactions", From: early, To: early, ReadAt: h(2)}),
			coverageString(store.Coverage{Target: "m3", Edge: "comments", From: early, To: early, ReadAt: h(3)}),
			coverageString(store.Coverage{Target: "m5", Edge: "comments", From: early, To: early, ReadAt: h(3)}),
		}

		// Strictly before the cutoff: what was seen or read at it stays.
		n, err := s.PurgeEvidence(ctx, h(2))
		if err != nil || n != 4 {
			t.Fatalf("PurgeEvidence: %d, %v; want 4 purged", n, err)
		}
		var ids []string
		for _, a := range evidenceOf(t, s, targets...) {
			ids = append(ids, a.Target+"/"+a.Edge+"/"+a.ActionID)
		}
		if want := []string{"m1/comments/at-cutoff", "m2/comments/new", "m3/comments/new", "m5/comments/resighted"}; !slices.Equal(ids, want) {
			t.Errorf("after purge: %v, want %v", ids, want)
		}
		if got := coverageStrings(coveragesOf(t, s, targets...)); !slices.Equal(got, kept) {
			t.Errorf("coverage after purge:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(kept, "\n  "))
		}

		if n, err := s.PurgeEvidence(ctx, h(2)); err != nil || n != 0 {
			t.Errorf("second PurgeEvidence: %d, %v; want 0", n, err)
		}
		if got := coverageStrings(coveragesOf(t, s, targets...)); !slices.Equal(got, kept) {
			t.Errorf("coverage after a second purge: %v, want %v", got, kept)
		}
		if _, err := s.PurgeEvidence(ctx, time.Time{}); err == nil {
			t.Error("PurgeEvidence with a zero cutoff succeeded")
		}
		if n, err := s.PurgeEvidence(ctx, h(10)); err != nil || n != 4 {
			t.Errorf("PurgeEvidence of everything: %d, %v; want 4", n, err)
		}
		if got := coveragesOf(t, s, targets...); len(got) != 0 {
			t.Errorf("coverage after purging everything: %v", coverageStrings(got))
		}
	})
}

// Migration 00003 goes down and up again on a database holding evidence.
func TestMigrationEvidenceDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		saveEvidence(t, s, store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: t0})
		if _, err := s.AddCoverage(ctx, store.Coverage{Target: "m1", Edge: "comments", To: t0, ReadAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := s.FlagUsers(ctx, []store.UserFlag{{Tenant: "acme", User: "u1", Until: t0.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		raw := closeAndMigrateDown(t, s, b, dsn, 2)
		for _, table := range []string{"evidence", "evidence_coverage"} {
			if _, err := raw.Exec(`SELECT 1 FROM ` + table); err == nil {
				t.Errorf("%s still exists after down", table)
			}
		}
		// Only 00003 went down.
		if _, err := raw.Exec(`SELECT 1 FROM user_risk`); err != nil {
			t.Errorf("user_risk after down to 2: %v", err)
		}

		s = openStore(t, dsn) // migrates up again
		if got := evidenceOf(t, s, "m1"); len(got) != 0 {
			t.Errorf("evidence after down and up: %v, want none", evidenceStrings(got))
		}
		if n := saveEvidence(t, s, store.EvidenceAction{Target: "m1", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: t0}); n != 1 {
			t.Errorf("SaveEvidence after down and up: %d new, want 1", n)
		}
		if got := coveragesOf(t, s, "m1"); len(got) != 0 {
			t.Errorf("coverage after down and up: %v, want none", coverageStrings(got))
		}
		c := store.Coverage{Target: "m1", Edge: "comments", From: t0, To: t0.Add(time.Hour), ReadAt: t0.Add(2 * time.Hour)}
		if got, err := s.AddCoverage(ctx, c); err != nil || coverageString(got) != coverageString(c) {
			t.Errorf("AddCoverage after down and up: %s, %v; want %s", coverageString(got), err, coverageString(c))
		}
		if got := riskyUsers(t, s, "acme", []string{"u1"}, t0); !slices.Equal(got, []string{"u1"}) {
			t.Errorf("flag after down and up: risky %v, want [u1]", got)
		}
	})
}

// ---- claiming by quota ----

// onTarget is newClaim on a given target.
func onTarget(tenant, key, target string) claim.Claim {
	c := newClaim(tenant, key)
	c.Target = target
	return c
}

// webhookAt is a webhook action on target seen at seen.
func webhookAt(target, id string, seen time.Time) store.EvidenceAction {
	return store.EvidenceAction{Target: target, Edge: "comments", ActionID: id, Source: store.SourceWebhook, SeenAt: seen}
}

func openLoad(t *testing.T, s store.Store, now, fedSince time.Time) []store.TenantLoad {
	t.Helper()
	loads, err := s.OpenLoad(context.Background(), now, fedSince)
	if err != nil {
		t.Fatalf("OpenLoad: %v", err)
	}
	return loads
}

// loadStrings renders loads one per string, times with their zone.
func loadStrings(loads []store.TenantLoad) []string {
	out := make([]string, len(loads))
	for i, l := range loads {
		out[i] = fmt.Sprintf("%s ready=%d targets=%d fed=%d oldest=%s inflight=%d targets=%d",
			l.Tenant, l.Ready, l.ReadyTargets, l.ReadyFed, fmtTime(l.OldestReady), l.InFlight, l.InFlightTargets)
	}
	return out
}

func TestOpenLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		now := t0.Add(time.Hour)
		sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

		// Claims to lease, defer or decide go in first, so one Claim takes them all.
		first := submit(t, s, t0,
			onTarget("acme", "inflight-1", "102"), onTarget("acme", "inflight-2", "102"),
			onTarget("beta", "inflight", "105"))
		submit(t, s, sec(1), onTarget("acme", "expired", "103"))
		deferred := submit(t, s, sec(2), onTarget("acme", "deferred", "104"), onTarget("delta", "deferred", "109"))
		due := submit(t, s, sec(3), onTarget("acme", "due", "108"))
		decided := submit(t, s, sec(4), onTarget("acme", "decided", "107"), onTarget("gamma", "decided", "107"))
		if got, err := s.Claim(ctx, "w1", 10, time.Minute, t0); err != nil || len(got) != 9 {
			t.Fatalf("Claim: %d claims, %v; want 9", len(got), err)
		}
		// Leases: acme's two hold past now, beta's ends exactly at now (still
		// in flight), "expired" ended at t0+1m.
		if n, err := s.ExtendLease(ctx, "w1", first[:2], time.Hour, now); err != nil || n != 2 {
			t.Fatalf("ExtendLease: %d, %v", n, err)
		}
		if n, err := s.ExtendLease(ctx, "w1", first[2:], 0, now); err != nil || n != 1 {
			t.Fatalf("ExtendLease: %d, %v", n, err)
		}
		if n, err := s.Defer(ctx, "w1", []store.Deferral{
			{ClaimID: deferred[0], NotBefore: now.Add(time.Microsecond)},
			{ClaimID: deferred[1], NotBefore: now.Add(time.Minute)},
			{ClaimID: due[0], NotBefore: now}, // due exactly now: ready
		}); err != nil || n != 3 {
			t.Fatalf("Defer: %d, %v", n, err)
		}
		decideAt(t, s, t0, store.VerdictVerified, decided...)
		submit(t, s, t0.Add(10*time.Minute), onTarget("acme", "k1", "101"), onTarget("acme", "k2", "101"))
		submit(t, s, t0.Add(12*time.Minute), onTarget("acme", "k3", "105"), onTarget("acme", "k4", "106"))
		submit(t, s, t0.Add(14*time.Minute), onTarget("beta", "k1", "101"))

		// 105 fed recently (an earlier sighting saved later does not move it
		// back), 106 fed long ago and only read since, 102 fed but with no
		// ready claim, 101 only read.
		saveEvidence(t, s, webhookAt("105", "c1", now.Add(-10*time.Minute)), webhookAt("106", "c1", now.Add(-2*time.Hour)),
			webhookAt("102", "c1", now))
		saveEvidence(t, s, webhookAt("105", "c2", now.Add(-50*time.Minute)),
			store.EvidenceAction{Target: "106", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: now},
			store.EvidenceAction{Target: "101", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: now})

		load := func(tenant string, ready, targets, fed int, oldest time.Time, inflight, inflightTargets int) store.TenantLoad {
			return store.TenantLoad{Tenant: tenant, Ready: ready, ReadyTargets: targets, ReadyFed: fed, OldestReady: oldest,
				InFlight: inflight, InFlightTargets: inflightTargets}
		}
		tests := []struct {
			name     string
			fedSince time.Time
			acmeFed  int
		}{
			{"fed in the last half hour", now.Add(-30 * time.Minute), 1},
			{"fedSince at the sighting", now.Add(-10 * time.Minute), 1},
			{"fedSince just after the sighting", now.Add(-10*time.Minute + time.Microsecond), 0},
			{"fed in the last three hours", now.Add(-3 * time.Hour), 2},
			{"zero fedSince: none fed", time.Time{}, 0},
		}
		for _, tt := range tests {
			// acme: ready are expired (103), due (108), k1 and k2 (101), k3
			// (105, fed) and k4 (106); the two in flight share 102; its
			// deferred claim (104) is neither. gamma has no open claim;
			// delta's only one is deferred.
			want := loadStrings([]store.TenantLoad{
				load("acme", 6, 5, tt.acmeFed, sec(1), 2, 1),
				load("beta", 1, 1, 0, t0.Add(14*time.Minute), 1, 1),
				load("delta", 0, 0, 0, time.Time{}, 0, 0),
			})
			if got := loadStrings(openLoad(t, s, now, tt.fedSince)); !slices.Equal(got, want) {
				t.Errorf("%s: OpenLoad:\n  %s\nwant\n  %s", tt.name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		}

		// A minute later beta's lease has expired and acme's first deferral is due.
		want := loadStrings([]store.TenantLoad{
			load("acme", 7, 6, 1, sec(1), 2, 1),
			load("beta", 2, 2, 1, t0, 0, 0),
			load("delta", 1, 1, 0, sec(2), 0, 0),
		})
		if got := loadStrings(openLoad(t, s, now.Add(time.Minute), now.Add(-30*time.Minute))); !slices.Equal(got, want) {
			t.Errorf("OpenLoad a minute later:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})
}

// The purge deletes webhook sightings older than its cutoff with the
// evidence: a target last fed before it no longer counts as fed, whatever
// fedSince.
func TestPurgeEvidenceForgetsWebhookTargets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
		submit(t, s, t0, onTarget("acme", "k1", "101"), onTarget("acme", "k2", "102"), onTarget("acme", "k3", "103"))
		saveEvidence(t, s, webhookAt("101", "c1", h(1)), webhookAt("102", "c1", h(2)), webhookAt("103", "c1", h(1)))
		// 103's action is read by Graph then pushed again by a webhook, in one
		// call (folded, the Graph sighting's source wins): its target stays
		// fed.
		saveEvidence(t, s, store.EvidenceAction{Target: "103", Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: h(3)},
			webhookAt("103", "c1", h(3)))
		fed := func() int {
			t.Helper()
			loads := openLoad(t, s, h(10), t0)
			if len(loads) != 1 {
				t.Fatalf("OpenLoad: %v, want acme only", loadStrings(loads))
			}
			return loads[0].ReadyFed
		}
		if got := fed(); got != 3 {
			t.Fatalf("ReadyFed before the purge: %d, want 3", got)
		}
		if _, err := s.PurgeEvidence(ctx, h(2)); err != nil {
			t.Fatal(err)
		}
		if got := fed(); got != 2 {
			t.Errorf("ReadyFed after purging before h(2): %d, want 2 (102 at the cutoff and 103 seen again kept)", got)
		}
		if _, err := s.PurgeEvidence(ctx, h(3)); err != nil {
			t.Fatal(err)
		}
		if got := fed(); got != 1 {
			t.Errorf("ReadyFed after purging before h(3): %d, want 1", got)
		}
	})
}

// quotaWorld holds the claims TestClaimQuotas leases from, by key.
type quotaWorld struct {
	ids map[string]int64
	all []int64
}

// Targets of the quota tests. Each key's claim is named after its tenant and
// submission order; see newQuotaWorld.
const (
	tgtA = "1001"
	tgtB = "1002"
	tgtC = "1003"
	tgtD = "1004"
	tgtE = "1005" // its claim's lease expired
	tgtF = "1006" // fed by webhooks lately
	tgtG = "1007" // fed by webhooks long ago
	tgtN = "1008" // its claim is deferred
	tgtX = "1009"
	tgtY = "1010"
	tgtZ = "1011"
)

// newQuotaWorld fills s, as seen at now with webhooks fed since now-30m:
//
//	acme  ready:     aE (tgtE, t0-10m, lease expired), a9 (tgtG, t0+30s),
//	                 a1 (tgtA, 1m), a2 (tgtB, 2m), a3 (tgtC, 3m), a4 (tgtF, 4m),
//	                 a5 (tgtA, 5m), a6 (tgtC, 6m), a7 (tgtF, 7m), a8 (tgtD, 8m)
//	      in flight: aI (tgtA, t0-5m); deferred past now: aN (tgtN, t0-20m)
//	beta  ready:     b1 (tgtF, 1m30s), b2 (tgtX, 2m30s), b3 (tgtY, 9m)
//	gamma ready:     g1 (tgtZ, t0)
//
// Not fed, the acme targets by oldest ready claim are tgtE, tgtG, tgtA, tgtB,
// tgtC, tgtD; tgtG is fed too with fedSince before now-2h. beta's oldest
// ready claim is on the fed target: its bound is spent on tgtX, then tgtY.
func newQuotaWorld(t *testing.T, s store.Store, now time.Time) quotaWorld {
	t.Helper()
	ctx := context.Background()
	w := quotaWorld{ids: map[string]int64{}}
	add := func(at time.Time, claims ...claim.Claim) []int64 {
		ids := submit(t, s, at, claims...)
		for i, c := range claims {
			w.ids[c.Key] = ids[i]
		}
		w.all = append(w.all, ids...)
		return ids
	}
	m := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Minute))) }
	aN := add(m(-20), onTarget("acme", "aN", tgtN))
	add(m(-10), onTarget("acme", "aE", tgtE))
	aI := add(m(-5), onTarget("acme", "aI", tgtA))
	if got, err := s.Claim(ctx, "earlier", 3, time.Minute, m(-1)); err != nil || len(got) != 3 {
		t.Fatalf("Claim: %d, %v; want 3", len(got), err)
	}
	if n, err := s.ExtendLease(ctx, "earlier", aI, time.Hour, now); err != nil || n != 1 {
		t.Fatalf("ExtendLease: %d, %v", n, err)
	}
	if n, err := s.Defer(ctx, "earlier", []store.Deferral{{ClaimID: aN[0], NotBefore: now.Add(time.Second)}}); err != nil || n != 1 {
		t.Fatalf("Defer: %d, %v", n, err)
	}
	add(m(0), onTarget("gamma", "g1", tgtZ))
	add(m(0.5), onTarget("acme", "a9", tgtG))
	add(m(1), onTarget("acme", "a1", tgtA))
	add(m(1.5), onTarget("beta", "b1", tgtF))
	add(m(2), onTarget("acme", "a2", tgtB))
	add(m(2.5), onTarget("beta", "b2", tgtX))
	add(m(3), onTarget("acme", "a3", tgtC))
	add(m(4), onTarget("acme", "a4", tgtF))
	add(m(5), onTarget("acme", "a5", tgtA))
	add(m(6), onTarget("acme", "a6", tgtC))
	add(m(7), onTarget("acme", "a7", tgtF))
	add(m(8), onTarget("acme", "a8", tgtD))
	add(m(9), onTarget("beta", "b3", tgtY))
	saveEvidence(t, s, webhookAt(tgtF, "c1", now.Add(-10*time.Minute)), webhookAt(tgtG, "c1", now.Add(-2*time.Hour)),
		store.EvidenceAction{Target: tgtA, Edge: "comments", ActionID: "c1", Source: store.SourceGraph, SeenAt: now})
	return w
}

func (w quotaWorld) idsOf(keys ...string) []int64 {
	ids := make([]int64, len(keys))
	for i, k := range keys {
		ids[i] = w.ids[k]
	}
	return ids
}

func TestClaimQuotas(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, _ string) {
		now := t0.Add(time.Hour)
		recent, long := now.Add(-30*time.Minute), now.Add(-3*time.Hour)
		tests := []struct {
			name     string
			quotas   []store.Quota
			limit    int
			fedSince time.Time
			want     []string // keys, oldest first
		}{
			{"two targets and the fed ones", []store.Quota{{Tenant: "acme", Targets: 2}}, 100, recent,
				[]string{"aE", "a9", "a4", "a7"}},
			{"three targets: every ready claim on them", []store.Quota{{Tenant: "acme", Targets: 3}}, 100, recent,
				[]string{"aE", "a9", "a1", "a4", "a5", "a7"}},
			{"no target: fed ones only", []store.Quota{{Tenant: "acme", Targets: 0}}, 100, recent,
				[]string{"a4", "a7"}},
			{"no bound", []store.Quota{{Tenant: "acme", Targets: -1}}, 100, recent,
				[]string{"aE", "a9", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}},
			{"limit takes the oldest within the quota", []store.Quota{{Tenant: "acme", Targets: 3}}, 4, recent,
				[]string{"aE", "a9", "a1", "a4"}},
			{"limit across tenants, beta first", []store.Quota{{Tenant: "beta", Targets: -1}, {Tenant: "acme", Targets: -1}}, 5, recent,
				[]string{"aE", "a9", "b1", "b2", "b3"}},
			{"limit across tenants, acme first", []store.Quota{{Tenant: "acme", Targets: -1}, {Tenant: "beta", Targets: -1}}, 11, recent,
				[]string{"aE", "a9", "a1", "b1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"}},
			{"fed target shared by tenants", []store.Quota{{Tenant: "beta", Targets: 0}}, 100, recent,
				[]string{"b1"}},
			{"each tenant its own bound", []store.Quota{{Tenant: "beta", Targets: 1}, {Tenant: "acme", Targets: 1}}, 100, recent,
				[]string{"aE", "b1", "b2", "a4", "a7"}},
			{"zero fedSince: nothing fed", []store.Quota{{Tenant: "acme", Targets: 0}}, 100, time.Time{},
				nil},
			{"zero fedSince: fed targets bounded too", []store.Quota{{Tenant: "acme", Targets: 3}}, 100, time.Time{},
				[]string{"aE", "a9", "a1", "a5"}},
			{"older fedSince: more targets fed", []store.Quota{{Tenant: "acme", Targets: 1}}, 100, long,
				[]string{"aE", "a9", "a4", "a7"}},
			{"unknown tenant", []store.Quota{{Tenant: "nobody", Targets: -1}}, 100, recent,
				nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := openStore(t, testenv.FreshDSN(t, b.name))
				ctx := context.Background()
				w := newQuotaWorld(t, s, now)
				got, err := s.ClaimQuotas(ctx, "w1", tt.quotas, tt.limit, tt.fedSince, time.Minute, now)
				if err != nil {
					t.Fatalf("ClaimQuotas: %v", err)
				}
				want := w.idsOf(tt.want...)
				if ids := claimIDs(got); !slices.Equal(ids, want) {
					t.Fatalf("ClaimQuotas: ids %v, want %v (%v)", ids, want, tt.want)
				}
				for _, c := range got {
					wantAttempts := 1
					if c.Key == "aE" {
						wantAttempts = 2
					}
					if c.Status != store.StatusLeased || c.LeaseOwner != "w1" || c.Attempts != wantAttempts || !c.LeaseExpiry.Equal(now.Add(time.Minute)) {
						t.Errorf("claim %s: status %q owner %q attempts %d expiry %v", c.Key, c.Status, c.LeaseOwner, c.Attempts, c.LeaseExpiry)
					}
				}
				// Nothing else was leased: not other tenants', not the
				// in-flight or deferred claims.
				stored, err := s.Claims(ctx, w.all)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range stored {
					if leased := c.LeaseOwner == "w1"; leased != slices.Contains(want, c.ID) {
						t.Errorf("claim %s: leased to w1 %v, want %v", c.Key, leased, !leased)
					}
				}
			})
		}
	})
}

func TestClaimQuotasEdgeCases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		now := t0.Add(time.Hour)
		// Same submission time: ties between targets go by target id, and
		// claims by id.
		ids := submit(t, s, t0, onTarget("acme", "k1", "103"), onTarget("acme", "k2", "101"),
			onTarget("acme", "k3", "102"), onTarget("acme", "k4", "101"))
		quotas := []store.Quota{{Tenant: "acme", Targets: 2}}

		if _, err := s.ClaimQuotas(ctx, "", quotas, 10, t0, time.Minute, now); err == nil {
			t.Error("ClaimQuotas with an empty owner succeeded")
		}
		if _, err := s.ClaimQuotas(ctx, "w1", []store.Quota{{Tenant: "acme", Targets: 1}, {Tenant: "beta", Targets: 1}, {Tenant: "acme", Targets: 2}}, 10, t0, time.Minute, now); err == nil {
			t.Error("ClaimQuotas with a tenant twice succeeded")
		}
		for _, tt := range []struct {
			name   string
			quotas []store.Quota
			limit  int
		}{
			{"limit 0", quotas, 0},
			{"negative limit", quotas, -1},
			{"no quotas", nil, 10},
		} {
			if got, err := s.ClaimQuotas(ctx, "w1", tt.quotas, tt.limit, t0, time.Minute, now); err != nil || got != nil {
				t.Errorf("%s: %v, %v; want nil, nil", tt.name, claimIDs(got), err)
			}
		}

		got, err := s.ClaimQuotas(ctx, "w1", quotas, 10, t0, time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int64{ids[1], ids[2], ids[3]}; !slices.Equal(claimIDs(got), want) {
			t.Errorf("ClaimQuotas on tied targets: %v, want %v (targets 101 and 102)", claimIDs(got), want)
		}
		// Leased claims are not leased again while the lease holds, even
		// exactly at its end; after it they are, with the attempt counted.
		for _, tt := range []struct {
			name string
			now  time.Time
			want []int64
		}{
			{"lease holds", now.Add(30 * time.Second), []int64{ids[0]}},
			{"lease ends exactly now", now.Add(time.Minute), nil},
			{"lease expired", now.Add(time.Minute + time.Microsecond), []int64{ids[1], ids[2], ids[3]}},
		} {
			got, err := s.ClaimQuotas(ctx, "w2", []store.Quota{{Tenant: "acme", Targets: -1}}, 10, t0, time.Hour, tt.now)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if !slices.Equal(claimIDs(got), tt.want) {
				t.Errorf("%s: claimed %v, want %v", tt.name, claimIDs(got), tt.want)
			}
		}
		if c := getClaim(t, s, ids[1]); c.LeaseOwner != "w2" || c.Attempts != 2 {
			t.Errorf("after re-lease: owner %q attempts %d, want w2 and 2", c.LeaseOwner, c.Attempts)
		}
	})
}

func TestConcurrentClaimQuotasNeverShare(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const (
			perTenant = 120
			targets   = 12
			claimers  = 4
			batch     = 7
		)
		now := t0.Add(time.Hour)
		seed := openStore(t, dsn)
		tenants := []string{"acme", "beta", "gamma"}
		// Targets 2000..2011; the even ones fed.
		var claims []claim.Claim
		for i := range perTenant {
			for _, tenant := range tenants {
				claims = append(claims, onTarget(tenant, fmt.Sprintf("k%d", i), fmt.Sprint(2000+i%targets)))
			}
		}
		submit(t, seed, t0, claims...)
		for i := 0; i < targets; i += 2 {
			saveEvidence(t, seed, webhookAt(fmt.Sprint(2000+i), "c1", now))
		}
		// gamma's quota of 0 leaves its claims on targets not fed alone.
		want := perTenant*len(tenants) - perTenant/2
		quotas := []store.Quota{{Tenant: "acme", Targets: 2}, {Tenant: "beta", Targets: -1}, {Tenant: "gamma", Targets: 0}}

		var (
			mu     sync.Mutex
			holder = map[int64]string{}
			wg     sync.WaitGroup
			errs   = make(chan error, claimers+1)
		)
		claimAll := func(s store.Store, owner string, quotas []store.Quota) {
			for {
				got, err := s.ClaimQuotas(context.Background(), owner, quotas, batch, now, time.Hour, now)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", owner, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, c := range got {
					if prev, taken := holder[c.ID]; taken {
						errs <- fmt.Errorf("claim %d handed to %s and %s", c.ID, prev, owner)
					}
					holder[c.ID] = owner
				}
				mu.Unlock()
			}
		}
		for w := range claimers {
			s := openStore(t, dsn)
			owner := fmt.Sprintf("worker-%d", w)
			// Each in its own tenant order, so they collide on every tenant.
			q := append(slices.Clone(quotas[w%len(quotas):]), quotas[:w%len(quotas)]...)
			wg.Go(func() { claimAll(s, owner, q) })
		}
		wg.Wait()
		// A claimer may stop early on PostgreSQL, finding the claims of the
		// targets it picked locked by another; one more pass takes the rest.
		claimAll(seed, "sweeper", quotas)
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if len(holder) != want {
			t.Errorf("%d distinct claims leased, want %d", len(holder), want)
		}
	})
}

// Migration 00004 goes down and up again on a database holding claims and
// webhook sightings.
func TestMigrationClaimQuotasDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		submit(t, s, t0, onTarget("acme", "k1", "101"))
		saveEvidence(t, s, webhookAt("101", "c1", t0))
		raw := closeAndMigrateDown(t, s, b, dsn, 3)
		if _, err := raw.Exec(`SELECT 1 FROM webhook_targets`); err == nil {
			t.Error("webhook_targets still exists after down")
		}
		indexQuery := map[string]string{
			testenv.SQLite:   `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'claims_open_by_tenant'`,
			testenv.Postgres: `SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'claims_open_by_tenant'`,
		}[b.name]
		var n int
		if err := raw.QueryRow(indexQuery).Scan(&n); err != nil || n != 0 {
			t.Errorf("claims_open_by_tenant after down: %d, %v; want 0", n, err)
		}
		// Only 00004 went down.
		if _, err := raw.Exec(`SELECT 1 FROM evidence`); err != nil {
			t.Errorf("evidence after down to 3: %v", err)
		}

		s = openStore(t, dsn) // migrates up again
		fed := func() int {
			t.Helper()
			loads := openLoad(t, s, t0, t0)
			if len(loads) != 1 {
				t.Fatalf("OpenLoad: %v, want acme only", loadStrings(loads))
			}
			return loads[0].ReadyFed
		}
		// The sightings went with the table: the target counts as fed again
		// from its next webhook.
		if got := fed(); got != 0 {
			t.Errorf("ReadyFed after down and up: %d, want 0", got)
		}
		saveEvidence(t, s, webhookAt("101", "c1", t0))
		if got := fed(); got != 1 {
			t.Errorf("ReadyFed after a new webhook: %d, want 1", got)
		}
		got, err := s.ClaimQuotas(ctx, "w1", []store.Quota{{Tenant: "acme", Targets: 0}}, 10, t0, time.Minute, t0)
		if err != nil || len(got) != 1 {
			t.Errorf("ClaimQuotas after down and up: %v, %v; want one claim", claimIDs(got), err)
		}
	})
}

// Each batch reads its own targets: claims on one target held by two lease
// owners count as two targets in flight.
func TestOpenLoadCountsInFlightTargetsPerLeaseOwner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		submit(t, s, t0, onTarget("acme", "a1", "201"), onTarget("acme", "a2", "202"))
		if got, err := s.Claim(ctx, "batch-1", 10, time.Hour, t0); err != nil || len(got) != 2 {
			t.Fatalf("Claim: %d, %v", len(got), err)
		}
		submit(t, s, t0.Add(time.Second), onTarget("acme", "a3", "201"), onTarget("acme", "a4", "201"))
		if got, err := s.Claim(ctx, "batch-2", 10, time.Hour, t0); err != nil || len(got) != 2 {
			t.Fatalf("Claim: %d, %v", len(got), err)
		}
		loads, err := s.OpenLoad(ctx, t0.Add(time.Minute), t0)
		if err != nil {
			t.Fatal(err)
		}
		if len(loads) != 1 || loads[0].InFlight != 4 || loads[0].InFlightTargets != 3 {
			t.Fatalf("OpenLoad = %+v, want 4 claims in flight on 3 (owner, target) pairs", loads)
		}
	})
}

func TestBehindReaders(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		// batch-1 holds the oldest claims on 201 and 202.
		old := submit(t, s, t0, onTarget("acme", "a1", "201"), onTarget("acme", "a2", "202"))
		if got, err := s.Claim(ctx, "batch-1", 10, time.Hour, t0); err != nil || len(got) != 2 {
			t.Fatalf("Claim: %d, %v", len(got), err)
		}
		// batch-2: newer claims on 201 (behind batch-1), 203 (nobody ahead),
		// another tenant's claim on 201 and a mention of acme's on 201 (not
		// the same read: not behind).
		mention := onTarget("acme", "a5", "201")
		mention.Kind = claim.IGMention
		newer := submit(t, s, t0.Add(time.Second), onTarget("acme", "a3", "201"), onTarget("acme", "a4", "203"),
			onTarget("globex", "g1", "201"), mention)
		if got, err := s.Claim(ctx, "batch-2", 10, time.Hour, t0); err != nil || len(got) != 4 {
			t.Fatalf("Claim: %d, %v", len(got), err)
		}
		now := t0.Add(time.Minute)
		behind := func(owner string, ids []int64, at time.Time) []int64 {
			t.Helper()
			got, err := s.BehindReaders(ctx, owner, ids, at)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		if got := behind("batch-2", newer, now); !slices.Equal(got, newer[:1]) {
			t.Errorf("BehindReaders(batch-2) = %v, want [%d] (only a3, behind a1 of batch-1)", got, newer[0])
		}
		// The older batch is behind nobody: newer claims never hold it back.
		if got := behind("batch-1", old, now); len(got) != 0 {
			t.Errorf("BehindReaders(batch-1) = %v, want none", got)
		}
		// An expired lease holds nobody back: that batch is gone.
		if got := behind("batch-2", newer, t0.Add(2*time.Hour)); len(got) != 0 {
			t.Errorf("after batch-1's lease expired: %v, want none", got)
		}
		// Nor does a decided claim: its read is done, and stored.
		if _, err := s.Decide(ctx, []store.Decision{{ClaimID: old[0], Verdict: store.VerdictRejected, Method: "graph"}}, now); err != nil {
			t.Fatal(err)
		}
		if got := behind("batch-2", newer, now); len(got) != 0 {
			t.Errorf("after a1 was decided: %v, want none", got)
		}
		if got := behind("batch-2", nil, now); len(got) != 0 {
			t.Errorf("no ids: %v", got)
		}
	})
}

// The verdict feed: a tenant's decisions in commit order, each once, paged
// by feed number; a revocation comes again, later, with its new verdict.
func TestVerdictFeed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "a1"), newClaim("acme", "a2"), newClaim("acme", "a3"), newClaim("other", "o1"))
		decide := func(id int64, verdict string) {
			t.Helper()
			if _, err := s.Decide(ctx, []store.Decision{{ClaimID: id, Verdict: verdict, Method: "graph", Evidence: "{}"}}, t0); err != nil {
				t.Fatal(err)
			}
		}
		decide(ids[2], store.VerdictVerified)
		decide(ids[3], store.VerdictVerified)
		decide(ids[0], store.VerdictApprovedOnHonor)
		decide(ids[2], store.VerdictRejected) // already decided: stays where it is
		feed := func(after int64, limit int) ([]int64, []int64) {
			t.Helper()
			claims, err := s.Feed(ctx, "acme", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			var got, seqs []int64
			for _, c := range claims {
				got, seqs = append(got, c.ID), append(seqs, c.FeedSeq)
			}
			return got, seqs
		}
		got, seqs := feed(0, 10)
		if want := []int64{ids[2], ids[0]}; !slices.Equal(got, want) || seqs[0] >= seqs[1] {
			t.Fatalf("feed = %v (numbers %v), want %v in decision order: the open claim and the other tenant's are not in it", got, seqs, want)
		}
		if page, _ := feed(seqs[0], 1); !slices.Equal(page, []int64{ids[0]}) {
			t.Errorf("the page after %d = %v, want [%d]", seqs[0], page, ids[0])
		}
		if ok, err := s.Revoke(ctx, ids[0], `{"reason":"no comment"}`, t0.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("Revoke: %v, %v", ok, err)
		}
		after, _ := feed(seqs[1], 10)
		if !slices.Equal(after, []int64{ids[0]}) {
			t.Fatalf("after the revocation the feed past %d = %v, want the revoked claim again", seqs[1], after)
		}
		claims, err := s.Feed(ctx, "acme", seqs[1], 10)
		if err != nil || claims[0].Verdict != store.VerdictRevoked || claims[0].RevokedFrom != store.VerdictApprovedOnHonor {
			t.Fatalf("revoked claim in the feed: %+v, %v", claims, err)
		}
		if all, _ := feed(0, 10); !slices.Equal(all, []int64{ids[2], ids[0]}) {
			t.Errorf("whole feed after the revocation = %v: each claim once, at its latest change", all)
		}
	})
}

func TestAPIKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		key := "k3y-0123456789abcdef0123456789abcdef"
		if err := s.AddAPIKey(ctx, "acme", "backend", "short", t0); err == nil {
			t.Fatal("a short key was accepted")
		}
		if err := s.AddAPIKey(ctx, "acme", "backend", key, t0); err != nil {
			t.Fatal(err)
		}
		if tenant, err := s.APIKeyTenant(ctx, key); err != nil || tenant != "acme" {
			t.Fatalf("APIKeyTenant = %q, %v", tenant, err)
		}
		for _, wrong := range []string{key + "x", store.HashAPIKey(key), ""} {
			if _, err := s.APIKeyTenant(ctx, wrong); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("APIKeyTenant(%q) = %v, want ErrNotFound", wrong, err)
			}
		}
	})
}

func TestVerdictCounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		tag := newClaim("acme", "t1")
		tag.Kind = claim.IGTag
		ids := submit(t, s, t0, newClaim("acme", "c1"), newClaim("acme", "c2"), tag, newClaim("other", "o1"), newClaim("acme", "open"))
		if _, err := s.Decide(ctx, []store.Decision{
			{ClaimID: ids[0], Verdict: store.VerdictVerified, Method: "graph"},
			{ClaimID: ids[1], Verdict: store.VerdictApprovedOnHonor, Method: "honor"},
			{ClaimID: ids[2], Verdict: store.VerdictVerified, Method: "graph"},
			{ClaimID: ids[3], Verdict: store.VerdictRejected, Method: "graph"},
		}, t0); err != nil {
			t.Fatal(err)
		}
		// Deciding again and revoking twice count nothing more.
		if _, err := s.Decide(ctx, []store.Decision{{ClaimID: ids[0], Verdict: store.VerdictRejected, Method: "graph"}}, t0); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := s.Revoke(ctx, ids[1], "{}", t0); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{
			"acme/ig_comment/audit/revoked=1",
			"acme/ig_comment/graph/verified=1",
			"acme/ig_comment/honor/approved_on_honor=1",
			"acme/ig_tag/graph/verified=1",
			"other/ig_comment/graph/rejected=1",
		}
		counts := func(s store.Store) []string {
			t.Helper()
			got, err := s.VerdictCounts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, c := range got {
				out = append(out, fmt.Sprintf("%s/%s/%s/%s=%d", c.Tenant, c.Kind, c.Method, c.Verdict, c.N))
			}
			return out
		}
		if got := counts(s); !slices.Equal(got, want) {
			t.Fatalf("VerdictCounts =\n%q\nwant\n%q", got, want)
		}

		// Migration 00006 counts the claims decided before it the same way.
		raw := closeAndMigrateDown(t, s, b, dsn, 5)
		if _, err := raw.Exec(`SELECT 1 FROM verdict_counts`); err == nil {
			t.Error("verdict_counts still exists after down")
		}
		s = openStore(t, dsn)
		if got := counts(s); !slices.Equal(got, want) {
			t.Fatalf("VerdictCounts after the migration counted the claims again =\n%q\nwant\n%q", got, want)
		}
	})
}
