package store_test

// Leasing claims by tenant quota: ClaimQuotas.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

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
	if got, err := s.Claim(ctx, store.ClaimParams{Owner: "earlier", Limit: 3, TTL: time.Minute, Now: m(-1)}); err != nil || len(got) != 3 {
		t.Fatalf("Claim: %d, %v; want 3", len(got), err)
	}
	if n, err := s.ExtendLease(ctx, store.LeaseExtension{Owner: "earlier", ClaimIDs: aI, TTL: time.Hour, Now: now}); err != nil || n != 1 {
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
				got, err := s.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: "w1", Quotas: tt.quotas, Limit: tt.limit, FedSince: tt.fedSince, TTL: time.Minute, Now: now})
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

		if _, err := s.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: "", Quotas: quotas, Limit: 10, FedSince: t0, TTL: time.Minute, Now: now}); err == nil {
			t.Error("ClaimQuotas with an empty owner succeeded")
		}
		if _, err := s.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: "w1", Quotas: []store.Quota{{Tenant: "acme", Targets: 1}, {Tenant: "beta", Targets: 1}, {Tenant: "acme", Targets: 2}}, Limit: 10, FedSince: t0, TTL: time.Minute, Now: now}); err == nil {
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
			if got, err := s.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: "w1", Quotas: tt.quotas, Limit: tt.limit, FedSince: t0, TTL: time.Minute, Now: now}); err != nil || got != nil {
				t.Errorf("%s: %v, %v; want nil, nil", tt.name, claimIDs(got), err)
			}
		}

		got, err := s.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: "w1", Quotas: quotas, Limit: 10, FedSince: t0, TTL: time.Minute, Now: now})
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
			got, err := s.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: "w2", Quotas: []store.Quota{{Tenant: "acme", Targets: -1}}, Limit: 10, FedSince: t0, TTL: time.Hour, Now: tt.now})
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
				got, err := s.ClaimQuotas(context.Background(), store.ClaimQuotasParams{Owner: owner, Quotas: quotas, Limit: batch, FedSince: now, TTL: time.Hour, Now: now})
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
		got, err := s.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: "w1", Quotas: []store.Quota{{Tenant: "acme", Targets: 0}}, Limit: 10, FedSince: t0, TTL: time.Minute, Now: t0})
		if err != nil || len(got) != 1 {
			t.Errorf("ClaimQuotas after down and up: %v, %v; want one claim", claimIDs(got), err)
		}
	})
}
