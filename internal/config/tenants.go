package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/socialproof/verifier/internal/secret"
	"github.com/socialproof/verifier/internal/store"
)

// Tenants is the tenants-and-tokens file `starter setup --tenants` loads
// into the store. Token values never appear in it: each token names where
// its secret lives.
//
//	{"platform_token":"platform",
//	 "tokens":[{"id":"platform","accounts":["1784..."],"budget":{"calls":200,"window":"1h"},"secret":"file:/run/secrets/platform"}],
//	 "tenants":[{"id":"acme","tier":"standard","token":"","accounts":[{"id":"1784...","type":"instagram"}]}]}
type Tenants struct {
	PlatformToken string         `json:"platform_token"`
	Tokens        []TokenEntry   `json:"tokens"`
	Tenants       []store.Tenant `json:"tenants"`
}

// TokenEntry is one token in the file.
type TokenEntry struct {
	ID       string   `json:"id"`
	Accounts []string `json:"accounts"`
	Budget   struct {
		Calls  int    `json:"calls"`
		Window string `json:"window"`
	} `json:"budget"`
	Secret string `json:"secret"`
}

// Token converts the entry for the store, with the user's plan's default
// budget (200 calls an hour) where none is given.
func (e TokenEntry) Token() store.Token {
	t := store.Token{ID: e.ID, Accounts: e.Accounts, BudgetCalls: e.Budget.Calls, BudgetWindow: e.Budget.Window, SecretRef: e.Secret}
	if t.BudgetCalls == 0 {
		t.BudgetCalls = 200
	}
	if t.BudgetWindow == "" {
		t.BudgetWindow = "1h"
	}
	return t
}

// LoadTenants reads and checks a tenants file.
func LoadTenants(path string) (Tenants, error) {
	var f Tenants
	data, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("tenants file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("tenants file %s: %w", path, err)
	}
	return f, f.Validate()
}

// Validate checks references between tenants and tokens.
func (f Tenants) Validate() error {
	var errs []error
	tokens := map[string]bool{}
	for _, e := range f.Tokens {
		t := e.Token()
		switch {
		case t.ID == "":
			errs = append(errs, errors.New("a token has no id"))
		case tokens[t.ID]:
			errs = append(errs, fmt.Errorf("token %s listed twice", t.ID))
		case secret.CheckRef(t.SecretRef) != nil:
			errs = append(errs, fmt.Errorf(`token %s: "secret" must be "env:NAME" or "file:PATH", never the value`, t.ID))
		case t.BudgetWindow != "1h" && t.BudgetWindow != "24h":
			errs = append(errs, fmt.Errorf(`token %s: budget window must be "1h" or "24h"`, t.ID))
		case t.BudgetCalls < 0:
			errs = append(errs, fmt.Errorf("token %s: budget calls must be positive", t.ID))
		}
		tokens[t.ID] = true
	}
	if f.PlatformToken != "" && !tokens[f.PlatformToken] {
		errs = append(errs, fmt.Errorf("platform token %s is not among the tokens", f.PlatformToken))
	}
	for _, t := range f.Tenants {
		switch {
		case t.ID == "":
			errs = append(errs, errors.New("a tenant has no id"))
		case t.Tier != store.TierPremium && t.Tier != store.TierStandard:
			errs = append(errs, fmt.Errorf("tenant %s: tier must be premium or standard", t.ID))
		case t.TokenID != "" && !tokens[t.TokenID]:
			errs = append(errs, fmt.Errorf("tenant %s: token %s is not among the tokens", t.ID, t.TokenID))
		}
		for _, a := range t.Accounts {
			if a.Type != store.AccountInstagram && a.Type != store.AccountPage {
				errs = append(errs, fmt.Errorf("tenant %s: account %s has type %q, want instagram or page", t.ID, a.ID, a.Type))
			}
		}
	}
	return errors.Join(errs...)
}

// Apply writes the file's tokens and tenants into the store, replacing
// entries with the same ids.
func (f Tenants) Apply(ctx context.Context, st store.Store) error {
	for _, t := range f.Tokens {
		if err := st.UpsertToken(ctx, t.Token()); err != nil {
			return fmt.Errorf("token %s: %w", t.ID, err)
		}
	}
	for _, t := range f.Tenants {
		if err := st.UpsertTenant(ctx, t); err != nil {
			return fmt.Errorf("tenant %s: %w", t.ID, err)
		}
	}
	return nil
}
