package vault_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/socialproof/verifier/internal/codec"
	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/vault"
)

func newKey(t *testing.T, id string) codec.Key {
	t.Helper()
	k := codec.Key{ID: id, Secret: make([]byte, codec.KeySize)}
	if _, err := rand.Read(k.Secret); err != nil {
		t.Fatal(err)
	}
	return k
}

func newVault(t *testing.T, keys ...codec.Key) *vault.Vault {
	t.Helper()
	v, err := vault.New(keys...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// tokenValue is a value shaped like a Meta user access token, random so
// that no test finds it by accident.
func tokenValue(t *testing.T) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 180)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "EAAB" + string(b)
}

func seal(t *testing.T, v *vault.Vault, id, value string) (s sealedSecret) {
	t.Helper()
	got, err := v.Seal(id, secret.New(value))
	if err != nil {
		t.Fatalf("Seal(%s): %v", id, err)
	}
	return got
}

func openValue(t *testing.T, v *vault.Vault, id string, s sealedSecret) string {
	t.Helper()
	got, err := v.Open(id, s)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	return got.Reveal()
}

// encodings of b that must never appear where b must not.
func encodings(b []byte) []string {
	return []string{
		string(b),
		hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
	}
}

// revealsAny reports which of secrets (in any encoding) text contains.
func revealsAny(text string, secrets ...[]byte) string {
	for _, s := range secrets {
		for _, e := range encodings(s) {
			if strings.Contains(text, e) {
				return e
			}
		}
	}
	return ""
}

func TestSealOpenRoundTrip(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	v := newVault(t, k1)
	for _, value := range []string{"x", tokenValue(t), "EAAB|ünïcode|" + strings.Repeat("z", 4096)} {
		s := seal(t, v, "acme-ig", value)
		if s.MasterKeyID != "k1" || len(s.Ciphertext) == 0 || len(s.WrappedKey) == 0 {
			t.Fatalf("Seal = %+v", s)
		}
		if got := openValue(t, v, "acme-ig", s); got != value {
			t.Errorf("Open = %d bytes, want the %d sealed", len(got), len(value))
		}
		// A vault holding the key among others opens it too.
		if got := openValue(t, newVault(t, k2, k1), "acme-ig", s); got != value {
			t.Errorf("Open under [k2 k1] = %d bytes, want the %d sealed", len(got), len(value))
		}
		// Every seal has its own data key and nonces.
		again := seal(t, v, "acme-ig", value)
		if bytes.Equal(again.Ciphertext, s.Ciphertext) || bytes.Equal(again.WrappedKey, s.WrappedKey) {
			t.Error("sealing the same value twice gave the same bytes")
		}
		if len(value) >= 16 && revealsAny(string(s.Ciphertext)+string(s.WrappedKey), []byte(value[:16])) != "" {
			t.Error("the sealed bytes hold the value")
		}
	}
	if _, err := v.Seal("acme-ig", secret.Value{}); err == nil {
		t.Error("Seal of an empty value succeeded")
	}
	if _, err := v.Seal("", secret.New("x")); err == nil {
		t.Error("Seal for an empty token id succeeded")
	}
}

// Altered bytes, a sealed value copied onto another token or relabelled
// with another key id, do not open; the errors name ids only.
func TestOpenRefusesAlteredOrMoved(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	v := newVault(t, k1, k2)
	value := tokenValue(t)
	s := seal(t, v, "acme-ig", value)
	other := seal(t, v, "zeta-ig", tokenValue(t))
	underK2 := seal(t, newVault(t, k2, k1), "acme-ig", value)

	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		if i < 0 {
			i += len(c)
		}
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name string
		id   string
		s    sealedSecret
	}{
		{"ciphertext nonce", "acme-ig", sealedSecret{Ciphertext: flip(s.Ciphertext, 0), WrappedKey: s.WrappedKey, MasterKeyID: "k1"}},
		{"ciphertext body", "acme-ig", sealedSecret{Ciphertext: flip(s.Ciphertext, 14), WrappedKey: s.WrappedKey, MasterKeyID: "k1"}},
		{"ciphertext tag", "acme-ig", sealedSecret{Ciphertext: flip(s.Ciphertext, -1), WrappedKey: s.WrappedKey, MasterKeyID: "k1"}},
		{"ciphertext truncated", "acme-ig", sealedSecret{Ciphertext: s.Ciphertext[:20], WrappedKey: s.WrappedKey, MasterKeyID: "k1"}},
		{"ciphertext empty", "acme-ig", sealedSecret{WrappedKey: s.WrappedKey, MasterKeyID: "k1"}},
		{"wrapped key nonce", "acme-ig", sealedSecret{Ciphertext: s.Ciphertext, WrappedKey: flip(s.WrappedKey, 0), MasterKeyID: "k1"}},
		{"wrapped key body", "acme-ig", sealedSecret{Ciphertext: s.Ciphertext, WrappedKey: flip(s.WrappedKey, 14), MasterKeyID: "k1"}},
		{"wrapped key tag", "acme-ig", sealedSecret{Ciphertext: s.Ciphertext, WrappedKey: flip(s.WrappedKey, -1), MasterKeyID: "k1"}},
		{"wrapped key empty", "acme-ig", sealedSecret{Ciphertext: s.Ciphertext, MasterKeyID: "k1"}},
		{"relabelled key id", "acme-ig", sealedSecret{Ciphertext: s.Ciphertext, WrappedKey: s.WrappedKey, MasterKeyID: "k2"}},
		{"another token's ciphertext", "acme-ig", sealedSecret{Ciphertext: other.Ciphertext, WrappedKey: s.WrappedKey, MasterKeyID: "k1"}},
		{"another token's wrapped key", "acme-ig", sealedSecret{Ciphertext: s.Ciphertext, WrappedKey: other.WrappedKey, MasterKeyID: "k1"}},
		{"copied onto another token", "zeta-ig", s},
		{"copied onto another token, under k2", "zeta-ig", underK2},
		{"no key id", "acme-ig", sealedSecret{Ciphertext: s.Ciphertext, WrappedKey: s.WrappedKey}},
	}
	for _, tt := range tests {
		got, err := v.Open(tt.id, tt.s)
		if err == nil {
			t.Errorf("%s: Open succeeded (%d bytes)", tt.name, len(got.Reveal()))
			continue
		}
		if leak := revealsAny(err.Error(), []byte(value), k1.Secret, k2.Secret); leak != "" {
			t.Errorf("%s: error %q reveals a secret", tt.name, err)
		}
		if !strings.Contains(err.Error(), tt.id) {
			t.Errorf("%s: error %q does not name the token", tt.name, err)
		}
	}
	// The untouched secret still opens: the failures above were the changes'.
	if got := openValue(t, v, "acme-ig", s); got != value {
		t.Error("the untouched secret does not open")
	}
}

