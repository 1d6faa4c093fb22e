package store_test

// Submitting claims and reading them back.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
)

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
