package store_test

// Tenants, and the tenants and tokens the tenants file configures.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/socialproof/verifier/internal/store"
)

func TestTenantAndTokenRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		tok := store.Token{ID: "page-token", Accounts: []string{"1784", "1001"}, BudgetCalls: 4800, BudgetWindow: "24h", SecretRef: "file:/run/secrets/page"}
		if err := s.UpsertToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		// Read back: no tenant, nothing sealed, never checked.
		tok.Health = store.TokenHealth{State: store.TokenUnknown, Scopes: []string{}}
		if err := s.UpsertToken(ctx, store.Token{ID: "app-token", BudgetWindow: "1h", SecretRef: "env:META_APP_TOKEN"}); err != nil {
			t.Fatal(err)
		}
		tenants := []store.Tenant{
			{ID: "zeta", Tier: store.TierStandard}, // platform token, no accounts
			{ID: "acme", Tier: store.TierPremium, TokenID: "page-token", Accounts: []store.Account{
				{ID: "1784", Type: store.AccountInstagram}, {ID: "1001", Type: store.AccountPage},
			}},
		}
		for _, tn := range tenants {
			if err := s.UpsertTenant(ctx, tn); err != nil {
				t.Fatal(err)
			}
		}

		acme, err := s.Tenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(acme) != fmt.Sprint(tenants[1]) || acme.InstagramAccount() != "1784" || acme.PageAccount() != "1001" {
			t.Errorf("Tenant(acme) = %+v, want %+v", acme, tenants[1])
		}
		zeta, err := s.Tenant(ctx, "zeta")
		if err != nil {
			t.Fatal(err)
		}
		if zeta.TokenID != "" || len(zeta.Accounts) != 0 || zeta.Tier != store.TierStandard {
			t.Errorf("Tenant(zeta) = %+v", zeta)
		}

		// Upsert replaces: premium to standard, token to platform.
		acme.Tier, acme.TokenID, acme.Accounts = store.TierStandard, "", acme.Accounts[:1]
		if err := s.UpsertTenant(ctx, acme); err != nil {
			t.Fatal(err)
		}
		list, err := s.Tenants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != "acme" || list[1].ID != "zeta" || fmt.Sprint(list[0]) != fmt.Sprint(acme) {
			t.Errorf("Tenants() = %+v", list)
		}

		gotTok, err := s.Token(ctx, "page-token")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%#v", gotTok) != fmt.Sprintf("%#v", tok) {
			t.Errorf("Token = %#v, want %#v", gotTok, tok)
		}
		tokens, err := s.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(tokens) != 2 || tokens[0].ID != "app-token" || tokens[1].ID != "page-token" || tokens[0].Accounts == nil {
			t.Errorf("Tokens() = %+v", tokens)
		}

		if err := s.UpsertTenant(ctx, store.Tenant{ID: "bad", Tier: "gold"}); err == nil {
			t.Error("UpsertTenant with tier gold succeeded")
		}
		if _, err := s.Tenant(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Tenant(nobody): %v, want ErrNotFound", err)
		}
		if _, err := s.Token(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(nobody): %v, want ErrNotFound", err)
		}
	})
}

// A row with undecodable accounts fails only a read of that row.
func TestPoisonRowDoesNotFailLists(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		for _, id := range []string{"good", "poison"} {
			if err := s.UpsertTenant(ctx, store.Tenant{ID: id, Tier: store.TierStandard, Accounts: []store.Account{{ID: "1", Type: store.AccountPage}}}); err != nil {
				t.Fatal(err)
			}
			if err := s.UpsertToken(ctx, store.Token{ID: id, Accounts: []string{"1"}, BudgetWindow: "1h", SecretRef: "env:T"}); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		for _, table := range []string{"tenants", "tokens"} {
			if _, err := raw.Exec(`UPDATE ` + table + ` SET accounts = '{not json' WHERE id = 'poison'`); err != nil {
				t.Fatalf("plant poison row in %s: %v", table, err)
			}
		}

		tenants, err := s.Tenants(ctx)
		if err != nil {
			t.Fatalf("Tenants: %v", err)
		}
		if len(tenants) != 2 || len(tenants[0].Accounts) != 1 || tenants[1].ID != "poison" || len(tenants[1].Accounts) != 0 {
			t.Errorf("Tenants() = %+v, want good with its account and poison with none", tenants)
		}
		tokens, err := s.Tokens(ctx)
		if err != nil {
			t.Fatalf("Tokens: %v", err)
		}
		if len(tokens) != 2 || len(tokens[0].Accounts) != 1 || len(tokens[1].Accounts) != 0 {
			t.Errorf("Tokens() = %+v, want good with its account and poison with none", tokens)
		}
		if _, err := s.Tenant(ctx, "poison"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Tenant(poison): %v, want a decode error", err)
		}
		if _, err := s.Token(ctx, "poison"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Token(poison): %v, want a decode error", err)
		}
		if _, err := s.Tenant(ctx, "good"); err != nil {
			t.Errorf("Tenant(good): %v", err)
		}
	})
}