func TestOpenUnknownKey(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	s := seal(t, newVault(t, k1), "acme-ig", tokenValue(t))
	_, err := newVault(t, k2).Open("acme-ig", s)
	if !errors.Is(err, vault.ErrUnknownKey) || !strings.Contains(err.Error(), `"k1"`) {
		t.Errorf("Open under a key not held: %v, want ErrUnknownKey naming k1", err)
	}
	// A key with the same id and other bytes is no help.
	impostor := newKey(t, "k1")
	if _, err := newVault(t, impostor).Open("acme-ig", s); err == nil {
		t.Error("Open under another key named k1 succeeded")
	}
}

func TestNewRules(t *testing.T) {
	k1 := newKey(t, "k1")
	tests := []struct {
		name string
		keys []codec.Key
	}{
		{"no key", nil},
		{"empty id", []codec.Key{{ID: "", Secret: k1.Secret}}},
		{"id with a colon", []codec.Key{{ID: "k:1", Secret: k1.Secret}}},
		{"id with a space", []codec.Key{{ID: "k 1", Secret: k1.Secret}}},
		{"short key", []codec.Key{{ID: "k1", Secret: k1.Secret[:16]}}},
		{"long key", []codec.Key{{ID: "k1", Secret: append(bytes.Clone(k1.Secret), 0)}}},
		{"duplicate id", []codec.Key{k1, {ID: "k1", Secret: newKey(t, "x").Secret}}},
	}
	for _, tt := range tests {
		_, err := vault.New(tt.keys...)
		if err == nil {
			t.Errorf("%s: New succeeded", tt.name)
			continue
		}
		if leak := revealsAny(err.Error(), k1.Secret); leak != "" {
			t.Errorf("%s: error %q reveals the key", tt.name, err)
		}
	}
	v := newVault(t, newKey(t, "k2"), k1)
	if v.ActiveKey() != "k2" || !v.Holds("k1") || !v.Holds("k2") || v.Holds("k3") {
		t.Errorf("vault %v: active %s", v, v.ActiveKey())
	}
}

