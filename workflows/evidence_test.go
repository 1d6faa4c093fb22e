package workflows_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/internal/webhook"
	"github.com/socialproof/verifier/workflows"
)

// The plan's budget (200 calls an hour per token) against comment claims
// arriving at 20,000 an hour over 45 objects of 10 standard and 5 premium
// tenants, for six (accelerated) minutes: one read of a target proves
// every claim on it, and webhooks prove most claims with no call at all.
// EVIDENCE_MINUTES=60 (`make evidence-hour`) runs the whole hour and
// measures what is decided one platform hour after the last arrival.
func TestGroupedReadsAndWebhooksProveClaimsUnderThePlansBudget(t *testing.T) {
	for _, hooks := range []bool{false, true} {
		name := "without webhooks"
		if hooks {
			name = "with webhooks"
		}
		t.Run(name, func(t *testing.T) { runEvidenceScenario(t, hooks) })
	}
}

const evidenceSpeed = 60

func runEvidenceScenario(t *testing.T, hooks bool) {
	ctx := context.Background()
	const appSecret = "evidence-test-secret"
	budget := metasim.Budget{Calls: 200, Window: time.Hour}
	sim := metasim.New(metasim.Config{Seed: 21, Brands: 15, Premium: 5, MediaPerBrand: 2, PostsPerBrand: 1,
		Speed: evidenceSpeed, AppSecret: appSecret, PlatformBudget: budget, TenantBudget: budget})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = sim.Close() })
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	tenants, _ := testenv.SeedWorld(t, sim, st)

	var receiver *webhook.Handler
	if hooks {
		receiver = &webhook.Handler{AppSecret: secret.New(appSecret), VerifyToken: secret.New("evidence-verify-token"), Sink: webhook.StoreSink{Store: st}}
		hookSrv := httptest.NewServer(http.StripPrefix("", receiver))
		t.Cleanup(hookSrv.Close)
		if err := sim.Subscribe(metasim.WebhookOptions{URL: hookSrv.URL, VerifyToken: "evidence-verify-token", Shape: metasim.ShapeMixed, Duplicates: 0.1}); err != nil {
			t.Fatal(err)
		}
	}

	cfg := config.Default()
	cfg.Speed = evidenceSpeed
	cfg.Mode = workflows.ModeVerify // every claim gets real evidence or none: this test counts them
	c := testenv.DevServer(t)
	systemtest.StartWorker(t, c, engine.Deps{
		Store:           st,
		Graph:           graph.New(graph.Config{BaseURL: srv.URL + "/", Version: "v21.0", AppID: sim.World().AppID, AppSecret: secret.New(appSecret)}),
		PlatformTokenID: tenants.PlatformToken,
		Speed:           evidenceSpeed,
	})
	if _, err := workflows.EnsureSchedule(ctx, c, workflows.NewScheduleConfig(cfg)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.ScheduleClient().GetHandle(ctx, workflows.ScheduleID).Delete(ctx) })

	// 20,000 an hour is 333 a platform minute: a wall second at speed 60.
	// EVIDENCE_MINUTES=60 runs the whole hour (`make evidence-hour`).
	minutes, perMinute := 6, 333
	if v := os.Getenv("EVIDENCE_MINUTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("EVIDENCE_MINUTES=%q: want a positive number of platform minutes", v)
		}
		minutes = n
	}
	submitted := 0
	for range minutes {
		var batch []claim.Claim
		for _, g := range sim.GenerateClaims(perMinute, metasim.ClaimOptions{FraudRate: 0.1,
			Kinds: map[string]float64{metasim.KindIGComment: 0.7, metasim.KindFBComment: 0.3}}) {
			cl, err := claim.Parse(g.Line)
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, cl)
		}
		submitted += systemtest.SubmitAll(t, st, batch).Accepted
		time.Sleep(time.Second)
	}
	start := time.Now()
	if os.Getenv("EVIDENCE_MINUTES") == "" {
		testenv.Eventually(t, 6*time.Minute, time.Second, "every claim decided", func() (bool, string) {
			open, decided := systemtest.CountClaims(t, st)
			return open == 0 && decided == submitted, fmt.Sprintf("open=%d decided=%d/%d", open, decided, submitted)
		})
	} else {
		// The long run measures what is decided one platform hour after
		// the last arrival; what is still open then counts as no evidence.
		for deadline := start.Add(time.Hour / evidenceSpeed); time.Now().Before(deadline); time.Sleep(time.Second) {
			if open, _ := systemtest.CountClaims(t, st); open == 0 {
				break
			}
		}
	}
	took := time.Since(start)
	open, _ := systemtest.CountClaims(t, st)

	decided, err := st.Decided(ctx, store.ExportFilter{})
	if err != nil {
		t.Fatal(err)
	}
	truth := sim.Truth()
	var real, byWebhook, fraud, fraudApproved, genuine, genuineRejected int
	for _, cl := range decided {
		g := truth[cl.Tenant+"/"+cl.Key]
		if g {
			genuine++
		} else {
			fraud++
		}
		switch {
		case cl.Verdict == store.VerdictVerified || cl.Verdict == store.VerdictRejected:
			real++
			if cl.Method == activities.MethodWebhook {
				byWebhook++
			}
		}
		if !g && (cl.Verdict == store.VerdictVerified || cl.Verdict == store.VerdictApprovedBySample || cl.Verdict == store.VerdictApprovedOnHonor) {
			fraudApproved++
		}
		if g && cl.Verdict == store.VerdictRejected {
			genuineRejected++
			t.Errorf("genuine claim %s/%s rejected: %s", cl.Tenant, cl.Key, cl.Evidence)
		}
	}
	calls, throttled := 0, 0
	byToken := map[string]int{}
	var first, last time.Time
	for _, r := range sim.Requests() {
		calls++
		byToken[r.TokenID]++
		if first.IsZero() {
			first = r.Time
		}
		last = r.Time
		switch r.Code {
		case 4, 17, 32, 613, 80001, 80002:
			throttled++
		}
	}
	perCall := float64(real-byWebhook) / float64(max(calls, 1))
	t.Logf("FIGURES evidence %s: %d comment claims in %d platform minutes, %d open %v after the last arrived; real evidence %d (%.1f%% of all, %d by webhook); %d Graph calls (%d throttled): %.1f claims proven per call, %.1f counting webhook proofs; false claims approved %d/%d; genuine rejected %d/%d",
		map[bool]string{true: "with webhooks", false: "without webhooks"}[hooks], submitted, minutes, open, took.Round(time.Second),
		real, pct(real, submitted), byWebhook, calls, throttled, perCall, float64(real)/float64(max(calls, 1)),
		fraudApproved, fraud, genuineRejected, genuine)
	// The platform token reads the 10 standard tenants' posts: it is the
	// budget this workload presses on.
	t.Logf("calls by token over %v of platform time: platform %d, tenants' own tokens %d in all",
		last.Sub(first).Round(time.Minute), byToken[tenants.PlatformToken], calls-byToken[tenants.PlatformToken])
	if receiver != nil {
		t.Logf("webhooks: metasim %+v; receiver %+v", sim.WebhookStats(), receiver.Stats())
	}
	// Over a whole hour without webhooks, the standard tenants' ~12,000
	// genuine comments on 30 posts take ~240 pages of 50 to list, on one
	// platform token of 200 calls an hour: the 95% is the engine's with
	// webhooks, and that variant is held to grouping's point instead.
	if hourLong := os.Getenv("EVIDENCE_MINUTES") != ""; hooks || !hourLong {
		if pct(real, submitted) < 95 {
			t.Errorf("real evidence for %.1f%% of claims, want at least 95%%", pct(real, submitted))
		}
	} else if perCall < 10 {
		t.Errorf("%.1f claims proven per call without webhooks, want at least 10", perCall)
	}
	if throttled != 0 {
		t.Errorf("%d throttled calls, want none", throttled)
	}
	if fraudApproved*100 >= fraud || (genuineRejected > 0 && genuineRejected*1000 >= genuine) {
		t.Errorf("false approved %d/%d, genuine rejected %d/%d", fraudApproved, fraud, genuineRejected, genuine)
	}
	if hooks && byWebhook*2 < real {
		t.Errorf("only %d of %d claims proven by webhook", byWebhook, real)
	}
}
