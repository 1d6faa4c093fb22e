package store_test

// Decisions: Decide, Defer, Revoke, the verdict feed and counters, stats
// and the decided export.

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
)

func TestDeferRespectsNotBefore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "k1"), newClaim("acme", "k2"))
		if _, err := s.Claim(ctx, store.ClaimParams{Owner: "w1", Limit: 2, TTL: time.Minute, Now: t0}); err != nil {
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
			got, err := s.Claim(ctx, store.ClaimParams{Owner: "w2", Limit: 5, TTL: time.Minute, Now: tt.now})
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
		if _, err := s.Claim(ctx, store.ClaimParams{Owner: "w1", Limit: 2, TTL: time.Minute, Now: t0}); err != nil {
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
		claimed, err := s.Claim(ctx, store.ClaimParams{Owner: "w2", Limit: 10, TTL: time.Minute, Now: t0.Add(24 * time.Hour)})
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
		leased, err := s.Claim(ctx, store.ClaimParams{Owner: "w1", Limit: 10, TTL: time.Minute, Now: t0})
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
