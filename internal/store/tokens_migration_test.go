package store_test

// Migration 00008 (token lifecycle): down, up, schema and checks.

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socialproof/verifier/internal/store"
	"github.com/socialproof/verifier/internal/testenv"
)

// Migration 00008 goes down and up again on a database holding reference,
// connected and app tokens: reference tokens keep their columns (their health
// goes, they are checked again), rows that need the new columns (connected
// tokens, the app row) are dropped, and the old constraints hold again.
func TestMigrationTokenLifecycleDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		s, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		ref := store.Token{ID: "file-token", Accounts: []string{"1"}, BudgetCalls: 4800, BudgetWindow: "24h", SecretRef: "file:/run/secrets/page"}
		for _, tok := range []store.Token{ref, {ID: store.AppTokenID, BudgetCalls: 200, BudgetWindow: "1h"}} {
			if err := s.UpsertToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetTokenHealth(ctx, "file-token", store.TokenHealth{State: store.TokenHealthy, MetaUserID: "u1"}); err != nil {
			t.Fatal(err)
		}
		addTenants(t, s, "acme")
		connect(t, s, connected("acme-ig", "acme", "v1"))

		raw := closeAndMigrateDown(t, s, b, dsn, 7)
		for _, col := range []string{"tenant_id", "sealed_value", "state", "meta_user_id"} {
			if _, err := raw.Exec(`SELECT ` + col + ` FROM tokens`); err == nil {
				t.Errorf("tokens.%s still exists after down", col)
			}
		}
		var id, accounts, window, secretRef string
		var calls int
		rows, err := raw.Query(`SELECT id, accounts, budget_calls, budget_window, secret_ref FROM tokens`)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for rows.Next() {
			if err := rows.Scan(&id, &accounts, &calls, &window, &secretRef); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if n != 1 || id != "file-token" || accounts != `["1"]` || calls != 4800 || window != "24h" || secretRef != "file:/run/secrets/page" {
			t.Errorf("tokens after down: %d rows, last %s %s %d %s %s; want file-token alone, unchanged", n, id, accounts, calls, window, secretRef)
		}
		for _, insert := range []string{
			`INSERT INTO tokens (id, budget_window) VALUES ('app', '1h')`,                                     // NOT NULL again
			`INSERT INTO tokens (id, budget_window, secret_ref) VALUES ('raw', '1h', 'EAABsbCS1iHgBAKZA123')`, // the old CHECK
		} {
			if _, err := raw.Exec(insert); err == nil {
				t.Errorf("after down, %s succeeded", insert)
			}
		}

		s = openStore(t, dsn) // migrates up again
		wantToken(t, s, store.Token{ID: "file-token", Accounts: []string{"1"}, BudgetCalls: 4800, BudgetWindow: "24h", SecretRef: "file:/run/secrets/page",
			Health: store.TokenHealth{State: store.TokenUnknown, Scopes: []string{}}})
		for _, id := range []string{"acme-ig", store.AppTokenID} {
			if _, err := s.Token(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Token(%s) after down and up: %v, want ErrNotFound", id, err)
			}
		}
		// The tenant still names its dropped token (documented in the Down).
		if got := tenantToken(t, s, "acme"); got != "acme-ig" {
			t.Errorf("acme's token after down and up: %q", got)
		}
		again := connected("acme-ig", "acme", "v2")
		connect(t, s, again)
		wantToken(t, s, again)
		if err := s.UpsertToken(ctx, store.Token{ID: store.AppTokenID, BudgetWindow: "1h"}); err != nil {
			t.Errorf("UpsertToken(app) after down and up: %v", err)
		}
	})
}

