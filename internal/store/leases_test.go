package store_test

// Leasing claims: Claim, ExtendLease, OpenLoad and BehindReaders.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
)

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
		got, err := s.Claim(ctx, store.ClaimParams{Owner: "w1", Limit: 3, TTL: time.Minute, Now: now})
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
		rest, err := s.Claim(ctx, store.ClaimParams{Owner: "w1", Limit: 10, TTL: time.Minute, Now: now})
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		if ids := claimIDs(rest); !slices.Equal(ids, wantOrder[3:]) {
			t.Errorf("second Claim: ids %v, want %v", ids, wantOrder[3:])
		}
		none, err := s.Claim(ctx, store.ClaimParams{Owner: "w2", Limit: 10, TTL: time.Minute, Now: now})
		if err != nil || len(none) != 0 {
			t.Errorf("Claim with all leased: %d claims, err %v; want none", len(none), err)
		}
		if zero, err := s.Claim(ctx, store.ClaimParams{Owner: "w2", Limit: 0, TTL: time.Minute, Now: now.Add(time.Hour)}); err != nil || len(zero) != 0 {
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
					got, err := s.Claim(context.Background(), store.ClaimParams{Owner: owner, Limit: batch, TTL: time.Hour, Now: t0.Add(time.Minute)})
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
		if _, err := s.Claim(ctx, store.ClaimParams{Owner: "w1", Limit: 1, TTL: time.Minute, Now: t0}); err != nil {
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
			got, err := s.Claim(ctx, store.ClaimParams{Owner: "w2", Limit: 5, TTL: time.Minute, Now: tt.now})
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
		if n, err := s.ExtendLease(ctx, store.LeaseExtension{Owner: "w1", ClaimIDs: ids, TTL: time.Minute, Now: t0.Add(2 * time.Minute)}); err != nil || n != 0 {
			t.Errorf("ExtendLease by the former owner: %d, %v; want 0", n, err)
		}
		if n, err := s.Defer(ctx, "w1", []store.Deferral{{ClaimID: ids[0], NotBefore: t0.Add(time.Hour)}}); err != nil || n != 0 {
			t.Errorf("Defer by the former owner: %d, %v; want 0", n, err)
		}
	})
}

func TestExtendLease(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ids := submit(t, s, t0, newClaim("acme", "k1"), newClaim("acme", "k2"), newClaim("acme", "k3"))
		if _, err := s.Claim(ctx, store.ClaimParams{Owner: "w1", Limit: 2, TTL: time.Minute, Now: t0}); err != nil {
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
			n, err := s.ExtendLease(ctx, store.LeaseExtension{Owner: tt.owner, ClaimIDs: tt.ids, TTL: 5 * time.Minute, Now: later})
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
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "w2", Limit: 10, TTL: time.Minute, Now: t0.Add(2 * time.Minute)}); err != nil || len(got) != 1 || got[0].ID != ids[2] {
			t.Errorf("Claim after extension: %v, %v; want only [%d]", claimIDs(got), err, ids[2])
		}
	})
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
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "w1", Limit: 10, TTL: time.Minute, Now: t0}); err != nil || len(got) != 9 {
			t.Fatalf("Claim: %d claims, %v; want 9", len(got), err)
		}
		// Leases: acme's two hold past now, beta's ends exactly at now (still
		// in flight), "expired" ended at t0+1m.
		if n, err := s.ExtendLease(ctx, store.LeaseExtension{Owner: "w1", ClaimIDs: first[:2], TTL: time.Hour, Now: now}); err != nil || n != 2 {
			t.Fatalf("ExtendLease: %d, %v", n, err)
		}
		if n, err := s.ExtendLease(ctx, store.LeaseExtension{Owner: "w1", ClaimIDs: first[2:], TTL: 0, Now: now}); err != nil || n != 1 {
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

// Each batch reads its own targets: claims on one target held by two lease
// owners count as two targets in flight.
func TestOpenLoadCountsInFlightTargetsPerLeaseOwner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		submit(t, s, t0, onTarget("acme", "a1", "201"), onTarget("acme", "a2", "202"))
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-1", Limit: 10, TTL: time.Hour, Now: t0}); err != nil || len(got) != 2 {
			t.Fatalf("Claim: %d, %v", len(got), err)
		}
		submit(t, s, t0.Add(time.Second), onTarget("acme", "a3", "201"), onTarget("acme", "a4", "201"))
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-2", Limit: 10, TTL: time.Hour, Now: t0}); err != nil || len(got) != 2 {
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
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-1", Limit: 10, TTL: time.Hour, Now: t0}); err != nil || len(got) != 2 {
			t.Fatalf("Claim: %d, %v", len(got), err)
		}
		// batch-2: newer claims on 201 (behind batch-1), 203 (nobody ahead),
		// another tenant's claim on 201 and a mention of acme's on 201 (not
		// the same read: not behind).
		mention := onTarget("acme", "a5", "201")
		mention.Kind = claim.IGMention
		newer := submit(t, s, t0.Add(time.Second), onTarget("acme", "a3", "201"), onTarget("acme", "a4", "203"),
			onTarget("globex", "g1", "201"), mention)
		if got, err := s.Claim(ctx, store.ClaimParams{Owner: "batch-2", Limit: 10, TTL: time.Hour, Now: t0}); err != nil || len(got) != 4 {
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
