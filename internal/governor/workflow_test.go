package governor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/internal/governor"
)

func reportLoad(env *testsuite.TestWorkflowEnvironment, r governor.LoadReport, done func(governor.Directive, error)) {
	env.UpdateWorkflow(governor.UpdateReportLoad, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) { done(governor.Directive{}, err) },
		OnAccept: func() {},
		OnComplete: func(v any, err error) {
			if err != nil {
				done(governor.Directive{}, err)
				return
			}
			done(v.(governor.Directive), nil)
		},
	}, r)
}

// The Governor follows the load into honor, obeys operators, moves a tenant
// with a broken token to the platform token and back once a probe finds it
// working, and carries all of it over continue-as-new.
func TestGovernorFollowsLoadOperatorsAndTokens(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(governor.Workflow, workflow.RegisterOptions{Name: governor.WorkflowType})
	// The probe is the tokens package's activity, known here by its name.
	probes := 0
	env.RegisterActivityWithOptions(func(_ context.Context, in governor.TokenCheckInput) (governor.TokenCheck, error) {
		require.Equal(t, governor.TokenCheckInput{TokenID: "tok-02", TenantID: "brand-02"}, in)
		probes++
		return governor.TokenCheck{Works: probes >= 2, Detail: "probe"}, nil
	}, activity.RegisterOptions{Name: governor.ActivityCheckToken})

	tenants := []governor.TenantRef{{ID: "brand-01", Tier: "standard"}, {ID: "brand-02", Tier: "premium", TokenID: "tok-02"}}
	var directives []governor.Directive
	collect := func(d governor.Directive, err error) {
		require.NoError(t, err)
		directives = append(directives, d)
	}
	// One report a minute, 100 more standard claims open each time: above
	// 150 they are backing up.
	for i := 1; i <= 6; i++ {
		env.RegisterDelayedCallback(func() {
			reportLoad(env, governor.LoadReport{Received: int64(100 * i), Open: 100 * i, OpenStandard: 100 * i, Tenants: tenants}, collect)
		}, time.Duration(i)*time.Minute)
	}
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(governor.SignalTokenAlert, governor.TokenAlert{TokenID: "tok-02", Tenant: "brand-02", Broken: true, Reason: "code 190"})
		env.SignalWorkflow(governor.SignalSetMode, governor.SetMode{Mode: "verify", Tenant: "brand-01", Reason: "launch day"})
		env.SignalWorkflow(governor.SignalSetThresholds, governor.LoadThresholds{QueueWarning: 40})
		env.SignalWorkflow(governor.SignalSetMode, governor.SetMode{Mode: "sometimes", Tenant: "*"})
	}, 4*time.Minute+30*time.Second)
	var mid governor.View
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(governor.QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 5*time.Minute+30*time.Second)

	env.ExecuteWorkflow(governor.WorkflowType, governor.Start{
		Speed: 1, RunLength: 6, ProbeEvery: governor.Duration(time.Minute),
		Thresholds: governor.LoadThresholds{HonorOpenAbove: 150, HonorOpenBelow: 50, MinDwell: governor.Duration(time.Minute), QueueWarning: 100},
	})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "after RunLength reports it continues as new: %v", env.GetWorkflowError())
	require.Len(t, directives, 6)

	// Minute 1: 100 open, verify; from minute 2, 200 open is above 150: honor.
	require.Equal(t, governor.ModeVerify, directives[0].Standard)
	require.Equal(t, governor.ModeHonor, directives[1].Standard)
	require.Len(t, directives[1].Changes, 1)
	require.Equal(t, "honor", directives[1].Changes[0].To)
	require.Equal(t, governor.ModeHonor, directives[1].For("brand-01").Mode)
	require.Equal(t, governor.ModeVerify, directives[1].For("brand-02").Mode, "premium on its own token is not dropped to honor")

	// After the signals: brand-01 overridden; brand-02 on the platform token, in honor.
	d5 := directives[4]
	require.Equal(t, governor.ModeVerify, d5.For("brand-01").Mode)
	require.True(t, d5.For("brand-02").PlatformToken)
	require.Equal(t, governor.ModeHonor, d5.For("brand-02").Mode)
	require.Equal(t, 40, mid.Thresholds.QueueWarning)
	require.Contains(t, mid.Refused, "sometimes", "a bad set-mode is refused and shown")
	require.Len(t, mid.Alerts, 2, "queue (500 open > 40) and the broken token: %v", mid.Alerts)

	// The second probe finds the token working: brand-02 is back on it.
	require.False(t, directives[5].For("brand-02").PlatformToken, "probes %d", probes)
	require.Equal(t, governor.ModeVerify, directives[5].For("brand-02").Mode)
}
