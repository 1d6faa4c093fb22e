package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/tokens"
	"github.com/socialproof/verifier/limiter"
)

// tokenValue resolves a token's secret, inside the activity that makes the
// call: a connected token is opened from its sealed value (the vault's
// master keys), a configured one read from its reference.
func (a *Activities) tokenValue(tok store.Token) (secret.Value, error) {
	if tok.Sealed != nil {
		if a.Vault == nil {
			return secret.Value{}, fmt.Errorf("token %s is stored encrypted, but this worker has no token master keys (TOKEN_KEYS_REF)", tok.ID)
		}
		v, err := a.Vault.Open(tok.ID, *tok.Sealed)
		if err != nil {
			return secret.Value{}, fmt.Errorf("token %s: %w", tok.ID, err)
		}
		return v, nil
	}
	v, err := secret.Resolve(tok.SecretRef)
	if err != nil {
		return secret.Value{}, fmt.Errorf("token %s: %w", tok.ID, err)
	}
	return v, nil
}

// markTokenBroken records in the store what a Graph call just showed: Meta
// answered 190, so the token is invalid from now on, not at the next health
// check. A failure to record is logged: the claims are deferred either way.
func (a *Activities) markTokenBroken(ctx context.Context, tokenID string, ge *graph.Error) {
	if ge == nil || ge.Class != graph.TokenBroken || tokenID == store.AppTokenID {
		return
	}
	state := store.TokenInvalid
	if ge.Subcode == 458 { // the user removed the app
		state = store.TokenRevoked
	}
	if err := a.Store.MarkTokenState(context.WithoutCancel(ctx), tokenID, state, "seen in verification: "+ge.Error(), a.now()); err != nil {
		activity.GetLogger(ctx).Warn("token state not recorded", "TokenID", tokenID, "state", state, "error", err)
	}
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
	toks, err := a.Store.Tokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("tokens to check: %w", err)
	}
	tenants, err := a.Store.Tenants(ctx)
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

// TokenHealthInput is a chunk of tokens to ask /debug_token about, with the
// app token's permits (one per token).
type TokenHealthInput struct {
	Tokens  []TokenRef
	Permits []limiter.Permit
	Guard   time.Duration
	// ExpiringWithin (Meta's time): a token expiring sooner is reported
	// expiring; 0 means tokens.DefaultExpiringWithin.
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

// TokenHealthResult reports a chunk: the tokens checked, and those that
// wait for permits or for Meta (the next check asks again).
type TokenHealthResult struct {
	Checked     []TokenStatus
	NeedPermits []TokenRef `json:",omitempty"`
	Deferred    []TokenRef `json:",omitempty"`
	Calls       int
}

// CheckTokenHealth asks /debug_token, with the app token, about each token
// of the chunk, judges it (tokens.Assess: invalid, revoked, missing scopes,
// expiring, healthy) and records the health in the store. A token whose
// secret cannot be resolved here, or that Meta could not be asked about,
// is deferred with its state unchanged: only Meta's answer changes it.
func (a *Activities) CheckTokenHealth(ctx context.Context, in TokenHealthInput) (TokenHealthResult, error) {
	var res TokenHealthResult
	log := activity.GetLogger(ctx)
	app := a.Graph.AppSession(ctx)
	pace := a.newPacer(ctx, store.AppTokenID, in.Permits, in.Guard)
	defer func() {
		if err := a.report(context.WithoutCancel(ctx), store.AppTokenID, limiter.UsageReport{Reports: pace.reports, Release: pace.unused()}); err != nil {
			log.Warn("limiter report not sent", "TokenID", store.AppTokenID, "error", err)
		}
	}()
	judge := tokens.Policy{AppID: a.Graph.AppID(), ExpiringWithin: in.ExpiringWithin}
	for i, ref := range in.Tokens {
		activity.RecordHeartbeat(ctx, i)
		tok, err := a.Store.Token(ctx, ref.TokenID)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed since it was listed
		}
		if err != nil {
			return res, fmt.Errorf("check token health: %w", err)
		}
		value, err := a.tokenValue(tok)
		if err != nil {
			log.Error("token secret unavailable; its health is not checked", "TokenID", ref.TokenID, "error", err)
			res.Deferred = append(res.Deferred, ref)
			continue
		}
		required, err := a.requiredScopes(ctx, ref)
		if err != nil {
			return res, fmt.Errorf("check token health: %w", err)
		}
		if err := pace.before(); err != nil {
			if errors.Is(err, errOutOfPermits) {
				res.NeedPermits = append(res.NeedPermits, in.Tokens[i:]...)
				break
			}
			res.Deferred = append(res.Deferred, in.Tokens[i:]...)
			break
		}
		info, usage, err := app.DebugToken(value)
		res.Calls++
		pace.after(usage, err)
		if err != nil {
			log.Warn("debug_token failed; the token is asked about at the next check", "TokenID", ref.TokenID, "error", err)
			if graph.ClassOf(err) == graph.Throttled {
				res.Deferred = append(res.Deferred, in.Tokens[i:]...)
				break
			}
			res.Deferred = append(res.Deferred, ref)
			continue
		}
		h := tokens.Assess(info, required, app.MetaNow(), judge)
		h.CheckedAt = a.now()
		if tok.Health.State == store.TokenRevoked && h.State != store.TokenRevoked {
			// Revoked stays revoked until the tenant connects a new token
			// (the store keeps it so too).
			h.State, h.Reason = store.TokenRevoked, tok.Health.Reason
		}
		if err := a.Store.SetTokenHealth(ctx, ref.TokenID, h); err != nil {
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
		return append(append([]string{}, tokens.InstagramScopes...), tokens.PageScopes...), nil
	}
	t, err := a.Store.Tenant(ctx, ref.Tenant)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return tokens.RequiredScopes(t), nil
}
