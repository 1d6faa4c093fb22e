package workflows_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
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
