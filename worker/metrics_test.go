package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

// The collector reports the store's open and decided claims per tenant at
// scrape time; without Temporal it says which sources it could not read.
func TestEngineCollectorReadsTheStore(t *testing.T) {
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	ctx := context.Background()
	var claims []claim.Claim
	for _, k := range []string{"a", "b", "c"} {
		claims = append(claims, claim.Claim{Tenant: "acme", Key: k, User: "u-" + k, Handle: "h_" + k, Kind: claim.IGComment, Target: "17890000000000001"})
	}
	res, err := st.Submit(ctx, claims, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Decide(ctx, []store.Decision{{ClaimID: res[2].ID, Verdict: store.VerdictVerified, Method: "webhook", Evidence: "{}"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Claim(ctx, "batch", 1, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := &engineCollector{store: st, log: zap.NewNop(), timeout: 5 * time.Second}
	want := `
# HELP verifier_claims_open Open claims by tenant and status (pending, leased).
# TYPE verifier_claims_open gauge
verifier_claims_open{status="leased",tenant="acme"} 1
verifier_claims_open{status="pending",tenant="acme"} 1
# HELP verifier_claims_decided Decided claims by tenant and current verdict.
# TYPE verifier_claims_decided gauge
verifier_claims_decided{tenant="acme",verdict="verified"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "verifier_claims_open", "verifier_claims_decided"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "verifier_scrape_errors"); n != 3 {
		t.Errorf("scrape error gauges: %d, want one per source", n)
	}
}
