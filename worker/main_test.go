package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// The worker binary's run, against the real dev server, metasim and a
// SQLite store: after it has decided a batch of claims, its /metrics shows
// the engine's figures (claims, verdicts by kind and method, the Governor's
// mode, each limiter, Graph calls by outcome, webhooks), the SDK's own
// temporal_* metrics and the Go runtime's, with no source failing; and it
// stops cleanly when its context ends (SIGTERM in main).
func TestWorkerServesMetricsAfterARun(t *testing.T) {
	const speed = 60 // the Schedule fires every second (its least interval)
	sim := metasim.New(metasim.Config{Brands: 3, Premium: 1, Seed: 11, Speed: speed, AppSecret: "metrics-test-secret",
		PlatformBudget: metasim.Budget{Calls: 20_000, Window: time.Hour}, TenantBudget: metasim.Budget{Calls: 5_000, Window: time.Hour}})
	graphSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(graphSrv.Close)
	st, dsn := testenv.OpenStore(t, testenv.SQLite)
	tenants, _ := testenv.SeedWorld(t, sim, st)
	c, hostPort := testenv.DevServerAt(t)
	t.Setenv("METRICS_TEST_APP_SECRET", "metrics-test-secret")
	t.Setenv("METRICS_TEST_VERIFY_TOKEN", "verify-me")

	ctx := context.Background()
	cfg := config.Default()
	cfg.Speed = speed
	// What `starter setup` does before the first worker starts.
	if _, err := workflows.EnsureSearchAttributes(ctx, c, cfg.Namespace); err != nil {
		t.Fatal(err)
	}
	if _, err := workflows.EnsureSchedule(ctx, c, workflows.NewScheduleConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID).Delete(ctx) })
	if _, err := workflows.EnsureRunning(ctx, c, cfg); err != nil {
		t.Fatal(err)
	}

	metricsAddr := "127.0.0.1:" + testenv.FreePort(t)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{
			"-temporal-address", hostPort, "-store", dsn,
			"-graph-url", graphSrv.URL, "-app-id", sim.World().AppID, "-app-secret", "env:METRICS_TEST_APP_SECRET",
			"-platform-token", tenants.PlatformToken, "-speed", fmt.Sprint(speed),
			"-metrics-addr", metricsAddr,
			"-webhook-addr", "127.0.0.1:" + testenv.FreePort(t), "-webhook-verify-token", "env:METRICS_TEST_VERIFY_TOKEN",
			"-log-level", "warn",
		})
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
			<-done
		}
	})

	var claims []claim.Claim
	for _, g := range sim.GenerateClaims(200, metasim.ClaimOptions{FraudRate: 0.2}) {
		cl, err := claim.Parse(g.Line)
		if err != nil {
			t.Fatal(err)
		}
		claims = append(claims, cl)
	}
	res, err := st.Submit(ctx, claims, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Minute, 500*time.Millisecond, "every claim decided", func() (bool, string) {
		stats, err := st.Stats(ctx)
		if err != nil {
			return false, err.Error()
		}
		open, decided := 0, 0
		for _, s := range stats {
			open += s.Pending + s.Leased
			for _, n := range s.Decided {
				decided += n
			}
		}
		return open == 0 && decided == len(res), fmt.Sprintf("open %d, decided %d of %d", open, decided, len(res))
	})

	families := scrape(t, "http://"+metricsAddr+"/metrics")
	sum := func(name string, match map[string]string) (float64, int) {
		total, n := 0.0, 0
		for _, m := range families[name].GetMetric() {
			if !labelsMatch(m, match) {
				continue
			}
			n++
			switch {
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			}
		}
		return total, n
	}
	if v, _ := sum("verifier_verdicts_total", nil); int(v) < len(res) {
		t.Errorf("verifier_verdicts_total sums to %v, want at least the %d claims decided", v, len(res))
	}
	if _, n := sum("verifier_verdicts_total", map[string]string{"method": "graph", "kind": string(claim.IGComment)}); n == 0 {
		t.Error("no verdicts by method graph for comment claims: the kind and method labels are missing")
	}
	if v, _ := sum("verifier_claims_decided", nil); int(v) != len(res) {
		t.Errorf("verifier_claims_decided sums to %v, want %d", v, len(res))
	}
	if v, _ := sum("verifier_graph_calls_total", map[string]string{"token": tenants.PlatformToken, "outcome": "ok"}); v == 0 {
		t.Error("no successful Graph call counted on the platform token")
	}
	if v, _ := sum("verifier_graph_calls_total", map[string]string{"outcome": "throttled"}); v != 0 {
		t.Errorf("%v throttled calls under a budget far from its limit", v)
	}
	if v, _ := sum("verifier_mode", map[string]string{"tenant": governor.AllTenants}); v != 1 {
		t.Errorf("verifier_mode for all standard tenants: %v, want one mode at 1", v)
	}
	if v, _ := sum("verifier_limiter_budget_calls", map[string]string{"token": tenants.PlatformToken}); v <= 0 {
		t.Errorf("the platform token's limiter budget: %v", v)
	}
	if _, n := sum("verifier_limiter_permits_in_window", map[string]string{"token": tenants.PlatformToken}); n != 1 {
		t.Error("no permits-in-window figure for the platform token's limiter")
	}
	// Each token's health, from the store: the platform token (no tenant)
	// and the premium tenant's, not checked yet; the app token not at all.
	if v, _ := sum("verifier_token_state", map[string]string{"token": tenants.PlatformToken, "tenant": "", "state": "unknown"}); v != 1 {
		t.Errorf("verifier_token_state for the platform token: %v, want 1 under state unknown", v)
	}
	if _, n := sum("verifier_token_state", map[string]string{"token": "app"}); n != 0 {
		t.Error("verifier_token_state lists the app token")
	}
	// The worker registered the app token (limiter/app's budget) on start,
	// as `starter setup` does: a store from before token health lacks it.
	if tok, err := st.Token(ctx, "app"); err != nil || tok.BudgetCalls <= 0 {
		t.Errorf("the app token after the worker started: %+v, %v", tok, err)
	}
	if errs, n := sum("verifier_scrape_errors", nil); errs != 0 || n != 3 {
		t.Errorf("scrape errors %v over %d sources, want none over 3", errs, n)
	}
	for _, name := range []string{
		"verifier_claims_open", "verifier_audit_backlog", "verifier_limiter_permits_queued", "verifier_token_throttled",
		"verifier_webhook_deliveries_total", "verifier_webhook_actions_total", "verifier_governor_open_standard",
		"temporal_workflow_completed_total", "temporal_activity_execution_latency_seconds", "temporal_request_total",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if len(families[name].GetMetric()) == 0 {
			t.Errorf("/metrics has no %s", name)
		}
	}

	stop()
	stopped = true
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the worker did not stop within 30s of its context ending")
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return families
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(want)
}
