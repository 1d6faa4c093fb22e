package store_test

// Tokens: connecting them, and recording what their checks found.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

// sealedOf is a stand-in for a vault's output: distinct bytes per tag (the
// store never looks inside them).
func sealedOf(tag, keyID string) *store.SealedSecret {
	return &store.SealedSecret{
		Ciphertext:  []byte("ct\x00\xff-" + tag),
		WrappedKey:  []byte("wk\x00\xfe-" + tag),
		MasterKeyID: keyID,
	}
}

// tokenString renders every field of a token, sealed bytes in hex and times
// with their zone, for comparisons with readable failures.
func tokenString(tok store.Token) string {
	sealed := "nil"
	if tok.Sealed != nil {
		sealed = fmt.Sprintf("{%x %x %s}", tok.Sealed.Ciphertext, tok.Sealed.WrappedKey, tok.Sealed.MasterKeyID)
	}
	h := tok.Health
	return fmt.Sprintf("%s accounts=%q budget=%d/%s ref=%q tenant=%q sealed=%s connected=%s state=%s reason=%q checked=%s expires=%s data=%s scopes=%#v type=%q user=%q",
		tok.ID, tok.Accounts, tok.BudgetCalls, tok.BudgetWindow, tok.SecretRef, tok.Tenant, sealed, fmtTime(tok.ConnectedAt),
		h.State, h.Reason, fmtTime(h.CheckedAt), fmtTime(h.ExpiresAt), fmtTime(h.DataAccessExpiresAt), h.Scopes, h.Type, h.MetaUserID)
}

func getToken(t *testing.T, s store.Store, id string) store.Token {
	t.Helper()
	tok, err := s.Token(context.Background(), id)
	if err != nil {
		t.Fatalf("Token(%s): %v", id, err)
	}
	return tok
}

func wantToken(t *testing.T, s store.Store, want store.Token) {
	t.Helper()
	if got := getToken(t, s, want.ID); tokenString(got) != tokenString(want) {
		t.Errorf("Token(%s):\n got %s\nwant %s", want.ID, tokenString(got), tokenString(want))
	}
}

func addTenants(t *testing.T, s store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.UpsertTenant(context.Background(), store.Tenant{ID: id, Tier: store.TierPremium}); err != nil {
			t.Fatal(err)
		}
	}
}

func tenantToken(t *testing.T, s store.Store, tenant string) string {
	t.Helper()
	tn, err := s.Tenant(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	return tn.TokenID
}

// connected is a token as a tenant connects it, checked at connection.
func connected(id, tenant, tag string) store.Token {
	return store.Token{
		ID: id, Tenant: tenant, Accounts: []string{"1784-" + tag}, BudgetCalls: 200, BudgetWindow: "1h",
		Sealed: sealedOf(tag, "k1"), ConnectedAt: t0,
		Health: store.TokenHealth{
			State: store.TokenHealthy, CheckedAt: t0, ExpiresAt: t0.Add(60 * 24 * time.Hour),
			DataAccessExpiresAt: t0.Add(90 * 24 * time.Hour), Scopes: []string{"instagram_basic", "pages_read_engagement"},
			Type: "USER", MetaUserID: "meta-user-" + tag,
		},
	}
}

func connect(t *testing.T, s store.Store, tok store.Token) {
	t.Helper()
	if err := s.ConnectToken(context.Background(), tok); err != nil {
		t.Fatalf("ConnectToken(%s): %v", tok.ID, err)
	}
}

func TestUpsertTokenAppRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		app := store.Token{ID: store.AppTokenID, BudgetCalls: 200, BudgetWindow: "1h"}
		if err := s.UpsertToken(ctx, app); err != nil {
			t.Fatalf("UpsertToken(app, no secret_ref): %v", err)
		}
		app.Accounts, app.Health = []string{}, store.TokenHealth{State: store.TokenUnknown, Scopes: []string{}}
		wantToken(t, s, app)
		// The app row may also carry a reference, and lose it again.
		for _, ref := range []string{"env:META_APP_TOKEN", ""} {
			app.SecretRef = ref
			if err := s.UpsertToken(ctx, app); err != nil {
				t.Fatalf("UpsertToken(app, %q): %v", ref, err)
			}
			wantToken(t, s, app)
		}
		// Only the app row goes without one.
		if err := s.UpsertToken(ctx, store.Token{ID: "page", BudgetWindow: "1h"}); err == nil {
			t.Error("UpsertToken(page) without secret_ref succeeded")
		}
		if _, err := s.Token(ctx, "page"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(page) after refused upsert: %v, want ErrNotFound", err)
		}
	})
}

func TestConnectToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme", "zeta")

		valid := connected("acme-ig", "acme", "v1")
		refused := []struct {
			name   string
			change func(*store.Token)
		}{
			{"empty id", func(tok *store.Token) { tok.ID = "" }},
			{"app token id", func(tok *store.Token) { tok.ID = store.AppTokenID }},
			{"no tenant", func(tok *store.Token) { tok.Tenant = "" }},
			{"no sealed value", func(tok *store.Token) { tok.Sealed = nil }},
			{"no ciphertext", func(tok *store.Token) { tok.Sealed = &store.SealedSecret{WrappedKey: []byte("w"), MasterKeyID: "k1"} }},
			{"no wrapped key", func(tok *store.Token) { tok.Sealed = &store.SealedSecret{Ciphertext: []byte("c"), MasterKeyID: "k1"} }},
			{"no master key id", func(tok *store.Token) {
				tok.Sealed = &store.SealedSecret{Ciphertext: []byte("c"), WrappedKey: []byte("w")}
			}},
			{"a secret_ref too", func(tok *store.Token) { tok.SecretRef = "env:META_TOKEN" }},
			{"a raw token as secret_ref", func(tok *store.Token) { tok.SecretRef = "EAABsbCS1iHgBAKZA1234567890" }},
			{"bad budget window", func(tok *store.Token) { tok.BudgetWindow = "7d" }},
			{"bad state", func(tok *store.Token) { tok.Health.State = "fine" }},
		}
		for _, tt := range refused {
			tok := valid
			tok.Sealed = sealedOf("v1", "k1")
			tt.change(&tok)
			err := s.ConnectToken(ctx, tok)
			if err == nil {
				t.Errorf("%s: ConnectToken succeeded", tt.name)
				continue
			}
			if strings.Contains(err.Error(), "EAAB") || strings.Contains(err.Error(), "ct\x00") || strings.Contains(err.Error(), "wk\x00") {
				t.Errorf("%s: error quotes a secret: %q", tt.name, err)
			}
		}
		if tokens, err := s.Tokens(ctx); err != nil || len(tokens) != 0 {
			t.Fatalf("after refused connections: Tokens = %d, %v; want none", len(tokens), err)
		}
		if got := tenantToken(t, s, "acme"); got != "" {
			t.Fatalf("after refused connections acme's token is %q", got)
		}

		// A connection stores every field and makes it the tenant's token.
		connect(t, s, valid)
		wantToken(t, s, valid)
		if got := tenantToken(t, s, "acme"); got != "acme-ig" {
			t.Errorf("acme's token after ConnectToken: %q, want acme-ig", got)
		}
		tokens, err := s.Tokens(ctx)
		if err != nil || len(tokens) != 1 || tokenString(tokens[0]) != tokenString(valid) {
			t.Errorf("Tokens() = %v, %v; want [%s]", tokens, err, tokenString(valid))
		}

		// A new connection replaces every field; zero times and an empty
		// state are stored as zero and unknown.
		again := store.Token{ID: "acme-ig", Tenant: "acme", BudgetCalls: 4800, BudgetWindow: "24h", Sealed: sealedOf("v2", "k2")}
		connect(t, s, again)
		again.Accounts, again.Health = []string{}, store.TokenHealth{State: store.TokenUnknown, Scopes: []string{}}
		wantToken(t, s, again)

		// A missing tenant: nothing is written, neither a new token nor a
		// change to an existing one.
		ghost := connected("ghost-ig", "ghost", "g")
		if err := s.ConnectToken(ctx, ghost); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ConnectToken for a missing tenant: %v, want ErrNotFound", err)
		}
		if _, err := s.Token(ctx, "ghost-ig"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(ghost-ig) after the refused connection: %v, want ErrNotFound", err)
		}
		ghost.ID = "acme-ig"
		if err := s.ConnectToken(ctx, ghost); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ConnectToken of acme-ig for a missing tenant: %v, want ErrNotFound", err)
		}
		wantToken(t, s, again)

		// Another tenant's token, or a token of the tenants file, is not
		// zeta's to replace; zeta's token stays as it was (the tenant update
		// rolls back with the refused upsert).
		if err := s.UpsertToken(ctx, store.Token{ID: "file-token", BudgetWindow: "1h", SecretRef: "env:FILE_TOKEN"}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"acme-ig", "file-token"} {
			if err := s.ConnectToken(ctx, connected(id, "zeta", "z")); !errors.Is(err, store.ErrTokenTaken) {
				t.Errorf("zeta connecting %s: %v, want ErrTokenTaken", id, err)
			}
			if got := tenantToken(t, s, "zeta"); got != "" {
				t.Errorf("zeta's token after the refused connection of %s: %q", id, got)
			}
		}
		wantToken(t, s, again)
		if got := getToken(t, s, "file-token"); got.SecretRef != "env:FILE_TOKEN" || got.Sealed != nil || got.Tenant != "" {
			t.Errorf("file-token after zeta's refused connection: %s", tokenString(got))
		}

		// The token the tenants file gave zeta alone is zeta's to replace by
		// a connection; one it shares with another tenant is not.
		addTenants(t, s, "yeti")
		for _, tn := range []store.Tenant{{ID: "zeta", Tier: store.TierPremium, TokenID: "zeta-file"},
			{ID: "yeti", Tier: store.TierPremium, TokenID: "shared-file"}} {
			if err := s.UpsertToken(ctx, store.Token{ID: tn.TokenID, BudgetWindow: "1h", SecretRef: "env:" + strings.ToUpper(tn.ID)}); err != nil {
				t.Fatal(err)
			}
			if err := s.UpsertTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}
		own := connected("zeta-file", "zeta", "z")
		connect(t, s, own)
		if got := getToken(t, s, "zeta-file"); got.Sealed == nil || got.Tenant != "zeta" || got.SecretRef != "" {
			t.Errorf("zeta's file token after its connection: %s", tokenString(got))
		}
		if err := s.UpsertTenant(ctx, store.Tenant{ID: "zeta", Tier: store.TierPremium, TokenID: "shared-file"}); err != nil {
			t.Fatal(err)
		}
		if err := s.ConnectToken(ctx, connected("shared-file", "zeta", "z")); !errors.Is(err, store.ErrTokenTaken) {
			t.Errorf("zeta connecting the file token yeti uses too: %v, want ErrTokenTaken", err)
		}
	})
}

