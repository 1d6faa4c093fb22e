package tokens

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/socialproof/verifier/internal/governor"
	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/limiter"
)

// TokenIDFor is the id a tenant's connected token is stored under. It stays
// the same across reconnections, so the token's limiter (and its budget
// history) carries over to the new token.
func TokenIDFor(tenantID string) string { return "tok-" + tenantID }

// Defaults for a connected token's budget: Meta's platform rate limit for a
// user token, 200 calls an hour.
const (
	connectedBudgetCalls  = 200
	connectedBudgetWindow = "1h"
)

// Refused is a token the connection refused, with the reason a tenant can
// act on. Nothing was stored.
type Refused struct{ Reason string }

func (r *Refused) Error() string { return "token refused: " + r.Reason }

// RefusalReason is the reason, for the API's answer.
func (r *Refused) RefusalReason() string { return r.Reason }

// Connector connects tenants' own tokens (the platform API and `starter
// tokens connect`) and takes Meta's deauthorization callback. It is not an
// activity: the token value it takes must never be in a workflow's input or
// history. Its calls on the app token are budgeted through that token's
// limiter.
type Connector struct {
	Sessions *Sessions
	Limiter  *limiter.Client
	Governor *governor.Client
	// ExpiringWithin (Meta's time) is passed to Assess; 0: the default.
	ExpiringWithin time.Duration
}

// Connect checks value as tenantID's own token and stores it sealed:
// /debug_token (valid, our app, a user or Page token, the scopes the
// tenant's accounts need, not expired), a short-lived user token exchanged
// for a long-lived one, and one cheap read of the tenant's account with it.
// A token that fails a check is refused (*Refused) and nothing is stored;
// Meta failing or throttling is an error to retry later. On success the
// Governor hears the tenant's token works (a tenant on the platform token
// because its old token broke comes back) and the token is returned,
// without its value.
func (c *Connector) Connect(ctx context.Context, tenantID string, value secret.Value) (store.Token, error) {
	a := c.Sessions
	if value.Empty() {
		return store.Token{}, &Refused{Reason: "no token given"}
	}
	if a.Vault == nil {
		return store.Token{}, errors.New("connect token: no token master keys configured (TOKEN_KEYS_REF): tokens cannot be stored encrypted")
	}
	if id := TokenIDFor(tenantID); id == a.PlatformTokenID || id == store.AppTokenID {
		return store.Token{}, &Refused{Reason: "tenant " + tenantID + "'s token id " + id + " is the platform's: ask an operator"}
	}
	tenant, err := a.Store.Tenant(ctx, tenantID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Token{}, &Refused{Reason: "unknown tenant " + tenantID}
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("connect token: %w", err)
	}
	account := tenant.InstagramAccount()
	if account == "" {
		account = tenant.PageAccount()
	}
	if account == "" {
		return store.Token{}, &Refused{Reason: "tenant " + tenantID + " has no Instagram or Page account to read"}
	}

	// Up to two debug_token calls (before and after an exchange), paced
	// by the app token's limiter; this call waits for its permits.
	pace := c.Limiter.Pacer(ctx, store.AppTokenID, limiter.Verify).Patient()
	pace.Want(2)
	defer func() { _ = pace.Close(context.WithoutCancel(ctx)) }()
	app := a.Graph.AppSession(ctx)
	inspect := func(v secret.Value) (graph.TokenInfo, error) {
		if err := pace.Before(); err != nil {
			if errors.Is(err, limiter.ErrOutOfPermits) && pace.Paused() {
				err = errors.New("the app token's limiter is paused")
			}
			return graph.TokenInfo{}, fmt.Errorf("connect token: app token: %w", err)
		}
		info, usage, err := app.DebugToken(v)
		pace.After(usage, err)
		if err != nil {
			return info, fmt.Errorf("connect token: debug_token: %w", err)
		}
		return info, nil
	}
	judge := Policy{AppID: a.Graph.AppID(), ExpiringWithin: c.ExpiringWithin}
	required := RequiredScopes(tenant)

	info, err := inspect(value)
	if err != nil {
		return store.Token{}, err
	}
	if h := Assess(info, required, app.MetaNow(), judge); !Usable(h) {
		return store.Token{}, &Refused{Reason: string(h.State) + ": " + h.Reason}
	}
	if IsShortLived(info, app.MetaNow()) {
		long, _, err := a.Graph.ExchangeToken(ctx, value)
		a.Called(store.AppTokenID, err)
		if err != nil {
			if cls := graph.ClassOf(err); cls == graph.TokenBroken || cls == graph.Permanent {
				return store.Token{}, &Refused{Reason: "short-lived token could not be exchanged for a long-lived one: " + err.Error()}
			}
			return store.Token{}, fmt.Errorf("connect token: exchange: %w", err)
		}
		value = long
		if info, err = inspect(value); err != nil {
			return store.Token{}, err
		}
	}
	health := Assess(info, required, app.MetaNow(), judge)
	if !Usable(health) {
		return store.Token{}, &Refused{Reason: string(health.State) + ": " + health.Reason}
	}

	// One cheap read with the token itself: debug_token says what it may
	// do, this says it can (a lost Page role shows here).
	own := a.Graph.Session(ctx, value)
	_, err = own.Get("/"+account, map[string]string{"fields": "id"})
	id := TokenIDFor(tenantID)
	a.Called(id, err)
	if err != nil {
		switch graph.ClassOf(err) {
		case graph.TokenBroken, graph.Permission, graph.NotFound, graph.Permanent:
			return store.Token{}, &Refused{Reason: "cannot read account " + account + " with it: " + err.Error()}
		}
		return store.Token{}, fmt.Errorf("connect token: read account %s: %w", account, err)
	}

	sealed, err := a.Vault.Seal(id, value)
	if err != nil {
		return store.Token{}, fmt.Errorf("connect token: %w", err)
	}
	now := a.now()
	health.CheckedAt = now
	tok := store.Token{ID: id, Tenant: tenantID, Sealed: &sealed, ConnectedAt: now, Health: health,
		BudgetCalls: connectedBudgetCalls, BudgetWindow: connectedBudgetWindow}
	for _, acc := range tenant.Accounts {
		tok.Accounts = append(tok.Accounts, acc.ID)
	}
	if old, err := a.Store.Token(ctx, id); err == nil && old.BudgetCalls > 0 {
		tok.BudgetCalls, tok.BudgetWindow = old.BudgetCalls, old.BudgetWindow // an operator's budget stays
	}
	if err := a.Store.ConnectToken(ctx, tok); err != nil {
		if errors.Is(err, store.ErrTokenTaken) {
			return store.Token{}, &Refused{Reason: "token id " + id + " belongs to another tenant's token: ask an operator"}
		}
		return store.Token{}, fmt.Errorf("connect token: %w", err)
	}
	c.Governor.Alert(ctx, governor.TokenAlert{TokenID: id, Tenant: tenantID, State: string(health.State),
		Reason: "connected: " + cmp.Or(health.Reason, "healthy"), ExpiresAt: health.ExpiresAt})
	tok.Sealed = nil
	return tok, nil
}

