package store_test

// Token secrets (references, sealed values, master-key rotation) kept out
// of errors and rows, and the helpers of the token types.

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

func TestTokenSecretRef(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		tests := []struct {
			ref string
			ok  bool
		}{
			{"env:META_TOKEN", true},
			{"file:/run/secrets/meta", true},
			{"EAABsbCS1iHgBAKZA1234567890", false}, // a raw token
			{"", false},
			{"env:", false},
			{"ENV:META_TOKEN", false},
			{"vault:secret/meta", false},
		}
		for _, tt := range tests {
			err := s.UpsertToken(context.Background(), store.Token{ID: "t1", BudgetWindow: "1h", SecretRef: tt.ref})
			if (err == nil) != tt.ok {
				t.Errorf("UpsertToken(secret_ref %q): err %v, want ok=%v", tt.ref, err, tt.ok)
			}
			if err != nil && strings.HasPrefix(tt.ref, "EAA") && strings.Contains(err.Error(), tt.ref) {
				t.Errorf("UpsertToken error echoes the refused secret_ref: %v", err)
			}
		}
		if err := s.UpsertToken(context.Background(), store.Token{ID: "t2", BudgetWindow: "7d", SecretRef: "env:X"}); err == nil {
			t.Error(`UpsertToken with budget_window "7d" succeeded`)
		}
	})
}

func TestRewrapToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme")
		old := sealedOf("v1", "k1")
		newWrap := store.SealedSecret{Ciphertext: old.Ciphertext, WrappedKey: []byte("wk-under-k2"), MasterKeyID: "k2"}
		tests := []struct {
			name    string
			id      string
			from    string
			to      store.SealedSecret
			updated bool
		}{
			{"another from key", "acme-ig", "k0", newWrap, false},
			{"another ciphertext (reconnected)", "acme-ig", "k1",
				store.SealedSecret{Ciphertext: []byte("ct-other"), WrappedKey: newWrap.WrappedKey, MasterKeyID: "k2"}, false},
			{"a missing token", "nobody", "k1", newWrap, false},
			{"a reference token", "file-token", "k1", newWrap, false},
			{"the row as read", "acme-ig", "k1", newWrap, true},
			{"the same again (already rewrapped)", "acme-ig", "k1", newWrap, false},
		}
		tok := connected("acme-ig", "acme", "v1")
		tok.Sealed = old
		connect(t, s, tok)
		if err := s.UpsertToken(ctx, store.Token{ID: "file-token", BudgetWindow: "1h", SecretRef: "env:T"}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			before := tokenString(getToken(t, s, "acme-ig"))
			ok, err := s.RewrapToken(ctx, tt.id, tt.from, tt.to)
			if err != nil || ok != tt.updated {
				t.Errorf("%s: RewrapToken = %v, %v; want %v", tt.name, ok, err, tt.updated)
			}
			if !tt.updated {
				if after := tokenString(getToken(t, s, "acme-ig")); after != before {
					t.Errorf("%s: the row changed:\n got %s\nwant %s", tt.name, after, before)
				}
			}
		}
		// Only the wrapped key and its key id changed.
		tok.Sealed = &newWrap
		wantToken(t, s, tok)
		if got := getToken(t, s, "file-token"); got.Sealed != nil {
			t.Errorf("file-token after RewrapToken: %s", tokenString(got))
		}
		for _, bad := range []store.SealedSecret{
			{WrappedKey: []byte("w"), MasterKeyID: "k3"},
			{Ciphertext: old.Ciphertext, MasterKeyID: "k3"},
			{Ciphertext: old.Ciphertext, WrappedKey: []byte("w")},
		} {
			if _, err := s.RewrapToken(ctx, "acme-ig", "k2", bad); err == nil {
				t.Errorf("RewrapToken with an incomplete sealed secret %+v succeeded", bad)
			}
		}
		if _, err := s.RewrapToken(ctx, "acme-ig", "", newWrap); err == nil {
			t.Error("RewrapToken from an empty key id succeeded")
		}
	})
}

