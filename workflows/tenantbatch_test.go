package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/workflows"
)

func newEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	env, a := newBareEnv()
	// No other batch reads the same targets unless a test says otherwise.
	env.OnActivity(a.BehindReaders, mock.Anything, mock.Anything).Return([]int64(nil), nil).Maybe()
	return env, a
}

// newBareEnv registers the workflows and activities, with no activity
// answered yet.
func newBareEnv() (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	a := &activities.Activities{}
	env.RegisterActivity(a)
	env.RegisterWorkflowWithOptions(workflows.TenantBatch, workflow.RegisterOptions{Name: workflows.TenantBatchWorkflow})
	env.RegisterWorkflowWithOptions(workflows.Dispatcher, workflow.RegisterOptions{Name: workflows.DispatcherWorkflow})
	return env, a
}

func batchInput(ids ...int64) workflows.TenantBatchInput {
	s := workflows.DefaultBatchSettings()
	s.ChunkSize = 2
	return workflows.TenantBatchInput{TenantID: "acme", ClaimIDs: ids, LeaseOwner: "dispatch/run", LeaseTTL: 10 * time.Minute, Settings: s}
}

func TestTenantBatchDecidesByRuleVerifiesAndRechecksAbsentClaims(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, activities.PlanInput{TenantID: "acme", ClaimIDs: []int64{1, 2, 3, 4}, SplitRisky: true}).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierStandard, TokenID: "platform",
		Verifiable:   []int64{1, 2, 3},
		Unverifiable: []activities.Unverifiable{{ClaimID: 4, Kind: claim.IGFollow}},
	}, nil).Once()
	env.OnActivity(a.RecordVerdicts, mock.Anything, mock.MatchedBy(func(ds []store.Decision) bool {
		return len(ds) == 1 && ds[0].ClaimID == 4 && ds[0].Verdict == store.VerdictUnverifiable
	})).Return(1, nil).Once()

	// The first check decides from stored evidence, in one activity, with
	// no call: a webhook proved claim 1.
	var recheckAt time.Time
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool {
		return !in.Final && in.StoredOnly && len(in.ClaimIDs) == 3
	})).Return(activities.VerifyResult{Verified: 1, ByWebhook: 1, Absent: []int64{2, 3}}, nil).Once()
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(1, nil).Once()
	// After the grace delay, stored evidence first, with no permit: a
	// webhook that came meanwhile could prove them; none did here.
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.Final && in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			require.Equal(t, []int64{2, 3}, in.ClaimIDs)
			return activities.VerifyResult{Absent: []int64{2, 3}}, nil
		}).Once()
	// Then one read settles the rest: 3 is proven, 2 is not.
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.Final && !in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			recheckAt = env.Now()
			require.Equal(t, []int64{2, 3}, in.ClaimIDs)
			return activities.VerifyResult{Verified: 1, Rejected: 1, Calls: 2}, nil
		}).Once()

	start := env.Now()
	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, batchInput(1, 2, 3, 4))
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, workflows.Progress{Phase: "done", TenantID: "acme", TokenID: "platform", Total: 4, Unverifiable: 1, Verified: 2, Rejected: 1, Calls: 2, Mode: "verify"}, p)
	require.GreaterOrEqual(t, recheckAt.Sub(start), workflows.DefaultBatchSettings().RecheckDelay, "absent claims are re-checked only after the grace delay")
	env.AssertExpectations(t)
}

