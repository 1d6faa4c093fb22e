package workflows_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// A premium tenant with a slow token (24 calls an hour: 4 reads in a
// 10-minute claim horizon) floods the queue with comment claims
// on 30 posts, ahead of three standard tenants. Budget-aware claiming leases
// the slow tenant's claims a few targets at a time and fills each run with the
// others' claims, which are decided at once instead of waiting behind the
// flood; the slow tenant's claims wait pending, not leased.
func TestClaimingLeasesNoMoreThanATokenCanRead(t *testing.T) {
	ctx := context.Background()
	w := systemtest.StartWorld(t, metasim.Config{Seed: 5, Brands: 4, Premium: 1, MediaPerBrand: 30, PostsPerBrand: 1,
		TenantBudget: metasim.Budget{Calls: 24, Window: time.Hour}}, func(c *config.Config) {
		c.Mode = workflows.ModeVerify
		c.ClaimHorizon = 10 * time.Minute
		c.BatchSize = 100 // unaware, the first 30 runs would lease nothing but the flood
	})
	slow, others := w.TenantsBy(store.TierPremium)[0], w.TenantsBy(store.TierStandard)
	comments := func(n int, tenants ...string) []claim.Claim {
		return w.GenerateWith(t, n, metasim.ClaimOptions{FraudRate: 0.1, Tenants: tenants,
			Kinds: map[string]float64{metasim.KindIGComment: 1}})
	}
	// The flood is older than the rest: unaware claiming takes it first.
	flood := systemtest.SubmitAll(t, w.St, comments(3000, slow)).Accepted
	rest := systemtest.SubmitAll(t, w.St, comments(300, others...)).Accepted
	st, sim := w.St, w.Sim

	// 24 calls an hour within 10 minutes: 4 reads, one for each target in
	// flight at most.
	const maxSlowTargets = 4
	start := time.Now()
	peakTargets, peakLeased := 0, 0
	testenv.Eventually(t, 90*time.Second, 200*time.Millisecond, "the other tenants' claims decided", func() (bool, string) {
		loads, err := st.OpenLoad(ctx, time.Now(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		othersOpen := 0
		for _, l := range loads {
			if l.Tenant == slow {
				peakTargets, peakLeased = max(peakTargets, l.InFlightTargets), max(peakLeased, l.InFlight)
			} else {
				othersOpen += l.Ready + l.InFlight
			}
		}
		return othersOpen == 0, fmt.Sprintf("others open=%d; slow tenant peak %d targets, %d claims leased", othersOpen, peakTargets, peakLeased)
	})
	took := time.Since(start)

	decided, err := st.Decided(ctx, store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	truth := sim.Truth()
	slowDecided, wrong := 0, 0
	for _, cl := range decided {
		if cl.Tenant == slow {
			slowDecided++
		}
		genuine := truth[cl.Tenant+"/"+cl.Key]
		if (cl.Verdict == store.VerdictVerified) != genuine {
			wrong++
			t.Errorf("%s/%s (genuine %v) decided %s: %s", cl.Tenant, cl.Key, genuine, cl.Verdict, cl.Evidence)
		}
	}
	t.Logf("FIGURES claiming: %d claims of 3 standard tenants decided in %v behind a flood of %d on a 24 calls/h token; the slow tenant held at most %d targets (%d claims) leased, %d decided meanwhile; %d Graph calls",
		rest, took.Round(100*time.Millisecond), flood, peakTargets, peakLeased, slowDecided, len(sim.Requests()))
	if peakTargets > maxSlowTargets {
		t.Errorf("the slow tenant held claims on %d targets leased, want at most %d (what its token reads in the horizon)", peakTargets, maxSlowTargets)
	}
	if peakTargets == 0 {
		t.Errorf("the slow tenant never had a claim leased: it must still make progress")
	}
}