// Deauthorize takes Meta's deauthorization callback: the signed request
// (checked with the app secret) names a user who removed our app; every
// token that user granted is marked revoked, and the tenants using them
// move to the platform token. It returns the tokens revoked. A request
// whose signature does not check out is an error and changes nothing.
func (c *Connector) Deauthorize(ctx context.Context, signedRequest string) ([]string, error) {
	a := c.Sessions
	userID, err := a.Graph.ParseSignedRequest(signedRequest)
	if err != nil {
		return nil, &Refused{Reason: err.Error()}
	}
	toks, err := a.Store.TokensByMetaUser(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("deauthorize: %w", err)
	}
	tenants, err := a.Store.Tenants(ctx)
	if err != nil {
		return nil, fmt.Errorf("deauthorize: %w", err)
	}
	var revoked []string
	const reason = "the user removed the app (Meta's deauthorization callback)"
	for _, t := range toks {
		if err := a.Store.MarkTokenState(ctx, store.TokenMark{ID: t.ID, State: store.TokenRevoked, Reason: reason, At: a.now()}); err != nil {
			return revoked, fmt.Errorf("deauthorize: %w", err)
		}
		revoked = append(revoked, t.ID)
		for _, tn := range tenants {
			if tn.TokenID == t.ID {
				c.Governor.Alert(ctx, governor.TokenAlert{TokenID: t.ID, Tenant: tn.ID, Broken: true, State: string(store.TokenRevoked), Reason: reason})
			}
		}
	}
	return revoked, nil
}
