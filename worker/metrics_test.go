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
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		claims = append(claims, claim.Claim{Tenant: "acme", Key: k, User: "u-" + k, Handle: "h_" + k, Kind: claim.IGComment, Target: "17890000000000001"})
	}
	res, err := st.Submit(ctx, claims, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Decide(ctx, []store.Decision{
		{ClaimID: res[2].ID, Verdict: store.VerdictVerified, Method: "webhook", Evidence: "{}"},
		{ClaimID: res[3].ID, Verdict: store.VerdictApprovedOnHonor, Method: "honor", Evidence: "{}"},
		{ClaimID: res[4].ID, Verdict: store.VerdictApprovedOnHonor, Method: "honor", Evidence: "{}"},
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// One approval is revoked by its audit, the other waits for one.
	if ok, err := st.Revoke(ctx, res[4].ID, "{}", time.Now()); err != nil || !ok {
		t.Fatal(ok, err)
	}
	// Of the two open claims one is leased, the other (b) quarantined: a
	// poison claim, neither open nor decided.
	leased, err := st.Claim(ctx, store.ClaimParams{Owner: "batch", Limit: 2, TTL: time.Hour, Now: time.Now()})
	if err != nil || len(leased) != 2 {
		t.Fatal(len(leased), err)
	}
	if n, err := st.Quarantine(ctx, "batch", []store.Quarantine{{ClaimID: res[1].ID, Reason: "panic: boom"}}, time.Now()); err != nil || n != 1 {
		t.Fatal(n, err)
	}
	if _, err := st.Submit(ctx, []claim.Claim{{Tenant: "acme", Key: "f", User: "u-f", Handle: "h_f", Kind: claim.IGComment, Target: "17890000000000001"}}, time.Now()); err != nil {
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
verifier_claims_decided{tenant="acme",verdict="approved_on_honor"} 1
verifier_claims_decided{tenant="acme",verdict="revoked"} 1
verifier_claims_decided{tenant="acme",verdict="verified"} 1
# HELP verifier_claims_quarantined Poison claims (their check panicked) out of the queue by tenant, neither open nor decided, until an operator releases them (starter quarantine).
# TYPE verifier_claims_quarantined gauge
verifier_claims_quarantined{tenant="acme"} 1
# HELP verifier_audit_backlog Provisional approvals waiting for their audit.
# TYPE verifier_audit_backlog gauge
verifier_audit_backlog 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "verifier_claims_open", "verifier_claims_decided", "verifier_claims_quarantined", "verifier_audit_backlog"); err != nil {
		t.Fatal(err)
	}
	verdicts := `
# HELP verifier_verdicts_total Verdicts given, by tenant, claim kind, method and verdict; a revocation counts once more under verdict revoked, method audit. Kept in the store: every worker reports the same value.
# TYPE verifier_verdicts_total counter
verifier_verdicts_total{kind="ig_comment",method="audit",tenant="acme",verdict="revoked"} 1
verifier_verdicts_total{kind="ig_comment",method="honor",tenant="acme",verdict="approved_on_honor"} 2
verifier_verdicts_total{kind="ig_comment",method="webhook",tenant="acme",verdict="verified"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(verdicts), "verifier_verdicts_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "verifier_scrape_errors"); n != 3 {
		t.Errorf("scrape error gauges: %d, want one per source", n)
	}
}
