package activities

import (
	"cmp"
	"context"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/internal/store"
)

// governorQueryTimeout bounds the wait for the Governor's state: claiming
// goes on in the configured mode rather than stall behind it.
const governorQueryTimeout = 3 * time.Second

// claimWithinBudgets leases, per tenant, only what its token can decide
// soon (see policy.TargetQuotas): a verifying tenant gets claims on as many
// targets as its token can read within in.Horizon, less the targets its
// batches already hold; tenants that sample or run on honor, targets fed by
// webhooks, and tokens without a known budget are not bounded. Tenants are
// served oldest claim first until in.Limit claims are leased.
func (a *Activities) claimWithinBudgets(ctx context.Context, in ClaimBatchInput, modeOf func(policy.TenantRef) policy.TenantMode) ([]store.Claim, []store.Quota, error) {
	now := a.now()
	// A target is fed when webhooks brought evidence for it within the
	// horizon (wall time).
	fedSince := now.Add(-a.wall(in.Horizon))
	loads, err := a.Store.OpenLoad(ctx, now, fedSince)
	if err != nil {
		return nil, nil, err
	}
	loads = slices.DeleteFunc(loads, func(l store.TenantLoad) bool { return l.Ready == 0 })
	if len(loads) == 0 {
		return nil, nil, nil
	}
	slices.SortStableFunc(loads, func(x, y store.TenantLoad) int { return x.OldestReady.Compare(y.OldestReady) })

	tenants, err := a.Store.Tenants(ctx)
	if err != nil {
		return nil, nil, err
	}
	tokens, err := a.Store.Tokens(ctx)
	if err != nil {
		return nil, nil, err
	}
	budgets := map[string]policy.TokenBudget{}
	for _, tk := range tokens {
		if w, err := time.ParseDuration(tk.BudgetWindow); err == nil {
			budgets[tk.ID] = policy.TokenBudget{Calls: tk.BudgetCalls, Window: w}
		}
	}

	byID := make(map[string]store.Tenant, len(tenants))
	for _, t := range tenants {
		byID[t.ID] = t
	}
	demands := make([]policy.ClaimDemand, len(loads))
	for i, l := range loads {
		t := byID[l.Tenant] // an unknown tenant: standard, on the platform token
		tm := modeOf(policy.TenantRef{ID: l.Tenant, Tier: string(t.Tier), TokenID: t.TokenID})
		token, _ := a.readToken(t, tm.PlatformToken)
		demands[i] = policy.ClaimDemand{
			Tenant: l.Tenant, Token: token, Reads: tm.Mode == policy.ModeVerify,
			ReadyTargets:    l.ReadyTargets - l.ReadyFed,
			InFlightTargets: l.InFlightTargets,
		}
	}
	targets := policy.TargetQuotas(demands, budgets, in.Horizon)
	quotas := make([]store.Quota, len(loads))
	var bounded []store.Quota
	for i, l := range loads {
		quotas[i] = store.Quota{Tenant: l.Tenant, Targets: targets[i]}
		if targets[i] != policy.Unbounded && targets[i] < demands[i].ReadyTargets {
			bounded = append(bounded, quotas[i])
		}
	}
	claims, err := a.Store.ClaimQuotas(ctx, in.Owner, quotas, in.Limit, fedSince, in.LeaseTTL, now)
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(bounded, func(x, y store.Quota) int { return cmp.Compare(x.Tenant, y.Tenant) })
	return claims, bounded, nil
}

// tenantModes returns what mode each tenant is in now, as the Governor's
// state says; without an answer, policy.ConfiguredMode, as the Dispatcher
// assumes when it cannot reach the Governor.
func (a *Activities) tenantModes(ctx context.Context, configured string) func(policy.TenantRef) policy.TenantMode {
	if view, ok := a.governorState(ctx, configured); ok {
		return view.ModeFor
	}
	return func(t policy.TenantRef) policy.TenantMode { return policy.ConfiguredMode(policy.Mode(configured), t) }
}

// governorState is the Governor's state, if it answers within
// governorQueryTimeout.
func (a *Activities) governorState(ctx context.Context, configured string) (policy.GovernorView, bool) {
	if a.Temporal != nil {
		qctx, cancel := context.WithTimeout(ctx, governorQueryTimeout)
		defer cancel()
		var view policy.GovernorView
		v, err := a.Temporal.QueryWorkflow(qctx, policy.GovernorWorkflowID, "", policy.QueryGovernorState)
		if err == nil {
			err = v.Get(&view)
		}
		if err == nil {
			return view, true
		}
		activity.GetLogger(ctx).Warn("governor state unavailable; claiming assumes the configured mode", "mode", configured, "error", err)
	}
	return policy.GovernorView{}, false
}
