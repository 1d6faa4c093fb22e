// Package testenv starts the real parts integration tests run against: the
// Temporal dev server (the CLI binary built by `make bin/temporal`), and the
// task store on SQLite and, when TEST_DATABASE_URL is set, PostgreSQL.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.uber.org/zap"

	"github.com/socialproof/verifier/internal/logging"
	"github.com/socialproof/verifier/internal/store"
)

// RepoRoot is the folder holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

// TemporalCLI is the path of the Temporal CLI: $TEMPORAL_CLI, or bin/temporal.
// A missing binary fails the test: integration tests never skip.
func TemporalCLI(t testing.TB) string {
	t.Helper()
	path := os.Getenv("TEMPORAL_CLI")
	if path == "" {
		path = filepath.Join(RepoRoot(t), "bin", "temporal")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Temporal CLI not found at %s: run `make test` (it builds bin/temporal from tools/go.mod) or set TEMPORAL_CLI", path)
	}
	return path
}

// DevServer starts a Temporal dev server on free ports with an in-memory
// database and returns a client to it; both stop when the test ends.
func DevServer(t testing.TB) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out io.Writer = io.Discard
	if testing.Verbose() {
		out = os.Stderr
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: TemporalCLI(t),
		LogLevel:     "error",
		ClientOptions: &client.Options{
			Namespace: "default",
			Logger:    logging.Temporal(zap.NewNop()),
		},
		Stdout: out,
		Stderr: out,
	})
	if err != nil {
		t.Fatalf("start Temporal dev server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Logf("stop dev server: %v", err)
		}
	})
	return srv.Client()
}

// Backend is a store under test.
type Backend struct {
	Name string // "sqlite" or "postgres"
	DSN  string
}

// Backends returns SQLite (always) and PostgreSQL when TEST_DATABASE_URL is set.
func Backends() []Backend {
	b := []Backend{{Name: "sqlite"}}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		b = append(b, Backend{Name: "postgres", DSN: os.Getenv("TEST_DATABASE_URL")})
	}
	return b
}

// SkipPostgresMessage is the reason Postgres tests skip when the variable is unset.
const SkipPostgresMessage = "TEST_DATABASE_URL not set: skipping PostgreSQL tests (CI sets it; see .ci/run)"

// OpenStore opens a fresh, empty store for b: a new SQLite file, or a new
// PostgreSQL schema dropped when the test ends.
func OpenStore(t testing.TB, b Backend) (store.Store, string) {
	t.Helper()
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "verifier.db")
	if b.Name == "postgres" {
		dsn = freshSchema(t, b.DSN)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s store: %v", b.Name, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, dsn
}

func freshSchema(t testing.TB, base string) string {
	t.Helper()
	ctx := context.Background()
	buf := make([]byte, 6)
	_, _ = rand.Read(buf)
	schema := "t_" + hex.EncodeToString(buf)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Eventually polls cond every interval until it returns true or timeout passes.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != last {
			t.Logf("waiting for %s: %s", what, state)
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(interval)
	}
}
