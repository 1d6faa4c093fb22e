package store

// Tenants: the brands on the platform, their tier, token and Meta accounts.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Tier of a tenant.
type Tier string

const (
	TierPremium  Tier = "premium"
	TierStandard Tier = "standard"
)

// Account is a Meta account a tenant owns.
type Account struct {
	ID   string      `json:"id"`
	Type AccountType `json:"type"`
}

// AccountType says which Graph API surface an account id belongs to.
type AccountType string

const (
	AccountInstagram AccountType = "instagram" // Instagram professional account (ig-user-id)
	AccountPage      AccountType = "page"      // Facebook Page
)

// Tenant is a brand on the platform.
type Tenant struct {
	ID       string    `json:"id"`
	Tier     Tier      `json:"tier"`
	TokenID  string    `json:"token,omitempty"` // the tenant's own token; empty: the platform token
	Accounts []Account `json:"accounts"`
}

// InstagramAccount returns the tenant's Instagram account id, or "".
func (t Tenant) InstagramAccount() string { return t.account(AccountInstagram) }

// PageAccount returns the tenant's Facebook Page id, or "".
func (t Tenant) PageAccount() string { return t.account(AccountPage) }

func (t Tenant) account(typ AccountType) string {
	for _, a := range t.Accounts {
		if a.Type == typ {
			return a.ID
		}
	}
	return ""
}

func (s *sqlStore) UpsertTenant(ctx context.Context, t Tenant) error {
	if t.ID == "" {
		return errors.New("upsert tenant: empty id")
	}
	if t.Tier != TierPremium && t.Tier != TierStandard {
		return fmt.Errorf("upsert tenant %s: tier %q is neither %s nor %s", t.ID, t.Tier, TierPremium, TierStandard)
	}
	accounts := t.Accounts
	if accounts == nil {
		accounts = []Account{}
	}
	accountsJSON, err := json.Marshal(accounts)
	if err != nil {
		return fmt.Errorf("upsert tenant %s: encode accounts: %w", t.ID, err)
	}
	var tokenID any
	if t.TokenID != "" {
		tokenID = t.TokenID
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO tenants (id, tier, token_id, accounts) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET tier = excluded.tier, token_id = excluded.token_id, accounts = excluded.accounts`),
			t.ID, string(t.Tier), tokenID, string(accountsJSON))
		return err
	})
	if err != nil {
		return fmt.Errorf("upsert tenant %s: %w", t.ID, err)
	}
	return nil
}

const tenantColumns = `id, tier, token_id, accounts`

// scanTenant reads a tenant row. Undecodable accounts JSON leaves Accounts
// empty and is reported as badAccounts, for the caller to decide.
func scanTenant(row scanner) (t Tenant, badAccounts error, err error) {
	var (
		tier     string
		tokenID  sql.NullString
		accounts string
	)
	if err := row.Scan(&t.ID, &tier, &tokenID, &accounts); err != nil {
		return Tenant{}, nil, err
	}
	t.Tier = Tier(tier)
	t.TokenID = tokenID.String
	if err := json.Unmarshal([]byte(accounts), &t.Accounts); err != nil {
		t.Accounts = nil
		badAccounts = fmt.Errorf("tenant %s: decode accounts: %w", t.ID, err)
	}
	if t.Accounts == nil {
		t.Accounts = []Account{}
	}
	return t, badAccounts, nil
}

func (s *sqlStore) Tenant(ctx context.Context, id string) (Tenant, error) {
	row := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT `+tenantColumns+` FROM tenants WHERE id = ?`), id)
	return one(row, "tenant "+id, scanTenant)
}

// Tenants lists all tenants by id. A tenant whose accounts cannot be decoded
// is listed with no accounts rather than failing the list.
func (s *sqlStore) Tenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	tenants, err := collectUsable(rows, scanTenant)
	if err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	// Byte order, the same on both databases whatever PostgreSQL's collation.
	slices.SortFunc(tenants, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	return tenants, nil
}
