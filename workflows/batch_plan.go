package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/socialproof/verifier/activities"
	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
)

// plan loads the batch's plan (which token reads, which claims no API can
// prove, which users are risky), decides the unverifiable kinds by rule and
// publishes the token. An unknown tenant's claims are all handed back.
func (b *tenantBatch) plan(ctx workflow.Context) (activities.Plan, error) {
	var a *activities.Activities
	sctx := workflow.WithActivityOptions(ctx, storeActivityOptions)
	var plan activities.Plan
	in := activities.PlanInput{TenantID: b.in.TenantID, ClaimIDs: b.in.ClaimIDs, PlatformToken: b.s.PlatformToken, SplitRisky: true}
	if err := workflow.ExecuteActivity(sctx, a.PlanBatch, in).Get(ctx, &plan); err != nil {
		return plan, err
	}
	if !plan.TenantKnown {
		b.progress.Alert = "unknown tenant " + b.in.TenantID
		b.deferAll(b.in.ClaimIDs, graph.Permanent, "unknown tenant")
		return plan, nil
	}
	b.progress.TokenID = plan.TokenID
	b.progress.AlreadyDecided = plan.AlreadyDecided
	if plan.Tier == store.TierPremium && !plan.OwnToken && b.s.PlatformToken {
		b.progress.Alert = "own token broken: on the platform token (" + b.s.ModeReason + ")"
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, TokenIDKey.ValueSet(plan.TokenID)); err != nil {
		return plan, err
	}
	if len(plan.Unverifiable) > 0 {
		decisions := make([]store.Decision, len(plan.Unverifiable))
		for i, u := range plan.Unverifiable {
			decisions[i] = store.Decision{
				ClaimID: u.ClaimID, Verdict: store.VerdictUnverifiable, Method: activities.MethodRule,
				Evidence: fmt.Sprintf(`{"reason":"no Graph API read can prove %s"}`, u.Kind),
			}
		}
		n, err := b.record(ctx, decisions)
		b.progress.Unverifiable = n
		if err != nil {
			return plan, err
		}
	}
	return plan, nil
}

// fallBack takes the claims a premium tenant's own token failed on (broken,
// 190, or it cannot read the tenant's account): they go the standard way on
// the platform token, and the Governor moves the tenant there until the
// token works again. Nothing is rejected for it.
func (b *tenantBatch) fallBack(ctx workflow.Context, plan activities.Plan) []int64 {
	if !plan.OwnToken {
		return nil
	}
	moved, reason := b.takeTokenFailures()
	if len(moved) > 0 {
		b.alertGovernor(ctx, governor.TokenAlert{TokenID: plan.TokenID, Tenant: b.in.TenantID, Broken: true, Reason: reason})
		b.progress.Alert = "own token " + plan.TokenID + " failed (" + reason + "): " + fmt.Sprint(len(moved)) + " claims moved to the platform token"
		b.progress.FellBack += len(moved)
	}
	return moved
}

// takeTokenFailures removes from the deferrals the claims whose check failed
// on the token itself (broken, or no permission on the account) and returns
// them, with the first failure's reason.
func (b *tenantBatch) takeTokenFailures() (ids []int64, reason string) {
	kept := b.deferrals[:0]
	for _, d := range b.deferrals {
		if d.Class == graph.TokenBroken || d.Class == graph.Permission {
			ids = append(ids, d.ClaimID)
			if reason == "" {
				reason = d.Reason
			}
			continue
		}
		kept = append(kept, d)
	}
	b.deferrals = kept
	return ids, reason
}

// alertGovernor tells the Governor about the tenant's token. Without a
// Governor (a test, an old deployment) the batch goes on: it has already
// moved its own claims.
func (b *tenantBatch) alertGovernor(ctx workflow.Context, alert governor.TokenAlert) {
	err := workflow.SignalExternalWorkflow(ctx, governor.WorkflowID, "", governor.SignalTokenAlert, alert).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("governor not told about the token", "TokenID", alert.TokenID, "error", err)
	}
}