// UpsertToken (the tenants file, at every start) never undoes a connection
// or a check.
func TestUpsertTokenKeepsConnectionAndHealth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme")
		tok := connected("acme-ig", "acme", "v1")
		connect(t, s, tok)
		ref := store.Token{ID: "acme-ig", Accounts: []string{"9"}, BudgetCalls: 50, BudgetWindow: "24h", SecretRef: "file:/run/secrets/acme",
			Tenant: "someone", Sealed: sealedOf("other", "k9"), Health: store.TokenHealth{State: store.TokenInvalid}}
		if err := s.UpsertToken(ctx, ref); err != nil {
			t.Fatal(err)
		}
		tok.Accounts, tok.BudgetCalls, tok.BudgetWindow, tok.SecretRef = ref.Accounts, ref.BudgetCalls, ref.BudgetWindow, ref.SecretRef
		wantToken(t, s, tok)

		// And a checked reference token keeps its health too.
		file := store.Token{ID: "file-token", BudgetCalls: 10, BudgetWindow: "1h", SecretRef: "env:T"}
		if err := s.UpsertToken(ctx, file); err != nil {
			t.Fatal(err)
		}
		h := store.TokenHealth{State: store.TokenExpiring, Reason: "expires in 3 days", CheckedAt: t0, ExpiresAt: t0.Add(72 * time.Hour), Scopes: []string{"a"}, Type: "PAGE", MetaUserID: "u1"}
		if err := s.SetTokenHealth(ctx, "file-token", h); err != nil {
			t.Fatal(err)
		}
		file.BudgetCalls = 20
		if err := s.UpsertToken(ctx, file); err != nil {
			t.Fatal(err)
		}
		file.Accounts, file.Health = []string{}, h
		wantToken(t, s, file)
	})
}

