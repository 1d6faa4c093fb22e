// Package activities holds the Temporal activities: each does one kind of I/O
// (the task store, the Graph API) and is safe to retry.
//
// Secrets never travel in activity inputs or results: inputs name a token by
// id and the activity resolves its secret from the reference in the store.
package activities

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/policy"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/vault"
)

// Activities is registered with the worker; its fields are its dependencies.
type Activities struct {
	Store           store.Store
	Graph           *graph.Client
	PlatformTokenID string
	// Vault opens tenants' connected tokens (sealed in the store); nil when
	// no token master keys are configured, and then only tokens known by
	// reference work.
	Vault *vault.Vault
	// Temporal reaches the limiter workflows (Update-with-Start, report
	// signals); TaskQueue is where a limiter is started.
	Temporal  client.Client
	TaskQueue string
	// Speed is the time acceleration (config.Speed): Meta's regain times are
	// simulated minutes, divided by it.
	Speed float64
	// LimiterRunLength is passed to limiters this worker starts (see
	// limiter.StartInput.RunLength); 0 leaves continue-as-new to the server.
	LimiterRunLength int64
	// UserRiskTTL is how long (wall time) a user with a false claim is
	// verified one by one; 0 disables per-user risk.
	UserRiskTTL time.Duration
	// Now is the clock for leases and backoffs; nil means time.Now.
	Now func() time.Time
	// OnGraphCall, when set, is told of every Graph API call this worker
	// makes: the token and the outcome ("ok" or the error's graph.Class).
	// The worker counts them for its metrics.
	OnGraphCall func(tokenID, outcome string)

	blocked   blocks // tokens Meta throttled, as seen by this worker
	reserving gates  // Updates in flight per limiter

	// ReservationsAnswered counts the reservations this worker's activities
	// got an answer to. (A field, not a method: every exported method of
	// Activities is registered as an activity.)
	ReservationsAnswered atomic.Int64
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now().UTC()
}

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
	var modeOf func(policy.TenantRef) policy.TenantMode
	if in.Horizon > 0 || in.BacklogLimit > in.Limit {
		modeOf = a.tenantModes(ctx, in.Mode)
	}
	if in.BacklogLimit > in.Limit && modeOf(policy.TenantRef{Tier: policy.TierStandard}).Mode == policy.ModeHonor {
		in.Limit = in.BacklogLimit // a backlog: honor decides without calls
	}
	if in.Horizon > 0 {
		claims, bounded, err = a.claimWithinBudgets(ctx, in, modeOf)
	} else {
		claims, err = a.Store.Claim(ctx, in.Owner, in.Limit, in.LeaseTTL, a.now())
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
	sort.Slice(res.Groups, func(i, j int) bool { return res.Groups[i].TenantID < res.Groups[j].TenantID })
	activity.GetLogger(ctx).Info("claimed batch", "claimed", len(claims), "tenants", len(res.Groups), "bounded", len(bounded))
	return res, nil
}

// RecordVerdicts stores decisions; claims already decided are left alone.
// It returns how many it decided now.
func (a *Activities) RecordVerdicts(ctx context.Context, decisions []store.Decision) (int, error) {
	ids, err := a.Store.Decide(ctx, decisions, a.now())
	if err != nil {
		return 0, fmt.Errorf("record %d verdicts: %w", len(decisions), err)
	}
	return len(ids), nil
}

// Deferral hands one claim back to pending for a while.
type Deferral struct {
	ClaimID int64
	After   time.Duration // not to be claimed again before now+After
	Reason  string
	Class   graph.Class `json:",omitempty"` // why, for the workflow (a broken own token moves claims to the platform token)
}

// DeferInput returns claims to pending.
type DeferInput struct {
	Owner     string
	Deferrals []Deferral
}

// DeferClaims returns leased claims to pending; decided ones are untouched.
func (a *Activities) DeferClaims(ctx context.Context, in DeferInput) (int, error) {
	now := a.now()
	ds := make([]store.Deferral, len(in.Deferrals))
	for i, d := range in.Deferrals {
		ds[i] = store.Deferral{ClaimID: d.ClaimID, NotBefore: now.Add(d.After), Reason: d.Reason}
	}
	n, err := a.Store.Defer(ctx, in.Owner, ds)
	if err != nil {
		return 0, fmt.Errorf("defer %d claims: %w", len(ds), err)
	}
	return n, nil
}

// ExtendLeaseInput keeps a batch's claims leased.
type ExtendLeaseInput struct {
	Owner    string
	ClaimIDs []int64
	TTL      time.Duration
}

// ExtendLease keeps claims leased to Owner for TTL more.
func (a *Activities) ExtendLease(ctx context.Context, in ExtendLeaseInput) (int, error) {
	n, err := a.Store.ExtendLease(ctx, in.Owner, in.ClaimIDs, in.TTL, a.now())
	if err != nil {
		return 0, fmt.Errorf("extend lease: %w", err)
	}
	return n, nil
}

// BehindReadersInput asks which of a batch's claims wait for another
// batch's read of their target.
type BehindReadersInput struct {
	Owner    string
	ClaimIDs []int64
}

// BehindReaders returns the claims whose target another batch, holding an
// older claim on it, reads first. One reader at a time per target: a second
// batch reading the same target at the same time would page through the
// same comments again, where after the first read a page or none suffices.
// Kinds checked claim by claim (mentions) are never behind: one claim's
// call proves nothing about another's.
func (a *Activities) BehindReaders(ctx context.Context, in BehindReadersInput) ([]int64, error) {
	claims, err := a.Store.Claims(ctx, in.ClaimIDs)
	if err != nil {
		return nil, fmt.Errorf("behind readers of %d claims: %w", len(in.ClaimIDs), err)
	}
	var grouped []int64
	for _, c := range claims {
		if _, ok := edgeOf(c.Kind); ok {
			grouped = append(grouped, c.ID)
		}
	}
	if len(grouped) == 0 {
		return nil, nil
	}
	ids, err := a.Store.BehindReaders(ctx, in.Owner, grouped, a.now())
	if err != nil {
		return nil, fmt.Errorf("behind readers of %d claims: %w", len(in.ClaimIDs), err)
	}
	return ids, nil
}

// graphCalled reports one Graph API call to OnGraphCall.
func (a *Activities) graphCalled(tokenID string, err error) {
	if a.OnGraphCall == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = string(graph.ClassOf(err))
	}
	a.OnGraphCall(tokenID, outcome)
}
