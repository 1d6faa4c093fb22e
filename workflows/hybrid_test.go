package workflows_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// scorecard compares the verdicts with metasim's ground truth.
type scorecard struct {
	verdicts         map[string]int
	fraud            int // false claims of verifiable kinds
	fraudApproved    int // false claims standing as approved (sample or honor)
	fraudRevoked     int
	genuineRejected  int // genuine claims rejected or revoked: must stay 0
	wrongVerified    int // false claims verified: must stay 0
	approvedByTenant map[string]map[string]int
}

// score scores the claims of the given tenants, or of all.
func score(t *testing.T, w *systemtest.World, tenants ...string) scorecard {
	t.Helper()
	decided, err := w.St.Decided(context.Background(), store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	truth := w.Sim.Truth()
	sc := scorecard{verdicts: map[string]int{}, approvedByTenant: map[string]map[string]int{}}
	for _, c := range decided {
		if len(tenants) > 0 && !slices.Contains(tenants, c.Tenant) {
			continue
		}
		sc.verdicts[c.Verdict]++
		if sc.approvedByTenant[c.Tenant] == nil {
			sc.approvedByTenant[c.Tenant] = map[string]int{}
		}
		sc.approvedByTenant[c.Tenant][c.Verdict]++
		genuine, known := truth[c.Tenant+"/"+c.Key]
		if !known {
			t.Fatalf("claim %s/%s has no ground truth", c.Tenant, c.Key)
		}
		if !c.Kind.Verifiable() {
			continue
		}
		if !genuine {
			sc.fraud++
		}
		switch {
		case c.Verdict == store.VerdictApprovedBySample || c.Verdict == store.VerdictApprovedOnHonor:
			if !genuine {
				sc.fraudApproved++
			}
		case c.Verdict == store.VerdictRevoked:
			if genuine {
				sc.genuineRejected++
				t.Errorf("genuine claim %s/%s revoked: %s", c.Tenant, c.Key, c.RevokedEvidence)
			} else {
				sc.fraudRevoked++
			}
		case c.Verdict == store.VerdictRejected && genuine:
			sc.genuineRejected++
			t.Errorf("genuine claim %s/%s rejected: %s", c.Tenant, c.Key, c.Evidence)
		case c.Verdict == store.VerdictVerified && !genuine:
			sc.wrongVerified++
			t.Errorf("false claim %s/%s verified: %s", c.Tenant, c.Key, c.Evidence)
		}
	}
	return sc
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Standard tenants with 10% fraud are sampled: batches are approved on
// their sample, sampled false claims are rejected one by one, a 40%-fraud
// tenant is escalated and never approved wholesale, the premium tenant is
// verified claim by claim. Then the audit revokes every false approval.
func TestSamplingApprovesEscalatesAndAuditRevokes(t *testing.T) {
	// A batch failing 10% sits at the plan's acceptable rate: its sample
	// approves it about 4 times in 5 (see internal/policy), so five such
	// tenants all escalating (a failed test) happens about once in 2,000 runs.
	w := systemtest.StartWorld(t, metasim.Config{Brands: 7, Premium: 1}, func(c *config.Config) { c.Mode = workflows.ModeSample })
	premium := w.TenantsBy(store.TierPremium)
	standard := w.TenantsBy(store.TierStandard)
	if len(premium) != 1 || len(standard) != 6 {
		t.Fatalf("tenants: premium %v standard %v", premium, standard)
	}
	clean, bad := standard[:5], standard[5]
	var claims []claim.Claim
	claims = append(claims, w.Generate(t, 300, 0.1, premium...)...)
	for _, tn := range clean {
		claims = append(claims, w.Generate(t, 700, 0.1, tn)...)
	}
	claims = append(claims, w.Generate(t, 400, 0.4, bad)...)
	w.Submit(t, claims)
	start := time.Now()
	w.WaitDecided(t, 4*time.Minute)
	decidedIn := time.Since(start)

	before := score(t, w)
	calls := w.Calls()
	t.Logf("decided %d claims in %v: %v; calls %v", w.Total, decidedIn.Round(time.Second), before.verdicts, calls)
	if before.verdicts[store.VerdictApprovedBySample] == 0 {
		t.Fatal("no batch approved on its sample")
	}
	if n := before.approvedByTenant[bad][store.VerdictApprovedBySample]; n != 0 {
		t.Errorf("the 40%%-fraud tenant %s had %d claims approved by sample: it must be escalated", bad, n)
	}
	if before.approvedByTenant[bad][store.VerdictRejected] == 0 {
		t.Errorf("the 40%%-fraud tenant's false claims were not rejected")
	}
	for _, v := range []string{store.VerdictApprovedBySample, store.VerdictApprovedOnHonor} {
		if n := before.approvedByTenant[premium[0]][v]; n != 0 {
			t.Errorf("premium tenant has %d %s claims: it must be verified claim by claim", n, v)
		}
	}
	rejectedClean := 0
	for _, tn := range clean {
		rejectedClean += before.approvedByTenant[tn][store.VerdictRejected]
	}
	if rejectedClean == 0 {
		t.Error("no sampled false claim of the 10% tenants was rejected")
	}

	cleanBefore := score(t, w, clean...)
	w.StartAudit(t)
	w.WaitAudited(t, 3*time.Minute)
	after := score(t, w)
	cleanAfter := score(t, w, clean...)
	t.Logf("FIGURES the five 10%%-fraud standard tenants: %d claims, false claims approved %d/%d (%.1f%%) before audit, %d after; %d approved by sample, %d rejected",
		sum(cleanBefore.verdicts), cleanBefore.fraudApproved, cleanBefore.fraud, pct(cleanBefore.fraudApproved, cleanBefore.fraud),
		cleanAfter.fraudApproved, cleanBefore.verdicts[store.VerdictApprovedBySample], cleanBefore.verdicts[store.VerdictRejected])
	auditCalls := sum(w.Calls()) - sum(calls)
	t.Logf("FIGURES sampling 10%% fraud: false claims approved %d/%d (%.1f%%) before audit, %d/%d (%.1f%%) after; %d revoked; genuine rejected %d; calls %d to decide %d claims + %d for the audit",
		before.fraudApproved, before.fraud, pct(before.fraudApproved, before.fraud),
		after.fraudApproved, after.fraud, pct(after.fraudApproved, after.fraud), after.fraudRevoked,
		after.genuineRejected, sum(calls), w.Total, auditCalls)
	if after.fraudApproved != 0 || after.fraudRevoked != before.fraudApproved {
		t.Errorf("after audit %d false approvals stand, %d revoked; want 0 and %d", after.fraudApproved, after.fraudRevoked, before.fraudApproved)
	}
	if after.verdicts[store.VerdictApprovedBySample]+after.fraudRevoked != before.verdicts[store.VerdictApprovedBySample] {
		t.Errorf("audit changed more than the false approvals: %v → %v", before.verdicts, after.verdicts)
	}
	w.Record(t, map[string]string{
		"tenantbatch_sample.json": "WorkflowType = 'TenantBatch' AND VerificationMode = 'sample' AND ExecutionStatus = 'Completed'",
	})
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// governorState reads the Governor's state with `temporal workflow query`.
func governorState(t *testing.T, w *systemtest.World) governor.View {
	t.Helper()
	out := w.TemporalCLI(t, "workflow", "query", "--workflow-id", governor.WorkflowID, "--type", governor.QueryState, "--output", "json")
	var resp struct {
		QueryResult []governor.View `json:"queryResult"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.QueryResult) != 1 {
		t.Fatalf("governor state from the CLI: %v\n%s", err, out)
	}
	return resp.QueryResult[0]
}

// A load ramp that backs standard claims up past the honor threshold
// switches standard tenants to honor and back to verifying, once each way, recorded in the Governor's history; operators
// steer it with the `temporal` CLI; premium and overridden tenants stay
// verified; the audit then revokes the false honor approvals.
func TestGovernorRampToHonorAndBackWithCLI(t *testing.T) {
	w := systemtest.StartWorld(t, metasim.Config{Brands: 4, Premium: 1}, func(c *config.Config) { c.BatchSize = 1000 })
	premium, standard := w.TenantsBy(store.TierPremium), w.TenantsBy(store.TierStandard)
	overridden, honorable := standard[0], standard[1:]

	w.StartAudit(t) // starts the Governor too
	w.TemporalCLI(t, "workflow", "signal", "--workflow-id", governor.WorkflowID, "--name", governor.SignalSetThresholds,
		"--input", `{"honor_open_above":150,"honor_open_below":50,"min_dwell":"3m","queue_warning":100}`)
	w.TemporalCLI(t, "workflow", "signal", "--workflow-id", governor.WorkflowID, "--name", governor.SignalSetMode,
		"--input", fmt.Sprintf(`{"mode":"verify","tenant":%q,"reason":"launch week: verify everything"}`, overridden))
	testenv.Eventually(t, 20*time.Second, 200*time.Millisecond, "signals applied", func() (bool, string) {
		v := governorState(t, w)
		return v.Thresholds.HonorOpenAbove == 150 && v.Overrides[overridden] == governor.ModeVerify, fmt.Sprintf("%+v", v.Thresholds)
	})

	// The ramp, in platform time (a minute a second): 6 minutes at
	// 1,000/h, 8 at 12,000/h, 20 at 1,000/h. In the spike claims arrive at
	// 200 a second and wait out the 2-second grace delay: some 250 standard
	// claims are open at its peak, against 30 before and after.
	all := w.Generate(t, 2100, 0.1, append([]string{premium[0]}, standard...)...)
	next := 0
	sawWarning := false
	for _, phase := range []struct{ seconds, perSecond int }{{6, 17}, {8, 200}, {20, 17}} {
		for range phase.seconds {
			end := min(len(all), next+phase.perSecond)
			w.Submit(t, all[next:end])
			next = end
			time.Sleep(time.Second)
			if !sawWarning {
				sawWarning = len(governorState(t, w).Alerts) > 0
			}

		}
	}
	w.WaitDecided(t, 2*time.Minute)

	v := governorState(t, w)
	var auto []governor.ModeChange
	for _, c := range v.Changes {
		if c.By == "auto" {
			auto = append(auto, c)
		}
	}
	t.Logf("governor: %d reports, arrival now %.0f/h, changes %+v", v.Reports, v.ArrivalPerHour, v.Changes)
	if len(auto) != 2 || auto[0].To != "honor" || auto[1].To != "verify" {
		t.Fatalf("automatic changes %+v, want one to honor and one back", auto)
	}
	if auto[0].OpenStandard <= 150 || auto[1].OpenStandard > 50 {
		t.Errorf("switches not driven by the thresholds: %+v", auto)
	}
	if !sawWarning || len(v.Alerts) != 0 {
		t.Errorf("queue warning seen=%v, alerts now %v: want raised during the spike and cleared after", sawWarning, v.Alerts)
	}
	if n := countChangesInHistory(t, w.C); n < 2 {
		t.Errorf("the Governor's history records %d mode changes, want both", n)
	}

	before := score(t, w)
	for _, tn := range append([]string{overridden}, premium...) {
		if n := before.approvedByTenant[tn][store.VerdictApprovedOnHonor]; n != 0 {
			t.Errorf("%s had %d claims approved on honor; it must stay verified", tn, n)
		}
	}
	honored := 0
	for _, tn := range honorable {
		honored += before.approvedByTenant[tn][store.VerdictApprovedOnHonor]
	}
	if honored == 0 {
		t.Fatal("no claim approved on honor during the spike")
	}
	w.WaitAudited(t, 3*time.Minute)
	after := score(t, w)
	t.Logf("FIGURES honor ramp: %d approved on honor; false ones %d before audit, %d after (%d revoked); genuine rejected %d; calls %v",
		honored, before.fraudApproved, after.fraudApproved, after.fraudRevoked, after.genuineRejected, w.Calls())
	if after.fraudApproved != 0 || after.fraudRevoked == 0 {
		t.Errorf("after audit %d false approvals stand, %d revoked", after.fraudApproved, after.fraudRevoked)
	}
	w.Record(t, map[string]string{
		"governor.json":          "WorkflowType = 'Governor'",
		"audit.json":             "WorkflowType = 'Audit'",
		"tenantbatch_honor.json": "WorkflowType = 'TenantBatch' AND VerificationMode = 'honor' AND ExecutionStatus = 'Completed'",
	})
}

// countChangesInHistory counts the Governor's load reports whose result
// changed the mode: the history keeps each change with its reason.
func countChangesInHistory(t *testing.T, c client.Client) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	iter := c.GetWorkflowHistory(ctx, governor.WorkflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	dc := converter.GetDefaultDataConverter()
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		done := ev.GetWorkflowExecutionUpdateCompletedEventAttributes()
		if done == nil || done.GetOutcome().GetSuccess() == nil {
			continue
		}
		var d governor.Directive
		if err := dc.FromPayloads(done.GetOutcome().GetSuccess(), &d); err != nil {
			t.Fatal(err)
		}
		for _, ch := range d.Changes {
			if ch.Reason == "" {
				t.Errorf("change without a reason: %+v", ch)
			}
			n++
		}
	}
	return n
}

// A premium tenant's token breaks mid-run: its claims go to the platform
// token and nothing is lost or wrongly rejected; when the token works again
// the tenant returns to it.
func TestPremiumTokenBreaksAndRecovers(t *testing.T) {
	w := systemtest.StartWorld(t, metasim.Config{Brands: 2, Premium: 1}, func(c *config.Config) { c.Mode = workflows.ModeVerify })
	premium := w.TenantsBy(store.TierPremium)[0]
	var token string
	for _, tn := range w.Tenants.Tenants {
		if tn.ID == premium {
			token = tn.TokenID
		}
	}
	w.Submit(t, w.Generate(t, 200, 0.1))
	w.WaitDecided(t, time.Minute)
	if w.Calls()[token] == 0 {
		t.Fatalf("premium token %s not used while it works: %v", token, w.Calls())
	}

	if err := w.Sim.SetTokenState(token, metasim.TokenInvalid); err != nil {
		t.Fatal(err)
	}
	platformBefore := w.Calls()[w.Tenants.PlatformToken]
	w.Submit(t, w.Generate(t, 200, 0.1, premium))
	w.WaitDecided(t, time.Minute)
	var state governor.View
	testenv.Eventually(t, 10*time.Second, 200*time.Millisecond, "the Governor knows the token is broken", func() (bool, string) {
		state = systemtest.QueryGovernor(t, w.C)
		return len(state.BrokenTokens) == 1 && state.BrokenTokens[0].TokenID == token, fmt.Sprint(state.Alerts)
	})
	if w.Calls()[w.Tenants.PlatformToken] == platformBefore {
		t.Fatal("the premium tenant's claims did not move to the platform token")
	}

	if err := w.Sim.SetTokenState(token, metasim.TokenValid); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, 500*time.Millisecond, "a probe finds the token working", func() (bool, string) {
		state = systemtest.QueryGovernor(t, w.C)
		return len(state.BrokenTokens) == 0, fmt.Sprint(state.Alerts)
	})
	tokenBefore := w.Calls()[token]
	w.Submit(t, w.Generate(t, 200, 0.1, premium))
	w.WaitDecided(t, time.Minute)
	if w.Calls()[token] <= tokenBefore+1 { // the probe made one call
		t.Fatalf("the tenant did not return to its own token: %v", w.Calls())
	}
	systemtest.CheckVerdictsAgainstTruth(t, w.St, w.Sim.Truth(), w.Total)
	t.Logf("FIGURES token outage: calls %v; governor changes %+v", w.Calls(), state.Changes)
}
