package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/api"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

// fakeTokens stands in for activities.TokenConnector: it accepts the token
// "good", refuses "bad", and fails otherwise.
type fakeTokens struct {
	got         []string // tenant/value pairs Connect saw
	deauthorize []string
}

type refusal struct{ reason string }

func (r refusal) Error() string         { return "refused: " + r.reason }
func (r refusal) RefusalReason() string { return r.reason }

func (f *fakeTokens) Connect(_ context.Context, tenant string, value secret.Value) (store.Token, error) {
	f.got = append(f.got, tenant+"/"+value.Reveal())
	switch value.Reveal() {
	case "good":
		return store.Token{ID: "tok-" + tenant, Tenant: tenant, Health: store.TokenHealth{State: store.TokenHealthy, Type: "USER",
			Scopes: []string{"instagram_basic"}, ExpiresAt: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}}, nil
	case "bad":
		return store.Token{}, refusal{"missing_scopes: missing instagram_manage_comments"}
	}
	return store.Token{}, errors.New("graph GET /debug_token: transient: HTTP 503")
}

func (f *fakeTokens) Deauthorize(_ context.Context, signed string) ([]string, error) {
	f.deauthorize = append(f.deauthorize, signed)
	if signed == "forged" {
		return nil, refusal{"signed request: bad signature"}
	}
	return []string{"tok-acme"}, nil
}

func TestTokensEndpoints(t *testing.T) {
	st, _ := testenv.OpenStore(t, testenv.SQLite)
	ctx := context.Background()
	for tenant, key := range map[string]string{"acme": acmeKey, "other": otherKey} {
		if err := st.AddAPIKey(ctx, store.APIKey{Tenant: tenant, Name: "test", Key: key, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.UpsertTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierStandard}); err != nil {
		t.Fatal(err)
	}
	fake := &fakeTokens{}
	srv := httptest.NewServer((&api.Server{Store: st, Tokens: fake}).Handler())
	t.Cleanup(srv.Close)
	c := client{t: t, url: srv.URL}

	var view api.TokenView
	if status := c.do("POST", "/v1/tokens", acmeKey, map[string]string{"access_token": " good "}, &view); status != http.StatusCreated ||
		view.ID != "tok-acme" || view.State != "healthy" || view.ExpiresAt == nil || len(view.Scopes) != 1 {
		t.Fatalf("connect good: %d %+v", status, view)
	}
	if len(fake.got) != 1 || fake.got[0] != "acme/good" {
		t.Fatalf("the connector saw %v, want the key's tenant and the trimmed token", fake.got)
	}
	if !strings.Contains(view.Note, "once the tenant is premium") {
		t.Errorf("a standard tenant's connection should say its token waits for premium: note %q", view.Note)
	}
	if err := st.UpsertTenant(ctx, store.Tenant{ID: "acme", Tier: store.TierPremium}); err != nil {
		t.Fatal(err)
	}
	view = api.TokenView{}
	if status := c.do("POST", "/v1/tokens", acmeKey, map[string]string{"access_token": "good"}, &view); status != http.StatusCreated || view.Note != "" {
		t.Errorf("a premium tenant's connection: %d, note %q; want no note", status, view.Note)
	}
	tests := []struct {
		name   string
		key    string
		body   any
		status int
		code   string
	}{
		{"refused, with the reason", acmeKey, map[string]string{"access_token": "bad"}, http.StatusUnprocessableEntity, "token_refused"},
		{"Meta unavailable", acmeKey, map[string]string{"access_token": "flaky"}, http.StatusServiceUnavailable, "unavailable"},
		{"no key", "", map[string]string{"access_token": "good"}, http.StatusUnauthorized, "unauthorized"},
		{"empty token", acmeKey, map[string]string{"access_token": ""}, http.StatusBadRequest, "bad_request"},
		{"unknown field", acmeKey, []byte(`{"access_token":"SECRETVALUE","tenant":"other"}`), http.StatusBadRequest, "bad_request"},
		{"not JSON", acmeKey, []byte(`access_token=SECRETVALUE`), http.StatusBadRequest, "bad_request"},
	}
	for _, tt := range tests {
		var e struct {
			Error struct{ Code, Message string }
		}
		status := c.do("POST", "/v1/tokens", tt.key, tt.body, &e)
		if status != tt.status || e.Error.Code != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, e.Error.Code, tt.status, tt.code)
		}
		if strings.Contains(e.Error.Message, "SECRETVALUE") || strings.Contains(e.Error.Message, "503") {
			t.Errorf("%s: the answer leaks the body or an internal detail: %q", tt.name, e.Error.Message)
		}
		if tt.code == "token_refused" && e.Error.Message != "missing_scopes: missing instagram_manage_comments" {
			t.Errorf("%s: message %q, want the refusal's reason", tt.name, e.Error.Message)
		}
	}

	// GET lists only the key's tenant's tokens, never a value.
	sealed := store.SealedSecret{Ciphertext: []byte("c"), WrappedKey: []byte("w"), MasterKeyID: "k1"}
	for _, tn := range []string{"acme", "other"} {
		if err := st.UpsertTenant(ctx, store.Tenant{ID: tn, Tier: store.TierPremium}); err != nil {
			t.Fatal(err)
		}
		if err := st.ConnectToken(ctx, store.Token{ID: "tok-" + tn, Tenant: tn, Sealed: &sealed, BudgetCalls: 200, BudgetWindow: "1h",
			Health: store.TokenHealth{State: store.TokenExpiring, Reason: "expires in 3 days"}}); err != nil {
			t.Fatal(err)
		}
	}
	var list struct{ Tokens []api.TokenView }
	if status := c.do("GET", "/v1/tokens", acmeKey, nil, &list); status != 200 || len(list.Tokens) != 1 ||
		list.Tokens[0].ID != "tok-acme" || list.Tokens[0].State != "expiring" || list.Tokens[0].Reason != "expires in 3 days" {
		t.Fatalf("list: %d %+v", status, list)
	}

	// The deauthorization callback: a form post, no API key.
	post := func(form url.Values) (int, string) {
		resp, err := http.PostForm(srv.URL+api.DeauthorizePath, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	if status, body := post(url.Values{"signed_request": {"sig.payload"}}); status != 200 || !strings.Contains(body, `"revoked":["tok-acme"]`) {
		t.Errorf("deauthorize: %d %s", status, body)
	}
	if status, body := post(url.Values{"signed_request": {"forged"}}); status != 400 || !strings.Contains(body, "bad_signed_request") {
		t.Errorf("forged deauthorization: %d %s", status, body)
	}
	if status, _ := post(url.Values{}); status != 400 {
		t.Errorf("deauthorization without signed_request: %d", status)
	}
}

// Without a token service (no master keys) both endpoints say so.
func TestTokensEndpointsNotConfigured(t *testing.T) {
	c, _ := newAPI(t)
	var e struct{ Error struct{ Code string } }
	if status := c.do("POST", "/v1/tokens", acmeKey, map[string]string{"access_token": "good"}, &e); status != http.StatusNotImplemented || e.Error.Code != "not_configured" {
		t.Fatalf("connect without a token service: %d %s", status, e.Error.Code)
	}
}