// tokensSchema describes the tokens table: its columns, its constraints (the
// table's SQL on SQLite) and its indexes, whitespace folded.
func tokensSchema(t *testing.T, b backend, db *sql.DB) []string {
	t.Helper()
	queries := map[string][]string{
		testenv.SQLite: {
			`SELECT cid || ' ' || name || ' ' || type || ' notnull=' || "notnull" || ' default=' || COALESCE(dflt_value, '') || ' pk=' || pk
				FROM pragma_table_info('tokens') ORDER BY cid`,
			`SELECT replace(sql, 'CREATE TABLE "tokens"', 'CREATE TABLE tokens') FROM sqlite_master WHERE type = 'table' AND name = 'tokens'`,
			`SELECT name || ': ' || sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tokens' AND sql IS NOT NULL ORDER BY name`,
		},
		testenv.Postgres: {
			`SELECT ordinal_position || ' ' || column_name || ' ' || data_type || ' nullable=' || is_nullable || ' default=' || COALESCE(column_default, '')
				FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'tokens' ORDER BY ordinal_position`,
			`SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'tokens'::regclass ORDER BY conname`,
			`SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'tokens' ORDER BY indexname`,
		},
	}[b.name]
	var out []string
	for _, q := range queries {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join(strings.Fields(line), " "))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// 00008 adds its columns in the same order on both databases, and its Down
// gives back exactly the tokens table of 00001-00007 (columns, constraints,
// indexes).
func TestMigrationTokenLifecycleSchema(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		path := b.rawDSN(dsn)
		if b.name == testenv.SQLite {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		db, err := sql.Open(b.rawDriver, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := store.MigrateUpTo(ctx, db, b.name, 7); err != nil {
			t.Fatal(err)
		}
		schema7 := tokensSchema(t, b, db)
		if err := store.MigrateUpTo(ctx, db, b.name, 8); err != nil {
			t.Fatal(err)
		}
		var columns []string
		rows, err := db.Query(`SELECT * FROM tokens`)
		if err != nil {
			t.Fatal(err)
		}
		columns, err = rows.Columns()
		rows.Close()
		if err != nil {
			t.Fatal(err)
		}
		wantColumns := []string{"id", "accounts", "budget_calls", "budget_window", "secret_ref", "tenant_id", "connected_at",
			"sealed_value", "wrapped_key", "master_key_id", "state", "state_reason", "checked_at", "expires_at", "data_access_expires_at",
			"scopes", "token_type", "meta_user_id"}
		if !slices.Equal(columns, wantColumns) {
			t.Errorf("tokens columns at 00008:\n%v\nwant\n%v", columns, wantColumns)
		}
		schema8 := tokensSchema(t, b, db)
		if !slices.ContainsFunc(schema8, func(s string) bool {
			return strings.HasPrefix(s, "tokens_meta_user: CREATE INDEX tokens_meta_user ON ")
		}) {
			t.Errorf("no index tokens_meta_user at 00008:\n%s", strings.Join(schema8, "\n"))
		}
		if err := store.MigrateDownTo(ctx, db, b.name, 7); err != nil {
			t.Fatal(err)
		}
		if down := tokensSchema(t, b, db); !slices.Equal(down, schema7) {
			t.Errorf("tokens after down:\n%s\nwant\n%s", strings.Join(down, "\n"), strings.Join(schema7, "\n"))
		}
		if b.name == testenv.SQLite {
			var check string
			if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
				t.Errorf("integrity_check: %s, %v", check, err)
			}
		}
	})
}

// The CHECKs of 00008 refuse rows the store never writes: a raw value as
// secret_ref, a row with no way to its value, a partial sealed value, an
// unknown state.
func TestMigrationTokenLifecycleChecks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		openStore(t, dsn)
		raw, err := sql.Open(b.rawDriver, b.rawDSN(dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		blob := map[string]string{testenv.SQLite: `x'00ff'`, testenv.Postgres: `'\x00ff'::bytea`}[b.name]
		tests := []struct {
			name   string
			values string // (id, secret_ref, sealed_value, wrapped_key, master_key_id, state)
			ok     bool
		}{
			{"reference", `'r', 'env:T', NULL, NULL, NULL, 'unknown'`, true},
			{"sealed", `'s', NULL, ` + blob + `, ` + blob + `, 'k1', 'healthy'`, true},
			{"app row", `'app', NULL, NULL, NULL, NULL, 'unknown'`, true},
			{"raw value as secret_ref", `'x1', 'EAABsbCS1iHg', NULL, NULL, NULL, 'unknown'`, false},
			{"nothing", `'x2', NULL, NULL, NULL, NULL, 'unknown'`, false},
			{"no wrapped key", `'x3', NULL, ` + blob + `, NULL, 'k1', 'unknown'`, false},
			{"no master key id", `'x4', NULL, ` + blob + `, ` + blob + `, NULL, 'unknown'`, false},
			{"a key id alone beside a ref", `'x5', 'env:T', NULL, NULL, 'k1', 'unknown'`, false},
			{"unknown state", `'x6', 'env:T', NULL, NULL, NULL, 'fine'`, false},
		}
		for _, tt := range tests {
			_, err := raw.Exec(`INSERT INTO tokens (id, secret_ref, sealed_value, wrapped_key, master_key_id, state, budget_window) VALUES (` + tt.values + `, '1h')`)
			if (err == nil) != tt.ok {
				t.Errorf("%s: insert err %v, want ok=%v", tt.name, err, tt.ok)
			}
		}
	})
}
