package store_test

// Platform API keys.

import (
	"context"
	"errors"
	"testing"

	"github.com/socialproof/verifier/internal/store"
)

func TestAPIKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		key := "k3y-0123456789abcdef0123456789abcdef"
		if err := s.AddAPIKey(ctx, "acme", "backend", "short", t0); err == nil {
			t.Fatal("a short key was accepted")
		}
		if err := s.AddAPIKey(ctx, "acme", "backend", key, t0); err != nil {
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
