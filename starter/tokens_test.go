package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/vault"
)

func testKeyLine(id string, b byte) string {
	return id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, codec.KeySize))
}

// connectSealed stores value as acme's connected token, sealed by keys.
func connectSealed(t *testing.T, st store.Store, keys *vault.Vault, value string, h store.TokenHealth) {
	t.Helper()
	sealed, err := keys.Seal("tok-acme", secret.New(value))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.ConnectToken(context.Background(), store.Token{ID: "tok-acme", Tenant: "acme", Sealed: &sealed,
		BudgetCalls: 200, BudgetWindow: "1h", ConnectedAt: time.Now(), Health: h}); err != nil {
		t.Fatal(err)
	}
}

// `starter tokens` lists every token with its state, expiry, scopes and
// how it is stored, never a value; `status` warns about the expiring one.
func TestTokensCommandListsWithoutValues(t *testing.T) {
	st, dsn := seededStore(t)
	ctx := context.Background()
	keys, err := vault.Parse(testKeyLine("k1", 1))
	if err != nil {
		t.Fatal(err)
	}
	const value = "EAAGsecretvalue0123456789"
	expires := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	connectSealed(t, st, keys, value, store.TokenHealth{State: store.TokenExpiring, Reason: "expires at 2031-05-01T00:00:00Z, in 3 days: reconnect before",
		ExpiresAt: expires, Scopes: []string{"instagram_basic", "instagram_manage_comments"}, Type: "USER", CheckedAt: time.Now()})
	if err := st.UpsertToken(ctx, store.Token{ID: "platform", BudgetCalls: 200, BudgetWindow: "1h", SecretRef: "env:PLATFORM_TOKEN"}); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := tokensCmd(ctx, []string{"-store", dsn, "-temporal=false"}, nil, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"tok-acme", "acme", "expiring", "2031-05-01T00:00:00Z", "instagram_basic,instagram_manage_comments", "200/1h",
		"sealed (key k1)", "platform", "reference env:PLATFORM_TOKEN", "unknown"} {
		if !strings.Contains(text, want) {
			t.Errorf("tokens output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, value) {
		t.Fatalf("tokens printed the token value:\n%s", text)
	}

	out.Reset()
	if err := tokensCmd(ctx, []string{"list", "-store", dsn, "-temporal=false", "-json"}, nil, &out); err != nil {
		t.Fatal(err)
	}
	var lines []TokenLine
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var tl TokenLine
		if err := json.Unmarshal([]byte(l), &tl); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		lines = append(lines, tl)
	}
	if len(lines) != 2 || lines[1].ID != "tok-acme" || lines[1].State != "expiring" || !lines[1].ExpiresAt.Equal(expires) || strings.Contains(out.String(), value) {
		t.Fatalf("tokens -json = %s", out.String())
	}

	out.Reset()
	if err := status(ctx, []string{"-store", dsn, "-temporal=false"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "token tok-acme (tenant acme): expiring") {
		t.Fatalf("status does not warn about the expiring token:\n%s", out.String())
	}
}

// `starter tokens rotate-keys` re-wraps every connected token under the
// first key; a token under a key the file does not hold fails it by name.
func TestTokensRotateKeys(t *testing.T) {
	st, dsn := seededStore(t)
	ctx := context.Background()
	old, _ := vault.Parse(testKeyLine("k1", 1))
	connectSealed(t, st, old, "EAAGsecretvalue0123456789", store.TokenHealth{State: store.TokenHealthy})

	t.Setenv("TEST_TOKEN_KEYS", testKeyLine("k2", 2)+"\n"+testKeyLine("k1", 1)+"\n")
	var out bytes.Buffer
	if err := tokensCmd(ctx, []string{"rotate-keys", "-store", dsn, "-token-keys", "env:TEST_TOKEN_KEYS"}, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "re-wrapped under key k2: 1") {
		t.Fatalf("rotate-keys: %s", out.String())
	}
	tok, err := st.Token(ctx, "tok-acme")
	if err != nil || tok.Sealed == nil || tok.Sealed.MasterKeyID != "k2" {
		t.Fatalf("after rotate-keys: %+v %v", tok.Sealed, err)
	}
	onlyNew, _ := vault.Parse(testKeyLine("k2", 2))
	if v, err := onlyNew.Open("tok-acme", *tok.Sealed); err != nil || v.Reveal() != "EAAGsecretvalue0123456789" {
		t.Fatalf("the new key alone does not open the token: %v", err)
	}

	t.Setenv("TEST_TOKEN_KEYS", testKeyLine("k3", 3))
	out.Reset()
	err = tokensCmd(ctx, []string{"rotate-keys", "-store", dsn, "-token-keys", "env:TEST_TOKEN_KEYS"}, nil, &out)
	if err == nil || !strings.Contains(err.Error(), "tok-acme") {
		t.Fatalf("rotating without the token's key: %v, want an error naming tok-acme", err)
	}
}

func TestTokensConnectNeedsKeysAndAToken(t *testing.T) {
	_, dsn := seededStore(t)
	ctx := context.Background()
	err := tokensCmd(ctx, []string{"connect", "-store", dsn, "-tenant", "acme"}, strings.NewReader("\n"), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no token given") {
		t.Fatalf("connect with an empty stdin: %v", err)
	}
	err = tokensCmd(ctx, []string{"connect", "-store", dsn, "-tenant", "acme"}, strings.NewReader("EAAGvalue\n"), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "TOKEN_KEYS_REF") || strings.Contains(err.Error(), "EAAGvalue") {
		t.Fatalf("connect without master keys: %v", err)
	}
	if err := tokensCmd(ctx, []string{"bogus"}, nil, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "unknown subcommand") {
		t.Fatalf("unknown subcommand: %v", err)
	}
}
