package activities

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/socialproof/verifier/internal/claim"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
)

// PlanInput names one tenant's share of a batch.
type PlanInput struct {
	TenantID string
	ClaimIDs []int64
	// PlatformToken: use the platform token even for a premium tenant (its
	// own token is broken).
	PlatformToken bool `json:",omitempty"`
	// SplitRisky: list claims of risky users (store.RiskyUsers) apart, in
	// Risky, for the workflow to verify one by one.
	SplitRisky bool `json:",omitempty"`
}

// Plan says how a tenant's claims will be handled.
type Plan struct {
	TenantKnown     bool
	Tier            store.Tier
	TokenID         string  // the token verification calls use
	OwnToken        bool    // TokenID is the tenant's own token
	PlatformTokenID string  // the platform's token, for the fallback
	Verifiable      []int64 // in target order, so checks of one object run together
	Risky           []int64 `json:",omitempty"` // verifiable claims of users flagged risky (with SplitRisky)
	Unverifiable    []Unverifiable
	AlreadyDecided  int // decided since they were claimed (a previous attempt got there)
	Quarantined     int `json:",omitempty"` // poison claims quarantined since they were claimed: left out of the plan
}

// Unverifiable is a claim of a kind no Graph API read can prove.
type Unverifiable struct {
	ClaimID int64
	Kind    claim.Kind
}

// PlanBatch loads a tenant's claims and splits them by what can be proven.
// Standard tenants are verified with the platform token; premium tenants with
// their own when they have one.
func (a *Activities) PlanBatch(ctx context.Context, in PlanInput) (Plan, error) {
	var p Plan
	tenant, err := a.Store.Tenant(ctx, in.TenantID)
	if errors.Is(err, store.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("plan batch: %w", err)
	}
	p.TenantKnown = true
	p.Tier = tenant.Tier
	p.TokenID, p.OwnToken = a.Tokens.ReaderOf(tenant, in.PlatformToken)
	p.PlatformTokenID = a.Tokens.PlatformTokenID
	claims, err := a.Store.Claims(ctx, in.ClaimIDs)
	if err != nil {
		return p, fmt.Errorf("plan batch: %w", err)
	}
	risky := map[string]bool{}
	if in.SplitRisky {
		users := make([]string, 0, len(claims))
		for _, c := range claims {
			users = append(users, c.User)
		}
		flagged, err := a.Store.RiskyUsers(ctx, in.TenantID, users, a.now())
		if err != nil {
			return p, fmt.Errorf("plan batch: %w", err)
		}
		for _, u := range flagged {
			risky[u] = true
		}
	}
	// Checks of one object run one after another.
	slices.SortFunc(claims, func(x, y store.Claim) int {
		return cmp.Or(cmp.Compare(x.Target, y.Target), cmp.Compare(x.ID, y.ID))
	})
	for _, c := range claims {
		switch {
		case c.Status == store.StatusDecided:
			p.AlreadyDecided++
		case c.Status == store.StatusQuarantined:
			p.Quarantined++
		case !c.Kind.Verifiable():
			p.Unverifiable = append(p.Unverifiable, Unverifiable{ClaimID: c.ID, Kind: c.Kind})
		case risky[c.User]:
			p.Risky = append(p.Risky, c.ID)
		default:
			p.Verifiable = append(p.Verifiable, c.ID)
		}
	}
	return p, nil
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

// ExtendLease keeps claims leased to Owner for TTL more. The batch that
// holds them is their lease's only keeper: it extends it before each wait
// and each chunk it runs.
func (a *Activities) ExtendLease(ctx context.Context, in ExtendLeaseInput) (int, error) {
	n, err := a.Store.ExtendLease(ctx, store.LeaseExtension{Owner: in.Owner, ClaimIDs: in.ClaimIDs, TTL: in.TTL, Now: a.now()})
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
