package store_test

// Platform API keys: storing them, finding their tenant, never showing them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/socialproof/verifier/internal/store"
)

func TestAPIKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		key := "k3y-0123456789abcdef0123456789abcdef"
		if err := s.AddAPIKey(ctx, store.APIKey{Tenant: "acme", Name: "backend", Key: "short", Now: t0}); err == nil {
			t.Fatal("a short key was accepted")
		}
		if err := s.AddAPIKey(ctx, store.APIKey{Tenant: "acme", Name: "backend", Key: key, Now: t0}); err != nil {
			t.Fatal(err)
		}
		if tenant, err := s.APIKeyTenant(ctx, key); err != nil || tenant != "acme" {
			t.Fatalf("APIKeyTenant = %q, %v", tenant, err)
		}
		for _, wrong := range []string{key + "x", store.HashAPIKey(key), ""} {
			if _, err := s.APIKeyTenant(ctx, wrong); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("APIKeyTenant(%q) = %v, want ErrNotFound", wrong, err)
			}
		}
	})
}

// An APIKey never shows its key: not printed with any verb, not marshaled,
// not logged, not in AddAPIKey's errors.
func TestAPIKeyNeverShown(t *testing.T) {
	const key = "s3cr3t-0123456789abcdef0123456789abcdef"
	k := store.APIKey{Tenant: "acme", Name: "backend", Key: key, Now: t0}
	var shown []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
		shown = append(shown, fmt.Sprintf(format, k), fmt.Sprintf(format, &k), fmt.Sprintf(format, []store.APIKey{k}))
	}
	shown = append(shown, k.String(), k.GoString(), fmt.Sprint(k), fmt.Sprintln(k))
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	shown = append(shown, string(b))
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("key", "k", k, "p", &k)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("key", "k", k, "p", &k)
	shown = append(shown, logs.String())
	for _, s := range shown {
		if strings.Contains(s, key) || strings.Contains(s, key[:12]) {
			t.Errorf("the key shows in %q", s)
		}
	}
	if got := fmt.Sprintf("%+v", k); !strings.Contains(got, "acme") || !strings.Contains(got, "backend") || !strings.Contains(got, "[redacted]") {
		t.Errorf("%%+v = %q, want the tenant, the name and [redacted]", got)
	}

	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		if err := s.AddAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []store.APIKey{
			k, // stored already
			{Tenant: "", Name: "backend", Key: key, Now: t0},
			{Tenant: "acme", Name: "backend", Key: key[:20], Now: t0}, // too short
		} {
			err := s.AddAPIKey(ctx, bad)
			if err == nil {
				t.Errorf("AddAPIKey(%v) succeeded", bad)
				continue
			}
			if msg := fmt.Sprintf("%v %+v %#v", err, err, err); strings.Contains(msg, key[:12]) {
				t.Errorf("AddAPIKey(%v): the error shows the key: %s", bad, msg)
			}
		}
	})
}
