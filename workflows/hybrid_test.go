package workflows_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// hybridWorld runs the whole engine (Schedule, Dispatcher, Governor,
// TenantBatch, limiters, audit) on the real dev server against metasim over
// HTTP, an hour a minute.
type hybridWorld struct {
	sim     *metasim.Sim
	c       client.Client
	addr    string // the dev server, for the `temporal` CLI
	st      store.Store
	cfg     config.Config
	tenants config.Tenants
	total   int // claims submitted
}

const hybridSpeed = 60

// startHybridWorld starts the engine against a metasim world of sc: seed 7,
// the platform token at 20,000 calls an hour and tenants' own at 5,000
// unless sc says otherwise.
func startHybridWorld(t *testing.T, sc metasim.Config, tune func(*config.Config)) *hybridWorld {
	t.Helper()
	const appSecret = "hybrid-test-secret"
	sc.Speed, sc.AppSecret = hybridSpeed, appSecret
	if sc.Seed == 0 {
		sc.Seed = 7
	}
	if sc.PlatformBudget.Calls == 0 {
		sc.PlatformBudget = metasim.Budget{Calls: 20_000, Window: time.Hour}
	}
	if sc.TenantBudget.Calls == 0 {
		sc.TenantBudget = metasim.Budget{Calls: 5_000, Window: time.Hour}
	}
	sim := metasim.New(sc)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	tenants, _ := testenv.SeedWorld(t, sim, st)

	cfg := config.Default()
	cfg.Speed = hybridSpeed
	cfg.BatchSize = 5000
	if tune != nil {
		tune(&cfg)
	}
	c, addr := testenv.DevServerAt(t)
	startEngine(t, c, cfg, st, sim, srv.URL, appSecret, tenants.PlatformToken, nil)
	return &hybridWorld{sim: sim, c: c, addr: addr, st: st, cfg: cfg, tenants: tenants}
}

// startEngine runs the engine on c as the worker main and `starter setup`
// do: a worker reading metasim's Graph API at graphURL (through transport
// when not nil) at cfg's speed, and the Dispatcher's Schedule, deleted when
// the test ends. tune, when given, adjusts the activities before the worker
// starts; they are returned.
func startEngine(t *testing.T, c client.Client, cfg config.Config, st store.Store, sim *metasim.Sim,
	graphURL, appSecret, platformToken string, transport http.RoundTripper, tune ...func(*activities.Activities)) *activities.Activities {
	t.Helper()
	ctx := context.Background()
	acts := &activities.Activities{
		Store: st,
		Graph: graph.New(graph.Config{BaseURL: graphURL + "/", Version: "v21.0", AppID: sim.World().AppID,
			AppSecret: secret.New(appSecret), Transport: transport}),
		PlatformTokenID: platformToken,
		Speed:           cfg.Speed,
		UserRiskTTL:     cfg.Scaled(cfg.UserRiskTTL),
	}
	for _, f := range tune {
		f(acts)
	}
	startWorker(t, c, acts)
	if _, err := workflows.EnsureSchedule(ctx, c, workflows.NewScheduleConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID).Delete(ctx) })
	return acts
}

// tenantsBy lists tenant ids of a tier, in id order.
func (w *hybridWorld) tenantsBy(tier store.Tier) []string {
	var ids []string
	for _, tn := range w.tenants.Tenants {
		if tn.Tier == tier {
			ids = append(ids, tn.ID)
		}
	}
	return ids
}

func (w *hybridWorld) generate(t *testing.T, n int, fraud float64, tenants ...string) []claim.Claim {
	t.Helper()
	return w.generateWith(t, n, metasim.ClaimOptions{FraudRate: fraud, Tenants: tenants})
}

