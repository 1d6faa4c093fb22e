package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/socialproof/verifier/internal/store"
)

// apiKey makes a platform API key for a tenant: 32 random bytes, printed
// once; the store keeps only its SHA-256.
func apiKey(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("api-key")
	tenant := c.fs.String("tenant", "", "the tenant the key is for (required)")
	name := c.fs.String("name", "", "a label for the key, e.g. the system that uses it")
	if err := c.parse(args); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("-tenant is required")
	}
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Tenant(ctx, *tenant); err != nil {
		return fmt.Errorf("tenant %s: %w (load it with starter setup -tenants)", *tenant, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("random key: %w", err)
	}
	key := base64.RawURLEncoding.EncodeToString(raw)
	if err := st.AddAPIKey(ctx, store.APIKey{Tenant: *tenant, Name: *name, Key: key, Now: time.Now()}); err != nil {
		return err
	}
	// The key itself goes to stdout only, for the operator to hand over.
	_, err = fmt.Fprintln(out, key)
	return err
}
