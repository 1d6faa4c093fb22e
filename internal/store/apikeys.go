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

// HashAPIKey is what the store keeps of an API key: its SHA-256, in hex.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (s *sqlStore) AddAPIKey(ctx context.Context, tenant, name, key string, now time.Time) error {
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
