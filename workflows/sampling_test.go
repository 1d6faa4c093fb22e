package workflows_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/workflows"
)

// sampleBatch runs a TenantBatch in sample mode over n verifiable claims of a
// standard tenant; isFalse says which claims have no evidence. It returns
// the progress, the ids checked against Meta, and the approved decisions.
func sampleBatch(t *testing.T, n int, isFalse func(id int64) bool) (workflows.Progress, []int64, []store.Decision) {
	env, a := newEnv(t)
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	env.OnActivity(a.PlanBatch, mock.Anything, mock.Anything).Return(activities.Plan{
		TenantKnown: true, Tier: store.TierStandard, TokenID: "platform", Verifiable: ids,
	}, nil)
	var checked []int64
	env.OnActivity(a.VerifyClaims, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
			var r activities.VerifyResult
			for _, id := range in.ClaimIDs {
				if !in.Final {
					checked = append(checked, id)
				}
				switch {
				case !isFalse(id):
					r.Verified++
				case in.Final:
					r.Rejected++
				default:
					r.Absent = append(r.Absent, id)
				}
			}
			r.Calls = len(in.ClaimIDs)
			return r, nil
		})
	env.OnActivity(a.ExtendLease, mock.Anything, mock.Anything).Return(1, nil).Maybe()
	var approved []store.Decision
	env.OnActivity(a.RecordVerdicts, mock.Anything, mock.Anything).Return(
		func(_ context.Context, ds []store.Decision) (int, error) {
			approved = append(approved, ds...)
			return len(ds), nil
		}).Maybe()
	in := batchInput(ids...)
	in.Settings.Mode = workflows.ModeSample
	env.ExecuteWorkflow(workflows.TenantBatchWorkflow, in)
	require.NoError(t, env.GetWorkflowError())
	var p workflows.Progress
	require.NoError(t, env.GetWorkflowResult(&p))
	return p, checked, approved
}

func TestSampleModeApprovesACleanBatchOnItsSample(t *testing.T) {
	p, checked, approved := sampleBatch(t, 500, func(int64) bool { return false })
	require.Equal(t, "approve", p.SampleVerdict)
	require.Equal(t, 60, p.Sampled, "20 first, then 20 at a time until 51 clean claims rule out 15%")
	require.Len(t, checked, 60)
	require.Len(t, approved, 440)
	require.Equal(t, 440, p.ApprovedBySample)
	for _, d := range approved {
		require.Equal(t, store.VerdictApprovedBySample, d.Verdict)
		require.Equal(t, activities.MethodSample, d.Method)
		require.NotContains(t, checked, d.ClaimID, "a sampled claim approved by its own sample")
	}
	require.Contains(t, approved[0].Evidence, `"sampled":60`)
}

func TestSampleModeEscalatesABadBatchAndRejectsItsFalseClaims(t *testing.T) {
	// 40% of the batch is false.
	p, checked, approved := sampleBatch(t, 500, func(id int64) bool { return id%5 < 2 })
	require.Equal(t, "escalate", p.SampleVerdict)
	require.Empty(t, approved, "an escalated batch approves nothing wholesale")
	require.Len(t, checked, 500, "escalation verifies the whole batch")
	require.Equal(t, 300, p.Verified)
	require.Equal(t, 200, p.Rejected)
	slices.Sort(checked)
	require.Equal(t, int64(1), checked[0])
}

func TestSampleIsDrawnFromTheWorkflowsIdentity(t *testing.T) {
	_, first, _ := sampleBatch(t, 500, func(int64) bool { return false })
	_, second, _ := sampleBatch(t, 500, func(int64) bool { return false })
	require.Equal(t, first, second, "the same workflow id draws the same sample")
	sorted := slices.Clone(first)
	slices.Sort(sorted)
	require.NotEqual(t, sorted, first[:len(sorted)], "the sample is not the first ids in order")
}
