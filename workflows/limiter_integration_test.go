package workflows_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/limiter"
	"github.com/socialproof/verifier/workflows"
)

// limiterWorld runs the engine against metasim with the plan's budgets (200
// calls an hour per token) and a backlog far larger than the budgets: three
// tokens (the platform's and two premium tenants'), 3,000 mention claims
// (one call each: a mention is not read by target).
type limiterWorld struct {
	sim    *metasim.Sim
	client client.Client
	store  store.Store
	eng    *engine.Engine
}

const limiterSpeed = 120 // an hour in 30 s

func startLimiterWorld(t *testing.T, claims int, prepare func(*metasim.Sim), runLength int64) *limiterWorld {
	t.Helper()
	ctx := context.Background()
	const appSecret = "limiter-test-secret"
	budget := metasim.Budget{Calls: 200, Window: time.Hour}
	sim := metasim.New(metasim.Config{Seed: 11, Brands: 3, Premium: 2, Speed: limiterSpeed, AppSecret: appSecret,
		PlatformBudget: budget, TenantBudget: budget})
	if prepare != nil {
		prepare(sim)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	tenants, _ := testenv.SeedWorld(t, sim, st)
	var valid []claim.Claim
	// Mentions: one call per claim (each names its own media), so the
	// budget, not grouped reads, bounds the work; a few follows are
	// decided by rule.
	kinds := map[string]float64{metasim.KindIGMention: 0.95, metasim.KindIGFollow: 0.05}
	for _, g := range sim.GenerateClaims(claims, metasim.ClaimOptions{FraudRate: 0.1, Kinds: kinds}) {
		c, err := claim.Parse(g.Line)
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, c)
	}
	systemtest.SubmitAll(t, st, valid)

	c := testenv.DevServer(t)
	eng := systemtest.StartWorker(t, c, engine.Deps{
		Store:            st,
		Graph:            graph.New(graph.Config{BaseURL: srv.URL, Version: "v21.0", AppID: sim.World().AppID, AppSecret: secret.New(appSecret)}),
		PlatformTokenID:  tenants.PlatformToken,
		Speed:            limiterSpeed,
		LimiterRunLength: runLength,
	})
	cfg := config.Default()
	cfg.Mode = workflows.ModeVerify // every claim costs calls: this test is about the budget
	cfg.Speed = limiterSpeed
	cfg.Interval = 2 * time.Minute // the Schedule fires at most once a second
	if _, err := workflows.EnsureSchedule(ctx, c, workflows.NewScheduleConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID).Delete(ctx) })
	return &limiterWorld{sim: sim, client: c, store: st, eng: eng}
}

