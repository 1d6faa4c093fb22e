package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/graph"
)

// readChunk checks a chunk with Graph reads. The activity negotiates its
// permits with the token's limiter itself; when the limiter has none to
// give soon enough it hands the unchecked claims back with the time to ask
// again, and the batch waits for it here, durably, keeping the lease, then
// runs them again (each run looks at stored evidence first: another
// batch's read may have settled them meanwhile). A paused limiter hands
// the claims back to pending.
func (b *tenantBatch) readChunk(ctx workflow.Context, tokenID string, ids []int64, final bool) activities.VerifyResult {
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, graphActivityOptions)
	in := activities.VerifyInput{
		TenantID: b.in.TenantID, TokenID: tokenID, ClaimIDs: ids,
		LeaseOwner: b.in.LeaseOwner, Final: final, Grace: b.s.RecheckDelay,
	}
	var total activities.VerifyResult
	for {
		// The claims stay leased for as long as the activity may run.
		b.holdLease(ctx, workflow.Now(ctx).Add(graphActivityOptions.StartToCloseTimeout))
		var r activities.VerifyResult
		if err := workflow.ExecuteActivity(actx, a.VerifyClaims, in).Get(ctx, &r); err != nil {
			workflow.GetLogger(ctx).Warn("VerifyClaims failed; claims go back to pending", "claims", len(in.ClaimIDs), "error", err)
			r = failedAs(in.ClaimIDs, graph.Transient, "verify activity failed")
		}
		b.count(r)
		total.Absent = append(total.Absent, r.Absent...)
		total.Deferred = append(total.Deferred, r.Deferred...)
		if len(r.NeedPermits) == 0 {
			return total
		}
		if r.Paused {
			total.Deferred = append(total.Deferred, failedAs(r.NeedPermits, graph.Throttled, "limiter granted no permits (paused)").Deferred...)
			return total
		}
		in.ClaimIDs = r.NeedPermits
		if wait := r.RetryAt.Sub(workflow.Now(ctx)); wait > 0 {
			// Other callers hold the permits due soon: ask again when ours come.
			b.holdLease(ctx, r.RetryAt)
			if err := workflow.Sleep(ctx, wait); err != nil {
				total.Deferred = append(total.Deferred, failedAs(in.ClaimIDs, graph.Transient, "canceled").Deferred...)
				return total
			}
		}
	}
}