func (w *hybridWorld) generateWith(t *testing.T, n int, o metasim.ClaimOptions) []claim.Claim {
	t.Helper()
	var out []claim.Claim
	for _, g := range w.sim.GenerateClaims(n, o) {
		c, err := claim.Parse(g.Line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func (w *hybridWorld) submit(t *testing.T, claims []claim.Claim) {
	t.Helper()
	w.total += submitAll(t, w.st, claims).accepted
}

// waitDecided waits until every submitted claim has a verdict.
func (w *hybridWorld) waitDecided(t *testing.T, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, 500*time.Millisecond, "every claim decided", func() (bool, string) {
		open, decided := countClaims(t, w.st)
		return open == 0 && decided == w.total, fmt.Sprintf("open=%d decided=%d/%d", open, decided, w.total)
	})
}

// countClaims counts the store's open (pending or leased) and decided claims.
func countClaims(t *testing.T, st store.Store) (open, decided int) {
	t.Helper()
	stats, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		open += s.Pending + s.Leased
		for _, n := range s.Decided {
			decided += n
		}
	}
	return open, decided
}

// startAudit starts the audit workflow, as `starter setup` does.
func (w *hybridWorld) startAudit(t *testing.T) {
	t.Helper()
	if _, err := workflows.EnsureRunning(context.Background(), w.c, w.cfg); err != nil {
		t.Fatal(err)
	}
}

// waitAudited waits until no provisional approval is left unaudited.
func (w *hybridWorld) waitAudited(t *testing.T, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, 500*time.Millisecond, "every provisional approval audited", func() (bool, string) {
		left, err := w.st.AuditQueue(context.Background(), 10_000, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return len(left) == 0, fmt.Sprintf("%d left to audit", len(left))
	})
}

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
func (w *hybridWorld) score(t *testing.T, tenants ...string) scorecard {
	t.Helper()
	decided, err := w.st.Decided(context.Background(), store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	truth := w.sim.Truth()
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

func (w *hybridWorld) calls() map[string]int {
	by := map[string]int{}
	for _, r := range w.sim.Requests() {
		by[r.TokenID]++
	}
	return by
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
	w := startHybridWorld(t, metasim.Config{Brands: 7, Premium: 1}, func(c *config.Config) { c.Mode = workflows.ModeSample })
	premium := w.tenantsBy(store.TierPremium)
	standard := w.tenantsBy(store.TierStandard)
	if len(premium) != 1 || len(standard) != 6 {
		t.Fatalf("tenants: premium %v standard %v", premium, standard)
	}
	clean, bad := standard[:5], standard[5]
	var claims []claim.Claim
	claims = append(claims, w.generate(t, 300, 0.1, premium...)...)
	for _, tn := range clean {
		claims = append(claims, w.generate(t, 700, 0.1, tn)...)
	}
	claims = append(claims, w.generate(t, 400, 0.4, bad)...)
	w.submit(t, claims)
	start := time.Now()
	w.waitDecided(t, 4*time.Minute)
	decidedIn := time.Since(start)

	before := w.score(t)
	calls := w.calls()
	t.Logf("decided %d claims in %v: %v; calls %v", w.total, decidedIn.Round(time.Second), before.verdicts, calls)
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

	cleanBefore := w.score(t, clean...)
	w.startAudit(t)
	w.waitAudited(t, 3*time.Minute)
	after := w.score(t)
	cleanAfter := w.score(t, clean...)
	t.Logf("FIGURES the five 10%%-fraud standard tenants: %d claims, false claims approved %d/%d (%.1f%%) before audit, %d after; %d approved by sample, %d rejected",
		sum(cleanBefore.verdicts), cleanBefore.fraudApproved, cleanBefore.fraud, pct(cleanBefore.fraudApproved, cleanBefore.fraud),
		cleanAfter.fraudApproved, cleanBefore.verdicts[store.VerdictApprovedBySample], cleanBefore.verdicts[store.VerdictRejected])
	auditCalls := sum(w.calls()) - sum(calls)
	t.Logf("FIGURES sampling 10%% fraud: false claims approved %d/%d (%.1f%%) before audit, %d/%d (%.1f%%) after; %d revoked; genuine rejected %d; calls %d to decide %d claims + %d for the audit",
		before.fraudApproved, before.fraud, pct(before.fraudApproved, before.fraud),
		after.fraudApproved, after.fraud, pct(after.fraudApproved, after.fraud), after.fraudRevoked,
		after.genuineRejected, sum(calls), w.total, auditCalls)
	if after.fraudApproved != 0 || after.fraudRevoked != before.fraudApproved {
		t.Errorf("after audit %d false approvals stand, %d revoked; want 0 and %d", after.fraudApproved, after.fraudRevoked, before.fraudApproved)
	}
	if after.verdicts[store.VerdictApprovedBySample]+after.fraudRevoked != before.verdicts[store.VerdictApprovedBySample] {
		t.Errorf("audit changed more than the false approvals: %v → %v", before.verdicts, after.verdicts)
	}
	w.record(t, map[string]string{
		"tenantbatch_sample.json": "WorkflowType = 'TenantBatch' AND VerificationMode = 'sample' AND ExecutionStatus = 'Completed'",
	})
}

// record writes histories for the replay tests when RECORD_HISTORIES is set
// (RECORD_HISTORIES=$PWD/workflows/testdata go test -run TestName ./workflows).
func (w *hybridWorld) record(t *testing.T, files map[string]string) {
	dir := os.Getenv("RECORD_HISTORIES")
	if dir == "" {
		return
	}
	for file, query := range files {
		recordHistory(t, w.c, query, filepath.Join(dir, file))
	}
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// temporalCLI runs the real `temporal` binary against the test's server.
func (w *hybridWorld) temporalCLI(t *testing.T, args ...string) string {
	t.Helper()
	args = append(args, "--address", w.addr, "--namespace", "default")
	out, err := exec.Command(testenv.TemporalCLI(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("temporal %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// governorState reads the Governor's state with `temporal workflow query`.
func (w *hybridWorld) governorState(t *testing.T) policy.GovernorView {
	t.Helper()
	out := w.temporalCLI(t, "workflow", "query", "--workflow-id", policy.GovernorWorkflowID, "--type", policy.QueryGovernorState, "--output", "json")
	var resp struct {
		QueryResult []policy.GovernorView `json:"queryResult"`
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
	w := startHybridWorld(t, metasim.Config{Brands: 4, Premium: 1}, func(c *config.Config) { c.BatchSize = 1000 })
	premium, standard := w.tenantsBy(store.TierPremium), w.tenantsBy(store.TierStandard)
	overridden, honorable := standard[0], standard[1:]

	w.startAudit(t) // starts the Governor too
	w.temporalCLI(t, "workflow", "signal", "--workflow-id", policy.GovernorWorkflowID, "--name", policy.SignalSetThresholds,
		"--input", `{"honor_open_above":300,"honor_open_below":100,"min_dwell":"3m","queue_warning":150}`)
	w.temporalCLI(t, "workflow", "signal", "--workflow-id", policy.GovernorWorkflowID, "--name", policy.SignalSetMode,
		"--input", fmt.Sprintf(`{"mode":"verify","tenant":%q,"reason":"launch week: verify everything"}`, overridden))
	testenv.Eventually(t, 20*time.Second, 200*time.Millisecond, "signals applied", func() (bool, string) {
		v := w.governorState(t)
		return v.Thresholds.HonorOpenAbove == 300 && v.Overrides[overridden] == policy.ModeVerify, fmt.Sprintf("%+v", v.Thresholds)
	})

	// The ramp, in platform time (a minute a second): 6 minutes at
	// 1,000/h, 8 at 12,000/h, 20 at 1,000/h.
	all := w.generate(t, 2100, 0.1, append([]string{premium[0]}, standard...)...)
	next := 0
	sawWarning := false
	for _, phase := range []struct{ seconds, perSecond int }{{6, 17}, {8, 200}, {20, 17}} {
		for range phase.seconds {
			end := min(len(all), next+phase.perSecond)
			w.submit(t, all[next:end])
			next = end
			time.Sleep(time.Second)
			if !sawWarning {
				sawWarning = len(w.governorState(t).Alerts) > 0
			}
		}
	}
	w.waitDecided(t, 2*time.Minute)

	v := w.governorState(t)
	var auto []policy.ModeChange
	for _, c := range v.Changes {
		if c.By == "auto" {
			auto = append(auto, c)
		}
	}
	t.Logf("governor: %d reports, arrival now %.0f/h, changes %+v", v.Reports, v.ArrivalPerHour, v.Changes)
	if len(auto) != 2 || auto[0].To != "honor" || auto[1].To != "verify" {
		t.Fatalf("automatic changes %+v, want one to honor and one back", auto)
	}
	if auto[0].OpenStandard <= 300 || auto[1].OpenStandard > 100 {
		t.Errorf("switches not driven by the thresholds: %+v", auto)
	}
	if !sawWarning || len(v.Alerts) != 0 {
		t.Errorf("queue warning seen=%v, alerts now %v: want raised during the spike and cleared after", sawWarning, v.Alerts)
	}
	if n := countChangesInHistory(t, w.c); n < 2 {
		t.Errorf("the Governor's history records %d mode changes, want both", n)
	}

	before := w.score(t)
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
	w.waitAudited(t, 3*time.Minute)
	after := w.score(t)
	t.Logf("FIGURES honor ramp: %d approved on honor; false ones %d before audit, %d after (%d revoked); genuine rejected %d; calls %v",
		honored, before.fraudApproved, after.fraudApproved, after.fraudRevoked, after.genuineRejected, w.calls())
	if after.fraudApproved != 0 || after.fraudRevoked == 0 {
		t.Errorf("after audit %d false approvals stand, %d revoked", after.fraudApproved, after.fraudRevoked)
	}
	w.record(t, map[string]string{
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
	iter := c.GetWorkflowHistory(ctx, policy.GovernorWorkflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
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
		var d policy.Directive
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
	w := startHybridWorld(t, metasim.Config{Brands: 2, Premium: 1}, func(c *config.Config) { c.Mode = workflows.ModeVerify })
	premium := w.tenantsBy(store.TierPremium)[0]
	var token string
	for _, tn := range w.tenants.Tenants {
		if tn.ID == premium {
			token = tn.TokenID
		}
	}
	w.submit(t, w.generate(t, 200, 0.1))
	w.waitDecided(t, time.Minute)
	if w.calls()[token] == 0 {
		t.Fatalf("premium token %s not used while it works: %v", token, w.calls())
	}

	if err := w.sim.SetTokenState(token, metasim.TokenInvalid); err != nil {
		t.Fatal(err)
	}
	platformBefore := w.calls()[w.tenants.PlatformToken]
	w.submit(t, w.generate(t, 200, 0.1, premium))
	w.waitDecided(t, time.Minute)
	var state policy.GovernorView
	testenv.Eventually(t, 10*time.Second, 200*time.Millisecond, "the Governor knows the token is broken", func() (bool, string) {
		state = queryGovernor(t, w.c)
		return len(state.BrokenTokens) == 1 && state.BrokenTokens[0].TokenID == token, fmt.Sprint(state.Alerts)
	})
	if w.calls()[w.tenants.PlatformToken] == platformBefore {
		t.Fatal("the premium tenant's claims did not move to the platform token")
	}

	if err := w.sim.SetTokenState(token, metasim.TokenValid); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, 500*time.Millisecond, "a probe finds the token working", func() (bool, string) {
		state = queryGovernor(t, w.c)
		return len(state.BrokenTokens) == 0, fmt.Sprint(state.Alerts)
	})
	tokenBefore := w.calls()[token]
	w.submit(t, w.generate(t, 200, 0.1, premium))
	w.waitDecided(t, time.Minute)
	if w.calls()[token] <= tokenBefore+1 { // the probe made one call
		t.Fatalf("the tenant did not return to its own token: %v", w.calls())
	}
	checkVerdictsAgainstTruth(t, w.st, w.sim.Truth(), w.total)
	t.Logf("FIGURES token outage: calls %v; governor changes %+v", w.calls(), state.Changes)
}

func queryGovernor(t *testing.T, c client.Client) policy.GovernorView {
	t.Helper()
	v, err := c.QueryWorkflow(context.Background(), policy.GovernorWorkflowID, "", policy.QueryGovernorState)
	if err != nil {
		t.Fatal(err)
	}
	var st policy.GovernorView
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}