// callsByToken is metasim's request log per token: simulated times of calls,
// and how many were throttled.
func (lw *limiterWorld) callsByToken() (map[string][]time.Time, map[string]int) {
	calls, throttled := map[string][]time.Time{}, map[string]int{}
	for _, r := range lw.sim.Requests() {
		if r.TokenID == "" {
			continue
		}
		calls[r.TokenID] = append(calls[r.TokenID], r.Time)
		if r.Outcome == metasim.OutcomeThrottled {
			throttled[r.TokenID]++
		}
	}
	for _, ts := range calls {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return calls, throttled
}

// maxInWindow is the most calls any rolling window of length w holds.
func maxInWindow(ts []time.Time, w time.Duration) int {
	best, lo := 0, 0
	for hi := range ts {
		for !ts[lo].After(ts[hi].Add(-w)) {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// inWindow counts calls in [from, from+w).
func inWindow(ts []time.Time, from time.Time, w time.Duration) int {
	n := 0
	for _, t := range ts {
		if !t.Before(from) && t.Before(from.Add(w)) {
			n++
		}
	}
	return n
}

// TestLimiterKeepsEveryTokenWithinBudget: three tokens at 200 calls per
// (accelerated) hour and a burst of 3,000 claims. No token is ever over its
// budget in any rolling window, Meta never throttles, and while claims wait
// each token uses at least 95% of its budget over its first and last full
// hours together, and no less than 92.5% in either: on a loaded 2-core
// machine one hour's pace wobbles by a few calls (94.5% seen in CI, while
// the other hour had 99.5%).
func TestLimiterKeepsEveryTokenWithinBudget(t *testing.T) {
	lw := startLimiterWorld(t, 3000, nil, 0)
	const windows = 2.5
	time.Sleep(time.Duration(windows * float64(time.Hour) / limiterSpeed))

	calls, throttled := lw.callsByToken()
	lw.logStates(t, keys(calls))
	total := 0
	for _, ts := range calls {
		total += len(ts)
	}
	events := lw.historyEvents(t)
	t.Logf("%d Graph calls, %d history events: %.1f events per call", total, events, float64(events)/float64(total))
	if len(calls) != 3 {
		t.Fatalf("calls on %d tokens, want 3: %v", len(calls), keys(calls))
	}
	for token, ts := range calls {
		peak := maxInWindow(ts, time.Hour)
		// The first full window after the token's first call, and the last
		// full window before the end: claims were waiting all along.
		first := inWindow(ts, ts[0], time.Hour)
		last := inWindow(ts, ts[len(ts)-1].Add(-time.Hour), time.Hour+time.Nanosecond)
		t.Logf("%s: %d calls, peak %d per rolling hour, first hour %d (%.1f%%), last hour %d (%.1f%%), throttled %d",
			token, len(ts), peak, first, float64(first)/2, last, float64(last)/2, throttled[token])
		if throttled[token] > 0 {
			t.Errorf("%s: Meta throttled %d calls", token, throttled[token])
		}
		if peak > 200 {
			t.Errorf("%s: %d calls in a rolling hour, budget 200", token, peak)
		}
		if first+last < 380 || min(first, last) < 185 {
			t.Errorf("%s: used %d and %d of 200 in full hours while claims waited; want at least 95%% over both, 92.5%% in each", token, first, last)
		}
	}
}

// TestLimiterSlowsWhenOthersUseTheToken: another app uses 90% of the
// platform token (metasim reports it in the usage headers and leaves only
// 10% of the budget). The limiter slows that token down and Meta never
// throttles it; the other tokens go on at full pace.
func TestLimiterSlowsWhenOthersUseTheToken(t *testing.T) {
	lw := startLimiterWorld(t, 1500, func(sim *metasim.Sim) {
		if err := sim.SetUsageFloor("platform", 90); err != nil {
			t.Fatal(err)
		}
	}, 0)
	time.Sleep(time.Duration(2 * float64(time.Hour) / limiterSpeed))
	calls, throttled := lw.callsByToken()
	platform := calls["platform"]
	if len(platform) == 0 {
		t.Fatal("no calls on the platform token")
	}
	peak := maxInWindow(platform, time.Hour)
	t.Logf("platform: %d calls, peak %d per rolling hour (Meta leaves 20), throttled %d", len(platform), peak, throttled["platform"])
	if throttled["platform"] > 0 {
		t.Errorf("platform token throttled %d times", throttled["platform"])
	}
	if peak > 20 {
		t.Errorf("platform token made %d calls in an hour; others leave it 20", peak)
	}
	if other := maxInWindow(calls["tok-brand-03"], time.Hour); other < 150 {
		t.Errorf("tok-brand-03 slowed too: %d calls in its busiest hour", other)
	}
}

// historyEvents adds up the history length of every workflow run so far.
func (lw *limiterWorld) historyEvents(t *testing.T) int {
	n := 0
	var token []byte
	for {
		resp, err := lw.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{NextPageToken: token, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Executions {
			// Visibility's count lags for running workflows; Describe does not.
			d, err := lw.client.DescribeWorkflowExecution(context.Background(), e.Execution.WorkflowId, e.Execution.RunId)
			if err != nil {
				t.Fatal(err)
			}
			n += int(d.WorkflowExecutionInfo.HistoryLength)
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return n
		}
	}
}

// logStates logs each limiter's `state` query answer.
func (lw *limiterWorld) logStates(t *testing.T, tokens []string) {
	for _, token := range tokens {
		v, err := lw.client.QueryWorkflow(context.Background(), limiter.WorkflowID(token), "", limiter.QueryState)
		if err != nil {
			t.Errorf("query %s: %v", limiter.WorkflowID(token), err)
			continue
		}
		var st limiter.State
		if err := v.Get(&st); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s state: used %d in window, capacity %d%%, queued %d, reservations %d, blocked until %v",
			token, st.UsedInWindow, st.CapacityPercent, st.QueuedVerify, st.Reservations, st.BlockedUntil)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestLimiterStopsAfterThrottleUntilRegain: metasim throttles a premium
// tenant's token with a regain time. After the throttled call no call is
// made on that token until Meta's regain time, and every claim is still
// decided, and decided right, afterwards.
func TestLimiterStopsAfterThrottleUntilRegain(t *testing.T) {
	const regain = 20 * time.Minute // simulated: 10 s at speed 120
	lw := startLimiterWorld(t, 300, nil, 0)
	ctx := context.Background()
	// Let verification get going, then throttle.
	testenv.Eventually(t, time.Minute, 100*time.Millisecond, "calls on tok-brand-02", func() (bool, string) {
		calls, _ := lw.callsByToken()
		return len(calls["tok-brand-02"]) >= 20, fmt.Sprintf("%d calls", len(calls["tok-brand-02"]))
	})
	if err := lw.sim.Throttle("tok-brand-02", regain); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Minute, time.Second, "every claim decided", func() (bool, string) {
		stats, err := lw.store.Stats(ctx)
		if err != nil {
			return false, err.Error()
		}
		open := 0
		for _, s := range stats {
			open += s.Pending + s.Leased
		}
		return open == 0, fmt.Sprintf("%d open", open)
	})

	var throttledAt time.Time
	var after []time.Time
	for _, r := range lw.sim.Requests() {
		if r.TokenID != "tok-brand-02" {
			continue
		}
		switch {
		case r.Outcome == metasim.OutcomeThrottled && throttledAt.IsZero():
			throttledAt = r.Time
		case !throttledAt.IsZero():
			after = append(after, r.Time)
		}
	}
	if throttledAt.IsZero() {
		t.Fatal("metasim never throttled the token")
	}
	if len(after) == 0 {
		t.Fatal("no call after the throttle: the token's claims were never checked again")
	}
	if gap := after[0].Sub(throttledAt); gap < regain {
		t.Fatalf("a call %v after the throttle; Meta asked for %v", gap, regain)
	}
	_, throttled := lw.callsByToken()
	if throttled["tok-brand-02"] != 1 {
		t.Fatalf("%d throttled calls, want just the one that found the block", throttled["tok-brand-02"])
	}
	t.Logf("throttled at %v; next call %v later (regain %v); %d calls after", throttledAt.Format(time.TimeOnly), after[0].Sub(throttledAt), regain, len(after))
	systemtest.CheckVerdictsAgainstTruth(t, lw.store, lw.sim.Truth(), 300)
}

// TestLimiterContinuesAsNewUnderLoad forces a limiter through many
// continue-as-new cycles (every 5 reservations) while callers reserve and
// operators signal: no reservation and no signal is lost, and the budget
// holds across runs.
func TestLimiterContinuesAsNewUnderLoad(t *testing.T) {
	lw := startLimiterWorld(t, 600, nil, 5)
	ctx := context.Background()
	// Operators change the platform token's budget while runs roll over;
	// the last one must stick.
	for i, calls := range []int{180, 190, 200} {
		time.Sleep(5 * time.Second)
		if err := lw.client.SignalWorkflow(ctx, limiter.WorkflowID("platform"), "", limiter.SignalSetBudget,
			limiter.BudgetSetting{Calls: calls, Window: "1h"}); err != nil {
			t.Fatalf("signal %d: %v", i, err)
		}
	}
	time.Sleep(10 * time.Second)

	// Read the activities' count first: every answer they got was counted by
	// a limiter before it was sent, so the limiters' counts, read after,
	// cannot be lower unless a reservation was lost.
	answered := lw.eng.Limiter.Answered.Load()
	var reservations int64
	for _, token := range []string{"platform", "tok-brand-02", "tok-brand-03"} {
		v, err := lw.client.QueryWorkflow(ctx, limiter.WorkflowID(token), "", limiter.QueryState)
		if err != nil {
			t.Fatal(err)
		}
		var st limiter.State
		if err := v.Get(&st); err != nil {
			t.Fatal(err)
		}
		reservations += st.Reservations
		if token == "platform" && st.Budget.Calls != 200 {
			t.Errorf("platform budget %d after the last set-budget (200): a signal was lost", st.Budget.Calls)
		}
		// Visibility lags the runs a little: wait for it to show them.
		runs := 0
		testenv.Eventually(t, 15*time.Second, 500*time.Millisecond, token+" runs continued as new", func() (bool, string) {
			resp, err := lw.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("WorkflowId = '%s' AND ExecutionStatus = 'ContinuedAsNew'", limiter.WorkflowID(token)),
			})
			if err != nil {
				return false, err.Error()
			}
			runs = len(resp.Executions)
			return runs >= 3, fmt.Sprintf("%d runs", runs)
		})
		t.Logf("%s: %d runs continued as new, %d reservations", token, runs, st.Reservations)
	}
	// Every reservation an activity got an answer to is counted by the
	// limiter (an Update caught by a continue-as-new is retried, not lost;
	// the limiter may count more: answers in flight, reservations since).
	if reservations < answered {
		t.Errorf("limiters counted %d reservations, activities got answers to %d: reservations lost", reservations, answered)
	}
	if dir := os.Getenv("RECORD_HISTORIES"); dir != "" {
		systemtest.RecordHistory(t, lw.client, fmt.Sprintf("WorkflowId = '%s' AND ExecutionStatus = 'ContinuedAsNew'", limiter.WorkflowID("platform")),
			filepath.Join(dir, "limiter_continued.json"))
	}
	calls, throttled := lw.callsByToken()
	for token, ts := range calls {
		if peak := maxInWindow(ts, time.Hour); peak > 200 || throttled[token] > 0 {
			t.Errorf("%s: peak %d calls in a rolling hour, %d throttled", token, peak, throttled[token])
		}
	}
}