func TestSetTokenHealth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme")
		tok := connected("acme-ig", "acme", "v1")
		connect(t, s, tok)
		// Times from another zone with nanoseconds come back in UTC to the
		// microsecond.
		paris := time.FixedZone("CET", 3600)
		checks := []struct {
			name string
			in   store.TokenHealth
			want store.TokenHealth
		}{
			{"every column",
				store.TokenHealth{State: store.TokenMissingScopes, Reason: "pages_read_engagement missing", CheckedAt: t0.In(paris).Add(1500 * time.Nanosecond),
					ExpiresAt: t0.Add(time.Hour), DataAccessExpiresAt: t0.Add(2 * time.Hour), Scopes: []string{"instagram_basic"}, Type: "PAGE", MetaUserID: "u2"},
				store.TokenHealth{State: store.TokenMissingScopes, Reason: "pages_read_engagement missing", CheckedAt: t0.Add(time.Microsecond),
					ExpiresAt: t0.Add(time.Hour), DataAccessExpiresAt: t0.Add(2 * time.Hour), Scopes: []string{"instagram_basic"}, Type: "PAGE", MetaUserID: "u2"}},
			{"zeros clear",
				store.TokenHealth{State: store.TokenInvalid},
				store.TokenHealth{State: store.TokenInvalid, Scopes: []string{}}},
			{"healthy again",
				store.TokenHealth{State: store.TokenHealthy, CheckedAt: t0.Add(time.Minute), Scopes: []string{}, Type: "SYSTEM_USER", MetaUserID: "u3"},
				store.TokenHealth{State: store.TokenHealthy, CheckedAt: t0.Add(time.Minute), Scopes: []string{}, Type: "SYSTEM_USER", MetaUserID: "u3"}},
		}
		for _, tt := range checks {
			if err := s.SetTokenHealth(ctx, "acme-ig", tt.in); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			want := tok
			want.Health = tt.want
			wantToken(t, s, want)
		}
		for _, state := range []store.TokenState{"", "fine"} {
			if err := s.SetTokenHealth(ctx, "acme-ig", store.TokenHealth{State: state}); err == nil {
				t.Errorf("SetTokenHealth(state %q) succeeded", state)
			}
		}
		if err := s.SetTokenHealth(ctx, "nobody", store.TokenHealth{State: store.TokenHealthy}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SetTokenHealth(nobody): %v, want ErrNotFound", err)
		}
	})
}

func TestMarkTokenState(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme")
		tok := connected("acme-ig", "acme", "v1")
		connect(t, s, tok)
		at := t0.Add(time.Hour)
		if err := s.MarkTokenState(ctx, store.TokenMark{ID: "acme-ig", State: store.TokenInvalid, Reason: "graph error 190: session expired", At: at}); err != nil {
			t.Fatal(err)
		}
		// Only state, reason and checked_at change.
		tok.Health.State, tok.Health.Reason, tok.Health.CheckedAt = store.TokenInvalid, "graph error 190: session expired", at
		wantToken(t, s, tok)
		if err := s.MarkTokenState(ctx, store.TokenMark{ID: "acme-ig", State: "broken", At: at}); err == nil {
			t.Error(`MarkTokenState("broken") succeeded`)
		}
		if err := s.MarkTokenState(ctx, store.TokenMark{ID: "nobody", State: store.TokenInvalid, At: at}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("MarkTokenState(nobody): %v, want ErrNotFound", err)
		}
	})
}

