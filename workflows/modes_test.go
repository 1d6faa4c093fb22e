package workflows_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/workflows"
)

// In honor mode a batch approves its claims without a call, except those
// of risky users, which are verified one by one, and those stored evidence
// (webhooks, other batches' reads) proves, which are verified for free.
func TestHonorModeApprovesWithoutCallsButVerifiesRiskyUsers(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierStandard, TokenID: "platform",
		Verifiable: []int64{1, 2, 3, 4}, Risky: []int64{5},
	}, nil)
	var verified, stored []int64
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			if in.StoredOnly && !slices.Contains(in.ClaimIDs, 5) {
				// A webhook proved claim 2; the rest have no stored evidence.
				require.False(t, in.Final, "honor's stored check rejects nothing")
				stored = append(stored, in.ClaimIDs...)
				return activities.VerifyResult{Verified: 1, Absent: []int64{1, 3, 4}}, nil
			}
			verified = append(verified, in.ClaimIDs...)
			return activities.VerifyResult{Verified: len(in.ClaimIDs), Calls: len(in.ClaimIDs)}, nil
		})
	var approved []store.Decision
	env.OnActivity(a.RecordVerdicts, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ds []store.Decision) (int, error) {
			approved = append(approved, ds...)
			return len(ds), nil
		})
	in := batchInput(1, 2, 3, 4, 5)
	in.Settings.Mode, in.Settings.ModeReason = workflows.ModeHonor, "arrivals 25000/h above 20000/h"
	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, []int64{5}, verified, "only the risky user's claim costs a call")
	require.Equal(t, []int64{1, 2, 3, 4}, stored, "stored evidence is looked at before approving on honor")
	require.Equal(t, 3, p.ApprovedOnHonor)
	require.Equal(t, 2, p.Verified, "the risky claim by a read, claim 2 by its webhook")
	require.Equal(t, "honor", p.Mode)
	require.Len(t, approved, 3)
	for _, d := range approved {
		require.Equal(t, store.VerdictApprovedOnHonor, d.Verdict)
		require.Equal(t, activities.MethodHonor, d.Method)
		require.Contains(t, d.Evidence, "25000/h")
	}
}

// A premium tenant's own token breaks mid-batch: the claims it could not
// check move to the platform token (in the standard tenants' mode) and the
// Governor is told; nothing is rejected or handed back.
func TestPremiumBatchFallsBackToThePlatformToken(t *testing.T) {
	env, a := newEnv(t)
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierPremium, TokenID: "tok-acme", OwnToken: true, PlatformTokenID: "platform",
		Verifiable: []int64{1, 2, 3, 4},
	}, nil)
	byToken := map[string][]int64{}
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			if in.StoredOnly {
				return activities.VerifyResult{Absent: in.ClaimIDs}, nil // nothing stored: read on the re-check
			}
			byToken[in.TokenID] = append(byToken[in.TokenID], in.ClaimIDs...)
			if in.TokenID == "tok-acme" && in.ClaimIDs[0] == 3 {
				return activities.VerifyResult{Deferred: []activities.Failed{
					{ClaimID: 3, Class: graph.TokenBroken, Reason: "code 190"},
					{ClaimID: 4, Class: graph.TokenBroken, Reason: "not called: code 190"},
				}}, nil
			}
			return activities.VerifyResult{Verified: len(in.ClaimIDs), Calls: len(in.ClaimIDs)}, nil
		})
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(1, nil)
	var alert governor.TokenAlert
	env.OnSignalExternalWorkflow(mock.Anything, governor.WorkflowID, "", governor.SignalTokenAlert, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			alert = arg.(governor.TokenAlert)
			return nil
		}).Once()
	in := batchInput(1, 2, 3, 4)
	in.Settings.Mode, in.Settings.StandardMode = workflows.ModeVerify, workflows.ModeVerify
	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	require.Equal(t, []int64{3, 4}, byToken["platform"])
	require.Equal(t, 4, p.Verified)
	require.Equal(t, 0, p.Deferred+p.Rejected)
	require.Equal(t, 2, p.FellBack)
	require.Contains(t, p.Alert, "tok-acme")
	require.Equal(t, governor.TokenAlert{TokenID: "tok-acme", Tenant: "acme", Broken: true, Reason: "token_broken: code 190"}, alert)
}