func TestTenantBatchHandsBackClaimsItCannotCheck(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, TokenID: "tok-acme", Verifiable: []int64{1, 2, 3, 4, 5, 6},
	}, nil)
	// The first check finds nothing stored; the reads come on the re-check.
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			return activities.VerifyResult{Absent: in.ClaimIDs}, nil
		}).Twice() // the first check and the re-check's stored pass
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(1, nil)
	// Chunk {1,2}: a transient failure for 2 that succeeds on the next pass.
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.ClaimIDs[0] == 1 && !in.StoredOnly })).
		Return(activities.VerifyResult{Verified: 1, Deferred: []activities.Failed{{ClaimID: 2, Class: graph.Transient}}}, nil).Once()
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.ClaimIDs[0] == 2 })).
		Return(activities.VerifyResult{Verified: 1}, nil).Once()
	// Chunk {3,4}: throttled with Meta's regain time.
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.ClaimIDs[0] == 3 })).
		Return(activities.VerifyResult{Deferred: []activities.Failed{
			{ClaimID: 3, Class: graph.Throttled, RetryAfter: 7 * time.Minute},
			{ClaimID: 4, Class: graph.Throttled, RetryAfter: 7 * time.Minute},
		}}, nil).Once()
	// Chunk {5,6}: the token is broken; the activity itself keeps failing for good.
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.ClaimIDs[0] == 5 })).
		Return(activities.VerifyResult{Deferred: []activities.Failed{
			{ClaimID: 5, Class: graph.TokenBroken, Reason: "code 190"},
			{ClaimID: 6, Class: graph.Permission, Reason: "code 10"},
		}}, nil).Once()

	var deferred activities.DeferInput
	env.OnActivity(a.DeferClaims, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeferInput) (int, error) {
		deferred = in
		return len(in.Deferrals), nil
	}).Once()

	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, batchInput(1, 2, 3, 4, 5, 6))
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, 2, p.Verified)
	require.Equal(t, 0, p.Rejected, "no failure of Meta's may reject a claim")
	require.Equal(t, 4, p.Deferred)
	require.Contains(t, p.Alert, "tok-acme is broken")

	after := map[int64]time.Duration{}
	for _, d := range deferred.Deferrals {
		after[d.ClaimID] = d.After
	}
	s := workflows.DefaultBatchSettings()
	require.Equal(t, map[int64]time.Duration{3: 7 * time.Minute, 4: 7 * time.Minute, 5: s.BackoffTokenBroken, 6: s.BackoffPermission}, after)
	require.Equal(t, "dispatch/run", deferred.Owner)
}

func TestTenantBatchUnknownTenantLosesNothing(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{TenantKnown: false}, nil)
	env.OnActivity(a.DeferClaims, mock.Anything, mock.MatchedBy(func(in activities.DeferInput) bool { return len(in.Deferrals) == 2 })).Return(2, nil).Once()
	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, batchInput(7, 8))
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, 2, p.Deferred)
	require.Contains(t, p.Alert, "unknown tenant")
	env.AssertExpectations(t)
}

func TestTenantBatchAnswersProgressQuery(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{TenantKnown: true, TokenID: "platform", Verifiable: []int64{1}}, nil)
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.Anything).Return(activities.VerifyResult{Absent: []int64{1}, Calls: 1}, nil).Once()
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(1, nil)
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.Anything).Return(activities.VerifyResult{Rejected: 1, Calls: 1}, nil).Once()
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryProgress)
		require.NoError(t, err)
		var p workflows.Progress
		require.NoError(t, v.Get(&p))
		require.Equal(t, "awaiting-recheck", p.Phase)
		require.Equal(t, 1, p.AwaitingRecheck)
	}, time.Minute)
	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, batchInput(1))
	require.NoError(t, env.GetWorkflowError())
}

// A limiter with no permit to give for longer than the lease: the read
// hands its claims back with the limiter's time, and the batch waits for
// it keeping its claims leased, or the next dispatch would lease them to a
// second batch that would queue for the same permits. Each run looks at
// stored evidence first (inside the activity), so no separate stored pass
// is needed while it waits.
func TestTenantBatchKeepsClaimsLeasedWhileTheLimiterIsBusy(t *testing.T) {
	env, a := newEnv(t)
	in := batchInput(1, 2)
	leaseEnd := env.Now().Add(in.LeaseTTL)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierStandard, TokenID: "platform", Verifiable: []int64{1, 2},
	}, nil)
	storedChecks := 0
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			storedChecks++
			return activities.VerifyResult{Absent: in.ClaimIDs}, nil
		})
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ExtendLeaseInput) (int, error) {
		require.Equal(t, []int64{1, 2}, in.ClaimIDs)
		leaseEnd = env.Now().Add(in.TTL)
		return len(in.ClaimIDs), nil
	})
	// Three answers of "no permit before 25 minutes from now" (the lease
	// is 10), then the read.
	reads := 0
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return !in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			require.True(t, env.Now().Before(leaseEnd), "claims unleased at %v (lease ended %v)", env.Now(), leaseEnd)
			require.Equal(t, []int64{1, 2}, in.ClaimIDs)
			reads++
			if reads <= 3 {
				return activities.VerifyResult{NeedPermits: in.ClaimIDs, RetryAt: env.Now().Add(25 * time.Minute)}, nil
			}
			return activities.VerifyResult{Verified: 2, Calls: 1}, nil
		})

	start := env.Now()
	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, 2, p.Verified)
	require.Equal(t, 4, reads)
	require.Equal(t, 2, storedChecks, "the first check and the re-check's stored pass")
	require.GreaterOrEqual(t, env.Now().Sub(start), 75*time.Minute, "it waited for the limiter's times")
}