// A revoked token stays revoked through every later check or mark, until a
// new connection replaces it.
func TestRevokedTokenStaysRevoked(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme")
		connect(t, s, connected("acme-ig", "acme", "v1"))
		if err := s.UpsertToken(ctx, store.Token{ID: "file-token", BudgetWindow: "1h", SecretRef: "env:T"}); err != nil {
			t.Fatal(err)
		}
		later := []struct {
			name string
			do   func(id string, at time.Time) error
		}{
			{"a healthy check", func(id string, at time.Time) error {
				return s.SetTokenHealth(ctx, id, store.TokenHealth{State: store.TokenHealthy, CheckedAt: at, Scopes: []string{"x"}, MetaUserID: "u1"})
			}},
			{"an invalid check", func(id string, at time.Time) error {
				return s.SetTokenHealth(ctx, id, store.TokenHealth{State: store.TokenInvalid, Reason: "expired", CheckedAt: at})
			}},
			{"an unknown check", func(id string, at time.Time) error {
				return s.SetTokenHealth(ctx, id, store.TokenHealth{State: store.TokenUnknown, CheckedAt: at})
			}},
			{"a 190 during verification", func(id string, at time.Time) error {
				return s.MarkTokenState(ctx, store.TokenMark{ID: id, State: store.TokenInvalid, Reason: "graph error 190", At: at})
			}},
			{"a healthy mark", func(id string, at time.Time) error {
				return s.MarkTokenState(ctx, store.TokenMark{ID: id, State: store.TokenHealthy, At: at})
			}},
		}
		for _, id := range []string{"acme-ig", "file-token"} {
			if err := s.MarkTokenState(ctx, store.TokenMark{ID: id, State: store.TokenRevoked, Reason: "deauthorized by the user", At: t0}); err != nil {
				t.Fatal(err)
			}
			for i, tt := range later {
				at := t0.Add(time.Duration(i+1) * time.Minute)
				if err := tt.do(id, at); err != nil {
					t.Fatalf("%s after revocation: %v", tt.name, err)
				}
				got := getToken(t, s, id).Health
				if got.State != store.TokenRevoked || got.Reason != "deauthorized by the user" {
					t.Errorf("%s: %s after revocation: state %s (%q), want revoked with its reason", id, tt.name, got.State, got.Reason)
				}
				if !got.CheckedAt.Equal(at) {
					t.Errorf("%s: %s after revocation: checked_at %s, want %s", id, tt.name, fmtTime(got.CheckedAt), fmtTime(at))
				}
			}
		}
		// Revoking again is harmless.
		if err := s.MarkTokenState(ctx, store.TokenMark{ID: "acme-ig", State: store.TokenRevoked, Reason: "again", At: t0}); err != nil {
			t.Fatal(err)
		}
		// Only a new connection brings it back.
		fresh := connected("acme-ig", "acme", "v2")
		connect(t, s, fresh)
		wantToken(t, s, fresh)
	})
}

func TestTokensByMetaUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme", "zeta")
		a, z := connected("acme-ig", "acme", "a"), connected("zeta-ig", "zeta", "z")
		a.Health.MetaUserID, z.Health.MetaUserID = "1001", "1001"
		connect(t, s, z)
		connect(t, s, a)
		connect(t, s, connected("acme-page", "acme", "p")) // another user
		if err := s.UpsertToken(ctx, store.Token{ID: "file-token", BudgetWindow: "1h", SecretRef: "env:T"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetTokenHealth(ctx, "file-token", store.TokenHealth{State: store.TokenHealthy, MetaUserID: "1001"}); err != nil {
			t.Fatal(err)
		}
		ids := func(user string) []string {
			t.Helper()
			tokens, err := s.TokensByMetaUser(ctx, user)
			if err != nil {
				t.Fatalf("TokensByMetaUser(%s): %v", user, err)
			}
			var out []string
			for _, tok := range tokens {
				out = append(out, tok.ID)
			}
			return out
		}
		if got := ids("1001"); !slices.Equal(got, []string{"acme-ig", "file-token", "zeta-ig"}) {
			t.Errorf("TokensByMetaUser(1001) = %v", got)
		}
		if got := ids("meta-user-p"); !slices.Equal(got, []string{"acme-page"}) {
			t.Errorf("TokensByMetaUser(meta-user-p) = %v", got)
		}
		if got := ids("nobody"); len(got) != 0 {
			t.Errorf("TokensByMetaUser(nobody) = %v", got)
		}
		tokens, err := s.TokensByMetaUser(ctx, "1001")
		if err != nil || tokenString(tokens[0]) != tokenString(a) {
			t.Errorf("TokensByMetaUser returns every field: %v, %v", tokens, err)
		}
		// An empty id would name every token never checked.
		if _, err := s.TokensByMetaUser(ctx, ""); err == nil {
			t.Error("TokensByMetaUser(\"\") succeeded")
		}
	})
}
