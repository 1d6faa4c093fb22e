package workflows_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/config"
	"github.com/socialproof/verifier/internal/metasim"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/systemtest"
	"github.com/socialproof/verifier/internal/testenv"
	"github.com/socialproof/verifier/workflows"
)

// panicOn panics in the Graph client on every request about target, as a
// decoding bug meeting one object's odd answer would.
type panicOn struct {
	target string
	panics atomic.Int64
}

func (p *panicOn) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.String(), p.target) {
		p.panics.Add(1)
		var m map[string]int
		m[r.URL.Path]++ // assignment to entry in nil map
	}
	return http.DefaultTransport.RoundTrip(r)
}

// The poison claim on the real dev server, through the Schedule: a
// claim whose check makes the activity panic is quarantined with a reason,
// its TenantBatch finishes (its progress counts it), every other claim gets
// the verdict metasim's ground truth says, and nothing is left open.
func TestPoisonClaimIsQuarantinedAndItsBatchFinishes(t *testing.T) {
	ctx := context.Background()
	const appSecret = "poison-test-secret"
	sim := metasim.New(metasim.Config{Seed: 7, Brands: 2, Premium: 1, Speed: systemtest.Speed, AppSecret: appSecret,
		PlatformBudget: metasim.Budget{Calls: 20_000, Window: time.Hour}, TenantBudget: metasim.Budget{Calls: 5_000, Window: time.Hour}})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	tenants, _ := testenv.SeedWorld(t, sim, st)
	var standard string
	for _, tn := range tenants.Tenants {
		if tn.Tier == store.TierStandard {
			standard = tn.ID
		}
	}

	var claims []claim.Claim
	for _, g := range sim.GenerateClaims(150, metasim.ClaimOptions{FraudRate: 0.2, Tenants: []string{standard},
		Kinds: map[string]float64{"ig_comment": 3, "fb_comment": 1, "fb_reaction": 1, "ig_tag": 1, "ig_mention": 1}}) {
		c, err := claim.Parse(g.Line)
		if err != nil {
			t.Fatal(err)
		}
		claims = append(claims, c)
	}
	// The poison: a mention, checked with a call of its own on its media.
	var poison claim.Claim
	for _, c := range claims {
		if c.Kind == claim.IGMention && !slices.ContainsFunc(claims, func(o claim.Claim) bool { return o.Key != c.Key && strings.Contains(o.Target, c.Target) }) {
			poison = c
			break
		}
	}
	if poison.Key == "" {
		t.Fatal("no mention drawn: pick another seed")
	}
	rt := &panicOn{target: poison.Target}

	cfg := config.Default()
	cfg.Speed = systemtest.Speed
	c, _ := testenv.DevServerAt(t)
	systemtest.StartEngine(t, c, cfg, st, sim, srv.URL, appSecret, tenants.PlatformToken, rt)
	total := systemtest.SubmitAll(t, st, claims).Accepted

	testenv.Eventually(t, 3*time.Minute, 500*time.Millisecond, "every claim decided but the poison one, quarantined", func() (bool, string) {
		stats, err := st.Stats(ctx)
		if err != nil {
			return false, err.Error()
		}
		open, decided, quarantined := 0, 0, 0
		for _, s := range stats {
			open += s.Pending + s.Leased
			quarantined += s.Quarantined
			for _, n := range s.Decided {
				decided += n
			}
		}
		return open == 0 && decided == total-1 && quarantined == 1, fmt.Sprintf("open=%d decided=%d/%d quarantined=%d", open, decided, total-1, quarantined)
	})
	if rt.panics.Load() == 0 {
		t.Fatal("the poison transport never panicked: the test tests nothing")
	}

	q, err := st.Quarantined(ctx, store.ExportFilter{Tenant: standard})
	if err != nil || len(q) != 1 || q[0].Key != poison.Key || !strings.Contains(q[0].LastError, "panic: assignment to entry in nil map") {
		t.Fatalf("quarantined: %+v, %v; want %s with its panic", q, err, poison.Key)
	}
	truth := sim.Truth()
	decided, err := st.Decided(ctx, store.ExportFilter{Tenant: standard})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range decided {
		if genuine := truth[d.Tenant+"/"+d.Key]; genuine != (d.Verdict == store.VerdictVerified) {
			t.Errorf("claim %s (%s, genuine=%v): %s", d.Key, d.Kind, genuine, d.Verdict)
		}
	}

	// Every batch of the tenant completed; theirs counts the quarantined claim.
	query := fmt.Sprintf("WorkflowType = '%s' AND TenantID = '%s'", workflows.TenantBatchWorkflow, standard)
	testenv.Eventually(t, 30*time.Second, time.Second, "the tenant's batches completed, one claim quarantined", func() (bool, string) {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			return false, err.Error()
		}
		quarantined := 0
		for _, e := range resp.Executions {
			if e.Status != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
				return false, e.Execution.WorkflowId + " " + e.Status.String()
			}
			var p workflows.Progress
			if err := c.GetWorkflow(ctx, e.Execution.WorkflowId, e.Execution.RunId).Get(ctx, &p); err != nil {
				return false, err.Error()
			}
			quarantined += p.Quarantined
		}
		return len(resp.Executions) > 0 && quarantined == 1, fmt.Sprintf("%d batches, %d quarantined", len(resp.Executions), quarantined)
	})
}

// A chunk reporting a quarantined claim: the batch counts it, goes on
// without it (it is neither re-checked nor handed back) and finishes.
func TestTenantBatchCountsQuarantinedClaims(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierStandard, TokenID: "platform", Verifiable: []int64{1, 2, 3},
	}, nil)
	// The first check, from stored evidence: claim 2's matching panics.
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return !in.Final })).
		Return(activities.VerifyResult{Verified: 1, Absent: []int64{3}, Quarantined: []activities.Poisoned{{ClaimID: 2, Reason: "panic: boom"}}}, nil).Once()
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(1, nil)
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.Final && in.StoredOnly })).
		Return(activities.VerifyResult{Absent: []int64{3}}, nil).Once()
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.Final && !in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			require.Equal(t, []int64{3}, in.ClaimIDs, "a quarantined claim is not re-checked")
			return activities.VerifyResult{Rejected: 1, Calls: 1}, nil
		}).Once()

	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, batchInput(1, 2, 3))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, workflows.Progress{Phase: "done", TenantID: "acme", TokenID: "platform", Total: 3, Verified: 1, Rejected: 1, Quarantined: 1, Calls: 1, Mode: "verify"}, p)
	env.AssertExpectations(t) // no DeferClaims: nothing handed back
}
