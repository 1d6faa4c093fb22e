package activities_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/engine"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

const owner = "test-dispatch"

// harness is metasim over HTTP, an SQLite store loaded with metasim's world,
// and the activities wired to both.
type harness struct {
	sim     *metasim.Sim
	st      store.Store
	acts    *activities.Activities
	env     *testsuite.TestActivityEnvironment
	secrets string
	truth   map[string]bool
	graph   graph.Config // the Graph client's, for tests that wrap its transport
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	const appSecret = "activities-test-secret"
	sim := metasim.New(metasim.Config{Seed: 3, Brands: 2, Premium: 1, AppSecret: appSecret})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	_, secrets := testenv.SeedWorld(t, sim, st)
	gc := graph.Config{
		BaseURL: srv.URL, Version: "v21.0", AppID: sim.World().AppID, AppSecret: secret.New(appSecret), Timeout: 5 * time.Second,
	}
	// No Temporal client: calls are not paced (the limiter is not under test).
	acts := engine.New(engine.Deps{Store: st, Graph: graph.New(gc), PlatformTokenID: "platform"}).Activities
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	return &harness{sim: sim, st: st, acts: acts, env: env, secrets: secrets, truth: sim.Truth(), graph: gc}
}

// submit generates n verifiable claims of a tenant, stores and leases them.
func (h *harness) submit(t *testing.T, tenant string, n int, fraud float64, kinds map[string]float64) []store.Claim {
	t.Helper()
	gen := h.sim.GenerateClaims(n, metasim.ClaimOptions{FraudRate: fraud, Tenants: []string{tenant}, Kinds: kinds})
	var claims []claim.Claim
	for _, g := range gen {
		c, err := claim.Parse(g.Line)
		if err != nil {
			t.Fatalf("metasim generated a claim we refuse: %v: %s", err, g.Line)
		}
		claims = append(claims, c)
	}
	h.truth = h.sim.Truth()
	ctx := context.Background()
	if _, err := h.st.Submit(ctx, claims, time.Now()); err != nil {
		t.Fatal(err)
	}
	leased, err := h.st.Claim(ctx, store.ClaimParams{Owner: owner, Limit: 10_000, TTL: time.Hour, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return leased
}

func (h *harness) verify(t *testing.T, tenant, token string, claims []store.Claim, final bool) activities.VerifyResult {
	t.Helper()
	return h.verifyWithGrace(t, tenant, token, claims, final, 0)
}

func (h *harness) verifyWithGrace(t *testing.T, tenant, token string, claims []store.Claim, final bool, grace time.Duration) activities.VerifyResult {
	t.Helper()
	ids := make([]int64, len(claims))
	for i, c := range claims {
		ids[i] = c.ID
	}
	v, err := h.env.ExecuteActivity(h.acts.VerifyClaims, activities.VerifyInput{
		TenantID: tenant, TokenID: token, ClaimIDs: ids, LeaseOwner: owner, Final: final, Grace: grace,
	})
	if err != nil {
		t.Fatalf("VerifyClaims: %v", err)
	}
	var res activities.VerifyResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	// Secrets never travel in activity results.
	b, _ := json.Marshal(res)
	for _, tok := range h.sim.World().Tokens {
		if strings.Contains(string(b), tok.Value) {
			t.Fatalf("token %s value in activity result", tok.ID)
		}
	}
	return res
}

var comments = map[string]float64{"ig_comment": 1, "fb_comment": 1, "fb_reaction": 1, "ig_tag": 1, "ig_mention": 1}

func TestVerifyClaimsAgreesWithGroundTruth(t *testing.T) {
	h := newHarness(t)
	claims := h.submit(t, "brand-01", 120, 0.3, comments)
	first := h.verify(t, "brand-01", "platform", claims, false)
	if first.Rejected != 0 {
		t.Fatalf("the first check rejected %d claims; only the re-check may", first.Rejected)
	}
	if len(first.Deferred) != 0 {
		t.Fatalf("deferred on a healthy token: %+v", first.Deferred[0])
	}
	absent := map[int64]bool{}
	for _, id := range first.Absent {
		absent[id] = true
	}
	var recheck []store.Claim
	for _, c := range claims {
		genuine := h.truth[c.Tenant+"/"+c.Key]
		if genuine == absent[c.ID] {
			t.Errorf("claim %s (%s, genuine=%v): absent=%v", c.Key, c.Kind, genuine, absent[c.ID])
		}
		if absent[c.ID] {
			recheck = append(recheck, c)
		}
	}
	if first.Verified+len(first.Absent) != len(claims) {
		t.Fatalf("verified %d + absent %d != %d claims", first.Verified, len(first.Absent), len(claims))
	}
	// One paged read per target edge proves or disproves every claim on it
	// (a post's comments and its reactions are two edges).
	targets := map[string]bool{}
	for _, c := range claims {
		if c.Kind != claim.IGMention {
			targets[c.Target+"/"+string(c.Kind)] = true
		}
	}
	if first.Groups != len(targets) || first.Calls >= len(claims)/2 {
		t.Fatalf("%d calls over %d target reads for %d claims on %d targets: claims are not read by target", first.Calls, first.Groups, len(claims), len(targets))
	}
	t.Logf("%d claims on %d targets: %d calls", len(claims), len(targets), first.Calls)

	// The re-check after a grace delay reads again: the first read was too
	// soon after the claims were made (Meta's data can lag).
	half := len(recheck) / 2
	final := h.verifyWithGrace(t, "brand-01", "platform", recheck[:half], true, time.Hour)
	if final.Rejected != half || len(final.Absent) != 0 || final.Calls == 0 {
		t.Fatalf("re-check with grace: rejected %d of %d, absent %d, %d calls", final.Rejected, half, len(final.Absent), final.Calls)
	}
	// A read recent enough settles the rest without a call (a mention is
	// still one call: its media is not read by target).
	mentions := 0
	for _, c := range recheck[half:] {
		if c.Kind == claim.IGMention {
			mentions++
		}
	}
	final = h.verify(t, "brand-01", "platform", recheck[half:], true)
	if final.Rejected != len(recheck)-half || final.Calls != mentions {
		t.Fatalf("re-check on stored coverage: rejected %d of %d with %d calls, want %d (mentions only)", final.Rejected, len(recheck)-half, final.Calls, mentions)
	}
	decided, err := h.st.Claims(context.Background(), []int64{recheck[0].ID})
	if err != nil || decided[0].Verdict != store.VerdictRejected || !strings.Contains(decided[0].Evidence, `"reason"`) {
		t.Fatalf("rejected claim stored as %+v (%v)", decided, err)
	}

	// Verifying again changes nothing: verdicts are recorded once.
	again := h.verify(t, "brand-01", "platform", claims, true)
	if again.Verified+again.Rejected != 0 || again.Calls != 0 {
		t.Fatalf("decided claims were checked again: %+v", again)
	}
}

// Failures of Meta's, of the token or of our configuration never reject a
// claim: they come back deferred, with the class that says what to do.
func TestVerifyClaimsNeverRejectsOnFailure(t *testing.T) {
	tests := []struct {
		name      string
		tenant    string
		token     string
		breakIt   func(t *testing.T, h *harness)
		wantClass graph.Class
		maxCalls  int // a throttle or a dead token stops calling at once
		regain    bool
	}{
		{"token invalid (190)", "brand-01", "platform", func(t *testing.T, h *harness) {
			must(t, h.sim.SetTokenState("platform", metasim.TokenInvalid))
		}, graph.TokenBroken, 1, false},
		{"token expired (190/463)", "brand-02", "tok-brand-02", func(t *testing.T, h *harness) {
			must(t, h.sim.SetTokenState("tok-brand-02", metasim.TokenExpired))
		}, graph.TokenBroken, 1, false},
		{"app throttled (4)", "brand-01", "platform", func(t *testing.T, h *harness) {
			must(t, h.sim.Throttle("platform", 10*time.Minute))
		}, graph.Throttled, 1, false},
		{"BUC throttled with regain time (80002)", "brand-02", "tok-brand-02", func(t *testing.T, h *harness) {
			must(t, h.sim.Throttle("tok-brand-02", 10*time.Minute))
		}, graph.Throttled, 1, true},
		{"no access to the tenant's account (10/200)", "brand-01", "platform", func(t *testing.T, h *harness) {
			must(t, h.sim.SetPlatformAccess("brand-01", false))
		}, graph.Permission, 1000, false},
		{"Meta answers 5xx", "brand-01", "platform", func(t *testing.T, h *harness) {
			h.sim.SetFaults(metasim.Faults{ErrorRate: 1})
		}, graph.Transient, 1000, false},
		{"token secret missing", "brand-01", "platform", func(t *testing.T, h *harness) {
			must(t, os.Remove(filepath.Join(h.secrets, "platform")))
		}, graph.TokenBroken, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			var (
				mu       sync.Mutex
				outcomes = map[string]int{}
			)
			h.acts.Limiter.OnCall = func(tokenID string, err error) {
				mu.Lock()
				defer mu.Unlock()
				outcome := "ok"
				if err != nil {
					outcome = string(graph.ClassOf(err))
				}
				outcomes[tokenID+" "+outcome]++
			}
			claims := h.submit(t, tt.tenant, 30, 0, comments)
			tt.breakIt(t, h)
			res := h.verify(t, tt.tenant, tt.token, claims, true)
			mu.Lock()
			if want := map[string]int{tt.token + " " + string(tt.wantClass): res.Calls}; res.Calls > 0 && !maps.Equal(outcomes, want) || res.Calls == 0 && len(outcomes) > 0 {
				t.Errorf("calls reported to OnGraphCall: %v, want %v (the metric verifier_graph_calls_total)", outcomes, want)
			}
			mu.Unlock()
			if res.Verified != 0 || res.Rejected != 0 {
				t.Fatalf("decided %d verified, %d rejected on a failure", res.Verified, res.Rejected)
			}
			if len(res.Deferred) != len(claims) {
				t.Fatalf("deferred %d of %d claims", len(res.Deferred), len(claims))
			}
			for _, d := range res.Deferred {
				if d.Class != tt.wantClass {
					t.Fatalf("class %s, want %s (%s)", d.Class, tt.wantClass, d.Reason)
				}
				if tt.regain && d.RetryAfter <= 0 {
					t.Fatalf("throttle without Meta's regain time: %+v", d)
				}
			}
			if res.Calls > tt.maxCalls {
				t.Fatalf("%d calls after the token stopped working; want at most %d", res.Calls, tt.maxCalls)
			}
			for _, c := range claims {
				got, _ := h.st.Claims(context.Background(), []int64{c.ID})
				if got[0].Status == store.StatusDecided {
					t.Fatalf("claim %s decided on a failure: %s", c.Key, got[0].Verdict)
				}
			}
		})
	}
}

func TestPlanBatchUsesThePremiumTenantsOwnToken(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ tenant, token string }{{"brand-01", "platform"}, {"brand-02", "tok-brand-02"}} {
		claims := h.submit(t, tc.tenant, 20, 0, map[string]float64{"ig_comment": 1, "ig_follow": 1})
		ids := make([]int64, len(claims))
		for i, c := range claims {
			ids[i] = c.ID
		}
		v, err := h.env.ExecuteActivity(h.acts.PlanBatch, activities.PlanInput{TenantID: tc.tenant, ClaimIDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		var p activities.Plan
		must(t, v.Get(&p))
		if !p.TenantKnown || p.TokenID != tc.token {
			t.Fatalf("%s: plan %+v, want token %s", tc.tenant, p, tc.token)
		}
		if len(p.Verifiable)+len(p.Unverifiable) != len(claims) || len(p.Unverifiable) == 0 || len(p.Verifiable) == 0 {
			t.Fatalf("%s: %d verifiable + %d unverifiable of %d", tc.tenant, len(p.Verifiable), len(p.Unverifiable), len(claims))
		}
		for _, u := range p.Unverifiable {
			if u.Kind != claim.IGFollow {
				t.Fatalf("unverifiable %s", u.Kind)
			}
		}
	}
	v, err := h.env.ExecuteActivity(h.acts.PlanBatch, activities.PlanInput{TenantID: "nobody", ClaimIDs: []int64{1}})
	if err != nil {
		t.Fatal(err)
	}
	var p activities.Plan
	must(t, v.Get(&p))
	if p.TenantKnown {
		t.Fatal("unknown tenant planned as known")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A user whose claim is rejected becomes risky: the next plan lists their
// claims apart (Risky), for the workflow to verify one by one, until the
// flag expires.
func TestRejectedClaimMakesItsUserRisky(t *testing.T) {
	h := newHarness(t)
	h.acts.UserRiskTTL = time.Hour
	claims := h.submit(t, "brand-01", 60, 0.3, comments)
	first := h.verify(t, "brand-01", "platform", claims, false)
	var absent []store.Claim
	for _, c := range claims {
		for _, id := range first.Absent {
			if c.ID == id {
				absent = append(absent, c)
			}
		}
	}
	if len(absent) == 0 {
		t.Fatal("no false claim in the sample")
	}
	final := h.verify(t, "brand-01", "platform", absent, true)
	if final.Rejected != len(absent) {
		t.Fatalf("rejected %d of %d", final.Rejected, len(absent))
	}
	risky := map[string]bool{}
	for _, c := range absent {
		risky[c.User] = true
	}

	var ids []int64
	plan := func(split bool) activities.Plan {
		v, err := h.env.ExecuteActivity(h.acts.PlanBatch, activities.PlanInput{TenantID: "brand-01", ClaimIDs: ids, SplitRisky: split})
		if err != nil {
			t.Fatal(err)
		}
		var p activities.Plan
		if err := v.Get(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The same users' next claims, in a new batch.
	ctx := context.Background()
	open := h.submit(t, "brand-01", 200, 0.1, comments)
	wantRisky := 0
	for _, c := range open {
		if c.Status == store.StatusDecided {
			continue
		}
		ids = append(ids, c.ID)
		if risky[c.User] {
			wantRisky++
		}
	}
	if wantRisky == 0 {
		t.Fatal("metasim drew no second claim for a risky user: pick another seed or more claims")
	}
	p := plan(true)
	if len(p.Risky) != wantRisky {
		t.Fatalf("plan lists %d risky claims, want %d", len(p.Risky), wantRisky)
	}
	if p := plan(false); len(p.Risky) != 0 {
		t.Fatalf("without SplitRisky the plan lists %d risky claims", len(p.Risky))
	}
	later, err := h.st.RiskyUsers(ctx, "brand-01", []string{absent[0].User}, time.Now().Add(2*time.Hour))
	if err != nil || len(later) != 0 {
		t.Fatalf("the flag outlived its TTL: %v %v", later, err)
	}
}

// A final check from stored evidence alone rejects only claims that a stored
// read covers; a claim nothing has read yet waits for a read, never rejected.
func TestStoredOnlyFinalCheckRejectsOnlyCoveredClaims(t *testing.T) {
	h := newHarness(t)
	claims := h.submit(t, "brand-01", 60, 0.3, map[string]float64{"ig_comment": 1, "fb_comment": 1, "ig_mention": 1})
	ids := make([]int64, len(claims))
	for i, c := range claims {
		ids[i] = c.ID
	}
	storedFinal := func() activities.VerifyResult {
		v, err := h.env.ExecuteActivity(h.acts.VerifyClaims, activities.VerifyInput{
			TenantID: "brand-01", TokenID: "platform", ClaimIDs: ids, LeaseOwner: owner, Final: true, StoredOnly: true,
		})
		if err != nil {
			t.Fatalf("VerifyClaims: %v", err)
		}
		var res activities.VerifyResult
		if err := v.Get(&res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	before := storedFinal()
	if before.Rejected != 0 || before.Verified != 0 || before.Calls != 0 || len(before.Absent) != len(claims) {
		t.Fatalf("nothing stored yet: verified %d, rejected %d, %d calls, %d absent of %d", before.Verified, before.Rejected, before.Calls, len(before.Absent), len(claims))
	}
	// A first check reads every target once and stores what it saw.
	first := h.verify(t, "brand-01", "platform", claims, false)
	after := storedFinal()
	mentions := 0
	for _, c := range claims {
		if c.Kind == claim.IGMention && !h.truth[c.Tenant+"/"+c.Key] {
			mentions++
		}
	}
	if after.Calls != 0 || after.Rejected != len(first.Absent)-mentions || len(after.Absent) != mentions {
		t.Fatalf("stored final check after a read: rejected %d, absent %d, %d calls; want %d rejected (absent minus %d unread mentions), no call",
			after.Rejected, len(after.Absent), after.Calls, len(first.Absent)-mentions, mentions)
	}
}

// A batch's claims wait for another batch's read only when that read proves
// them: claims of the same tenant, target and kind read by edge. Mentions
// are checked one by one (each names its own media) and never wait.
func TestBehindReadersOnlyForClaimsOneReadProves(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tenant := "brand-01"
	mk := func(key string, kind claim.Kind) claim.Claim {
		return claim.Claim{Tenant: tenant, Key: key, User: "u-" + key, Handle: "h_" + key, Kind: kind, Target: "17890000000000777"}
	}
	now := time.Now()
	if _, err := h.st.Submit(ctx, []claim.Claim{mk("old-comment", claim.IGComment), mk("old-mention", claim.IGMention)}, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.Claim(ctx, store.ClaimParams{Owner: "other-batch", Limit: 10, TTL: time.Hour, Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.st.Submit(ctx, []claim.Claim{mk("new-comment", claim.IGComment), mk("new-mention", claim.IGMention)}, now); err != nil {
		t.Fatal(err)
	}
	mine, err := h.st.Claim(ctx, store.ClaimParams{Owner: owner, Limit: 10, TTL: time.Hour, Now: now})
	if err != nil || len(mine) != 2 {
		t.Fatalf("Claim: %d, %v", len(mine), err)
	}
	v, err := h.env.ExecuteActivity(h.acts.BehindReaders, activities.BehindReadersInput{Owner: owner, ClaimIDs: []int64{mine[0].ID, mine[1].ID}})
	if err != nil {
		t.Fatal(err)
	}
	var behind []int64
	if err := v.Get(&behind); err != nil {
		t.Fatal(err)
	}
	var want []int64
	for _, c := range mine {
		if c.Kind == claim.IGComment {
			want = append(want, c.ID)
		}
	}
	if !slices.Equal(behind, want) {
		t.Errorf("BehindReaders = %v, want only the comment %v", behind, want)
	}
}

// While standard tenants are on honor (here the configured mode: no
// Governor to ask), a Dispatcher run claims up to BacklogLimit, not Limit:
// honor costs no call, so a backlog drains at the larger rate.
func TestClaimBatchTakesTheBacklogLimitOnlyOnHonor(t *testing.T) {
	for _, tt := range []struct {
		mode string
		want int
	}{{"verify", 10}, {"sample", 10}, {"honor", 25}} {
		t.Run(tt.mode, func(t *testing.T) {
			h := newHarness(t)
			gen := h.sim.GenerateClaims(40, metasim.ClaimOptions{Tenants: []string{"brand-02"}, Kinds: comments})
			var claims []claim.Claim
			for _, g := range gen {
				c, err := claim.Parse(g.Line)
				if err != nil {
					t.Fatal(err)
				}
				claims = append(claims, c)
			}
			if _, err := h.st.Submit(context.Background(), claims, time.Now()); err != nil {
				t.Fatal(err)
			}
			v, err := h.env.ExecuteActivity(h.acts.ClaimBatch, activities.ClaimBatchInput{
				Owner: owner, Limit: 10, BacklogLimit: 25, LeaseTTL: time.Hour, Mode: tt.mode,
			})
			if err != nil {
				t.Fatal(err)
			}
			var res activities.ClaimBatchResult
			if err := v.Get(&res); err != nil {
				t.Fatal(err)
			}
			if res.Claimed != tt.want {
				t.Errorf("mode %s: claimed %d, want %d", tt.mode, res.Claimed, tt.want)
			}
		})
	}
}