// A database error in ConnectToken does not carry the sealed bytes, not
// even in the PostgreSQL error's detail (which quotes the failing row).
func TestConnectTokenErrorsHideSealedBytes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme")
		raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		// A planted failure on a row carrying sealed bytes.
		plant := map[string]string{
			testenv.SQLite: `CREATE TRIGGER planted BEFORE INSERT ON tokens WHEN NEW.token_type = 'BOOM'
				BEGIN SELECT RAISE(ABORT, 'planted failure'); END`,
			testenv.Postgres: `ALTER TABLE tokens ADD CONSTRAINT planted CHECK (token_type <> 'BOOM')`,
		}[b.name]
		if _, err := raw.Exec(plant); err != nil {
			t.Fatal(err)
		}
		tok := connected("acme-ig", "acme", "v1")
		tok.Health.Type = "BOOM"
		secrets := [][]byte{tok.Sealed.Ciphertext, tok.Sealed.WrappedKey}
		leaks := func(msg string) bool {
			for _, sb := range secrets {
				if strings.Contains(msg, string(sb)) || strings.Contains(strings.ToLower(msg), hex.EncodeToString(sb)) {
					return true
				}
			}
			return false
		}
		if b.name == testenv.Postgres {
			// The control: PostgreSQL's own error does quote the row.
			_, rawErr := raw.Exec(`INSERT INTO tokens (id, budget_window, sealed_value, wrapped_key, master_key_id, token_type)
				VALUES ('x', '1h', $1, $2, 'k1', 'BOOM')`, tok.Sealed.Ciphertext, tok.Sealed.WrappedKey)
			var pgErr *pgconn.PgError
			if !errors.As(rawErr, &pgErr) || !leaks(pgErr.Detail) {
				t.Fatalf("control: the raw error %v does not quote the sealed bytes; the test proves nothing", rawErr)
			}
		}
		err = s.ConnectToken(ctx, tok)
		if err == nil {
			t.Fatal("ConnectToken succeeded despite the planted failure")
		}
		if leaks(err.Error()) || leaks(fmt.Sprintf("%+v %#v", err, err)) {
			t.Errorf("ConnectToken error carries sealed bytes: %v", err)
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (leaks(pgErr.Detail) || leaks(pgErr.Where)) {
			t.Errorf("ConnectToken error wraps a PostgreSQL error quoting the sealed bytes: %q", pgErr.Detail)
		}
		if _, err := s.Token(ctx, "acme-ig"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token after the failed connection: %v, want ErrNotFound", err)
		}
		if got := tenantToken(t, s, "acme"); got != "" {
			t.Errorf("acme's token after the failed connection: %q", got)
		}
	})
}

// Undecodable scopes fail only a read of that row, as accounts do.
func TestPoisonScopesDoNotFailLists(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		addTenants(t, s, "acme")
		connect(t, s, connected("good", "acme", "g"))
		connect(t, s, connected("poison", "acme", "p"))
		raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if _, err := raw.Exec(`UPDATE tokens SET scopes = '{not json' WHERE id = 'poison'`); err != nil {
			t.Fatal(err)
		}
		tokens, err := s.Tokens(ctx)
		if err != nil || len(tokens) != 2 || len(tokens[0].Health.Scopes) != 2 || tokens[1].Health.Scopes == nil || len(tokens[1].Health.Scopes) != 0 {
			t.Errorf("Tokens() = %v, %v; want good with its scopes and poison with none", tokens, err)
		}
		if _, err := s.Token(ctx, "poison"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(poison): %v, want a decode error", err)
		}
	})
}

func TestTokenHealthExpiresFirst(t *testing.T) {
	day := func(n int) time.Time { return time.Date(2031, 1, n, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		expires, dataAccess, want time.Time
	}{
		{day(5), day(9), day(5)},
		{day(9), day(5), day(5)},
		{time.Time{}, day(5), day(5)}, // never expires, but its data access does
		{day(5), time.Time{}, day(5)},
		{time.Time{}, time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		if got := (store.TokenHealth{ExpiresAt: tt.expires, DataAccessExpiresAt: tt.dataAccess}).ExpiresFirst(); !got.Equal(tt.want) {
			t.Errorf("ExpiresFirst(%v, %v) = %v, want %v", tt.expires, tt.dataAccess, got, tt.want)
		}
	}
}

func TestTokenTenants(t *testing.T) {
	tokens := []store.Token{{ID: "platform"}, {ID: "file-b"}, {ID: "tok-c", Tenant: "c"}, {ID: "app"}}
	tenants := []store.Tenant{{ID: "a"}, {ID: "b", TokenID: "file-b"}, {ID: "c", TokenID: "tok-c"}}
	got := store.TokenTenants(tokens, tenants)
	want := map[string]string{"file-b": "b", "tok-c": "c"}
	if len(got) != len(want) || got["file-b"] != "b" || got["tok-c"] != "c" {
		t.Errorf("TokenTenants = %v, want %v", got, want)
	}
}
