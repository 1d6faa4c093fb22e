package limiter_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/limiter"
)

func limiterEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(limiter.Workflow, workflow.RegisterOptions{Name: limiter.WorkflowType})
	return env
}

// reserve sends the reserve Update; done receives its answer once the
// workflow has handled it.
func reserve(env *testsuite.TestWorkflowEnvironment, req limiter.ReserveRequest, done func(limiter.ReserveResponse, error)) {
	env.UpdateWorkflow(limiter.UpdateReserve, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { done(limiter.ReserveResponse{}, err) },
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			if err != nil {
				done(limiter.ReserveResponse{}, err)
				return
			}
			done(v.(limiter.ReserveResponse), nil)
		},
	}, req)
}

func queryState(t *testing.T, env *testsuite.TestWorkflowEnvironment) limiter.State {
	t.Helper()
	v, err := env.QueryWorkflow(limiter.QueryState)
	require.NoError(t, err)
	var st limiter.State
	require.NoError(t, v.Get(&st))
	return st
}

func TestLimiterGrantsPacedPermitsAndObeysOperators(t *testing.T) {
	env := limiterEnv()
	start := env.Now()
	var first, refused, whilePaused, afterBlock limiter.ReserveResponse
	var refusedErr error
	env.RegisterDelayedCallback(func() {
		// 60 calls an hour: a permit a minute; the horizon (3 minutes) bounds what is out.
		reserve(env, limiter.ReserveRequest{N: 10, Class: limiter.Verify}, func(r limiter.ReserveResponse, err error) {
			require.NoError(t, err)
			first = r
		})
		reserve(env, limiter.ReserveRequest{N: 0}, func(r limiter.ReserveResponse, err error) { refused, refusedErr = r, err })
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(limiter.SignalPause, nil)
	}, 2*time.Second)
	env.RegisterDelayedCallback(func() {
		reserve(env, limiter.ReserveRequest{N: 1, Class: limiter.Verify}, func(r limiter.ReserveResponse, err error) {
			require.NoError(t, err)
			whilePaused = r
		})
	}, 3*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(limiter.SignalResume, nil)
		env.SignalWorkflow(limiter.SignalSetBudget, limiter.BudgetSetting{Calls: 120, Window: "1h"})
		// A throttle with Meta's regain time stops the token.
		env.SignalWorkflow(limiter.SignalReport, limiter.UsageReport{Reports: []limiter.Report{
			{At: env.Now(), UsagePercent: 100, Throttled: true, RegainAfter: 10 * time.Minute},
		}})
	}, 4*time.Second)
	var st limiter.State
	env.RegisterDelayedCallback(func() {
		st = queryState(t, env)
		reserve(env, limiter.ReserveRequest{N: 1, Class: limiter.Verify}, func(r limiter.ReserveResponse, err error) {
			require.NoError(t, err)
			afterBlock = r
		})
	}, 5*time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, 6*time.Second)
	env.ExecuteWorkflow(limiter.WorkflowType, limiter.StartInput{TokenID: "tok", Budget: limiter.BudgetSetting{Calls: 60, Window: "1h"}, Speed: 1})
	require.True(t, env.IsWorkflowCompleted())

	require.Len(t, first.Permits, 4, "permits beyond the horizon are not handed out")
	require.Equal(t, time.Minute, first.Permits[1].At.Sub(first.Permits[0].At))
	require.Error(t, refusedErr, "a reservation of 0 permits is refused: %+v", refused)
	require.True(t, whilePaused.Paused)
	require.Empty(t, whilePaused.Permits)
	require.False(t, st.Paused)
	require.Equal(t, limiter.BudgetSetting{Calls: 120, Window: "1h"}, st.Budget)
	require.WithinDuration(t, start.Add(4*time.Second+10*time.Minute), st.BlockedUntil, 2*time.Second)
	require.NotNil(t, st.LastReport)
	require.Equal(t, 3, st.QueuedVerify, "the first permit is due, three are queued")
	// Blocked, with permits still out: nothing now, come back when the
	// block's end is within the horizon.
	require.Empty(t, afterBlock.Permits)
	require.False(t, afterBlock.RetryAt.Before(st.BlockedUntil.Add(-3*time.Minute)), "retry at %v during the block", afterBlock.RetryAt)
}

func TestLimiterContinuesAsNewWithItsState(t *testing.T) {
	env := limiterEnv()
	env.RegisterDelayedCallback(func() {
		reserve(env, limiter.ReserveRequest{N: 3, Class: limiter.Verify}, func(_ limiter.ReserveResponse, err error) { require.NoError(t, err) })
		env.SignalWorkflow(limiter.SignalSetBudget, limiter.BudgetSetting{Calls: 500, Window: "24h"})
	}, time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(limiter.SignalPause, nil)
	}, 2*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SetContinueAsNewSuggested(true)
		// Any event wakes the limiter to see the suggestion.
		env.SignalWorkflow(limiter.SignalReport, limiter.UsageReport{Reports: []limiter.Report{{At: env.Now(), UsagePercent: 7}}})
	}, 3*time.Second)
	env.ExecuteWorkflow(limiter.WorkflowType, limiter.StartInput{TokenID: "tok", Budget: limiter.BudgetSetting{Calls: 200, Window: "1h"}, Speed: 60})

	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "want continue-as-new, got %v", env.GetWorkflowError())
	var next limiter.StartInput
	require.NoError(t, converterDecode(can, &next))
	require.Equal(t, "tok", next.TokenID)
	require.Equal(t, limiter.BudgetSetting{Calls: 500, Window: "24h"}, next.Budget)
	require.NotNil(t, next.Carried)
	require.True(t, next.Carried.Bucket.Paused)
	// (A signal racing the continue-as-new itself is the server's to keep:
	// it refuses the run's completion and replays the task with the signal.
	// The test environment cannot show that.)
	require.Len(t, next.Carried.Bucket.Permits, 3, "granted permits carry over")
	require.Equal(t, int64(1), next.Carried.Reservations)
}

func converterDecode(can *workflow.ContinueAsNewError, v any) error {
	return converter.GetDefaultDataConverter().FromPayloads(can.Input, v)
}
