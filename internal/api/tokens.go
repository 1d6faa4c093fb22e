package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
)

// DeauthorizePath is where Meta posts its deauthorization callback (set it
// as the app's "Deauthorize callback URL"): a signed_request naming a user
// who removed the app.
const DeauthorizePath = "/meta/deauthorize"

// TokenService connects tenants' own Meta tokens and takes Meta's
// deauthorization callback (activities.TokenConnector in the worker).
type TokenService interface {
	// Connect checks value as tenantID's token and stores it encrypted. A
	// token it refuses comes back as an error with a RefusalReason.
	Connect(ctx context.Context, tenantID string, value secret.Value) (store.Token, error)
	// Deauthorize revokes the tokens of the user a signed request names; a
	// request that does not check out is an error with a RefusalReason.
	Deauthorize(ctx context.Context, signedRequest string) ([]string, error)
}

// refusal is an error that says why a request was refused, in words the
// caller can act on (activities.Refused).
type refusal interface{ RefusalReason() string }

// ConnectRequest is POST /v1/tokens: the tenant's Meta token (a user token,
// short- or long-lived, or a Page token). It is stored encrypted and never
// shown again.
type ConnectRequest struct {
	AccessToken secret.Value `json:"access_token"`
}

// TokenView is a tenant's token as the API shows it: never the value.
type TokenView struct {
	ID                  string     `json:"id"`
	Tenant              string     `json:"tenant"`
	State               string     `json:"state"` // healthy, expiring, missing_scopes, invalid, revoked, unknown
	Reason              string     `json:"reason,omitempty"`
	Type                string     `json:"type,omitempty"`
	Scopes              []string   `json:"scopes"`
	ExpiresAt           *time.Time `json:"expires_at,omitempty"` // Meta's clock; absent: never
	DataAccessExpiresAt *time.Time `json:"data_access_expires_at,omitempty"`
	CheckedAt           *time.Time `json:"checked_at,omitempty"`
	ConnectedAt         *time.Time `json:"connected_at,omitempty"`
	// Note: what the caller should know, e.g. that a standard tenant's
	// token is kept but not used until the tenant is premium.
	Note string `json:"note,omitempty"`
}

func tokenView(t store.Token) TokenView {
	at := func(x time.Time) *time.Time {
		if x.IsZero() {
			return nil
		}
		u := x.UTC()
		return &u
	}
	v := TokenView{ID: t.ID, Tenant: t.Tenant, State: string(t.Health.State), Reason: t.Health.Reason, Type: t.Health.Type,
		Scopes: t.Health.Scopes, ExpiresAt: at(t.Health.ExpiresAt), DataAccessExpiresAt: at(t.Health.DataAccessExpiresAt),
		CheckedAt: at(t.Health.CheckedAt), ConnectedAt: at(t.ConnectedAt)}
	if v.Scopes == nil {
		v.Scopes = []string{}
	}
	if v.State == "" {
		v.State = string(store.TokenUnknown)
	}
	return v
}

// UnmarshalJSON reads the token straight into a secret.Value, so it is
// redacted from the moment it is read.
func (c *ConnectRequest) UnmarshalJSON(b []byte) error {
	var raw struct {
		AccessToken string `json:"access_token"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	c.AccessToken = secret.New(strings.TrimSpace(raw.AccessToken))
	return nil
}

func (s *Server) connectToken(w http.ResponseWriter, r *http.Request) {
	if s.Tokens == nil {
		writeError(w, http.StatusNotImplemented, "not_configured", "this deployment does not take tenants' tokens (no token master keys)")
		return
	}
	var req ConnectRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&req); err != nil {
		// The decoder's message may quote the body, which holds the token.
		writeError(w, http.StatusBadRequest, "bad_request", `the body must be {"access_token":"..."}`)
		return
	}
	if req.AccessToken.Empty() {
		writeError(w, http.StatusBadRequest, "bad_request", "access_token is empty")
		return
	}
	tenant := tenantOf(r)
	tok, err := s.Tokens.Connect(r.Context(), tenant, req.AccessToken)
	var refused refusal
	switch {
	case errors.As(err, &refused):
		writeError(w, http.StatusUnprocessableEntity, "token_refused", refused.RefusalReason())
	case err != nil:
		s.logError("connect token", zap.String("tenant", tenant), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the token could not be checked now; try again later")
	default:
		v := tokenView(tok)
		if tn, err := s.Store.Tenant(r.Context(), tenant); err == nil && tn.Tier != store.TierPremium {
			v.Note = "stored and checked; claims are verified with the tenant's own token once the tenant is premium"
		}
		writeJSON(w, http.StatusCreated, v)
	}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := s.Store.Tokens(r.Context())
	if err != nil {
		s.failed(w, "list tokens", err)
		return
	}
	tenant := tenantOf(r)
	out := []TokenView{}
	for _, t := range toks {
		if t.Tenant == tenant {
			out = append(out, tokenView(t))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// Deauthorize serves Meta's deauthorization callback: a form post with a
// signed_request checked against the app secret. It needs no API key: the
// signature is the proof.
func (s *Server) deauthorize(w http.ResponseWriter, r *http.Request) {
	if s.Tokens == nil {
		writeError(w, http.StatusNotImplemented, "not_configured", "this deployment does not take tenants' tokens")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("signed_request") == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "a form field signed_request is required")
		return
	}
	revoked, err := s.Tokens.Deauthorize(r.Context(), r.PostForm.Get("signed_request"))
	var refused refusal
	switch {
	case errors.As(err, &refused):
		writeError(w, http.StatusBadRequest, "bad_signed_request", refused.RefusalReason())
	case err != nil:
		s.failed(w, "deauthorize", err)
	default:
		if revoked == nil {
			revoked = []string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"revoked": revoked})
	}
}
