package workflows_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/workflows"
)

func TestDispatcherStartsOneBatchPerTenant(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.ClaimBatch, mock.Anything, mock.MatchedBy(func(in activities.ClaimBatchInput) bool {
		return in.Limit == 500 && in.Owner != "" && in.LeaseTTL == 10*time.Minute
	})).Return(activities.ClaimBatchResult{Claimed: 3, Groups: []activities.TenantGroup{
		{TenantID: "acme", ClaimIDs: []int64{1, 2}},
		{TenantID: "zeta", ClaimIDs: []int64{3}},
	}}, nil).Once()

	var started []workflows.TenantBatchInput
	env.OnWorkflow(workflows.TenantBatchWorkflow, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, in workflows.TenantBatchInput) (workflows.Progress, error) {
			started = append(started, in)
			return workflows.Progress{}, nil
		})

	env.ExecuteWorkflow(workflows.DispatcherWorkflow, workflows.DispatcherInput{BatchSize: 500, LeaseTTL: 10 * time.Minute})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.DispatchResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, 3, res.Claimed)
	require.Len(t, res.Children, 2)
	require.Regexp(t, `^batch/acme/\d{8}T\d{6}Z$`, res.Children[0])
	require.Regexp(t, `^batch/zeta/`, res.Children[1])
	require.Len(t, started, 2)
	slices.SortFunc(started, func(x, y workflows.TenantBatchInput) int { return strings.Compare(x.TenantID, y.TenantID) })
	require.Equal(t, []int64{1, 2}, started[0].ClaimIDs)
	require.Equal(t, started[0].LeaseOwner, started[1].LeaseOwner)
}

func TestDispatcherDoesNotWaitForItsChildren(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.ClaimBatch, mock.Anything, mock.Anything).Return(activities.ClaimBatchResult{Claimed: 2, Groups: []activities.TenantGroup{
		{TenantID: "acme", ClaimIDs: []int64{1, 2}},
	}}, nil)
	env.OnWorkflow(workflows.TenantBatchWorkflow, mock.Anything, mock.Anything).Return(workflows.Progress{}, errors.New("boom"))
	// A child that fails after it started is its own business (parent-close
	// policy abandon): the Dispatcher has already finished with it.
	env.ExecuteWorkflow(workflows.DispatcherWorkflow, workflows.DispatcherInput{BatchSize: 10, LeaseTTL: time.Minute})
	require.NoError(t, env.GetWorkflowError())
	var res workflows.DispatchResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Len(t, res.Children, 1)
	require.Empty(t, res.Failed)
}

func TestBatchWorkflowID(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 5, 0, 0, time.FixedZone("x", 3600))
	require.Equal(t, "batch/acme/20261128T110500Z", workflows.BatchWorkflowID("acme", at))
}

// Each batch runs in the mode the Governor answers for its tenant; when the
// Governor cannot be reached, premium tenants verify and standard ones run
// in the configured mode.
func TestDispatcherRunsEachBatchInTheGovernorsMode(t *testing.T) {
	groups := []activities.TenantGroup{
		{TenantID: "acme", ClaimIDs: []int64{1}, Tier: store.TierStandard},
		{TenantID: "prem", ClaimIDs: []int64{2}, Tier: store.TierPremium, TokenID: "tok-prem"},
	}
	run := func(t *testing.T, governor func(*testsuite.TestWorkflowEnvironment, *activities.Activities)) map[string]workflows.BatchSettings {
		env, a := newEnv(t)
		env.OnActivity(a.ClaimBatch, mock.Anything, mock.Anything).Return(activities.ClaimBatchResult{Claimed: 2, Groups: groups}, nil)
		governor(env, a)
		got := map[string]workflows.BatchSettings{}
		env.OnWorkflow(workflows.TenantBatchWorkflow, mock.Anything, mock.Anything).Return(
			func(ctx workflow.Context, in workflows.TenantBatchInput) (workflows.Progress, error) {
				got[in.TenantID] = in.Settings
				return workflows.Progress{}, nil
			})
		in := workflows.DispatcherInput{BatchSize: 10, LeaseTTL: time.Minute}
		in.Batch.Mode = workflows.ModeAuto
		env.ExecuteWorkflow(workflows.DispatcherWorkflow, in)
		require.NoError(t, env.GetWorkflowError())
		return got
	}
	t.Run("governor answers", func(t *testing.T) {
		got := run(t, func(env *testsuite.TestWorkflowEnvironment, a *activities.Activities) {
			env.OnActivity(a.ReportLoad, mock.Anything, mock.MatchedBy(func(in activities.ReportLoadInput) bool {
				return len(in.Tenants) == 2 && in.Tenants[1] == governor.TenantRef{ID: "prem", Tier: "premium", TokenID: "tok-prem"}
			})).Return(governor.Directive{Standard: governor.ModeHonor, Tenants: []governor.TenantMode{
				{Tenant: "acme", Mode: governor.ModeHonor, Reason: "arrivals 25000/h above 20000/h"},
				{Tenant: "prem", Mode: governor.ModeHonor, PlatformToken: true, Reason: "own token broken"},
			}}, nil).Once()
		})
		require.Equal(t, workflows.ModeHonor, got["acme"].Mode)
		require.Equal(t, "arrivals 25000/h above 20000/h", got["acme"].ModeReason)
		require.True(t, got["prem"].PlatformToken)
		require.Equal(t, workflows.ModeHonor, got["prem"].StandardMode)
	})
	t.Run("governor unreachable", func(t *testing.T) {
		got := run(t, func(env *testsuite.TestWorkflowEnvironment, a *activities.Activities) {
			env.OnActivity(a.ReportLoad, mock.Anything, mock.Anything).Return(governor.Directive{}, errors.New("governor down"))
		})
		require.Equal(t, workflows.ModeSample, got["acme"].Mode, "auto without the Governor means sampling")
		require.Equal(t, workflows.ModeVerify, got["prem"].Mode)
		require.False(t, got["prem"].PlatformToken)
	})
}
