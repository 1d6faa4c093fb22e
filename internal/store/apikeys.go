package store

// Platform API keys: what the platform API authenticates tenants by.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// MinAPIKeyLength is the shortest platform API key accepted: keys are
// random secrets (starter makes 32 bytes, base64url), never passwords.
const MinAPIKeyLength = 32

// APIKey is a platform API key Store.AddAPIKey stores for a tenant. Key is a
// secret: an APIKey prints without it (String, GoString and Format show
// "[redacted]" in its place, for every verb), never marshals it to JSON, and
// the store keeps only its hash (HashAPIKey).
type APIKey struct {
	// Tenant is the tenant the key authenticates. Required.
	Tenant string
	// Name tells the tenant's keys apart ("backend", "starter", ...).
	Name string
	// Key is the key itself, a random secret of at least MinAPIKeyLength
	// characters. Never printed, logged or put in an error.
	Key string `json:"-"`
	// Now is when the key was created.
	Now time.Time
}

// redacted stands in for the key wherever an APIKey is printed.
const redacted = "[redacted]"

// String shows the key's tenant, name and creation time, not the key.
func (k APIKey) String() string {
	return fmt.Sprintf("{Tenant:%s Name:%s Key:%s Now:%s}", k.Tenant, k.Name, redacted, k.Now)
}

// GoString is String for %#v, as Go syntax.
func (k APIKey) GoString() string {
	return fmt.Sprintf("store.APIKey{Tenant:%q, Name:%q, Key:%q, Now:%#v}", k.Tenant, k.Name, redacted, k.Now)
}

// Format prints k as String does (GoString for %#v), whatever the verb and
// flags: no verb (%x, %q, %+v, ...) reaches the key.
func (k APIKey) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, k.GoString())
		return
	}
	fmt.Fprint(f, k.String())
}

// HashAPIKey is what the store keeps of an API key: its SHA-256, in hex.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (s *sqlStore) AddAPIKey(ctx context.Context, k APIKey) error {
	tenant, name, key, now := k.Tenant, k.Name, k.Key, k.Now
	if tenant == "" || len(key) < MinAPIKeyLength {
		return fmt.Errorf("add API key: need a tenant and a key of at least %d characters", MinAPIKeyLength)
	}
	if _, err := s.db.ExecContext(ctx, s.d.rebind(`INSERT INTO api_keys (key_hash, tenant_id, name, created_at) VALUES (?, ?, ?, ?)`),
		HashAPIKey(key), tenant, name, s.d.timeArg(now)); err != nil {
		return fmt.Errorf("add API key for tenant %s: %w", tenant, err)
	}
	return nil
}

func (s *sqlStore) APIKeyTenant(ctx context.Context, key string) (string, error) {
	var tenant string
	err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT tenant_id FROM api_keys WHERE key_hash = ?`), HashAPIKey(key)).Scan(&tenant)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("API key: %w", err)
	}
	return tenant, nil
}
