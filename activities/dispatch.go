package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/internal/store"
)

// ClaimBatchInput asks for a batch of pending claims.
type ClaimBatchInput struct {
	Owner string // lease owner: the Dispatcher run
	Limit int
	// BacklogLimit, when above Limit, is the limit while the Governor has
	// standard tenants on honor: claims decided on honor cost no call, so a
	// backlog drains this much faster.
	BacklogLimit int `json:",omitempty"`
	LeaseTTL     time.Duration
	// Horizon (platform time), when > 0, makes claiming budget-aware: see
	// claimWithinBudgets. Zero leases the oldest Limit claims.
	Horizon time.Duration `json:",omitempty"`
	// Mode is the configured mode, assumed for standard tenants when the
	// Governor cannot be asked which mode they are in.
	Mode string `json:",omitempty"`
}

// TenantGroup is one tenant's share of a claimed batch.
type TenantGroup struct {
	TenantID string
	ClaimIDs []int64
	Tier     store.Tier `json:",omitempty"` // "" when the tenant is unknown
	TokenID  string     `json:",omitempty"` // the tenant's own token, if it has one
}

// ClaimBatchResult lists the claimed claims by tenant, tenants in id order.
// Only ids travel: the claims' personal data (handles) stays in the store.
type ClaimBatchResult struct {
	Claimed int
	Groups  []TenantGroup
	// Bounded lists the tenants whose claiming the token budget bounded,
	// and to how many targets, so the history shows why claims stayed pending.
	Bounded []store.Quota `json:",omitempty"`
}

// ClaimBatch leases up to Limit pending claims and groups them by tenant.
func (a *Activities) ClaimBatch(ctx context.Context, in ClaimBatchInput) (ClaimBatchResult, error) {
	var (
		claims  []store.Claim
		bounded []store.Quota
		err     error
	)
	// Tenants' modes matter only to budget-aware claiming and to the
	// backlog limit: ask the Governor only then.
	var modeOf func(governor.TenantRef) governor.TenantMode
	if in.Horizon > 0 || in.BacklogLimit > in.Limit {
		if modeOf, err = a.Governor.ModeOf(ctx, governor.Mode(in.Mode)); err != nil {
			activity.GetLogger(ctx).Warn("governor state unavailable; claiming assumes the configured mode", "mode", in.Mode, "error", err)
		}
	}
	if in.BacklogLimit > in.Limit && modeOf(governor.TenantRef{Tier: governor.TierStandard}).Mode == governor.ModeHonor {
		in.Limit = in.BacklogLimit // a backlog: honor decides without calls
	}
	if in.Horizon > 0 {
		claims, bounded, err = a.claimWithinBudgets(ctx, in, modeOf)
	} else {
		claims, err = a.Store.Claim(ctx, store.ClaimParams{Owner: in.Owner, Limit: in.Limit, TTL: in.LeaseTTL, Now: a.now()})
	}
	if err != nil {
		return ClaimBatchResult{}, fmt.Errorf("claim batch: %w", err)
	}
	byTenant := map[string][]int64{}
	for _, c := range claims {
		byTenant[c.Tenant] = append(byTenant[c.Tenant], c.ID)
	}
	res := ClaimBatchResult{Claimed: len(claims), Bounded: bounded}
	for tenant, ids := range byTenant {
		g := TenantGroup{TenantID: tenant, ClaimIDs: ids}
		switch t, err := a.Store.Tenant(ctx, tenant); {
		case err == nil:
			g.Tier, g.TokenID = t.Tier, t.TokenID
		case !errors.Is(err, store.ErrNotFound):
			return ClaimBatchResult{}, fmt.Errorf("claim batch: %w", err)
		}
		res.Groups = append(res.Groups, g)
	}
	slices.SortFunc(res.Groups, func(x, y TenantGroup) int { return cmp.Compare(x.TenantID, y.TenantID) })
	activity.GetLogger(ctx).Info("claimed batch", "claimed", len(claims), "tenants", len(res.Groups), "bounded", len(bounded))
	return res, nil
}

// claimWithinBudgets leases, per tenant, only what its token can decide
// soon (see policy.TargetQuotas): a verifying tenant gets claims on as many
// targets as its token can read within in.Horizon, less the targets its
// batches already hold; tenants that sample or run on honor, targets fed by
// webhooks, and tokens without a known budget are not bounded. Tenants are
// served oldest claim first until in.Limit claims are leased.
func (a *Activities) claimWithinBudgets(ctx context.Context, in ClaimBatchInput, modeOf func(governor.TenantRef) governor.TenantMode) ([]store.Claim, []store.Quota, error) {
	now := a.now()
	// A target is fed when webhooks brought evidence for it within the
	// horizon (wall time).
	fedSince := now.Add(-a.Limiter.Wall(in.Horizon))
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
		tm := modeOf(governor.TenantRef{ID: l.Tenant, Tier: string(t.Tier), TokenID: t.TokenID})
		token, _ := a.Tokens.ReaderOf(t, tm.PlatformToken)
		demands[i] = policy.ClaimDemand{
			Tenant: l.Tenant, Token: token, Reads: tm.Mode == governor.ModeVerify,
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
	claims, err := a.Store.ClaimQuotas(ctx, store.ClaimQuotasParams{Owner: in.Owner, Quotas: quotas, Limit: in.Limit, FedSince: fedSince, TTL: in.LeaseTTL, Now: now})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(bounded, func(x, y store.Quota) int { return cmp.Compare(x.Tenant, y.Tenant) })
	return claims, bounded, nil
}

// ReportLoadInput is the Dispatcher's load report: the tenants it is about
// to start batches for, and how to start the Governor if it is not running.
type ReportLoadInput struct {
	Tenants []governor.TenantRef
	Start   governor.Start
}

// ReportLoad counts the claims received and open in the store, reports them
// to the Governor (which starts on first use) and returns each tenant's mode.
func (a *Activities) ReportLoad(ctx context.Context, in ReportLoadInput) (governor.Directive, error) {
	if a.Governor == nil || a.Governor.Temporal == nil {
		return governor.Directive{}, temporal.NewNonRetryableApplicationError("activities have no Temporal client to reach the Governor", "Config", nil)
	}
	stats, err := a.Store.Stats(ctx)
	if err != nil {
		return governor.Directive{}, fmt.Errorf("report load: %w", err)
	}
	tenants, err := a.Store.Tenants(ctx)
	if err != nil {
		return governor.Directive{}, fmt.Errorf("report load: %w", err)
	}
	premium := map[string]bool{}
	for _, t := range tenants {
		premium[t.ID] = t.Tier == store.TierPremium
	}
	report := governor.LoadReport{Tenants: in.Tenants}
	for _, s := range stats {
		report.Open += s.Pending + s.Leased
		if !premium[s.Tenant] {
			report.OpenStandard += s.Pending + s.Leased
		}
		report.Received += int64(s.Pending + s.Leased)
		for _, n := range s.Decided {
			report.Received += int64(n)
		}
	}
	return a.Governor.ReportLoad(ctx, report, in.Start)
}
