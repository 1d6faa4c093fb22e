package store_test

// Opening a store: DSN forms, migrations on open, errors without secrets.

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/socialproof/verifier/internal/store"
)

func TestMigrationsApplyOnReopen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		ctx := context.Background()
		first, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("first Open: %v", err)
		}
		ids := submit(t, first, t0, newClaim("acme", "k1"))
		if err := first.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		second := openStore(t, dsn)
		third := openStore(t, dsn) // open while another store holds the database
		for _, s := range []store.Store{second, third} {
			if got := getClaim(t, s, ids[0]); got.Key != "k1" {
				t.Errorf("after reopen: claim key %q, want k1", got.Key)
			}
		}
	})
}

func TestConcurrentOpenOfNewDatabase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend, dsn string) {
		const openers = 4
		var wg sync.WaitGroup
		errs := make([]error, openers)
		for i := range openers {
			wg.Go(func() {
				s, err := store.Open(context.Background(), dsn)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
		}
	})
}

func TestOpenErrorHidesPassword(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
	}{
		// Nothing listens on port 1.
		{"unreachable", "postgres://alice:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"},
		{"password parameter", "postgresql://alice@127.0.0.1:1/db?sslmode=disable&connect_timeout=2&password=s3cr3t-pw"},
		{"malformed port", "postgres://alice:s3cr3t-pw@127.0.0.1:port/db"},
		{"unknown sslmode", "postgres://alice:s3cr3t-pw@127.0.0.1:1/db?sslmode=sometimes"},
	}
	for _, tt := range tests {
		_, err := store.Open(context.Background(), tt.dsn)
		if err == nil {
			t.Errorf("%s: Open succeeded", tt.name)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("%s: error contains the password: %v", tt.name, err)
		}
		if !strings.HasPrefix(err.Error(), "open store: ") {
			t.Errorf("%s: error %q lacks the open store: prefix", tt.name, err)
		}
	}
}

// Every SQLite DSN form names the same file.
func TestOpenSQLiteDSNForms(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "claims.db")
	ids := submit(t, openStore(t, path), t0, newClaim("acme", "k1"))
	for _, dsn := range []string{
		path,
		"sqlite:" + path,
		"sqlite://" + path, // sqlite:///abs/path
		"file:" + path,
		"file://" + path,
		"file:" + path + "?cache=private",
	} {
		s := openStore(t, dsn)
		claims, err := s.Claims(context.Background(), ids)
		if err != nil || len(claims) != 1 {
			t.Errorf("Open(%q): Claims = %d claims, %v; want the claim stored through the bare path", dsn, len(claims), err)
		}
	}
}
