package tokens

import (
	"context"
	"fmt"
	"time"

	"github.com/socialproof/verifier/internal/graph"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/vault"
)

// Sessions opens Graph API sessions for tokens known by id. A token's value
// is resolved here, inside the activity making the call, and never leaves
// it: workflow inputs and results name tokens by id only.
type Sessions struct {
	Store store.Store
	Graph *graph.Client
	// Vault opens tenants' connected tokens (sealed in the store); nil when
	// no token master keys are configured, and then only tokens known by
	// reference work.
	Vault           *vault.Vault
	PlatformTokenID string
	// OnCall, when set, is told of Graph calls made outside a limiter's
	// pacer (probes, connections): the token and the call's error.
	OnCall func(tokenID string, err error)
	// Now is the clock for recorded states; nil means time.Now.
	Now func() time.Time
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now().UTC()
}

// ReaderOf is the token that reads a tenant's evidence: a premium tenant's
// own token, unless onPlatform (its token is known to be broken), else the
// platform token. own says which.
func (s *Sessions) ReaderOf(t store.Tenant, onPlatform bool) (id string, own bool) {
	if t.Tier == store.TierPremium && t.TokenID != "" && !onPlatform {
		return t.TokenID, true
	}
	return s.PlatformTokenID, false
}

// Open returns a Graph session for the token: the app token from the app's
// id and secret, any other from its store row.
func (s *Sessions) Open(ctx context.Context, tokenID string) (*graph.Session, error) {
	if tokenID == store.AppTokenID {
		return s.Graph.AppSession(ctx), nil
	}
	tok, err := s.Store.Token(ctx, tokenID)
	if err != nil {
		return nil, fmt.Errorf("token %s: %w", tokenID, err)
	}
	value, err := s.value(tok)
	if err != nil {
		return nil, err
	}
	return s.Graph.Session(ctx, value), nil
}

// value resolves a token's secret: a connected token is opened from its
// sealed value (the vault's master keys), a configured one read from its
// reference.
func (s *Sessions) value(tok store.Token) (secret.Value, error) {
	if tok.Sealed != nil {
		if s.Vault == nil {
			return secret.Value{}, fmt.Errorf("token %s is stored encrypted, but this worker has no token master keys (TOKEN_KEYS_REF)", tok.ID)
		}
		v, err := s.Vault.Open(tok.ID, *tok.Sealed)
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

// Called reports one Graph call to OnCall.
func (s *Sessions) Called(tokenID string, err error) {
	if s.OnCall != nil {
		s.OnCall(tokenID, err)
	}
}

// MarkBroken records in the store what a Graph call just showed: Meta
// answered 190, so the token is invalid from now on, not at the next health
// check. A failure to record is returned for the caller to log: the claims
// are deferred either way.
func (s *Sessions) MarkBroken(ctx context.Context, tokenID string, ge *graph.Error) error {
	if ge == nil || ge.Class != graph.TokenBroken || tokenID == store.AppTokenID {
		return nil
	}
	state := store.TokenInvalid
	if ge.Subcode == subcodeNotAuthorized { // the user removed the app
		state = store.TokenRevoked
	}
	if err := s.Store.MarkTokenState(context.WithoutCancel(ctx), store.TokenMark{ID: tokenID, State: state, Reason: "seen in verification: " + ge.Error(), At: s.now()}); err != nil {
		return fmt.Errorf("token %s state %s not recorded: %w", tokenID, state, err)
	}
	return nil
}