func TestParseAndFromRef(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	lines := "# rotated 2026-11\n\nk2:" + base64.StdEncoding.EncodeToString(k2.Secret) + "\n  k1 : " + base64.StdEncoding.EncodeToString(k1.Secret) + "  \n"
	v, err := vault.Parse(lines)
	if err != nil {
		t.Fatal(err)
	}
	if v.ActiveKey() != "k2" || !v.Holds("k1") {
		t.Fatalf("Parse: %v", v)
	}
	// The parsed keys are the keys: what k1 sealed, the parsed vault opens.
	value := tokenValue(t)
	if got := openValue(t, v, "t", seal(t, newVault(t, k1), "t", value)); got != value {
		t.Error("the parsed vault does not open what k1 sealed")
	}

	secretish := base64.StdEncoding.EncodeToString(k1.Secret)
	for _, bad := range []string{"", "# only a comment", "k1 " + secretish, "k1:not base64!" + secretish[:8], "k1:" + base64.StdEncoding.EncodeToString(k1.Secret[:8])} {
		_, err := vault.Parse(bad)
		if err == nil {
			t.Errorf("Parse(%.12q...) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), secretish[:8]) {
			t.Errorf("Parse error %q quotes the key line", err)
		}
	}

	if v, err := vault.FromRef(""); v != nil || err != nil {
		t.Errorf("FromRef(\"\") = %v, %v; want nil, nil", v, err)
	}
	t.Setenv("TEST_VAULT_KEYS", lines)
	if v, err := vault.FromRef("env:TEST_VAULT_KEYS"); err != nil || v.ActiveKey() != "k2" {
		t.Errorf("FromRef(env) = %v, %v", v, err)
	}
	if _, err := vault.FromRef("env:TEST_VAULT_KEYS_UNSET"); err == nil {
		t.Error("FromRef of an unset variable succeeded")
	}
	if _, err := vault.FromRef(lines); err == nil || strings.Contains(err.Error(), secretish[:8]) {
		t.Errorf("FromRef(key lines themselves): %v, want an error that does not quote them", err)
	}
}

// A vault prints, logs and marshals as its key ids; no output or error of
// the package shows key bytes or token values.
func TestNoSecretsInOutput(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	v := newVault(t, k2, k1)
	value := tokenValue(t)
	s := seal(t, v, "acme-ig", value)

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("vault", "vault", v)
	js, err := json.Marshal(struct{ V *vault.Vault }{v})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprintf("%v %+v %#v %s %x %q", v, v, v, v, v, v),
		fmt.Sprintf("%v %+v %#v", *v, *v, *v),
		v.String(), string(js), logged.String(),
	}
	_, errOpen := newVault(t, newKey(t, "k3")).Open("acme-ig", s)
	_, errTamper := v.Open("acme-ig", sealedSecret{Ciphertext: s.Ciphertext[:len(s.Ciphertext)-1], WrappedKey: s.WrappedKey, MasterKeyID: "k2"})
	_, errMoved := v.Open("zeta-ig", s)
	_, _, errRewrap := newVault(t, newKey(t, "k4"), k2).Rewrap("zeta-ig", s)
	for _, err := range []error{errOpen, errTamper, errMoved, errRewrap} {
		if err == nil {
			t.Fatal("a failing call succeeded")
		}
		outputs = append(outputs, err.Error(), fmt.Sprintf("%+v %#v", err, err))
	}
	for _, out := range outputs {
		if leak := revealsAny(out, k1.Secret, k2.Secret, []byte(value)); leak != "" {
			t.Errorf("output %.80q... reveals a secret", out)
		}
	}
	if !strings.Contains(v.String(), "k2") || !strings.Contains(v.String(), "k1") {
		t.Errorf("String() = %q, want the key ids", v.String())
	}
	// The control: the check finds a key where one is.
	if revealsAny("x"+base64.StdEncoding.EncodeToString(k1.Secret)+"x", k1.Secret) == "" {
		t.Fatal("revealsAny misses a base64 key")
	}
}

func TestRewrap(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	value := tokenValue(t)
	s := seal(t, newVault(t, k1), "acme-ig", value)
	v := newVault(t, k2, k1)

	r, changed, err := v.Rewrap("acme-ig", s)
	if err != nil || !changed {
		t.Fatalf("Rewrap = %v, %v", changed, err)
	}
	if r.MasterKeyID != "k2" || !bytes.Equal(r.Ciphertext, s.Ciphertext) || bytes.Equal(r.WrappedKey, s.WrappedKey) {
		t.Errorf("Rewrap: key %s, ciphertext same %v, wrapped key same %v; want k2, same, new",
			r.MasterKeyID, bytes.Equal(r.Ciphertext, s.Ciphertext), bytes.Equal(r.WrappedKey, s.WrappedKey))
	}
	// The new key alone opens it.
	if got := openValue(t, newVault(t, k2), "acme-ig", r); got != value {
		t.Error("the rewrapped secret does not open under k2 alone")
	}
	again, changed, err := v.Rewrap("acme-ig", r)
	if err != nil || changed || !bytes.Equal(again.WrappedKey, r.WrappedKey) || again.MasterKeyID != "k2" {
		t.Errorf("Rewrap under the active key = %v, %v; want unchanged", changed, err)
	}

	// Rewrap refuses what Open refuses: it never blesses damaged bytes.
	damaged := sealedSecret{Ciphertext: bytes.Clone(s.Ciphertext), WrappedKey: s.WrappedKey, MasterKeyID: "k1"}
	damaged.Ciphertext[len(damaged.Ciphertext)-1] ^= 1
	if _, _, err := v.Rewrap("acme-ig", damaged); err == nil {
		t.Error("Rewrap of a damaged ciphertext succeeded")
	}
	if _, _, err := v.Rewrap("zeta-ig", s); err == nil {
		t.Error("Rewrap for another token succeeded")
	}
	if _, _, err := newVault(t, k2).Rewrap("acme-ig", s); !errors.Is(err, vault.ErrUnknownKey) {
		t.Errorf("Rewrap from a key not held: %v, want ErrUnknownKey", err)
	}
}
