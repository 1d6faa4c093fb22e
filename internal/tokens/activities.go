package tokens

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// Activities are the token activities: the health check's and the
// Governor's probe of a broken token. Every exported method is registered.
type Activities struct {
	Sessions *Sessions
	Limiter  *limiter.Client
}

// TokenRef names a token the health check looks at, and the tenant whose
// own token it is ("" for the platform token).
type TokenRef struct {
	TokenID string
	Tenant  string `json:",omitempty"`
}

// TokensToCheck lists every token but the app token (which asks about the
// others), in id order, each with the tenant that uses it as its own.
func (a *Activities) TokensToCheck(ctx context.Context) ([]TokenRef, error) {
	st := a.Sessions.Store
	toks, err := st.Tokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("tokens to check: %w", err)
	}
	tenants, err := st.Tenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("tokens to check: %w", err)
	}
	owners := store.TokenTenants(toks, tenants)
	var refs []TokenRef
	for _, t := range toks {
		if t.ID != store.AppTokenID {
			refs = append(refs, TokenRef{TokenID: t.ID, Tenant: owners[t.ID]})
		}
	}
	return refs, nil
}

// HealthCheckInput is a chunk of tokens to ask /debug_token about, one
// app-token permit each (the activity reserves them).
type HealthCheckInput struct {
	Tokens []TokenRef
	// ExpiringWithin (Meta's time): a token expiring sooner is reported
	// expiring; 0 means DefaultExpiringWithin.
	ExpiringWithin time.Duration `json:",omitempty"`
}

// TokenStatus is one token's health as recorded.
type TokenStatus struct {
	TokenID   string
	Tenant    string `json:",omitempty"`
	State     store.TokenState
	Reason    string    `json:",omitempty"`
	ExpiresAt time.Time `json:",omitzero"`
}

// HealthCheckResult reports a chunk: the tokens checked, and those that
// wait for permits (until RetryAt) or for Meta (the next check asks again).
type HealthCheckResult struct {
	Checked     []TokenStatus
	NeedPermits []TokenRef `json:",omitempty"`
	RetryAt     time.Time  `json:",omitzero"`
	Paused      bool       `json:",omitempty"` // the app token's limiter is paused
	Deferred    []TokenRef `json:",omitempty"`
	Calls       int
}

// CheckTokenHealth asks /debug_token, with the app token, about each token
// of the chunk, judges it (Assess: invalid, revoked, missing scopes,
// expiring, healthy) and records the health in the store. A token whose
// secret cannot be resolved here, or that Meta could not be asked about,
// is deferred with its state unchanged: only Meta's answer changes it.
func (a *Activities) CheckTokenHealth(ctx context.Context, in HealthCheckInput) (HealthCheckResult, error) {
	var res HealthCheckResult
	log := activity.GetLogger(ctx)
	s := a.Sessions
	app := s.Graph.AppSession(ctx)
	pace := a.Limiter.Pacer(ctx, store.AppTokenID, limiter.Verify)
	defer func() {
		if err := pace.Close(context.WithoutCancel(ctx)); err != nil {
			log.Warn("limiter report not sent", "TokenID", store.AppTokenID, "error", err)
		}
	}()
	judge := Policy{AppID: s.Graph.AppID(), ExpiringWithin: in.ExpiringWithin}
	for i, ref := range in.Tokens {
		activity.RecordHeartbeat(ctx, i)
		tok, err := s.Store.Token(ctx, ref.TokenID)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed since it was listed
		}
		if err != nil {
			return res, fmt.Errorf("check token health: %w", err)
		}
		value, err := s.value(tok)
		if err != nil {
			log.Error("token secret unavailable; its health is not checked", "TokenID", ref.TokenID, "error", err)
			res.Deferred = append(res.Deferred, ref)
			continue
		}
		required, err := a.requiredScopes(ctx, ref)
		if err != nil {
			return res, fmt.Errorf("check token health: %w", err)
		}
		pace.Want(len(in.Tokens) - i)
		if err := pace.Before(); err != nil {
			if errors.Is(err, limiter.ErrOutOfPermits) {
				res.NeedPermits = append(res.NeedPermits, in.Tokens[i:]...)
				res.RetryAt, res.Paused = pace.RetryAt(), pace.Paused()
				break
			}
			res.Deferred = append(res.Deferred, in.Tokens[i:]...)
			break
		}
		info, usage, err := app.DebugToken(value)
		res.Calls++
		pace.After(usage, err)
		if err != nil {
			log.Warn("debug_token failed; the token is asked about at the next check", "TokenID", ref.TokenID, "error", err)
			if graph.ClassOf(err) == graph.Throttled {
				res.Deferred = append(res.Deferred, in.Tokens[i:]...)
				break
			}
			res.Deferred = append(res.Deferred, ref)
			continue
		}
		h := Assess(info, required, app.MetaNow(), judge)
		h.CheckedAt = s.now()
		if tok.Health.State == store.TokenRevoked && h.State != store.TokenRevoked {
			// Revoked stays revoked until the tenant connects a new token
			// (the store keeps it so too).
			h.State, h.Reason = store.TokenRevoked, tok.Health.Reason
		}
		if err := s.Store.SetTokenHealth(ctx, ref.TokenID, h); err != nil {
			return res, fmt.Errorf("check token health: %w", err)
		}
		if h.State != store.TokenHealthy {
			log.Warn("token not healthy", "TokenID", ref.TokenID, "TenantID", ref.Tenant, "state", h.State, "reason", h.Reason)
		}
		res.Checked = append(res.Checked, TokenStatus{TokenID: ref.TokenID, Tenant: ref.Tenant, State: h.State, Reason: h.Reason, ExpiresAt: h.ExpiresAt})
	}
	return res, nil
}

// requiredScopes are the scopes a token needs: its tenant's accounts', or
// for the platform token (no tenant) every kind's.
func (a *Activities) requiredScopes(ctx context.Context, ref TokenRef) ([]string, error) {
	if ref.Tenant == "" {
		return append(append([]string{}, InstagramScopes...), PageScopes...), nil
	}
	t, err := a.Sessions.Store.Tenant(ctx, ref.Tenant)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return RequiredScopes(t), nil
}

// CheckToken is the Governor's probe (governor.ActivityCheckToken): it
// reads the tenant's account with the token, one Graph call. A broken
// token or a missing permission is an answer (Works false); Meta being
// down or throttling is an error, and the probe is tried later.
func (a *Activities) CheckToken(ctx context.Context, in governor.TokenCheckInput) (governor.TokenCheck, error) {
	s := a.Sessions
	tenant, err := s.Store.Tenant(ctx, in.TenantID)
	if err != nil {
		return governor.TokenCheck{}, fmt.Errorf("check token: %w", err)
	}
	account := cmp.Or(tenant.InstagramAccount(), tenant.PageAccount())
	if account == "" {
		return governor.TokenCheck{Detail: "tenant has no Meta account"}, nil
	}
	session, err := s.Open(ctx, in.TokenID)
	if err != nil {
		return governor.TokenCheck{Detail: err.Error()}, nil
	}
	_, err = session.Get("/"+account, map[string]string{"fields": "id"})
	s.Called(in.TokenID, err)
	var ge *graph.Error
	switch {
	case err == nil:
		return governor.TokenCheck{Works: true, Detail: "read account " + account}, nil
	case errors.As(err, &ge) && (ge.Class == graph.TokenBroken || ge.Class == graph.Permission || ge.Class == graph.NotFound):
		return governor.TokenCheck{Detail: ge.Error()}, nil
	}
	return governor.TokenCheck{}, fmt.Errorf("check token %s: %w", in.TokenID, err)
}