// An operator paused the token's limiter: the claims go back to pending,
// never rejected, and the batch ends.
func TestTenantBatchHandsClaimsBackWhenTheLimiterIsPaused(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierStandard, TokenID: "platform", Verifiable: []int64{1, 2},
	}, nil)
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			return activities.VerifyResult{Absent: in.ClaimIDs}, nil
		})
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(2, nil)
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return !in.StoredOnly })).
		Return(activities.VerifyResult{NeedPermits: []int64{1, 2}, Paused: true}, nil).Once()
	var deferred activities.DeferInput
	env.OnActivity(a.DeferClaims, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.DeferInput) (int, error) {
		deferred = in
		return len(in.Deferrals), nil
	}).Once()

	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, batchInput(1, 2))
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, 0, p.Rejected)
	require.Equal(t, 2, p.Deferred)
	for _, d := range deferred.Deferrals {
		require.Equal(t, graph.Throttled, d.Class)
		require.Contains(t, d.Reason, "paused")
	}
	env.AssertExpectations(t)
}

// Evidence that arrives during the grace delay (a late webhook, another
// batch's read) decides claims at the re-check without a permit: only the
// claims it leaves open wait for the token.
func TestTenantBatchRecheckDecidesFromStoredEvidenceBeforeReading(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierStandard, TokenID: "platform", Verifiable: []int64{1, 2, 3},
	}, nil)
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.StoredOnly && !in.Final })).
		Return(activities.VerifyResult{Absent: []int64{1, 2, 3}}, nil).Once()
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(3, nil)
	// 1 is proven by a webhook that came during the grace delay, 2 is
	// disproven by a read another batch made after its grace delay.
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.StoredOnly && in.Final })).
		Return(activities.VerifyResult{Verified: 1, ByWebhook: 1, Rejected: 1, Absent: []int64{3}}, nil).Once()
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return !in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			require.Equal(t, []int64{3}, in.ClaimIDs, "only the undecided claim is read")
			return activities.VerifyResult{Verified: 1, Calls: 1}, nil
		}).Once()

	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, batchInput(1, 2, 3))
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, 2, p.Verified)
	require.Equal(t, 1, p.Rejected)
	require.Equal(t, 1, p.Calls)
	env.AssertExpectations(t)
}

// Two batches holding claims on one target would each page through the same
// comments. A re-check leaves a target to the batch holding an older claim
// on it, and decides from what that read stored: claim 2 is never read
// here; claim 3 is read once the other batch is done with its target.
func TestTenantBatchRecheckWaitsForAnotherBatchsReadOfTheTarget(t *testing.T) {
	env, a := newBareEnv() // BehindReaders answers are this test's
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierStandard, TokenID: "platform", Verifiable: []int64{1, 2, 3},
	}, nil)
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.StoredOnly && !in.Final })).
		Return(activities.VerifyResult{Absent: []int64{1, 2, 3}}, nil).Once()
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ExtendLeaseInput) (int, error) {
		return len(in.ClaimIDs), nil
	})
	// The other batch holds older claims on the targets of 2 and 3 until
	// its read is stored: it disproves 2, and its lease on 3's target ends.
	otherReadDone := false
	env.OnActivity(a.BehindReaders, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.BehindReadersInput) ([]int64, error) {
		require.Equal(t, "dispatch/run", in.Owner)
		var behind []int64
		for _, id := range in.ClaimIDs {
			if !otherReadDone && (id == 2 || id == 3) {
				behind = append(behind, id)
			}
		}
		return behind, nil
	})
	storedFinal := 0
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return in.StoredOnly && in.Final })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			storedFinal++
			if storedFinal == 1 {
				return activities.VerifyResult{Absent: in.ClaimIDs}, nil // nothing stored yet
			}
			require.ElementsMatch(t, []int64{2, 3}, in.ClaimIDs, "only the claims behind the other batch wait")
			otherReadDone = true
			return activities.VerifyResult{Rejected: 1, Absent: []int64{3}}, nil
		})
	var read [][]int64
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.MatchedBy(func(in activities.VerifyInput) bool { return !in.StoredOnly })).
		Return(func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			read = append(read, in.ClaimIDs)
			return activities.VerifyResult{Verified: len(in.ClaimIDs), Calls: 1}, nil
		})

	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, batchInput(1, 2, 3))
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, [][]int64{{1}, {3}}, read, "claim 2 is decided by the other batch's read, 3 read after it")
	require.Equal(t, 2, p.Verified)
	require.Equal(t, 1, p.Rejected)
	require.Equal(t, 2, storedFinal)
}
