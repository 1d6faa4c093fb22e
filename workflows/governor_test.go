package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/workflows"
)

func reportLoad(env *testsuite.TestWorkflowEnvironment, r policy.LoadReport, done func(policy.Directive, error)) {
	env.UpdateWorkflow(policy.UpdateReportLoad, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { done(policy.Directive{}, err) },
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			if err != nil {
				done(policy.Directive{}, err)
				return
			}
			done(v.(policy.Directive), nil)
		},
	}, r)
}

// The Governor follows the load into honor, obeys operators, moves a tenant
// with a broken token to the platform token and back once a probe finds it
// working, and carries all of it over continue-as-new.
func TestGovernorFollowsLoadOperatorsAndTokens(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	a := &activities.Activities{}
	env.RegisterActivity(a)
	env.RegisterWorkflowWithOptions(workflows.Governor, workflow.RegisterOptions{Name: workflows.GovernorWorkflow})
	probes := 0
	env.OnActivity(a.CheckToken, mock.Anything, activities.TokenCheckInput{TokenID: "tok-02", TenantID: "brand-02"}).Return(
		func(context.Context, activities.TokenCheckInput) (activities.TokenCheck, error) {
			probes++
			return activities.TokenCheck{Works: probes >= 2, Detail: "probe"}, nil
		})

	tenants := []policy.TenantRef{{ID: "brand-01", Tier: "standard"}, {ID: "brand-02", Tier: "premium", TokenID: "tok-02"}}
	var directives []policy.Directive
	collect := func(d policy.Directive, err error) {
		require.NoError(t, err)
		directives = append(directives, d)
	}
	// One report a minute, 100 more standard claims open each time: above
	// 150 they are backing up.
	for i := 1; i <= 6; i++ {
		env.RegisterDelayedCallback(func() {
			reportLoad(env, policy.LoadReport{Received: int64(100 * i), Open: 100 * i, OpenStandard: 100 * i, Tenants: tenants}, collect)
		}, time.Duration(i)*time.Minute)
	}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(policy.SignalTokenAlert, policy.TokenAlert{TokenID: "tok-02", Tenant: "brand-02", Broken: true, Reason: "code 190"})
		env.SignalWorkflow(policy.SignalSetMode, policy.SetMode{Mode: "verify", Tenant: "brand-01", Reason: "launch day"})
		env.SignalWorkflow(policy.SignalSetThresholds, policy.LoadThresholds{QueueWarning: 40})
		env.SignalWorkflow(policy.SignalSetMode, policy.SetMode{Mode: "sometimes", Tenant: "*"})
	}, 4*time.Minute+30*time.Second)
	var mid policy.GovernorView
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(policy.QueryGovernorState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 5*time.Minute+30*time.Second)

	env.ExecuteWorkflow(workflows.GovernorWorkflow, policy.GovernorStart{
		Speed: 1, RunLength: 6, ProbeEvery: policy.Duration(time.Minute),
		Thresholds: policy.LoadThresholds{HonorOpenAbove: 150, HonorOpenBelow: 50, MinDwell: policy.Duration(time.Minute), QueueWarning: 100},
	})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "after RunLength reports it continues as new: %v", env.GetWorkflowError())
	require.Len(t, directives, 6)

	// Minute 1: 100 open, verify; from minute 2, 200 open is above 150: honor.
	require.Equal(t, policy.ModeVerify, directives[0].Standard)
	require.Equal(t, policy.ModeHonor, directives[1].Standard)
	require.Len(t, directives[1].Changes, 1)
	require.Equal(t, "honor", directives[1].Changes[0].To)
	require.Equal(t, policy.ModeHonor, directives[1].For("brand-01").Mode)
	require.Equal(t, policy.ModeVerify, directives[1].For("brand-02").Mode, "premium on its own token is not dropped to honor")

	// After the signals: brand-01 overridden; brand-02 on the platform token, in honor.
	d5 := directives[4]
	require.Equal(t, policy.ModeVerify, d5.For("brand-01").Mode)
	require.True(t, d5.For("brand-02").PlatformToken)
	require.Equal(t, policy.ModeHonor, d5.For("brand-02").Mode)
	require.Equal(t, 40, mid.Thresholds.QueueWarning)
	require.Contains(t, mid.Refused, "sometimes", "a bad set-mode is refused and shown")
	require.Len(t, mid.Alerts, 2, "queue (500 open > 40) and the broken token: %v", mid.Alerts)

	// The second probe finds the token working: brand-02 is back on it.
	require.False(t, directives[5].For("brand-02").PlatformToken, "probes %d", probes)
	require.Equal(t, policy.ModeVerify, directives[5].For("brand-02").Mode)
}
